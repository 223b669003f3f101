"""The Kubernetes side of both shipped stacks, from their real offline plans: the explicit provider, the charts'
values against the pinned charts, every Kubernetes object against the Kubernetes schema, the ordering."""

from __future__ import annotations

from pathlib import Path

import pytest
from crd_support import validate_custom_resource
from kube_support import unknown_chart_values, validate_object

from gpuscale.config import load_stack_file

ROOT = Path(__file__).resolve().parents[2]
RELEASE = "kubernetes:helm.sh/v3:Release"
CHART_FACTS = {"cluster-autoscaler": "cluster_autoscaler", "nvidia-device-plugin": "nvidia_device_plugin"}
STACKS = ("dev", "prod")


def k8s_resources(plan):
    return [r for r in plan.resources if r.custom and r.type.startswith("kubernetes:")]


@pytest.mark.parametrize("stack", STACKS)
def test_every_kubernetes_resource_uses_the_stacks_explicit_provider(stack_plans, stack):
    plan = stack_plans[stack]
    [provider] = [r for r in plan.resources if r.type == "pulumi:providers:kubernetes"]
    assert provider.inputs["kubeconfig"] != "", "built from the cluster, not an ambient kubeconfig"
    resources = k8s_resources(plan)
    assert resources, "the stack installs something in the cluster"
    for r in resources:
        assert r.options.get("provider") == provider.urn, f"{r.name} uses the stack's provider"


@pytest.mark.parametrize("stack", STACKS)
def test_kubeconfig_authenticates_with_an_exec_credential_for_the_stacks_cluster(stack_plans, stack):
    import json
    plan = stack_plans[stack]
    [provider] = [r for r in plan.resources if r.type == "pulumi:providers:kubernetes"]
    config = json.loads(provider.inputs["kubeconfig"])
    [user] = config["users"]
    exec_ = user["user"]["exec"]
    assert exec_["command"] == "aws" and exec_["args"][:4] == ["eks", "get-token", "--cluster-name",
                                                                f"gpuscale-{stack}"]
    assert "token" not in user["user"], "no token stored in the state"
    [cluster] = config["clusters"]
    assert cluster["cluster"]["server"].startswith("https://") and cluster["cluster"]["certificate-authority-data"]


@pytest.mark.parametrize("stack", STACKS)
def test_every_helm_value_exists_in_the_pinned_chart(stack_plans, stack):
    releases = [r for r in stack_plans[stack].resources if r.type == RELEASE]
    assert {r.inputs["chart"] for r in releases} >= {"cluster-autoscaler", "nvidia-device-plugin"}
    for r in releases:
        facts = CHART_FACTS.get(r.inputs["chart"])
        if facts is None:
            continue
        assert unknown_chart_values(r.inputs["values"], facts) == [], f"{r.name}: values the chart does not have"


def test_a_misspelt_helm_value_is_caught():
    values = {"extraArgs": {"scan-interval": "10s"}, "priorityClasName": "system-cluster-critical",
              "rbac": {"serviceAccount": {"nme": "x"}}}
    assert unknown_chart_values(values, "cluster_autoscaler") == ["priorityClasName", "rbac.serviceAccount.nme"]


@pytest.mark.parametrize("stack", STACKS)
def test_releases_wait_for_what_they_schedule_on(stack_plans, stack):
    plan = stack_plans[stack]
    by_name = {r.name: r for r in plan.resources}
    node_groups = {r.urn for r in plan.resources if r.type == "aws:eks/nodeGroup:NodeGroup"}
    plugin = by_name["nvidia-device-plugin-chart"]
    gpu_groups = {r.urn for r in plan.resources if r.type == "aws:eks/nodeGroup:NodeGroup"
                  and "gpuscale.io/gpu-class" in (r.inputs.get("labels") or {})}
    assert gpu_groups <= set(plugin.options["dependsOn"]), "device plugin after the GPU node groups"
    autoscaler = by_name["cluster-autoscaler-chart"]
    assert node_groups <= set(autoscaler.options["dependsOn"]), "autoscaler after the system and GPU node groups"
    role = by_name["cluster-autoscaler-irsa-role"]
    oidc = [r.urn for r in plan.resources if r.type == "aws:iam/openIdConnectProvider:OpenIdConnectProvider"]
    assert set(oidc) <= set(role.options.get("dependsOn", ())), "the OIDC provider before the role trusting it"


def test_device_plugin_only_on_al2023_groups(stack_plans):
    # prod has a Bottlerocket group (its AMI ships its own plugin) beside AL2023 ones.
    values = {r.name: r for r in stack_plans["prod"].resources}["nvidia-device-plugin-chart"].inputs["values"]
    [term] = values["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert {"key": "gpuscale.io/ami-family", "operator": "In", "values": ["al2023"]} in term["matchExpressions"]


CUSTOM_GROUPS = ("serving.kserve.io", "keda.sh", "operator.knative.dev", "monitoring.coreos.com")


@pytest.mark.parametrize("stack", STACKS)
def test_kubernetes_objects_are_valid_for_the_stacks_version(stack_plans, stack):
    """Objects the program declares directly (not rendered by a chart) against the stack's Kubernetes schema."""
    plan = stack_plans[stack]
    minor = load_stack_file(ROOT, stack).cluster.kubernetes_version
    objects = [r for r in k8s_resources(plan) if r.type != RELEASE]
    assert objects, "the agent's namespace, service account, DaemonSets and Service at least"
    for r in objects:
        group_version, kind = r.type.split(":")[1], r.type.split(":")[2]
        group, version = group_version.rsplit("/", 1)
        api_version = version if group == "core" else f"{group}/{version}"
        obj = {"apiVersion": api_version, "kind": kind, **r.inputs}
        if group in CUSTOM_GROUPS:  # custom resources: against their CRD at the pinned version
            validate_custom_resource(obj)
        else:
            validate_object(obj, minor)
