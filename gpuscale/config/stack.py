"""The stack's config, validated into typed objects before any resource is declared.

Keys are camelCase under the project namespace (`gpuscale:`), as they appear in `stacks/Pulumi.<stack>.yaml`.
`load_stack_config` is the only way in: `__main__.py` passes it what `pulumi.Config` holds, and the offline tools
pass it the stack file's `config:` mapping. Every rule that fails raises a ConfigError naming the key, the value
and what is allowed. Each section has its module (cluster.py, groups.py, agent.py, kubernetes.py, services.py, ...);
this one reads them in order and checks what spans them.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any


from ..instance_types import InstanceTypeCatalog
from .namespace import PROJECT, PROVIDER_NAMESPACES, as_project_keys, check_namespace, renamed_errors
from .policy import PolicyConfig, read_policy
from .buckets import ModelBucketConfig, read_model_buckets
from .queues import QueueConfig, queue_uses, read_queues
from .reader import ConfigError, Section, collecting
from .scaling import AlertsConfig, read_alerts
from .kubernetes import KubernetesConfig, check_kubernetes, read_kubernetes
from .caches import check_efs_caches
from .headroom import HeadroomConfig, read_headroom
from .services import ServiceConfig, read_services
from .vertical import check_vertical_scaling
from .agent import AgentConfig, read_agent
from .cluster import ClusterConfig, read_cluster, read_region
from .groups import AutoScalingGroupConfig, NodeGroupConfig, read_asg, read_node_group


# Keys under the project namespace; each is one YAML mapping (or list) in the stack file.
TOP_LEVEL_KEYS = ("cluster", "nodeGroups", "autoScalingGroups", "agent", "alerts", "kubernetes", "policy", "queues",
                  "services", "headroom")
TOP_LEVEL_KEYS += ("modelBuckets",)  # the services' model buckets (gpuscale/config/buckets.py)
KNOWN_NAMESPACES = (PROJECT, *PROVIDER_NAMESPACES)
"""Config namespaces a stack file may use: the project's, those of the providers the program uses (pulumi-aws,
pulumi-kubernetes, pulumi-docker-build) and Pulumi's own (`pulumi:tags`, ...). Any other is a typo
(`gpuScale:agent`) that Pulumi would pass on and nothing would read."""


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
    cluster = errors.guard(lambda: read_cluster(section("cluster")))
    agent = errors.guard(lambda: read_agent(section("agent")))
    # The groups' period rules need the agent's flush interval: its defaults stand in when the agent section failed.
    agent_or_default = agent or read_agent(Section({}, f"{PROJECT}:agent"))
    top = Section({k: values.get(f"{PROJECT}:{k}") for k in ("nodeGroups", "autoScalingGroups")}, f"{PROJECT}:")
    ng_sections = errors.guard(top.sections, "nodeGroups", default=[])
    asg_sections = errors.guard(top.sections, "autoScalingGroups", default=[])
    node_groups = tuple(g for g in (errors.guard(read_node_group, s, instance_types) for s in ng_sections or [])
                        if g is not None)
    asgs = tuple(g for g in (errors.guard(read_asg, s, instance_types, agent_or_default) for s in asg_sections or [])
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


def _check_unique_names(names: list[tuple[str, str]]) -> None:
    """`names`: (config key, group name) pairs; the second use of a name is the one reported."""
    first: dict[str, str] = {}
    for key, name in names:
        if name in first:
            raise ConfigError(key, name, f"a group name used once across nodeGroups and autoScalingGroups "
                                         f"({first[name]} has it already; names prefix every resource)")
        first[name] = key
