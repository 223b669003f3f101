"""GpuHeadroom: N whole GPU nodes of one node group kept warm by placeholder pods that real pods preempt.

The cluster-autoscaler FAQ's overprovisioning (kubernetes/autoscaler cluster-autoscaler/FAQ.md, "How can I configure
overprovisioning with Cluster Autoscaler?", at cluster-autoscaler-1.35.0, the release chart 9.59.0 runs): a
PriorityClass with a negative value and a Deployment of pause pods at that priority. Each placeholder requests every
GPU of one node, so N replicas hold N nodes; a pending service pod (priority 0) preempts one and binds to its node
at once, without node provisioning; the evicted placeholder is pending again, and the autoscaler adds a node for it.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired, TypedDict

from ..config.args import validate_args
from ..config.headroom import PAUSE_IMAGE, PREPULL_COMMAND, read_headroom_settings, read_image_list
from ..config.reader import REQUIRED, Section
from ..config.groups import NAME_PATTERN as NODE_GROUP_NAME_PATTERN
from ..config.groups import NAME_RULE as NODE_GROUP_NAME_RULE
from ._docs import documented
from .kube_values import DNS_LABEL_PATTERN, read_node_selector
from .labels import GPU_CLASS_LABEL, GPU_RESOURCE, GPU_TAINT_VALUE

APP_LABEL = "app.kubernetes.io/name"
PRIORITY_ANNOTATION = "gpuscale.io/priority"


class GpuHeadroomArgs(TypedDict):
    node_group: str
    """The node group whose nodes are kept warm; names the PriorityClass and the Deployment (DNS-1123, <= 42)."""
    nodes: int
    """Whole nodes held warm: the Deployment's replicas, one placeholder per node, at least 1."""
    gpus_per_node: int
    """GPUs of one node of the group: each placeholder requests them all, so it holds a whole node."""
    node_selector: Mapping[str, str]
    """Labels of the group's nodes, at least the GPU class (gpuscale.io/gpu-class)."""
    priority: int
    """The PriorityClass's value: from cluster-autoscaler's --expendable-pods-priority-cutoff (-10) to -1."""
    namespace: NotRequired[str]
    """Namespace of the Deployment. Default ``default`` (as the FAQ's recipe)."""
    image: NotRequired[str]
    """The placeholder's image, with a tag or digest. Default registry.k8s.io/pause:3.10."""
    prepull_images: NotRequired[Sequence[str]]
    """Images to pull onto each warm node before any service pod needs them (the group's serving images), each
    with a tag or digest and `true` on its PATH: one init container per image runs it and exits. Default none."""


def check_args(s: Section) -> None:
    """The rules of GpuHeadroomArgs: a `gpuscale:headroom` entry's (read_headroom_settings) and the node group's."""
    s.str("node_group", pattern=NODE_GROUP_NAME_PATTERN, describe=NODE_GROUP_NAME_RULE)
    read_headroom_settings(s)
    s.int("gpus_per_node", min=1, max=16)
    read_node_selector(s, default=REQUIRED, requires=GPU_CLASS_LABEL)
    read_image_list(s, "prepull_images")
    s.str("namespace", "default", pattern=DNS_LABEL_PATTERN, describe="a Kubernetes namespace name")


PRIORITY_CLASS_REPLACEMENT: dict[str, Any] = {
    # The API server refuses an update to a PriorityClass's value or preemptionPolicy ("may not be changed in an
    # update": ValidatePriorityClassUpdate, kubernetes pkg/apis/scheduling/validation), and pulumi-kubernetes's
    # diff replaces a PriorityClass only for its name: without these, a changed `priority` would fail at apply.
    "replace_on_changes": ["value", "preemptionPolicy"],
    # The name is fixed (`<group>-headroom`, what the placeholders' priorityClassName names): the new class can only
    # be created once the old one is gone.
    "delete_before_replace": True,
}
"""The resource options of the placeholders' PriorityClass: a changed value replaces it."""


def priority_class(args: GpuHeadroomArgs) -> dict[str, Any]:
    """The PriorityClass (scheduling.k8s.io/v1) as an object."""
    return {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": f"{args['node_group']}-headroom"}, "value": args["priority"],
            "globalDefault": False,
            # Never preempts anything itself: it only waits for room or for a node the autoscaler adds.
            "preemptionPolicy": "Never",
            "description": f"Placeholders keeping {args['nodes']} node(s) of node group {args['node_group']} warm; "
                           "any pod of priority >= 0 preempts them."}


def placeholder_deployment(args: GpuHeadroomArgs) -> dict[str, Any]:
    """The placeholder Deployment (apps/v1) as an object."""
    name = f"{args['node_group']}-headroom"
    labels = {APP_LABEL: "gpu-headroom", "gpuscale.io/node-group": args["node_group"]}
    gpus = str(args["gpus_per_node"])
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": args.get("namespace", "default"), "labels": labels,
                         # Placeholders wait for nodes the autoscaler adds (minutes from zero): pulumi-kubernetes
                         # would otherwise hold `pulumi up` until they are ready, and fail it after ten minutes.
                         "annotations": {"pulumi.com/skipAwait": "true"}},
            "spec": {"replicas": args["nodes"], "selector": {"matchLabels": labels},
                     # A placeholder holds a whole node: a surge pod would wait for one more node (minutes,
                     # billed), so the old placeholders go first and the new ones take the nodes they leave. A
                     # rolling update without surge rather than Recreate: Deployments created before carry the
                     # defaulted rollingUpdate block, and an apply changing the type to Recreate is refused
                     # (spec.strategy.rollingUpdate: Forbidden; pulumi/pulumi-kubernetes#2843). Unlike Recreate,
                     # the new placeholders are created while the old ones still terminate (seconds: no grace
                     # period), so a cluster-autoscaler scan in that moment may add a node it later removes.
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "100%"}}, "template": {
                # A pod's priority is resolved from its class when it is admitted, never after: the value in the
                # template makes a changed priority (its PriorityClass replaced) roll the placeholders onto it.
                "metadata": {"labels": labels, "annotations": {PRIORITY_ANNOTATION: str(args["priority"])}},
                "spec": {
                    "priorityClassName": name,
                    # Preempted pods should free the GPUs at once: the pause container has nothing to drain.
                    "terminationGracePeriodSeconds": 0,
                    "automountServiceAccountToken": False,
                    "nodeSelector": dict(args["node_selector"]),
                    "tolerations": [{"key": GPU_RESOURCE, "operator": "Equal", "value": GPU_TAINT_VALUE,
                                     "effect": "NoSchedule"}],
                    **({"initContainers": prepull_containers(args["prepull_images"])}
                       if args.get("prepull_images") else {}),
                    "containers": [{
                        "name": "placeholder", "image": args.get("image", PAUSE_IMAGE),
                        # Every GPU of a node (an extended resource: request = limit), so one placeholder is one
                        # node; little CPU and memory, so the node's real pods always fit beside nothing else.
                        "resources": {"requests": {GPU_RESOURCE: gpus, "cpu": "10m", "memory": "16Mi"},
                                      "limits": {GPU_RESOURCE: gpus, "memory": "16Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "runAsNonRoot": True, "runAsUser": 65535}}]}}}}


def prepull_containers(images: Sequence[str]) -> list[dict[str, Any]]:
    """One init container per image: the kubelet pulls the image to start it, it runs PREPULL_COMMAND and exits, and
    the node keeps the image for the service pod that preempts the placeholder (no image pull in its cold start).
    Init containers run before the pause container, so a placeholder counts as started only once every image is
    on its node; their requests are tiny and, being init containers, not added to the pod's."""
    return [{"name": f"prepull-{i}", "image": image, "command": list(PREPULL_COMMAND),
             # A pinned tag or digest (the config refuses others), so IfNotPresent pulls once per node.
             "imagePullPolicy": "IfNotPresent",
             "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
             "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                 "runAsNonRoot": True, "runAsUser": 65535}}
            for i, image in enumerate(images)]


@documented
class GpuHeadroom(pulumi.ComponentResource):
    """A negative-priority PriorityClass and a Deployment of pause pods, each holding every GPU of one node of a
    node group, so that N nodes stay warm for the group's services to take at once. Pass the stack's Kubernetes
    provider in `opts.providers`, and the node group in `opts.depends_on`."""

    deployment_name: pulumi.Output[str]
    """The placeholder Deployment's name."""

    def __init__(self, name: str, args: GpuHeadroomArgs, opts: pulumi.ResourceOptions | None = None):
        validate_args("GpuHeadroom", name, args, GpuHeadroomArgs, check_args)
        super().__init__("gpuscale:index:GpuHeadroom", name, None, opts)
        pc, dep = priority_class(args), placeholder_deployment(args)
        klass = k8s.scheduling.v1.PriorityClass(
            f"{name}-priority", metadata=pc["metadata"], value=pc["value"], global_default=pc["globalDefault"],
            preemption_policy=pc["preemptionPolicy"], description=pc["description"],
            opts=pulumi.ResourceOptions(parent=self, **PRIORITY_CLASS_REPLACEMENT))
        deployment = k8s.apps.v1.Deployment(
            f"{name}-placeholder", metadata=dep["metadata"], spec=dep["spec"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[klass]))
        self.deployment_name = deployment.metadata["name"]
        self.register_outputs({"deployment_name": self.deployment_name})
