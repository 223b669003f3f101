"""VerticalPodAutoscaler: the VPA (recommender, updater, admission controller and its CRDs) from its own chart, for
model services that resize their predictor container's CPU and memory in place; and the builders of what such a
service declares (its container's `resizePolicy`, its VerticalPodAutoscaler object), checked in tests against the
pinned CRD."""

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
from typing_extensions import NotRequired, TypedDict

from ..config.args import validate_args
from ..config.reader import Section
from ..config.vertical import inplace_resize_refusal
from ._docs import documented
from ._helm import pinned_release
from .kube_values import read_node_selector

NAMESPACE = "vertical-pod-autoscaler"
IN_PLACE_OR_RECREATE = "InPlaceOrRecreate"
"""updatePolicy.updateMode: resize running pods in place, recreate a pod only where in place is infeasible."""
SKIP_BUDGET_FOR_IN_PLACE = "--in-place-skip-disruption-budget=true"
"""An updater flag (pkg/updater/config/config.go, VPA 1.7): an in-place resize that restarts nothing skips the
updater's replica floor (--min-replicas, 2), so a service running one pod is resized too; a recreation still needs
two live pods, so a service's only GPU pod is never evicted to be resized."""
COMPONENTS = ("admissionController", "recommender", "updater")
"""The chart's three Deployments, each with its own nodeSelector value."""


class VerticalScalingArgs(TypedDict):
    """A service's in-place vertical scaling; field names as gpuscale.config.vertical.VerticalScalingConfig."""

    min_cpu: str
    """The least CPU the VPA sets, at most the service's cpu request."""
    max_cpu: str
    """The most CPU the VPA sets, at least the service's cpu request."""
    min_memory: str
    """The least memory the VPA sets, at most the service's memory request."""
    max_memory: str
    """The most memory the VPA sets, at least the service's memory request."""
    controlled_resources: Sequence[str]
    """cpu and/or memory (never GPUs: they cannot be resized in place)."""
    memory_restart_policy: str
    """NotRequired or RestartContainer: the container's resizePolicy for memory."""


class VerticalPodAutoscalerArgs(TypedDict):
    kubernetes_version: str
    """The cluster's Kubernetes minor, e.g. "1.33": in-place resize needs 1.33 or later."""
    node_selector: NotRequired[Mapping[str, str]]
    """Labels of the nodes the VPA's own pods run on (the system node group). Default none."""


def check_args(s: Section) -> None:
    """The rules of VerticalPodAutoscalerArgs: a cluster that resizes in place, and a node selector."""
    version = s.str("kubernetes_version", pattern=r"1\.\d+", describe='a Kubernetes minor version such as "1.33"')
    refusal = inplace_resize_refusal(version) if isinstance(version, str) else None
    if refusal is not None:
        s.report("kubernetes_version", version, refusal)
    read_node_selector(s)


def vpa_values(args: VerticalPodAutoscalerArgs) -> dict[str, Any]:
    """The chart's values (every key exists in the pinned chart's values.yaml, or a list it renders whole). No
    feature flag: VPA 1.7 has InPlaceOrRecreate without a gate (its features.md)."""
    selector = dict(args.get("node_selector") or {})
    values: dict[str, Any] = {component: {"nodeSelector": selector} for component in COMPONENTS}
    values["admissionController"]["certGen"] = {"nodeSelector": selector}
    values["updater"]["extraArgs"] = [SKIP_BUDGET_FOR_IN_PLACE]
    return values


def resize_policy(vertical: VerticalScalingArgs) -> list[dict[str, str]]:
    """The predictor container's resizePolicy: CPU always without a restart (a cgroup quota no process reads at
    start); memory as the service's runtime allows (memory_restart_policy)."""
    return [{"resourceName": "cpu", "restartPolicy": "NotRequired"},
            {"resourceName": "memory", "restartPolicy": vertical["memory_restart_policy"]}]


def vertical_pod_autoscaler_spec(deployment: str, container: str, vertical: VerticalScalingArgs) -> dict[str, Any]:
    """A VerticalPodAutoscaler's spec (autoscaling.k8s.io/v1) resizing `container` of `deployment` in place within
    the service's bounds; every other container of the pod (KServe's agent, if any) left alone."""
    return {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
        "updatePolicy": {"updateMode": IN_PLACE_OR_RECREATE},
        "resourcePolicy": {"containerPolicies": [
            {"containerName": container,
             "minAllowed": {"cpu": vertical["min_cpu"], "memory": vertical["min_memory"]},
             "maxAllowed": {"cpu": vertical["max_cpu"], "memory": vertical["max_memory"]},
             "controlledResources": list(vertical["controlled_resources"]),
             # Limits move with requests: the memory limit stays equal to the request (the pod's QoS class, which
             # an in-place resize may not change, stays Burstable) and CPU keeps having none.
             "controlledValues": "RequestsAndLimits"},
            {"containerName": "*", "mode": "Off"},
        ]},
    }


@documented
class VerticalPodAutoscaler(pulumi.ComponentResource):
    """The Vertical Pod Autoscaler from its chart (its CRDs from the chart's crds/ directory), with the updater
    resizing single-pod services in place. Installed when a model service sets vertical scaling. Pass the stack's
    Kubernetes provider in `opts.providers`."""

    release_name: pulumi.Output[str]
    """The VPA's Helm release name."""

    def __init__(self, name: str, args: VerticalPodAutoscalerArgs, opts: pulumi.ResourceOptions | None = None):
        validate_args("VerticalPodAutoscaler", name, args, VerticalPodAutoscalerArgs, check_args)
        super().__init__("gpuscale:index:VerticalPodAutoscaler", name, None, opts)
        # helm.v3.Release: Helm installs the CRDs from the chart's crds/ directory before anything that uses them,
        # and owns the admission controller's certificate job and webhook as one release.
        release = pinned_release(self, name, "vertical-pod-autoscaler", NAMESPACE, vpa_values(args), opts)
        self.release_name = release.name
        self.register_outputs({"release_name": self.release_name})
