"""NvidiaDevicePlugin: NVIDIA's device plugin chart on the AL2023 GPU nodes, so that pods can request
`nvidia.com/gpu` there (Bottlerocket's NVIDIA AMIs run their own plugin and are left alone)."""

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml
from typing_extensions import NotRequired, TypedDict

from ._docs import documented
from ._options import depends_on_of
from gpuscale.config.args import validate_args
from gpuscale.config.kubernetes import read_device_plugin_settings
from gpuscale.config.reader import Section

from .charts import CHARTS
from .labels import AMI_FAMILY_LABEL, GPU_CLASS_LABEL, GPU_RESOURCE

NAMESPACE = "kube-system"


class NvidiaDevicePluginArgs(TypedDict):
    ami_families: Sequence[str]
    """AMI families (the `gpuscale.io/ami-family` label values) whose nodes get the plugin, e.g. ["al2023"]."""
    mig_strategy: NotRequired[str]
    """How MIG devices are advertised: "none" (whole GPUs), "single" (one MIG profile per node, as nvidia.com/gpu)
    or "mixed" (each profile its own resource). Default "none"."""
    time_slicing_replicas: NotRequired[int]
    """Pods that may share one GPU by time-slicing (no memory isolation); 1 is off. Default 1."""


def plugin_config(mig_strategy: str, replicas: int) -> str:
    """The plugin's config file (api/config/v1): the MIG strategy, and time-slicing when replicas > 1."""
    config: dict[str, Any] = {"version": "v1", "flags": {"migStrategy": mig_strategy}}
    if replicas > 1:
        config["sharing"] = {"timeSlicing": {"resources": [{"name": GPU_RESOURCE, "replicas": replicas}]}}
    return yaml.safe_dump(config, sort_keys=False)


def check_args(s: Section) -> None:
    """The rules of NvidiaDevicePluginArgs: the stack config's device plugin rules."""
    s.str_list("ami_families", min_items=1, pattern="al2023|bottlerocket",
               describe="AMI families (gpuscale.io/ami-family label values): al2023, bottlerocket")
    read_device_plugin_settings(s)


def device_plugin_values(args: NvidiaDevicePluginArgs) -> dict[str, Any]:
    mig = args.get("mig_strategy", "none")
    replicas = args.get("time_slicing_replicas", 1)
    families = list(args["ami_families"])
    return {
        # The chart's own affinity wants Node Feature Discovery labels that plain EKS nodes lack: replace it with
        # the labels our node groups set (so the plugin also runs on a node cluster-autoscaler pictures at zero).
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": GPU_CLASS_LABEL, "operator": "Exists"},
                                  {"key": AMI_FAMILY_LABEL, "operator": "In", "values": families}]}]}}},
        # GPU nodes carry the nvidia.com/gpu taint; the plugin must run there before any GPU pod can.
        "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"},
                        {"key": "CriticalAddonsOnly", "operator": "Exists"}],
        "priorityClassName": "system-node-critical",
        "migStrategy": mig,
        "config": {"map": {"default": plugin_config(mig, replicas)}, "default": "default"},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        # One node at a time: a node whose plugin restarts stops advertising GPUs for a moment.
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
    }


@documented
class NvidiaDevicePlugin(pulumi.ComponentResource):
    """The device plugin DaemonSet (Helm release) that advertises each node's GPUs as `nvidia.com/gpu`. Pass the
    stack's Kubernetes provider in `opts.providers`, and the node groups it serves in `opts.depends_on`."""

    release_name: pulumi.Output[str]
    """Name of the Helm release."""

    def __init__(self, name: str, args: NvidiaDevicePluginArgs, opts: pulumi.ResourceOptions | None = None):
        validate_args("NvidiaDevicePlugin", name, args, NvidiaDevicePluginArgs, check_args)
        super().__init__("gpuscale:index:NvidiaDevicePlugin", name, None, opts)
        chart = CHARTS["nvidia-device-plugin"]
        values = device_plugin_values(args)
        # helm.v3.Release: Helm owns the DaemonSet's rollout and the chart's config-manager wiring as one unit.
        release = k8s.helm.v3.Release(
            f"{name}-chart", name="nvidia-device-plugin", chart=chart.name, version=chart.version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=chart.repo), namespace=NAMESPACE, values=values,
            # No wait: with every GPU group at zero the DaemonSet has no pod to be ready, and that is fine.
            skip_await=True, opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on_of(opts)))
        self.release_name = release.name
        self.register_outputs({"release_name": self.release_name})
