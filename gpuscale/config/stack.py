"""The stack's config, validated into typed objects before any resource is declared.

Keys are camelCase under the project namespace (`gpuscale:`), as they appear in `stacks/Pulumi.<stack>.yaml`.
`load_stack_config` is the only way in: `__main__.py` passes it what `pulumi.Config` holds, and the offline tools
pass it the stack file's `config:` mapping. Every rule that fails raises a ConfigError naming the key, the value
and what is allowed.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from gpu_metrics_agent.config import DEFAULT_PROMETHEUS_PORT

from ..components.arns import IAM_ROLE_ARN, IAM_ROLE_ARN_DESCRIBED
from ..components.endpoint_access import AWS_DEFAULT_PUBLIC_ACCESS_CIDRS, endpoint_access_problem
from ..components.kube_values import LABEL_NAME_PATTERN
from ..components.labels import LABELS_SET_BY_GPUSCALE
from ..instance_types import InstanceTypeCatalog, InstanceTypeInfo
from .namespace import PROJECT, PROVIDER_NAMESPACES, as_project_keys, check_namespace, renamed_errors
from .policy import PolicyConfig, read_policy
from .buckets import ModelBucketConfig, read_model_buckets
from .queues import QueueConfig, queue_uses, read_queues
from .startup import read_startup
from .reader import REQUIRED, ConfigError, Section, collecting
from .scaling import AlertsConfig, ScalingConfig, read_alerts, read_scaling, reject_scaling_on_node_group
from .kubernetes import (GroupAutoscalerOptions, KubernetesConfig, check_kubernetes,
                         read_group_autoscaler_options, read_kubernetes)
from .workload import WorkloadConfig, read_workload
from .caches import ImageCacheConfig, check_efs_caches, read_image_cache, read_image_volume_throughput
from .headroom import HeadroomConfig, read_headroom
from .services import ServiceConfig, read_services
from .vertical import check_vertical_scaling

"""The Pulumi project name, and so the config namespace."""

# Keys under the project namespace; each is one YAML mapping (or list) in the stack file.
TOP_LEVEL_KEYS = ("cluster", "nodeGroups", "autoScalingGroups", "agent", "alerts", "kubernetes", "policy", "queues",
                  "services", "headroom")
TOP_LEVEL_KEYS += ("modelBuckets",)  # the services' model buckets (gpuscale/config/buckets.py)
KNOWN_NAMESPACES = (PROJECT, *PROVIDER_NAMESPACES)
"""Config namespaces a stack file may use: the project's, those of the providers the program uses (pulumi-aws,
pulumi-kubernetes, pulumi-docker-build) and Pulumi's own (`pulumi:tags`, ...). Any other is a typo
(`gpuScale:agent`) that Pulumi would pass on and nothing would read."""

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
CIDR_PATTERN = r"(\d{1,3}\.){3}\d{1,3}/\d{1,2}"
DEFAULT_AMI_TYPE = "AL2023_x86_64_NVIDIA"
DEFAULT_ROOT_VOLUME_GIB = 200


@functools.cache
def aws_regions() -> tuple[str, ...]:
    """Every region of every AWS partition, from the AWS SDK's own endpoint data (botocore's endpoints.json), so a
    region AWS adds arrives with botocore and a typo (`us-west2`) is refused."""
    import botocore.loaders

    partitions = botocore.loaders.create_loader().load_data("endpoints")["partitions"]
    return tuple(sorted(region for p in partitions for region in p["regions"]))


def read_region(s: Section, name: str = "region") -> Any:
    """An AWS region the SDK knows: the stack's `aws:region`, and every component argument that names one."""
    if not s.has(name):
        raise s.fail(name, REQUIRED, "an AWS region such as us-west-2 (required)")
    region = s.str(name, describe="an AWS region such as us-west-2")
    if region not in aws_regions():
        near = difflib.get_close_matches(region, aws_regions(), n=1)
        raise s.fail(name, region, "an AWS region such as us-west-2" + (f" (did you mean {near[0]}?)" if near else "")
                     + "; the regions botocore knows: " + ", ".join(aws_regions()))
    return region


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


def read_sample_interval(s: Section) -> Any:
    """The agent's sampling interval, seconds."""
    return s.float("sampleIntervalSeconds", 1.0, min=0.1, max=60)


def check_warm_pool_allowed(s: Section, instance_types: tuple[str, ...], on_demand_percentage: int) -> None:
    """AWS refuses warm pools on groups with a mixed instances policy or Spot instances."""
    if s.has("warmPool") and (len(instance_types) > 1 or on_demand_percentage < 100):
        why = ("several instance types" if len(instance_types) > 1
               else f"a Spot share ({s.name('onDemandPercentageAboveBase')} {on_demand_percentage})")
        s.report("warmPool", s.raw("warmPool"),
                 f"a warm pool only on a group with one instance type and only on-demand capacity "
                 f"({s.name('onDemandPercentageAboveBase')} 100); this group has {why}, which AWS refuses")


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
    model_buckets: tuple[ModelBucketConfig, ...] = ()
    """The S3 buckets of `gpuscale:modelBuckets`: created by the stack unless marked existing; every s3:// model is in
    one of them."""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    namespace: str = PROJECT
    """The config namespace the stack's keys were read from (`gpuscale`, or the program's own)."""


def load_stack_config(values: Mapping[str, Any], stack: str, instance_types: InstanceTypeCatalog,
                      namespace: str = PROJECT) -> StackConfig:
    """Validate a stack's config, reporting every mistake together (one ConfigErrors listing all of them).

    `values` maps full keys (``aws:region``, ``gpuscale:nodeGroups``) to their decoded values, as in the stack
    file's ``config:`` section. `instance_types` describes instance types (GPU counts come from EC2's data).
    `namespace`: the namespace of the platform's keys, for a program of its own (``platform:nodeGroups``); then
    only that namespace's keys and the providers' are read, and errors name the keys as written.

    Each section is read on its own under `collecting()`: a section's reader raises to end its entry (a required
    key missing), and its Section records every other bad value and unknown key and goes on. A new section plugs in
    with one line here, `errors.guard(read_it, Section(...))`; its reader needs nothing else.
    """
    if check_namespace(namespace) != PROJECT:
        try:
            return replace(load_stack_config(as_project_keys(values, namespace), stack, instance_types),
                           namespace=namespace)
        except ConfigError as e:
            raise renamed_errors(e, namespace) from None
    with collecting() as errors:
        config = _read_stack(values, stack, instance_types, errors)
    errors.raise_if_any(f"the config of stack {stack}")
    assert config is not None
    return config


def check_namespaces(values: Mapping[str, Any]) -> None:
    """Every key's namespace is a known one and every project key a known section; each other key is reported."""
    known = f"known keys are {', '.join(f'{PROJECT}:{k}' for k in TOP_LEVEL_KEYS)}"
    s = Section(dict(values), "")
    for key in sorted(values):
        namespace, _, name = key.partition(":")
        if not name:
            s.report(key, values[key], "a key with a namespace, namespace:key, e.g. gpuscale:agent")
        elif namespace not in KNOWN_NAMESPACES:
            near = difflib.get_close_matches(namespace, KNOWN_NAMESPACES, n=1, cutoff=0.6) or \
                [n for n in KNOWN_NAMESPACES if n.lower() == namespace.lower()]
            s.report(key, values[key], f"a key in a known namespace ({', '.join(KNOWN_NAMESPACES)})"
                     + (f"; did you mean {near[0]}:{name}?" if near else ""))
        elif namespace == PROJECT and name not in TOP_LEVEL_KEYS:
            s.report(key, values[key], known)


def _read_stack(values: Mapping[str, Any], stack: str, instance_types: InstanceTypeCatalog,
                errors: Any) -> StackConfig | None:
    def section(name: str) -> Section:
        return Section(values.get(f"{PROJECT}:{name}") or {}, f"{PROJECT}:{name}")

    check_namespaces(values)
    region = errors.guard(read_region, Section({"region": values.get("aws:region")}, "aws:"))
    cluster = errors.guard(lambda: _read_cluster(section("cluster")))
    agent = errors.guard(lambda: _read_agent(section("agent")))
    # The groups' period rules need the agent's flush interval: its defaults stand in when the agent section failed.
    agent_or_default = agent or _read_agent(Section({}, f"{PROJECT}:agent"))
    top = Section({k: values.get(f"{PROJECT}:{k}") for k in ("nodeGroups", "autoScalingGroups")}, f"{PROJECT}:")
    ng_sections = errors.guard(top.sections, "nodeGroups", default=[])
    asg_sections = errors.guard(top.sections, "autoScalingGroups", default=[])
    node_groups = tuple(g for g in (errors.guard(_read_node_group, s, instance_types) for s in ng_sections or [])
                        if g is not None)
    asgs = tuple(g for g in (errors.guard(_read_asg, s, instance_types, agent_or_default) for s in asg_sections or [])
                 if g is not None)
    if ng_sections == [] and asg_sections == []:
        errors.add(ConfigError(f"{PROJECT}:nodeGroups", [], "at least one GPU group in gpuscale:nodeGroups or "
                                                            "gpuscale:autoScalingGroups"))
    names = [(s.key("name"), s.raw("name")) for s in (ng_sections or []) + (asg_sections or [])
             if isinstance(s.raw("name"), str)]
    errors.guard(_check_unique_names, names)
    alerts = errors.guard(read_alerts, values.get(f"{PROJECT}:alerts"))
    kubernetes = errors.guard(lambda: read_kubernetes(section("kubernetes")))
    if kubernetes is not None and cluster is not None:
        errors.guard(check_kubernetes, kubernetes, node_groups, cluster.kubernetes_version, f"{PROJECT}:kubernetes",
                     f"{PROJECT}:cluster.kubernetesVersion")
    # Services and headroom are read against the node groups and the serving layer; when one of those failed, its
    # own error says enough (a service naming a group whose maxSize was refused is not a second mistake).
    groups_read = len(node_groups) == len(ng_sections or [])
    services = None if kubernetes is None or not groups_read else errors.guard(
        read_services, Section({"services": values.get(f"{PROJECT}:services")}, f"{PROJECT}:"), node_groups,
        kubernetes.serving, f"{PROJECT}:kubernetes.serving")
    if services and cluster is not None:  # in-place resize needs a cluster minor that has it (issue 15)
        errors.guard(check_vertical_scaling, services, cluster.kubernetes_version,
                     f"{PROJECT}:cluster.kubernetesVersion")
    if services and cluster is not None:  # an efs model cache's mount targets need the nodes' subnets (issue 15)
        errors.guard(check_efs_caches, services, cluster.mode, cluster.subnet_ids, f"{PROJECT}:services")
    headroom_sections = errors.guard(Section({"headroom": values.get(f"{PROJECT}:headroom")}, f"{PROJECT}:").sections,
                                     "headroom", default=[])
    headroom = errors.guard(read_headroom, headroom_sections or [], node_groups, services or ()) \
        if services is not None else None
    policy = errors.guard(read_policy, values.get(f"{PROJECT}:policy"))
    if errors.errors:  # the queues' rules need every group and service read
        return None
    config = StackConfig(stack=stack, region=region, cluster=cluster, agent=agent, node_groups=node_groups,
                         auto_scaling_groups=asgs, alerts=alerts, kubernetes=kubernetes, policy=policy,
                         raw=dict(values), services=services or (), headroom=headroom or ())
    queues = errors.guard(read_queues, values.get(f"{PROJECT}:queues"), queue_uses(config))
    buckets = errors.guard(read_model_buckets, values.get(f"{PROJECT}:modelBuckets"), config.services)
    return None if queues is None or buckets is None else replace(config, queues=queues, model_buckets=buckets)


def read_cluster_name(s: Section, name: str = "name") -> Any:
    """An EKS cluster's name (`gpuscale:cluster.name`, the components' `cluster_name`)."""
    return s.str(name, pattern=r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}",
                 describe="an EKS cluster name: 1 to 100 letters, digits, hyphens or underscores")


def read_kubernetes_version(s: Section, default: Any = REQUIRED) -> Any:
    return s.str("kubernetesVersion", default, pattern=r"1\.(2[89]|3\d)",
                 describe="a Kubernetes minor version EKS supports, from 1.28 to 1.39, e.g. \"1.33\"")


def read_vpc(s: Section) -> tuple[Any, Any, Any]:
    """A new VPC: its range, its zones and whether each zone has its own NAT gateway."""
    cidr = s.cidr("vpcCidr", "10.0.0.0/16")
    zones = s.int("availabilityZoneCount", 2, min=2, max=4)
    nat_per_zone = s.bool("natGatewayPerZone", True)
    return cidr, zones, nat_per_zone


def read_subnet_ids(s: Section) -> Any:
    """Existing mode: the private subnets for GPU nodes (default: the cluster's own)."""
    return s.str_list("subnetIds", (), pattern=r"subnet-[0-9a-f]{8,17}",
                      describe="subnet ids such as subnet-0123456789abcdef0")


def _read_cluster(s: Section) -> ClusterConfig:
    mode = s.str("mode", "create", choices=("create", "existing"))
    name = read_cluster_name(s)
    version = read_kubernetes_version(s, "1.33" if mode == "create" else None)
    if mode == "create":
        cidr, zones, nat_per_zone = read_vpc(s)
        system = read_system_nodes(s.section("systemNodes", {}) or Section({}, s.key("systemNodes")))
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
        subnet_ids = read_subnet_ids(s)
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


def read_system_nodes(s: Section) -> SystemNodesConfig:
    """The small non-GPU node group for cluster add-ons."""
    instance_type = s.str("instanceType", "t3.large", pattern=INSTANCE_TYPE_PATTERN,
                          describe="an EC2 instance type such as t3.large")
    lo, hi = read_group_sizes(s, default_min=1, default_max=3)
    desired = s.int("desiredSize", max(lo, min(2, hi)), min=lo, max=hi)
    s.finish()
    return SystemNodesConfig(instance_type, lo, hi, desired)


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


def _read_node_group(s: Section, catalog: InstanceTypeCatalog) -> NodeGroupConfig:
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


def _read_asg(s: Section, catalog: InstanceTypeCatalog, agent: AgentConfig) -> AutoScalingGroupConfig:
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


def read_agent_settings(s: Section) -> tuple[Any, Any, Any]:
    """The agent's sample and flush intervals and Prometheus port (`gpuscale:agent`, and the Args of the
    components that run the agent)."""
    sample = read_sample_interval(s)
    flush = s.float("flushIntervalSeconds", 10.0, min=1, max=60)
    if flush < sample:
        s.report("flushIntervalSeconds", flush,
                 f"a flush interval >= {s.name('sampleIntervalSeconds')} ({sample:g}), the sample interval")
    port = s.int("prometheusPort", DEFAULT_PROMETHEUS_PORT, min=1024, max=65535)
    return sample, flush, port


def _read_agent(s: Section) -> AgentConfig:
    sample, flush, port = read_agent_settings(s)
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
