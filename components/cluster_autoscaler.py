"""ClusterAutoscaler: the upstream cluster-autoscaler chart, discovering the GPU node groups by their tags, with an
IAM role for its service account that may resize only this cluster's groups."""

import re
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired, TypedDict

from gpuscale.config.args import validate_args
from gpuscale.config.kubernetes import (check_autoscaler_release, read_autoscaler_resources,
                                        read_autoscaler_settings)
from gpuscale.config.reader import Section
from gpuscale.config.cluster import read_region

from ._docs import documented
from .charts import CHARTS, autoscaler_image_tag
from .kube_values import read_node_selector
from ._options import depends_on_of
from .irsa_role import IrsaRole
from .labels import GPU_CLASS_LABEL, ca_cluster_tag, ca_discovery_tags

NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "cluster-autoscaler"

DESCRIBE_ACTIONS = (
    # Upstream's "Full Cluster Autoscaler Features Policy" (cloudprovider/aws/README.md), first block: reads that
    # auto-discovery and scale-from-zero templates need, which IAM cannot scope to resources.
    "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeLaunchConfigurations", "autoscaling:DescribeScalingActivities", "ec2:DescribeImages",
    "ec2:DescribeInstanceTypes", "ec2:DescribeLaunchTemplateVersions", "ec2:GetInstanceTypesFromInstanceRequirements",
    "eks:DescribeNodegroup")
RESIZE_ACTIONS = ("autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup")
"""Upstream's second block, restricted as its README recommends: here by the tag that marks a group as this
cluster's."""


class ClusterAutoscalerSettings(TypedDict):
    scan_interval_seconds: int
    """How often the autoscaler looks for pending pods and unneeded nodes (--scan-interval)."""
    scale_down_unneeded_seconds: int
    """How long a node must be unneeded before it is removed (--scale-down-unneeded-time)."""
    scale_down_delay_after_add_seconds: int
    """No scale-down for this long after a scale-up (--scale-down-delay-after-add)."""
    scale_down_utilization_threshold: float
    """A non-GPU node under this share of requested CPU and memory is unneeded (0-1)."""
    scale_down_gpu_utilization_threshold: float
    """A GPU node under this share of requested GPUs is unneeded (0-1)."""
    max_node_provision_seconds: int
    """A node not Ready by then is given up on and its group backed off (--max-node-provision-time)."""
    balance_similar_node_groups: bool
    """Keep similar groups (same instance type and labels, e.g. one per zone) at similar sizes."""
    skip_nodes_with_local_storage: bool
    """Never remove a node running a pod with emptyDir or hostPath storage."""


class ClusterAutoscalerArgs(TypedDict):
    cluster_name: pulumi.Input[str]
    """EKS cluster whose tagged Auto Scaling groups the autoscaler discovers."""
    kubernetes_version: str
    """The cluster's Kubernetes minor ("1.33"); the autoscaler's release is derived from it (same minor)."""
    region: str
    """AWS region of the cluster."""
    oidc_provider_arn: pulumi.Input[str]
    """The cluster's IAM OIDC provider, trusted by the autoscaler's role."""
    oidc_issuer_url: pulumi.Input[str]
    """The cluster's OIDC issuer URL."""
    settings: ClusterAutoscalerSettings
    """Scan, scale-down and provisioning settings (cluster-wide; node groups override some by tag)."""
    priorities: Sequence[pulumi.Input[str]]
    """Auto Scaling group names, most preferred first, for the `priority` expander; `least-waste` breaks ties
    and decides among groups not listed."""
    resources: Mapping[str, str]
    """Requests of the autoscaler's container: {"cpu": "100m", "memory": "600Mi"}; the memory is its limit too."""
    node_selector: NotRequired[Mapping[str, str]]
    """Labels of the nodes it runs on (the system node group). Default none; it never runs on GPU nodes anyway."""
    tags: NotRequired[dict[str, str]]
    """Tags on the IAM role. Default none."""


def autoscaler_policy(cluster_name: pulumi.Input[str]) -> list[dict[str, Any]]:
    """The IAM statements: describe on everything, resize only groups tagged as owned by this cluster."""
    owned = pulumi.Output.from_input(cluster_name).apply(lambda n: {f"aws:ResourceTag/{ca_cluster_tag(n)}": "owned"})
    return [{"Effect": "Allow", "Action": list(DESCRIBE_ACTIONS), "Resource": "*"},
            {"Effect": "Allow", "Action": list(RESIZE_ACTIONS), "Resource": "*",
             "Condition": {"StringEquals": owned}}]


def anchored(name: str) -> str:
    """A regular expression (Go RE2) matching exactly one ASG name."""
    return "^" + re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", name) + "$"


def _duration(seconds: int) -> str:
    return f"{seconds}s"


def autoscaler_values(args: ClusterAutoscalerArgs, role_arn: pulumi.Input[str]) -> dict[str, Any]:
    """The chart's values (every key exists in the pinned chart's values.yaml, or in a map it renders whole)."""
    s = args["settings"]
    cluster_name = pulumi.Output.from_input(args["cluster_name"])
    priorities = list(args["priorities"])
    return {
        "cloudProvider": "aws",
        "awsRegion": args["region"],
        "autoDiscovery": {"clusterName": cluster_name, "tags": cluster_name.apply(ca_discovery_tags)},
        "image": {"tag": autoscaler_image_tag(args["kubernetes_version"])},
        "rbac": {"serviceAccount": {"create": True, "name": SERVICE_ACCOUNT,
                                    "annotations": {"eks.amazonaws.com/role-arn": role_arn}}},
        "extraArgs": {
            "scan-interval": _duration(s["scan_interval_seconds"]),
            "scale-down-unneeded-time": _duration(s["scale_down_unneeded_seconds"]),
            "scale-down-delay-after-add": _duration(s["scale_down_delay_after_add_seconds"]),
            "scale-down-utilization-threshold": str(s["scale_down_utilization_threshold"]),
            "scale-down-gpu-utilization-threshold": str(s["scale_down_gpu_utilization_threshold"]),
            "max-node-provision-time": _duration(s["max_node_provision_seconds"]),
            "balance-similar-node-groups": str(s["balance_similar_node_groups"]).lower(),
            "skip-nodes-with-local-storage": str(s["skip_nodes_with_local_storage"]).lower(),
            # The priority expander first (the config's order), least-waste among equals and unlisted groups.
            "expander": "priority,least-waste" if priorities else "least-waste",
        },
        # The chart renders this as the priority expander's ConfigMap: a higher number wins; values are regular
        # expressions over ASG names, anchored so one group's name never matches another's.
        "expanderPriorities": {str(10 * (len(priorities) - i)): [pulumi.Output.from_input(n).apply(anchored)]
                               for i, n in enumerate(priorities)},
        # Preempting the autoscaler would stop all scaling: critical. Its one replica may still be evicted by a
        # drain (maxUnavailable 1), so upgrading a system node is never blocked; it restarts on another in seconds.
        "priorityClassName": "system-cluster-critical",
        "podDisruptionBudget": {"maxUnavailable": 1},
        # Objects named cluster-autoscaler (the chart's default is <release>-aws-cluster-autoscaler), as the
        # README's kubectl checks and the status ConfigMap's docs call it.
        "fullnameOverride": "cluster-autoscaler",
        "resources": {"requests": dict(args["resources"]), "limits": {"memory": args["resources"]["memory"]}},
        "nodeSelector": dict(args.get("node_selector") or {}),
        # Never on a GPU node, whatever the taints say: a GPU node running the autoscaler could never be removed.
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": GPU_CLASS_LABEL, "operator": "DoesNotExist"}]}]}}},
        "tolerations": [],
    }


def check_args(s: Section) -> None:
    """The rules of ClusterAutoscalerArgs: the stack config's cluster-autoscaler rules."""
    for key in ("cluster_name", "oidc_provider_arn", "oidc_issuer_url", "priorities"):
        s.input(key)
    check_autoscaler_release(s, "kubernetes_version", s.str("kubernetes_version"))
    read_region(s)
    settings = s.section("settings")
    settings.require(*(settings.name(k) for k in ClusterAutoscalerSettings.__annotations__))
    read_autoscaler_settings(settings)
    settings.finish()
    s.require("resources")
    read_autoscaler_resources(s)
    read_node_selector(s)
    s.input("tags", {})


@documented
class ClusterAutoscaler(pulumi.ComponentResource):
    """cluster-autoscaler in kube-system: scales the tagged GPU node groups up from zero for pending GPU pods and
    back down when their nodes are unneeded. Pass the stack's Kubernetes provider in `opts.providers`."""

    role_arn: pulumi.Output[str]
    """ARN of cluster-autoscaler's IRSA role."""
    release_name: pulumi.Output[str]
    """Name of the Helm release."""

    def __init__(self, name: str, args: ClusterAutoscalerArgs, opts: pulumi.ResourceOptions | None = None):
        validate_args("ClusterAutoscaler", name, args, ClusterAutoscalerArgs, check_args)
        super().__init__("gpuscale:index:ClusterAutoscaler", name, None, opts)
        role = IrsaRole(f"{name}-irsa", {
            "oidc_provider_arn": args["oidc_provider_arn"], "oidc_issuer_url": args["oidc_issuer_url"],
            "namespace": NAMESPACE, "service_account": SERVICE_ACCOUNT,
            "statements": autoscaler_policy(args["cluster_name"]),
            "description": "cluster-autoscaler: resize this cluster's tagged node groups", "tags": args.get("tags")},
            opts=pulumi.ResourceOptions(parent=self))
        chart = CHARTS["cluster-autoscaler"]
        # helm.v3.Release, not helm.v4.Chart: Helm owns the release (its own upgrade and rollback history, the chart's
        # RBAC and ConfigMaps as one unit), and the plan shows the values we set, which is what a reviewer changes.
        release = k8s.helm.v3.Release(
            f"{name}-chart", name="cluster-autoscaler", chart=chart.name, version=chart.version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=chart.repo), namespace=NAMESPACE,
            values=autoscaler_values(args, role.role_arn),
            # Wait for the Deployment to be available: a release that never starts fails `pulumi up`, not later.
            atomic=True, timeout=600,
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on_of(opts)))
        self.role_arn = role.role_arn
        self.release_name = release.name
        self.register_outputs({"role_arn": self.role_arn, "release_name": self.release_name})
