"""ClusterAutoscaler: its IAM role (trust and policy, statement by statement), the chart's values, the release
derived from the cluster's minor, and bad Args refused before any child is declared."""

from __future__ import annotations

import json

import pytest

from gpuscale.components.charts import CHARTS, upstream_facts
from gpuscale.components.cluster_autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs

RELEASE = "kubernetes:helm.sh/v3:Release"
ROLE, POLICY = "aws:iam/role:Role", "aws:iam/rolePolicy:RolePolicy"
ISSUER = "https://oidc.eks.us-west-2.amazonaws.com/id/ABC123"
OIDC_ARN = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/ABC123"


def ca_args(**overrides) -> ClusterAutoscalerArgs:
    args: ClusterAutoscalerArgs = {
        "cluster_name": "c1", "kubernetes_version": "1.33", "region": "us-west-2", "oidc_provider_arn": OIDC_ARN,
        "oidc_issuer_url": ISSUER,
        "settings": {"scan_interval_seconds": 10, "scale_down_unneeded_seconds": 300,
                     "scale_down_delay_after_add_seconds": 600, "scale_down_utilization_threshold": 0.5,
                     "scale_down_gpu_utilization_threshold": 0.3, "max_node_provision_seconds": 1200,
                     "balance_similar_node_groups": True, "skip_nodes_with_local_storage": False},
        "priorities": ["eks-spot-1a2b", "eks-ondemand-3c4d"], "resources": {"cpu": "100m", "memory": "600Mi"},
        "node_selector": {"gpuscale.io/node-role": "system"}}
    args.update(overrides)  # type: ignore[typeddict-item]
    return args


def test_role_is_trusted_by_the_autoscalers_service_account_only(harness):
    harness.run(lambda: ClusterAutoscaler("ca", ca_args()))
    trust = json.loads(harness.one(ROLE).inputs["assumeRolePolicy"])
    [statement] = trust["Statement"]
    assert statement["Effect"] == "Allow" and statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"] == {"Federated": OIDC_ARN}
    host = ISSUER.removeprefix("https://")
    assert statement["Condition"] == {"StringEquals": {
        f"{host}:sub": "system:serviceaccount:kube-system:cluster-autoscaler", f"{host}:aud": "sts.amazonaws.com"}}


def test_policy_is_upstreams_auto_discovery_policy_with_resizes_limited_to_owned_groups(harness):
    harness.run(lambda: ClusterAutoscaler("ca", ca_args()))
    policy = json.loads(harness.one(POLICY).inputs["policy"])
    describe, resize = policy["Statement"]
    upstream_describe, upstream_resize = upstream_facts("cluster_autoscaler")["iamAutoDiscoveryActions"]
    assert describe == {"Effect": "Allow", "Action": upstream_describe, "Resource": "*"}, \
        "describe actions exactly as upstream documents them, on * (IAM cannot scope them)"
    assert sorted(resize["Action"]) == upstream_resize == ["autoscaling:SetDesiredCapacity",
                                                           "autoscaling:TerminateInstanceInAutoScalingGroup"]
    assert resize["Resource"] == "*" and resize["Effect"] == "Allow"
    assert resize["Condition"] == {"StringEquals": {"aws:ResourceTag/k8s.io/cluster-autoscaler/c1": "owned"}}, \
        "resizes only on groups tagged as owned by this cluster"
    assert len(policy["Statement"]) == 2, "nothing wider"


def test_release_is_the_pinned_chart_with_the_release_of_the_clusters_minor(harness):
    harness.run(lambda: ClusterAutoscaler("ca", ca_args(kubernetes_version="1.31")))
    release = harness.one(RELEASE)
    pin = CHARTS["cluster-autoscaler"]
    assert (release.inputs["chart"], release.inputs["version"], release.inputs["repositoryOpts"]["repo"]) == \
        (pin.name, pin.version, pin.repo)
    assert release.inputs["values"]["image"]["tag"] == upstream_facts("cluster_autoscaler")["imageTags"]["1.31"]
    assert release.inputs["values"]["image"]["tag"].startswith("v1.31."), "same minor as the cluster"


def test_values_carry_the_settings_as_flags(harness):
    harness.run(lambda: ClusterAutoscaler("ca", ca_args()))
    values = harness.one(RELEASE).inputs["values"]
    assert values["extraArgs"] == {
        "scan-interval": "10s", "scale-down-unneeded-time": "300s", "scale-down-delay-after-add": "600s",
        "scale-down-utilization-threshold": "0.5", "scale-down-gpu-utilization-threshold": "0.3",
        "max-node-provision-time": "1200s", "balance-similar-node-groups": "true",
        "skip-nodes-with-local-storage": "false", "expander": "priority,least-waste"}
    assert values["autoDiscovery"] == {"clusterName": "c1", "tags": ["k8s.io/cluster-autoscaler/enabled",
                                                                    "k8s.io/cluster-autoscaler/c1"]}
    assert values["expanderPriorities"] == {"20": ["^eks-spot-1a2b$"], "10": ["^eks-ondemand-3c4d$"]}, \
        "first group preferred (higher number), each name matched exactly"
    assert values["rbac"]["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"].startswith(
        "arn:aws:iam::123456789012:role/ca-irsa-role-")


def test_runs_on_system_nodes_never_on_gpu_nodes_as_a_critical_pod(harness):
    harness.run(lambda: ClusterAutoscaler("ca", ca_args()))
    values = harness.one(RELEASE).inputs["values"]
    assert values["nodeSelector"] == {"gpuscale.io/node-role": "system"}
    terms = values["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "gpuscale.io/gpu-class", "operator": "DoesNotExist"}]}]
    assert values["tolerations"] == [], "does not tolerate the GPU taint"
    assert values["priorityClassName"] == "system-cluster-critical"
    assert values["podDisruptionBudget"] == {"maxUnavailable": 1}
    assert values["resources"] == {"requests": {"cpu": "100m", "memory": "600Mi"}, "limits": {"memory": "600Mi"}}


def test_without_priorities_the_expander_is_least_waste(harness):
    harness.run(lambda: ClusterAutoscaler("ca", ca_args(priorities=[])))
    values = harness.one(RELEASE).inputs["values"]
    assert values["extraArgs"]["expander"] == "least-waste" and values["expanderPriorities"] == {}


def test_a_minor_without_an_autoscaler_release_is_refused_before_any_child(harness):
    known = ", ".join(upstream_facts("cluster_autoscaler")["imageTags"])
    with pytest.raises(ValueError) as raised:
        harness.run(lambda: ClusterAutoscaler("ca", ca_args(kubernetes_version="1.27")))
    assert str(raised.value) == ("kubernetes_version (ClusterAutoscaler \"ca\"): '1.27' is not allowed; allowed: a "
                                 f"Kubernetes minor with a cluster-autoscaler release: {known}")
    assert [r.type for r in harness.resources if r.type != "pulumi:pulumi:Stack"] == [], "nothing declared"
