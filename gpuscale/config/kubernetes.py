"""The Kubernetes side of a stack (`gpuscale:kubernetes`): cluster-autoscaler, the NVIDIA device plugin, the agent
as a DaemonSet, and per node group autoscaler overrides (`autoscaler:` in a `gpuscale:nodeGroups` entry).

Every default is upstream's, cited beside it: cluster-autoscaler's from its flags (`config/flags/flags.go`) and
constants (`config/const.go`) at the pinned version (`gpuscale/data/upstream/cluster_autoscaler.json` records
them, generated from the upstream files by `scripts/upstream_facts.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..components.charts import (DEVICE_PLUGIN_MIG_STRATEGIES, SLICING_WITH_MIXED_MIG, TIME_SLICING_MAX_REPLICAS,
                                 NoAutoscalerRelease, autoscaler_image_tag, slicing_conflicts)
from ..components.kube_values import IMAGE_PATTERN, QUANTITY_PATTERN, is_pinned_image
from .reader import REQUIRED, ConfigError, Section
from .serving import ServingConfig, read_serving

if TYPE_CHECKING:
    from .groups import NodeGroupConfig

@dataclass(frozen=True)
class ResourceRequests:
    cpu: str
    memory: str


@dataclass(frozen=True)
class ClusterAutoscalerConfig:
    enabled: bool
    scan_interval_seconds: int
    """--scan-interval; upstream default 10 s (config.DefaultScanInterval)."""
    scale_down_unneeded_seconds: int
    """--scale-down-unneeded-time; upstream default 10 min (config.DefaultScaleDownUnneededTime)."""
    scale_down_delay_after_add_seconds: int
    """--scale-down-delay-after-add; upstream default 10 min (flags.go)."""
    scale_down_utilization_threshold: float
    """--scale-down-utilization-threshold; upstream default 0.5 (config.DefaultScaleDownUtilizationThreshold)."""
    scale_down_gpu_utilization_threshold: float
    """--scale-down-gpu-utilization-threshold: for GPU nodes, only GPU requests count; upstream default 0.5."""
    max_node_provision_seconds: int
    """--max-node-provision-time; upstream default 15 min (flags.go). A node not Ready by then is given up on."""
    balance_similar_node_groups: bool
    """--balance-similar-node-groups; upstream default false."""
    skip_nodes_with_local_storage: bool
    """--skip-nodes-with-local-storage; upstream default true (a node with an emptyDir pod is never removed)."""
    expander_priorities: tuple[str, ...] | None
    """Node group names, most preferred first, for the `priority` expander; None: derived (Spot before on-demand,
    then cheaper GPU classes first). `least-waste` breaks ties and covers groups not listed."""
    resources: ResourceRequests


@dataclass(frozen=True)
class GroupAutoscalerOptions:
    """Per node group overrides cluster-autoscaler's AWS provider reads from `autoscaling-options` ASG tags
    (cloudprovider/aws/aws_manager.go, GetAsgOptions); None keeps the cluster-wide value."""

    scale_down_unneeded_seconds: int | None = None
    scale_down_unready_seconds: int | None = None
    scale_down_utilization_threshold: float | None = None
    scale_down_gpu_utilization_threshold: float | None = None
    ignore_daemonsets_utilization: bool | None = None


@dataclass(frozen=True)
class DevicePluginConfig:
    mig_strategy: str
    """`none`, `single` or `mixed` (the chart's `migStrategy`; upstream default none)."""
    time_slicing_replicas: int
    """Pods that may share one GPU; 1 turns time-slicing off (the upstream default)."""


@dataclass(frozen=True)
class AgentDaemonSetConfig:
    image: str | None
    """An image reference to run; None: build agent/Dockerfile and push it to an ECR repository of the stack."""
    resources: ResourceRequests
    """Requests; the limits are twice these (the agent is light and steady)."""
    service_monitor: bool
    """Also declare a ServiceMonitor (only where the Prometheus operator's CRDs are installed)."""

    @property
    def limits(self) -> ResourceRequests:
        """Twice the requests: room for a burst (a CloudWatch backlog drained after an outage) without letting a
        leak grow unbounded on a node whose GPUs are working."""
        return ResourceRequests(_twice(self.resources.cpu), _twice(self.resources.memory))


def _twice(quantity: str) -> str:
    """A Kubernetes quantity of QUANTITY_PATTERN doubled, in the same unit ("50m" -> "100m", "0.5" -> "1")."""
    number = quantity.rstrip("mKiGM")
    value = Decimal(number) * 2
    return f"{value.normalize():f}{quantity[len(number):]}"


@dataclass(frozen=True)
class KubernetesConfig:
    cluster_autoscaler: ClusterAutoscalerConfig
    device_plugin: DevicePluginConfig
    agent: AgentDaemonSetConfig
    serving: ServingConfig | None = None
    """KServe and what scales its services (gpuscale/config/serving.py); None: no serving layer installed."""


def read_kubernetes(s: Section) -> KubernetesConfig:
    """The `gpuscale:kubernetes` section (every key optional)."""
    ca = _read_cluster_autoscaler(s.section("clusterAutoscaler", Section({}, s.key("clusterAutoscaler"))))
    plugin = _read_device_plugin(s.section("devicePlugin", Section({}, s.key("devicePlugin"))))
    agent = _read_agent(s.section("agent", Section({}, s.key("agent"))))
    serving = read_serving(s.optional_section("serving"))
    s.finish()
    return KubernetesConfig(ca, plugin, agent, serving)


def read_resources(s: Section, name: str, cpu: str, memory: str) -> ResourceRequests:
    r = s.section(name, Section({}, s.key(name)))
    cpu_value = r.str("cpu", cpu, pattern=QUANTITY_PATTERN, describe="a Kubernetes CPU quantity such as 100m or 1")
    memory_value = r.str("memory", memory, pattern=QUANTITY_PATTERN,
                         describe="a Kubernetes memory quantity such as 300Mi or 1Gi")
    r.finish()
    return ResourceRequests(cpu_value, memory_value)


def read_autoscaler_settings(s: Section) -> tuple[Any, ...]:
    """cluster-autoscaler's flags, in the stack config (`gpuscale:kubernetes.clusterAutoscaler`) and in
    ClusterAutoscalerArgs' `settings`: scan interval, scale-down times and thresholds, provisioning time, balancing
    and local storage, each in upstream's range and with upstream's default."""
    return (s.int("scanIntervalSeconds", 10, min=1, max=600),
            s.int("scaleDownUnneededSeconds", 600, min=0, max=86400),
            s.int("scaleDownDelayAfterAddSeconds", 600, min=0, max=86400),
            s.float("scaleDownUtilizationThreshold", 0.5, min=0, max=1),
            s.float("scaleDownGpuUtilizationThreshold", 0.5, min=0, max=1),
            s.int("maxNodeProvisionSeconds", 900, min=60, max=86400),
            s.bool("balanceSimilarNodeGroups", False),
            s.bool("skipNodesWithLocalStorage", True))


def read_autoscaler_resources(s: Section) -> ResourceRequests:
    # The autoscaler simulates the whole cluster each scan: upstream's FAQ sizes it at 100m / 300Mi for small ones.
    return read_resources(s, "resources", "100m", "600Mi")


def check_autoscaler_release(s: Section, name: str, kubernetes_version: str, or_else: str = "") -> None:
    """The cluster's Kubernetes minor has a cluster-autoscaler release (whose minor must match it)."""
    try:
        autoscaler_image_tag(kubernetes_version)
    except NoAutoscalerRelease as e:
        raise s.fail(name, kubernetes_version, e.allowed + or_else) from None


def _read_cluster_autoscaler(s: Section) -> ClusterAutoscalerConfig:
    enabled = s.bool("enabled", True)
    scan, unneeded, after_add, util, gpu_util, provision, balance, local_storage = read_autoscaler_settings(s)
    priorities = s.str_list("expanderPriorities", None, min_items=1, describe="node group names")
    resources = read_autoscaler_resources(s)
    s.finish()
    return ClusterAutoscalerConfig(enabled, scan, unneeded, after_add, util, gpu_util, provision, balance,
                                   local_storage, priorities, resources)


def read_device_plugin_settings(s: Section) -> tuple[Any, Any]:
    """The device plugin's MIG strategy and time-slicing (stack config and NvidiaDevicePluginArgs)."""
    mig = s.str("migStrategy", "none", choices=DEVICE_PLUGIN_MIG_STRATEGIES)
    replicas = s.int("timeSlicingReplicas", 1, min=1, max=TIME_SLICING_MAX_REPLICAS)
    if slicing_conflicts(mig, replicas):
        s.report("timeSlicingReplicas", replicas, SLICING_WITH_MIXED_MIG.replace("migStrategy", s.name("migStrategy")))
    return mig, replicas


def _read_device_plugin(s: Section) -> DevicePluginConfig:
    mig, replicas = read_device_plugin_settings(s)
    s.finish()
    return DevicePluginConfig(mig, replicas)


def read_agent_image(s: Section, default: Any = None) -> Any:
    """The agent's image: a reference with a tag or digest (stack config and AgentDaemonSetArgs)."""
    image = s.str("image", default, pattern=IMAGE_PATTERN,
                  describe="a container image reference such as 123456789012.dkr.ecr.us-west-2.amazonaws.com/"
                           "gpu-metrics-agent:0.1.0 (omit it to build agent/Dockerfile into the stack's ECR)")
    if image is not None and not is_pinned_image(image):
        s.report("image", image, "an image reference with a tag or digest (no implicit :latest, so every node "
                                 "runs the same agent)")
    return image


def _read_agent(s: Section) -> AgentDaemonSetConfig:
    image = read_agent_image(s)
    resources = read_resources(s, "resources", "50m", "64Mi")
    monitor = s.bool("serviceMonitor", False)
    s.finish()
    return AgentDaemonSetConfig(image, resources, monitor)


def read_group_autoscaler_options(s: Section | None) -> GroupAutoscalerOptions:
    """The `autoscaler:` section of one node group entry: its cluster-autoscaler overrides."""
    if s is None:
        return GroupAutoscalerOptions()
    options = GroupAutoscalerOptions(
        scale_down_unneeded_seconds=s.int("scaleDownUnneededSeconds", None, min=0, max=86400),
        scale_down_unready_seconds=s.int("scaleDownUnreadySeconds", None, min=0, max=86400),
        scale_down_utilization_threshold=s.float("scaleDownUtilizationThreshold", None, min=0, max=1),
        scale_down_gpu_utilization_threshold=s.float("scaleDownGpuUtilizationThreshold", None, min=0, max=1),
        ignore_daemonsets_utilization=s.bool("ignoreDaemonSetsUtilization", None)
        if s.has("ignoreDaemonSetsUtilization") else None)
    s.finish()
    return options


def check_kubernetes(kubernetes: KubernetesConfig, node_groups: tuple[NodeGroupConfig, ...],
                     kubernetes_version: str | None, key: str, version_key: str) -> None:
    """Rules across sections: the cluster's minor has an autoscaler release; priorities name node groups."""
    if kubernetes.cluster_autoscaler.enabled and node_groups:
        if kubernetes_version is None:
            raise ConfigError(version_key, REQUIRED,
                              "the existing cluster's Kubernetes minor version, e.g. \"1.33\": cluster-autoscaler's "
                              "minor must match it (the program checks it against the cluster at deploy time)")
        namespace, _, version_name = version_key.rpartition(".")
        check_autoscaler_release(Section({version_name: kubernetes_version}, namespace), version_name,
                                 kubernetes_version, f" (or set {key}.clusterAutoscaler.enabled: false and run your "
                                                     "own)")
    names = [g.name for g in node_groups]
    for i, name in enumerate(kubernetes.cluster_autoscaler.expander_priorities or ()):
        if name not in names:
            raise ConfigError(f"{key}.clusterAutoscaler.expanderPriorities[{i}]", name,
                              "names of this stack's node groups: " + (", ".join(names) or "(none)"))


GPU_COST_ORDER = ("T4", "T4g", "L4", "A10G", "L40S", "A100", "H100", "H200", "B200")
"""GPU models from cheapest to dearest per GPU-hour, by the on-demand price of their EC2 instances in us-east-1
(AWS price list: g4dn, g5g, g6, g5, g6e, p4d, p5, p5e, p6-b200). Only the order is used: to prefer cheaper groups."""


def expander_order(kubernetes: KubernetesConfig, node_groups: tuple[NodeGroupConfig, ...]) -> tuple[str, ...]:
    """Node group names, most preferred first: the configured `expanderPriorities`, else Spot before on-demand,
    then cheaper GPU models first (GPU_COST_ORDER; models not in it last), then the config's order."""
    configured = kubernetes.cluster_autoscaler.expander_priorities
    if configured is not None:
        return configured

    def rank(item: tuple[int, NodeGroupConfig]) -> tuple[int, int, int]:
        i, g = item
        model = GPU_COST_ORDER.index(g.gpu.gpu_name) if g.gpu.gpu_name in GPU_COST_ORDER else len(GPU_COST_ORDER)
        return (0 if g.capacity_type == "SPOT" else 1, model, i)
    return tuple(g.name for _, g in sorted(enumerate(node_groups), key=rank))


def asg_option_tags(options: GroupAutoscalerOptions) -> dict[str, str]:
    """A group's overrides as the AWS provider's `autoscaling-options` tag values (Go durations, floats, bools)."""
    values = {"scaledownunneededtime": options.scale_down_unneeded_seconds,
              "scaledownunreadytime": options.scale_down_unready_seconds,
              "scaledownutilizationthreshold": options.scale_down_utilization_threshold,
              "scaledowngpuutilizationthreshold": options.scale_down_gpu_utilization_threshold,
              "ignoredaemonsetsutilization": options.ignore_daemonsets_utilization}
    return {key: (f"{value}s" if key.endswith("time") else str(value).lower() if isinstance(value, bool)
                  else str(value)) for key, value in values.items() if value is not None}
