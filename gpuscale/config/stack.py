"""The stack's config, validated into typed objects before any resource is declared.

Keys are camelCase under the project namespace (`gpuscale:`), as they appear in `stacks/Pulumi.<stack>.yaml`.
`load_stack_config` is the only way in: `__main__.py` passes it what `pulumi.Config` holds, and the offline tools
pass it the stack file's `config:` mapping. Every rule that fails raises a ConfigError naming the key, the value
and what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from gpu_metrics_agent.config import DEFAULT_PROMETHEUS_PORT

from ..components.arns import IAM_ROLE_ARN, IAM_ROLE_ARN_DESCRIBED
from ..components.endpoint_access import AWS_DEFAULT_PUBLIC_ACCESS_CIDRS, endpoint_access_problem
from ..components.labels import LABELS_SET_BY_GPUSCALE
from ..instance_types import InstanceTypeCatalog, InstanceTypeInfo
from .policy import PolicyConfig, read_policy
from .queues import QueueConfig, queue_uses, read_queues
from .startup import read_startup
from .reader import REQUIRED, ConfigError, Section
from .scaling import AlertsConfig, ScalingConfig, read_alerts, read_scaling, reject_scaling_on_node_group
from .kubernetes import (GroupAutoscalerOptions, KubernetesConfig, check_kubernetes,
                         read_group_autoscaler_options, read_kubernetes)
from .workload import WorkloadConfig, read_workload
from .headroom import HeadroomConfig, read_headroom
from .services import ServiceConfig, read_services

PROJECT = "gpuscale"
"""The Pulumi project name, and so the config namespace."""

# Keys under the project namespace; each is one YAML mapping (or list) in the stack file.
TOP_LEVEL_KEYS = ("cluster", "nodeGroups", "autoScalingGroups", "agent", "alerts", "kubernetes", "policy", "queues",
                  "services", "headroom")

NAME_PATTERN = r"[a-z][a-z0-9-]{0,22}[a-z0-9]|[a-z]"
NAME_RULE = "1 to 24 lowercase letters, digits or hyphens, starting with a letter and not ending with a hyphen"
REGION_PATTERN = r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d"

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


@dataclass(frozen=True)
class SystemNodesConfig:
    instance_type: str
    min_size: int
    max_size: int
    desired_size: int


@dataclass(frozen=True)
class ClusterConfig:
    mode: str
    """``create``: a new VPC and EKS cluster; ``existing``: attach to an existing cluster by name."""
    name: str
    kubernetes_version: str | None
    vpc_cidr: str | None
    availability_zone_count: int
    nat_gateway_per_zone: bool
    """Create mode: one NAT gateway per zone (a zone's outage leaves the others' egress up), or a single shared one
    (cheaper; every private subnet loses egress with its zone)."""
    system_nodes: SystemNodesConfig | None
    subnet_ids: tuple[str, ...]
    """Existing mode: private subnets for GPU nodes (default: the cluster's own subnets)."""
    public_access: bool = True
    """Create mode: the API's public endpoint is on (the private one always is, for the nodes)."""
    public_access_cidrs: tuple[str, ...] = ()
    """Create mode, public endpoint on: the networks it answers (AWS's default 0.0.0.0/0 when none are set)."""
    preview_role_arn: str | None = None
    """Create mode: the CI preview/drift role, given read-only access to the cluster by an EKS access entry."""


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


@dataclass(frozen=True)
class AgentConfig:
    sample_interval_seconds: float
    flush_interval_seconds: float
    prometheus_port: int


@dataclass(frozen=True)
class StackConfig:
    stack: str
    region: str
    cluster: ClusterConfig
    agent: AgentConfig
    node_groups: tuple[NodeGroupConfig, ...] = ()
    auto_scaling_groups: tuple[AutoScalingGroupConfig, ...] = ()
    alerts: AlertsConfig | None = None
    """Where alarms notify and how long throttling may last; absent keys give alarms that notify nobody."""
    kubernetes: KubernetesConfig | None = None
    """The in-cluster side: cluster-autoscaler, device plugin, agent DaemonSet. Always set by load_stack_config."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """How the policy rules treat the stack (`gpuscale:policy`)."""
    services: tuple[ServiceConfig, ...] = ()
    """Model services on the node groups (`gpuscale:services`), served by `kubernetes.serving`."""
    headroom: tuple[HeadroomConfig, ...] = ()
    """Placeholder pods keeping GPU nodes of node groups warm (`gpuscale:headroom`, gpuscale/config/headroom.py)."""
    queues: tuple[QueueConfig, ...] = ()
    """Every SQS queue the signals name: created by the stack unless `gpuscale:queues` says it exists."""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


def load_stack_config(values: Mapping[str, Any], stack: str, instance_types: InstanceTypeCatalog) -> StackConfig:
    """Validate a stack's config.

    `values` maps full keys (``aws:region``, ``gpuscale:nodeGroups``) to their decoded values, as in the stack
    file's ``config:`` section. `instance_types` describes instance types (GPU counts come from EC2's data).
    """
    unknown = sorted(k for k in values if k.startswith(PROJECT + ":") and k.split(":", 1)[1] not in TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigError(unknown[0], values[unknown[0]],
                          "known keys are " + ", ".join(f"{PROJECT}:{k}" for k in TOP_LEVEL_KEYS))
    region = values.get("aws:region")
    if not isinstance(region, str) or not re.fullmatch(REGION_PATTERN, region):
        raise ConfigError("aws:region", region if region is not None else REQUIRED, "an AWS region such as us-west-2")

    cluster = _read_cluster(Section(values.get(f"{PROJECT}:cluster") or {}, f"{PROJECT}:cluster"))
    agent = _read_agent(Section(values.get(f"{PROJECT}:agent") or {}, f"{PROJECT}:agent"))
    top = Section({k: values.get(f"{PROJECT}:{k}") for k in ("nodeGroups", "autoScalingGroups")}, f"{PROJECT}:")
    node_groups = tuple(_read_node_group(s, instance_types) for s in top.sections("nodeGroups", default=[]))
    asgs = tuple(_read_asg(s, instance_types, agent) for s in top.sections("autoScalingGroups", default=[]))
    if not node_groups and not asgs:
        raise ConfigError(f"{PROJECT}:nodeGroups", [], "at least one GPU group in gpuscale:nodeGroups or "
                                                         "gpuscale:autoScalingGroups")
    _check_unique_names([(f"{PROJECT}:nodeGroups[{i}].name", g.name) for i, g in enumerate(node_groups)]
                        + [(f"{PROJECT}:autoScalingGroups[{i}].name", g.name) for i, g in enumerate(asgs)])
    alerts = read_alerts(values.get(f"{PROJECT}:alerts"))
    kubernetes = read_kubernetes(Section(values.get(f"{PROJECT}:kubernetes") or {}, f"{PROJECT}:kubernetes"))
    check_kubernetes(kubernetes, node_groups, cluster.kubernetes_version, f"{PROJECT}:kubernetes",
                     f"{PROJECT}:cluster.kubernetesVersion")
    services = read_services(Section({"services": values.get(f"{PROJECT}:services")}, f"{PROJECT}:"), node_groups,
                             kubernetes.serving, f"{PROJECT}:kubernetes.serving")
    config = StackConfig(stack=stack, region=region, cluster=cluster, agent=agent, node_groups=node_groups,
                         auto_scaling_groups=asgs, alerts=alerts, kubernetes=kubernetes,
                         policy=read_policy(values.get(f"{PROJECT}:policy")), raw=dict(values), services=services,
                         headroom=read_headroom(Section({"headroom": values.get(f"{PROJECT}:headroom")},
                                                        f"{PROJECT}:").sections("headroom", default=[]),
                                                node_groups, services))
    return replace(config, queues=read_queues(values.get(f"{PROJECT}:queues"), queue_uses(config)))


def _read_cluster(s: Section) -> ClusterConfig:
    mode = s.str("mode", "create", choices=("create", "existing"))
    name = s.str("name", pattern=r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}",
                 describe="an EKS cluster name: 1 to 100 letters, digits, hyphens or underscores")
    version = s.str("kubernetesVersion", "1.33" if mode == "create" else None, pattern=r"1\.(2[89]|3\d)",
                    describe="a Kubernetes minor version EKS supports, from 1.28 to 1.39, e.g. \"1.33\"")
    if mode == "create":
        cidr = s.cidr("vpcCidr", "10.0.0.0/16")
        zones = s.int("availabilityZoneCount", 2, min=2, max=4)
        nat_per_zone = s.bool("natGatewayPerZone", True)
        sys_s = s.section("systemNodes", {})
        sys_s = sys_s if isinstance(sys_s, Section) else Section(sys_s, s.key("systemNodes"))
        system = _read_system_nodes(sys_s)
        public_access, public_cidrs = _read_api_endpoint(s)
        subnet_ids: tuple[str, ...] = ()
        preview_role = s.str("previewRoleArn", None, pattern=IAM_ROLE_ARN, describe=IAM_ROLE_ARN_DESCRIBED)
        if s.has("subnetIds"):
            raise s.fail("subnetIds", s.data["subnetIds"], "subnetIds only with mode: existing (mode: create makes "
                                                            "its own private subnets)")
    else:
        cidr, zones, nat_per_zone, system, preview_role = None, 0, False, None, None
        public_access, public_cidrs = True, ()
        if s.has("previewRoleArn"):
            raise s.fail("previewRoleArn", s.data["previewRoleArn"], "previewRoleArn only with mode: create (an "
                                                                    "existing cluster's access entries are its "
                                                                    "owner's to grant)")
        for key in ("vpcCidr", "availabilityZoneCount", "natGatewayPerZone", "systemNodes", "apiEndpoint"):
            if s.has(key):
                raise s.fail(key, s.data[key], f"{key} only with mode: create (an existing cluster has its own)")
        subnet_ids = s.str_list("subnetIds", (), pattern=r"subnet-[0-9a-f]{8,17}",
                                describe="subnet ids such as subnet-0123456789abcdef0")
    s.finish()
    return ClusterConfig(mode, name, version, cidr, zones, nat_per_zone, system, subnet_ids, public_access,
                         public_cidrs, preview_role)


def _read_api_endpoint(cluster: Section) -> tuple[bool, tuple[str, ...]]:
    """`apiEndpoint`: the public endpoint off (`publicAccess: false`, private only), or on for `publicAccessCidrs`
    (default AWS's 0.0.0.0/0). The rule is components/endpoint_access.py's, which EksCluster applies too."""
    s = cluster.optional_section("apiEndpoint") or Section({}, cluster.key("apiEndpoint"))
    public = s.bool("publicAccess", True)
    cidrs = s.str_list("publicAccessCidrs", None, min_items=1,
                       describe="IPv4 networks in CIDR notation, e.g. 52.94.76.5/32")
    problem = endpoint_access_problem(public, cidrs)
    if problem is not None:  # the Args name public_access_cidrs; the config publicAccessCidrs
        raise ConfigError(problem.config_key(s.path), problem.value, problem.allowed)
    s.finish()
    return public, (cidrs or AWS_DEFAULT_PUBLIC_ACCESS_CIDRS) if public else ()


def _read_system_nodes(s: Section) -> SystemNodesConfig:
    instance_type = s.str("instanceType", "t3.large", pattern=r"[a-z][a-z0-9-]*\.[a-z0-9]+",
                          describe="an EC2 instance type such as t3.large")
    lo, hi = _read_sizes(s, default_min=1, default_max=3)
    desired = s.int("desiredSize", max(lo, min(2, hi)), min=lo, max=hi)
    s.finish()
    return SystemNodesConfig(instance_type, lo, hi, desired)


def _read_sizes(s: Section, default_min: int | None = None, default_max: int | None = None) -> tuple[int, int]:
    lo = s.int("minSize", REQUIRED if default_min is None else default_min, min=0, max=MAX_GROUP_SIZE)
    hi = s.int("maxSize", REQUIRED if default_max is None else default_max, min=1, max=MAX_GROUP_SIZE)
    if lo > hi:
        raise s.fail("minSize", lo, f"minSize <= maxSize ({hi})")
    return lo, hi


def _read_instance_types(s: Section, catalog: InstanceTypeCatalog, arch: str | None) -> tuple[InstanceTypeInfo, ...]:
    names = s.str_list("instanceTypes", min_items=1, pattern=r"[a-z][a-z0-9-]*\.[a-z0-9]+",
                       describe="EC2 instance types such as g6.xlarge")
    infos = []
    for i, name in enumerate(names):
        key = f"{s.key('instanceTypes')}[{i}]"
        info = catalog.describe(name)
        if info is None:
            raise ConfigError(key, name, "an EC2 instance type that exists, such as g6.xlarge")
        if info.gpu_count == 0:
            raise ConfigError(key, name, "a GPU instance type (for example g4dn, g5, g6, g6e, p4d, p5 families); "
                                         f"{name} has no GPUs")
        if info.gpu_manufacturer.upper() != "NVIDIA":
            raise ConfigError(key, name, f"an instance type with NVIDIA GPUs (its GPUs are {info.gpu_manufacturer} "
                                         f"{info.gpu_name}); the agent and AMIs use the NVIDIA driver")
        if arch is not None and arch not in info.architectures:
            raise ConfigError(key, name, f"an instance type that runs {arch} (the AMI's architecture); {name} runs "
                                         + ", ".join(info.architectures))
        infos.append(info)
    return tuple(infos)


def _read_node_group(s: Section, catalog: InstanceTypeCatalog) -> NodeGroupConfig:
    name = s.str("name", pattern=NAME_PATTERN, describe=NAME_RULE)
    ami_type = s.str("amiType", "AL2023_x86_64_NVIDIA", choices=tuple(AMI_TYPES))
    gpus = _read_instance_types(s, catalog, AMI_TYPES[ami_type])
    first = gpus[0]
    for i, g in enumerate(gpus[1:], start=1):
        # cluster-autoscaler builds one node template per group from its tags: GPU count and model must agree.
        if (g.gpu_count, g.gpu_name) != (first.gpu_count, first.gpu_name):
            raise ConfigError(f"{s.key('instanceTypes')}[{i}]", g.instance_type,
                              f"instance types carrying the same GPUs as {first.instance_type} "
                              f"({first.gpu_count}x {first.gpu_name}); {g.instance_type} has "
                              f"{g.gpu_count}x {g.gpu_name}. Put it in a group of its own")
    capacity = s.str("capacityType", "ON_DEMAND", choices=CAPACITY_TYPES)
    lo, hi = _read_sizes(s)
    root = s.int("rootVolumeGiB", 200, min=50, max=16384)
    labels = s.str_map("labels", {}, key_pattern=r"([a-z0-9.-]+/)?[A-Za-z0-9][A-Za-z0-9_.-]{0,62}",
                       describe="Kubernetes label names to string values")
    for reserved in LABELS_SET_BY_GPUSCALE:
        if reserved in labels:
            raise s.fail(f"labels.{reserved}", labels[reserved], "labels other than the ones gpuscale sets "
                                                                 "itself from the instance type and capacity type")
    reject_scaling_on_node_group(s)
    autoscaler = read_group_autoscaler_options(s.optional_section("autoscaler"))
    group = NodeGroupConfig(name, ami_type, tuple(g.instance_type for g in gpus), capacity, lo, hi, root, labels,
                            first, autoscaler)
    group = replace(group, workload=read_workload(s.optional_section("workload"), group, node_group=True))
    s.finish()
    return group


def _read_asg(s: Section, catalog: InstanceTypeCatalog, agent: AgentConfig) -> AutoScalingGroupConfig:
    name = s.str("name", pattern=NAME_PATTERN, describe=NAME_RULE)
    ami_parameter = s.str("amiParameter", DEFAULT_AMI_PARAMETER, pattern=SSM_PUBLIC_PARAMETER_PATTERN,
                          describe="a public SSM parameter path under /aws/service/ that holds an AMI id")
    arch = "arm64" if "/arm64/" in ami_parameter else "x86_64"
    gpus = _read_instance_types(s, catalog, arch)
    lo, hi = _read_sizes(s)
    base = s.int("onDemandBaseCapacity", 0, min=0, max=hi)
    pct = s.int("onDemandPercentageAboveBase", 100, min=0, max=100)
    strategy = s.str("spotAllocationStrategy", "price-capacity-optimized", choices=SPOT_ALLOCATION_STRATEGIES)
    root = s.int("rootVolumeGiB", 200, min=50, max=16384)
    # GPU instances boot, load the driver and pull multi-GB images: minutes, not the EC2 default of 300 s total.
    grace = s.int("healthCheckGraceSeconds", 600, min=60, max=7200)
    warmup = s.int("instanceWarmupSeconds", 300, min=0, max=3600)
    warm_pool = _read_warm_pool(s, hi, gpus)
    group = AutoScalingGroupConfig(name, tuple(g.instance_type for g in gpus), ami_parameter, base, pct, strategy,
                                   lo, hi, root, grace, warmup, warm_pool, gpus)
    if warm_pool is not None and group.uses_mixed_instances:
        # AWS refuses warm pools on groups with a mixed instances policy or Spot instances.
        why = ("several instance types" if len(group.instance_types) > 1
               else f"a Spot share (onDemandPercentageAboveBase {pct})")
        raise s.fail("warmPool", s.data.get("warmPool"),
                     f"a warm pool only on a group with one instance type and only on-demand capacity "
                     f"(onDemandPercentageAboveBase 100); this group has {why}, which AWS refuses")
    group = _read_group_extensions(s, group, agent)
    s.finish()
    return group


def _read_group_extensions(s: Section, group: AutoScalingGroupConfig, agent: AgentConfig) -> AutoScalingGroupConfig:
    """The scaling and workload sections of a group, read by their own modules."""
    group = replace(group, scaling=read_scaling(s, group, agent))
    group = replace(group, startup=read_startup(s.optional_section("startup"), (agent.prometheus_port,)))
    return replace(group, workload=read_workload(s.optional_section("workload"), group))


def _read_warm_pool(s: Section, hi: int, gpus: tuple[InstanceTypeInfo, ...]) -> WarmPoolConfig | None:
    w = s.optional_section("warmPool")
    if w is None:
        return None
    min_size = w.int("minSize", 0, min=0, max=hi)
    prepared = w.int("maxPreparedCapacity", None, min=0, max=MAX_GROUP_SIZE)
    if prepared is not None and prepared < min_size:
        raise w.fail("maxPreparedCapacity", prepared, f"maxPreparedCapacity >= minSize ({min_size}) of the warm pool")
    state = w.str("poolState", "Stopped", choices=WARM_POOL_STATES)
    sleepless = [g.instance_type for g in gpus if not g.hibernation_supported]
    if state == "Hibernated" and sleepless:
        # No GPU instance type in EC2's descriptions can hibernate today; the group could keep no warm instance.
        # (Should one appear, EC2's other conditions still apply and are not checked here: RAM up to 150 GiB and a
        # root volume large enough to hold it.)
        raise w.fail("poolState", state, f"Stopped or Running: {', '.join(sleepless)} cannot hibernate (EC2's "
                                         "instance type description says HibernationSupported: false)")
    reuse = w.bool("reuseOnScaleIn", True)
    w.finish()
    return WarmPoolConfig(min_size, prepared, state, reuse)


def _read_agent(s: Section) -> AgentConfig:
    sample = s.float("sampleIntervalSeconds", 1.0, min=0.1, max=60)
    flush = s.float("flushIntervalSeconds", 10.0, min=1, max=60)
    if flush < sample:
        raise s.fail("flushIntervalSeconds", flush, f"a flush interval >= the sample interval ({sample})")
    port = s.int("prometheusPort", DEFAULT_PROMETHEUS_PORT, min=1024, max=65535)
    s.finish()
    return AgentConfig(sample, flush, port)


def _check_unique_names(names: list[tuple[str, str]]) -> None:
    """`names`: (config key, group name) pairs; the second use of a name is the one reported."""
    first: dict[str, str] = {}
    for key, name in names:
        if name in first:
            raise ConfigError(key, name, f"a group name used once across nodeGroups and autoScalingGroups "
                                         f"({first[name]} has it already; names prefix every resource)")
        first[name] = key
