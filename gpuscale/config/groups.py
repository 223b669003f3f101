"""The GPU groups: EKS managed node groups (`gpuscale:nodeGroups`) and self-managed Auto Scaling groups
(`gpuscale:autoScalingGroups`), their instance types as EC2 describes them, sizes, AMIs, warm pools and what each
serves."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any


from ..components.kube_values import LABEL_NAME_PATTERN
from ..components.labels import LABELS_SET_BY_GPUSCALE
from ..instance_types import InstanceTypeCatalog, InstanceTypeInfo
from .startup import read_startup
from .reader import REQUIRED, Section
from .scaling import ScalingConfig, read_scaling, reject_scaling_on_node_group
from .kubernetes import GroupAutoscalerOptions, read_group_autoscaler_options
from .workload import WorkloadConfig, read_workload
from .caches import ImageCacheConfig, read_image_cache, read_image_volume_throughput
from .agent import AgentConfig


NAME_PATTERN = r"[a-z][a-z0-9-]{0,22}[a-z0-9]|[a-z]"
NAME_RULE = "1 to 24 lowercase letters, digits or hyphens, starting with a letter and not ending with a hyphen"

AMI_TYPES = {
    # EKS managed node group AMI types with the NVIDIA driver, and the CPU architecture each boots on.
    "AL2023_x86_64_NVIDIA": "x86_64",
    "AL2023_ARM_64_NVIDIA": "arm64",
    "BOTTLEROCKET_x86_64_NVIDIA": "x86_64",
    "BOTTLEROCKET_ARM_64_NVIDIA": "arm64",
}
CAPACITY_TYPES = ("ON_DEMAND", "SPOT")
SPOT_ALLOCATION_STRATEGIES = ("price-capacity-optimized", "capacity-optimized", "capacity-optimized-prioritized",
                              "lowest-price")
WARM_POOL_STATES = ("Stopped", "Hibernated", "Running")
DEFAULT_AMI_PARAMETER = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-amazon-linux-2023/latest/ami-id"
"""Public SSM parameter of AWS's Deep Learning Base AMI (NVIDIA driver, AL2023) for x86_64."""
SSM_PUBLIC_PARAMETER_PATTERN = r"/aws/service/[A-Za-z0-9_./-]+"
MAX_GROUP_SIZE = 1000
INSTANCE_TYPE_PATTERN = r"[a-z][a-z0-9-]*\.[a-z0-9]+"
DEFAULT_AMI_TYPE = "AL2023_x86_64_NVIDIA"
DEFAULT_ROOT_VOLUME_GIB = 200


def read_instance_type_names(s: Section) -> tuple[str, ...]:
    """`instanceTypes`: EC2 instance type names, most preferred first (what EC2 says of them is checked by the
    stack config, which has the instance type data)."""
    return s.str_list("instanceTypes", min_items=1, pattern=INSTANCE_TYPE_PATTERN,
                      describe="EC2 instance types such as g6.xlarge")


def read_group_sizes(s: Section, default_min: int | None = None, default_max: int | None = None) -> tuple[int, int]:
    """`minSize` and `maxSize` of a group: 0-1000 and 1-1000, min <= max."""
    lo = s.int("minSize", REQUIRED if default_min is None else default_min, min=0, max=MAX_GROUP_SIZE)
    hi = s.int("maxSize", REQUIRED if default_max is None else default_max, min=1, max=MAX_GROUP_SIZE)
    if lo > hi:
        s.report("minSize", lo, f"{s.name('minSize')} <= {s.name('maxSize')} ({hi})")
    return lo, hi


def read_root_volume(s: Section) -> Any:
    """`rootVolumeGiB`: the volume holding container images, sized for GPU images of 10-30 GB each."""
    return s.int("rootVolumeGiB", DEFAULT_ROOT_VOLUME_GIB, min=50, max=16384)


def read_node_group_settings(s: Section) -> tuple[str, str, int, int, int, dict[str, str]]:
    """What an EKS GPU node group is in both the stack config and GpuNodeGroupArgs: AMI type, capacity type, sizes,
    image volume and extra labels (none of the labels gpuscale sets itself)."""
    ami_type = s.str("amiType", DEFAULT_AMI_TYPE, choices=tuple(AMI_TYPES))
    capacity = s.str("capacityType", "ON_DEMAND", choices=CAPACITY_TYPES)
    lo, hi = read_group_sizes(s)
    root = read_root_volume(s)
    labels = s.str_map("labels", {}, key_pattern=LABEL_NAME_PATTERN, describe="Kubernetes label names to string values")
    for reserved in LABELS_SET_BY_GPUSCALE:
        if reserved in labels:
            s.report(f"labels.{reserved}", labels[reserved], "labels other than the ones gpuscale sets itself from "
                                                             "the instance type and capacity type")
    return ami_type, capacity, lo, hi, root, labels


def read_asg_settings(s: Section, hi: int) -> tuple[str, int, int, str, int, int, int]:
    """What a self-managed GPU group is in both the stack config and GpuAutoScalingGroupArgs (sizes read before):
    AMI parameter, on-demand base and share, Spot strategy, root volume, health-check grace and warm-up."""
    ami_parameter = s.str("amiParameter", DEFAULT_AMI_PARAMETER, pattern=SSM_PUBLIC_PARAMETER_PATTERN,
                          describe="a public SSM parameter path under /aws/service/ that holds an AMI id")
    base = s.int("onDemandBaseCapacity", 0, min=0, max=hi)
    pct = s.int("onDemandPercentageAboveBase", 100, min=0, max=100)
    strategy = s.str("spotAllocationStrategy", "price-capacity-optimized", choices=SPOT_ALLOCATION_STRATEGIES)
    root = read_root_volume(s)
    grace = read_health_check_grace(s)
    warmup = s.int("instanceWarmupSeconds", 300, min=0, max=3600)
    return ami_parameter, base, pct, strategy, root, grace, warmup


def read_health_check_grace(s: Section, name: str = "healthCheckGraceSeconds") -> Any:
    """How long a new instance may be unhealthy or silent: boot, driver, agent start."""
    # GPU instances boot, load the driver and pull multi-GB images: minutes, not the EC2 default of 300 s total.
    return s.int(name, 600, min=60, max=7200)


def check_warm_pool_allowed(s: Section, instance_types: tuple[str, ...], on_demand_percentage: int) -> None:
    """AWS refuses warm pools on groups with a mixed instances policy or Spot instances."""
    if s.has("warmPool") and (len(instance_types) > 1 or on_demand_percentage < 100):
        why = ("several instance types" if len(instance_types) > 1
               else f"a Spot share ({s.name('onDemandPercentageAboveBase')} {on_demand_percentage})")
        s.report("warmPool", s.raw("warmPool"),
                 f"a warm pool only on a group with one instance type and only on-demand capacity "
                 f"({s.name('onDemandPercentageAboveBase')} 100); this group has {why}, which AWS refuses")


@dataclass(frozen=True)
class NodeGroupConfig:
    name: str
    ami_type: str
    instance_types: tuple[str, ...]
    capacity_type: str
    min_size: int
    max_size: int
    root_volume_gib: int
    labels: dict[str, str]
    gpu: InstanceTypeInfo
    """The GPUs every instance type of the group carries (they must all agree)."""
    autoscaler: GroupAutoscalerOptions = GroupAutoscalerOptions()
    """This group's cluster-autoscaler overrides (written as `autoscaling-options` tags on its ASG)."""
    workload: WorkloadConfig | None = None
    """The served workload's model, for the simulator and the pre-apply checks."""
    image_cache: ImageCacheConfig | None = None
    """`imageCache:`: the Bottlerocket data volume restored from a snapshot holding the serving images
    (gpuscale/config/caches.py); None: images pulled on every new node."""
    image_volume_throughput_mibps: int | None = None
    """`imageVolumeThroughputMibps`: the gp3 image volume's provisioned throughput (None: gp3's 125 MiB/s)."""
    network_gbps: float | None = None
    """The slowest network of the group's instance types, Gbit/s as EC2 states it (any of them may be the node a
    pod lands on); None where EC2 states none of them in figures."""

    @property
    def gpus(self) -> tuple[InstanceTypeInfo, ...]:
        """One description per instance type (all carry the same GPUs), as on an Auto Scaling group."""
        return (self.gpu,) * len(self.instance_types)

    @property
    def warm_pool(self) -> None:
        """Managed node groups have no warm pool."""
        return None


@dataclass(frozen=True)
class WarmPoolConfig:
    min_size: int
    max_prepared_capacity: int | None
    pool_state: str
    reuse_on_scale_in: bool


@dataclass(frozen=True)
class AutoScalingGroupConfig:
    name: str
    instance_types: tuple[str, ...]
    ami_parameter: str
    on_demand_base_capacity: int
    on_demand_percentage_above_base: int
    spot_allocation_strategy: str
    min_size: int
    max_size: int
    root_volume_gib: int
    health_check_grace_seconds: int
    instance_warmup_seconds: int
    warm_pool: WarmPoolConfig | None
    gpus: tuple[InstanceTypeInfo, ...]
    """One description per instance type, in preference order."""
    scaling: ScalingConfig | None = None
    """GPU-metric scaling settings, or None for a group whose size only its min/max bound."""
    workload: WorkloadConfig | None = None
    """The served workload's model, for the simulator and the pre-apply checks."""
    startup: Mapping[str, Any] | None = None
    """The user's own startup beside the agent's (components/workload_startup.py StartupArgs), or None."""

    @property
    def uses_mixed_instances(self) -> bool:
        """Several instance types or any Spot share need a mixed instances policy."""
        return len(self.instance_types) > 1 or self.on_demand_percentage_above_base < 100


def read_gpu_instance_types(s: Section, catalog: InstanceTypeCatalog, arch: str | None,
                            same_gpus: bool = False) -> tuple[InstanceTypeInfo, ...]:
    """The group's instance types as EC2 describes them; each one that is not an NVIDIA GPU type of the AMI's
    architecture is reported (a group whose types all fail gets an empty tuple). `same_gpus`: an EKS node group,
    whose types must all carry the same GPUs."""
    names = read_instance_type_names(s)
    infos = []
    for i, name in enumerate(names):
        info = catalog.describe(name)
        if info is None:
            problem = "an EC2 instance type that exists, such as g6.xlarge"
        elif info.gpu_count == 0:
            problem = f"a GPU instance type (for example g4dn, g5, g6, g6e, p4d, p5 families); {name} has no GPUs"
        elif info.gpu_manufacturer.upper() != "NVIDIA":
            problem = (f"an instance type with NVIDIA GPUs (its GPUs are {info.gpu_manufacturer} {info.gpu_name}); "
                       "the agent and AMIs use the NVIDIA driver")
        elif arch is not None and arch not in info.architectures:
            problem = f"an instance type that runs {arch} (the AMI's architecture); {name} runs " + \
                ", ".join(info.architectures)
        else:
            infos.append(info)
            continue
        s.report(f"instanceTypes[{i}]", name, problem)
    for g in infos[1:] if same_gpus else ():
        # cluster-autoscaler builds one node template per group from its tags: GPU count and model must agree.
        if (g.gpu_count, g.gpu_name) != (infos[0].gpu_count, infos[0].gpu_name):
            s.report(f"instanceTypes[{names.index(g.instance_type)}]", g.instance_type,
                     f"instance types carrying the same GPUs as {infos[0].instance_type} "
                     f"({infos[0].gpu_count}x {infos[0].gpu_name}); {g.instance_type} has "
                     f"{g.gpu_count}x {g.gpu_name}. Put it in a group of its own")
    return tuple(infos)


def ami_parameter_architecture(ami_parameter: str) -> str:
    """The CPU architecture of the AMIs an SSM parameter path names (AWS's paths say arm64 where they are)."""
    return "arm64" if "/arm64/" in ami_parameter else "x86_64"


def read_node_group(s: Section, catalog: InstanceTypeCatalog) -> NodeGroupConfig:
    name = s.str("name", pattern=NAME_PATTERN, describe=NAME_RULE)
    ami_type, capacity, lo, hi, root, labels = read_node_group_settings(s)
    gpus = read_gpu_instance_types(s, catalog, AMI_TYPES[ami_type], same_gpus=True)
    reject_scaling_on_node_group(s)
    autoscaler = read_group_autoscaler_options(s.optional_section("autoscaler"))
    if not gpus:  # every instance type was refused: the workload has no GPUs to be checked against
        s.skip("workload")
        raise s.abandon()
    first = gpus[0]
    group = NodeGroupConfig(name, ami_type, tuple(g.instance_type for g in gpus), capacity, lo, hi, root, labels,
                            first, autoscaler)
    group = replace(group, workload=read_workload(s.optional_section("workload"), group, node_group=True),
                    image_cache=read_image_cache(s.optional_section("imageCache"), s.key("amiType"), ami_type),
                    image_volume_throughput_mibps=read_image_volume_throughput(s),
                    network_gbps=min((g.network_gbps for g in gpus if g.network_gbps is not None), default=None))
    s.finish()
    return group


def read_asg(s: Section, catalog: InstanceTypeCatalog, agent: AgentConfig) -> AutoScalingGroupConfig:
    name = s.str("name", pattern=NAME_PATTERN, describe=NAME_RULE)
    lo, hi = read_group_sizes(s)
    ami_parameter, base, pct, strategy, root, grace, warmup = read_asg_settings(s, hi)
    gpus = read_gpu_instance_types(s, catalog, ami_parameter_architecture(ami_parameter))
    warm_pool = read_warm_pool(s, hi, gpus)
    check_warm_pool_allowed(s, tuple(g.instance_type for g in gpus) or read_instance_type_names(s), pct)
    if not gpus:  # every instance type was refused: scaling and workload have no GPUs to be checked against
        s.skip("scaling", "workload", "startup")
        raise s.abandon()
    group = AutoScalingGroupConfig(name, tuple(g.instance_type for g in gpus), ami_parameter, base, pct, strategy,
                                   lo, hi, root, grace, warmup, warm_pool, gpus)
    group = _read_group_extensions(s, group, agent)
    s.finish()
    return group


def _read_group_extensions(s: Section, group: AutoScalingGroupConfig, agent: AgentConfig) -> AutoScalingGroupConfig:
    """The scaling and workload sections of a group, read by their own modules."""
    group = replace(group, scaling=read_scaling(s, group, agent))
    group = replace(group, startup=read_startup(s.optional_section("startup"), (agent.prometheus_port,)))
    return replace(group, workload=read_workload(s.optional_section("workload"), group))


def read_warm_pool(s: Section, hi: int, gpus: tuple[InstanceTypeInfo, ...] = ()) -> WarmPoolConfig | None:
    """The group's `warmPool` (None without one); `gpus`: the instance types' descriptions, where known, for the
    hibernation rule."""
    w = s.optional_section("warmPool")
    if w is None:
        return None
    min_size = w.int("minSize", 0, min=0, max=hi)
    prepared = w.int("maxPreparedCapacity", None, min=0, max=MAX_GROUP_SIZE)
    if prepared is not None and prepared < min_size:
        w.report("maxPreparedCapacity", prepared,
                 f"{w.name('maxPreparedCapacity')} >= {w.name('minSize')} ({min_size}) of the warm pool")
    state = w.str("poolState", "Stopped", choices=WARM_POOL_STATES)
    sleepless = [g.instance_type for g in gpus if not g.hibernation_supported]
    if state == "Hibernated" and sleepless:
        # No GPU instance type in EC2's descriptions can hibernate today; the group could keep no warm instance.
        # (Should one appear, EC2's other conditions still apply and are not checked here: RAM up to 150 GiB and a
        # root volume large enough to hold it.)
        w.report("poolState", state, f"Stopped or Running: {', '.join(sleepless)} cannot hibernate (EC2's "
                                         "instance type description says HibernationSupported: false)")
    reuse = w.bool("reuseOnScaleIn", True)
    w.finish()
    return WarmPoolConfig(min_size, prepared, state, reuse)
