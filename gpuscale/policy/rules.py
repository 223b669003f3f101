"""The policy rules: plain functions over resources, one source for the offline plan and the CrossGuard pack.

A rule reads resources by type, never by name, so it applies to whatever a program declares (a Helm release's IAM
role is held to the same IAM rules as the agent's instance role). Two kinds:

- resource rules, `check(resource, settings) -> messages`, judge one resource's inputs: CrossGuard runs them as
  `ResourceValidationPolicy` (inputs, before apply), `gpuscale plan` on every planned resource.
- stack rules, `check(resources, settings) -> (resource or None, message)`, need several resources (a group and
  the subnets it launches into, every group for the budget): CrossGuard runs them as `StackValidationPolicy`.

`settings` is the stack's `PolicyConfig` (`gpuscale:policy`). Values not known before apply (a preview's unknowns,
the offline plan's "(known after apply)") are never judged: a rule reports only what it can see. CrossGuard hands
rules read-only `Mapping` and `Sequence` proxies, not dicts and lists, so the rules test for those.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..components.endpoint_access import open_to_internet
from ..config.policy import HOURS_PER_MONTH, PolicyConfig
from ..instance_types import RecordedInstanceTypes


@dataclass(frozen=True)
class Resource:
    """What a rule sees of a resource: the same fields from a plan and from CrossGuard."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    ignore_changes: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()
    """URNs of the resources this one depends on (the launch template and subnets of a group)."""


ResourceCheck = Callable[[Resource, PolicyConfig], Iterable[str]]
StackCheck = Callable[[Sequence[Resource], PolicyConfig], Iterable[tuple["Resource | None", str]]]


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    check: ResourceCheck | StackCheck
    stack: bool = False
    """True for a rule over the whole stack (`StackCheck`), False for one resource at a time."""


LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
INSTANCE = "aws:ec2/instance:Instance"
LAUNCH_CONFIGURATION = "aws:ec2/launchConfiguration:LaunchConfiguration"
VOLUME = "aws:ebs/volume:Volume"
GROUP = "aws:autoscaling/group:Group"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
CLUSTER = "aws:eks/cluster:Cluster"
SUBNET = "aws:ec2/subnet:Subnet"
IAM_POLICY_TYPES = ("aws:iam/policy:Policy", "aws:iam/rolePolicy:RolePolicy", "aws:iam/userPolicy:UserPolicy",
                    "aws:iam/groupPolicy:GroupPolicy")
"""Identity policies whose `policy` input is the document."""
ROLE = "aws:iam/role:Role"
PUT_METRIC_DATA = "cloudwatch:putmetricdata"


def _known(value: Any) -> bool:
    return value is not None and value != "(known after apply)"


def _true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _list(value: Any) -> Sequence[Any]:
    return value if _is_list(value) else []


# --- IMDSv2 -------------------------------------------------------------------------------------------------------

def imdsv2_required(r: Resource, settings: PolicyConfig) -> Iterator[str]:
    """Instance metadata only with session tokens: IMDSv1 lets any SSRF in a served model read the role's keys."""
    if r.type not in (LAUNCH_TEMPLATE, INSTANCE, LAUNCH_CONFIGURATION):
        return
    tokens = (r.props.get("metadataOptions") or {}).get("httpTokens")
    if tokens == "(known after apply)":
        return
    if tokens != "required":
        yield (f"metadataOptions.httpTokens is {tokens!r}; set it to \"required\" (IMDSv2), or instances answer "
               "IMDSv1 requests that need no token")


# --- EBS encryption -----------------------------------------------------------------------------------------------

def ebs_encrypted(r: Resource, settings: PolicyConfig) -> Iterator[str]:
    """Every EBS volume a resource creates is encrypted (model weights and data sit on them)."""
    if r.type == VOLUME:
        if _known(r.props.get("encrypted")) and not _true(r.props.get("encrypted")):
            yield "encrypted is not true"
    elif r.type in (LAUNCH_TEMPLATE, LAUNCH_CONFIGURATION):
        mappings = _list(r.props.get("blockDeviceMappings") or r.props.get("ebsBlockDevices"))
        for i, m in enumerate(mappings):
            ebs = m.get("ebs", m) if isinstance(m, Mapping) else {}
            if not ebs.get("virtualName") and not ebs.get("noDevice") and not _true(ebs.get("encrypted")):
                yield f"blockDeviceMappings[{i}] ({m.get('deviceName', '?')}) is not encrypted"
        root = r.props.get("rootBlockDevice")
        if isinstance(root, Mapping) and not _true(root.get("encrypted")):
            yield "rootBlockDevice is not encrypted"
    elif r.type == INSTANCE:
        root = r.props.get("rootBlockDevice")
        if not isinstance(root, Mapping) or not _true(root.get("encrypted")):
            yield "rootBlockDevice.encrypted is not true"
        for i, d in enumerate(_list(r.props.get("ebsBlockDevices"))):
            if not _true(d.get("encrypted")):
                yield f"ebsBlockDevices[{i}] is not encrypted"


# --- public IPs on GPU instances ----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def gpu_count(instance_type: str) -> int:
    """GPUs of an instance type from EC2's recorded descriptions; 0 when unknown or GPU-less."""
    info = RecordedInstanceTypes().describe(instance_type)
    return info.gpu_count if info is not None else 0


def _group_instance_types(r: Resource, by_urn: Mapping[str, Resource]) -> list[str]:
    """Instance types an EKS node group or Auto Scaling group launches: its own list, its mixed instances
    overrides, or the instance type of the launch template it depends on."""
    if r.type == NODE_GROUP:
        types = [t for t in _list(r.props.get("instanceTypes")) if isinstance(t, str)]
    else:
        spec = ((r.props.get("mixedInstancesPolicy") or {}).get("launchTemplate") or {})
        types = [o.get("instanceType") for o in _list(spec.get("overrides")) if isinstance(o, Mapping)]
        types = [t for t in types if isinstance(t, str)]
    if not types:
        types = [str(t.props["instanceType"]) for t in _launch_templates(r, by_urn) if t.props.get("instanceType")]
    return types


def _launch_templates(r: Resource, by_urn: Mapping[str, Resource]) -> list[Resource]:
    return [by_urn[u] for u in r.dependencies if u in by_urn and by_urn[u].type == LAUNCH_TEMPLATE]


def no_public_ip_on_gpu(resources: Sequence[Resource], settings: PolicyConfig) -> Iterator[tuple[Resource, str]]:
    """GPU instances are reached through the cluster or a load balancer, never on an address of their own."""
    by_urn = {r.urn: r for r in resources}
    for r in resources:
        if r.type == INSTANCE and gpu_count(str(r.props.get("instanceType"))) and \
                _true(r.props.get("associatePublicIpAddress")):
            yield r, f"GPU instance ({r.props.get('instanceType')}) with associatePublicIpAddress true"
        if r.type not in (GROUP, NODE_GROUP):
            continue
        gpus = [t for t in _group_instance_types(r, by_urn) if gpu_count(t)]
        if not gpus:
            continue
        for lt in _launch_templates(r, by_urn):
            for i, nic in enumerate(_list(lt.props.get("networkInterfaces"))):
                if _true(nic.get("associatePublicIpAddress")):
                    yield r, (f"its launch template {lt.name} gives GPU instances ({', '.join(gpus)}) a public IP "
                              f"(networkInterfaces[{i}].associatePublicIpAddress)")
        for u in r.dependencies:
            subnet = by_urn.get(u)
            if subnet is not None and subnet.type == SUBNET and _true(subnet.props.get("mapPublicIpOnLaunch")):
                yield r, (f"launches GPU instances ({', '.join(gpus)}) into subnet {subnet.name}, which maps a "
                          "public IP on launch")


# --- EKS API endpoint ---------------------------------------------------------------------------------------------

def eks_api_not_public(r: Resource, settings: PolicyConfig) -> Iterator[str]:
    """The Kubernetes API is not open to the whole internet (a leaked token or an API flaw is then reachable
    from anywhere). What counts as open is components/endpoint_access.py's `open_to_internet`, which the stack
    config's pre-apply check asks too."""
    if r.type != CLUSTER:
        return
    vpc = r.props.get("vpcConfig") or {}
    public, cidrs = vpc.get("endpointPublicAccess"), vpc.get("publicAccessCidrs")
    if public == "(known after apply)" or cidrs == "(known after apply)":
        return
    open_to = open_to_internet(public, _list(cidrs) if cidrs is not None else None)
    if open_to:
        yield (f"the API endpoint is public to {', '.join(open_to)}"
               + (" (publicAccessCidrs not set: AWS's default)" if cidrs is None else "")
               + "; set vpcConfig.endpointPublicAccess false or publicAccessCidrs to the networks that deploy")


# --- IAM ----------------------------------------------------------------------------------------------------------

def _documents(r: Resource) -> Iterator[tuple[str, Any]]:
    """(where, parsed policy document) of every identity policy a resource holds."""
    if r.type in IAM_POLICY_TYPES:
        yield "policy", r.props.get("policy")
    elif r.type == ROLE:
        for i, p in enumerate(_list(r.props.get("inlinePolicies"))):
            if isinstance(p, Mapping):
                yield f"inlinePolicies[{i}]", p.get("policy")


def _statements(doc: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    if isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except ValueError:
            return  # not known yet, or not JSON: AWS rejects the latter anyway
    if not isinstance(doc, Mapping):
        return
    statements = doc.get("Statement")
    statements = [statements] if isinstance(statements, Mapping) else _list(statements)
    for i, s in enumerate(statements):
        if isinstance(s, Mapping) and s.get("Effect") == "Allow":
            yield i, s


def _actions(statement: dict[str, Any], key: str = "Action") -> list[str]:
    actions = statement.get(key)
    return [actions] if isinstance(actions, str) else [a for a in _list(actions) if isinstance(a, str)]


def no_wildcard_iam_actions(r: Resource, settings: PolicyConfig) -> Iterator[str]:
    """Identity policies name their actions: a wildcard grants whatever the service adds later too."""
    for where, doc in _documents(r):
        for i, s in _statements(doc):
            wild = [a for a in _actions(s) if "*" in a]
            if wild:
                yield f"{where} Statement[{i}] allows wildcard actions {', '.join(wild)}"
            if s.get("NotAction") is not None:
                yield f"{where} Statement[{i}] allows NotAction: every action but those listed"


def put_metric_data_scoped(r: Resource, settings: PolicyConfig) -> Iterator[str]:
    """`cloudwatch:PutMetricData` only into the allowed namespaces, by the `cloudwatch:namespace` condition: an
    instance that may write any namespace can forge the metrics that scale other fleets."""
    allowed = set(settings.metric_namespaces)
    for where, doc in _documents(r):
        for i, s in _statements(doc):
            if not any(a.lower() == PUT_METRIC_DATA for a in _actions(s)):
                continue
            namespaces = _condition_values(s.get("Condition"), "cloudwatch:namespace")
            if namespaces is None:
                yield (f"{where} Statement[{i}] allows cloudwatch:PutMetricData without a cloudwatch:namespace "
                       f"condition (allowed namespaces: {', '.join(sorted(allowed))})")
            elif not set(namespaces) <= allowed:
                yield (f"{where} Statement[{i}] allows cloudwatch:PutMetricData into "
                       f"{', '.join(sorted(set(namespaces) - allowed))}; allowed: {', '.join(sorted(allowed))} "
                       "(gpuscale:policy.metricNamespaces)")


def _condition_values(condition: Any, key: str) -> list[str] | None:
    """Values a `StringEquals` condition on `key` allows; None when no such condition restricts it. Wildcard
    operators (`StringLike`) do not count: `GpuScale/*` would admit any namespace under it."""
    if not isinstance(condition, Mapping):
        return None
    for operator in ("StringEquals", "ForAnyValue:StringEquals"):
        block = condition.get(operator)
        if isinstance(block, Mapping):
            for k, v in block.items():
                if k.lower() == key:
                    return [v] if isinstance(v, str) else [x for x in _list(v) if isinstance(x, str)]
    return None


# --- cost-allocation tags -----------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def taggable(type_token: str) -> bool:
    """Whether an AWS resource type takes `tags`, from the pulumi-aws SDK's own Args class (`SubnetArgs` for
    `aws:ec2/subnet:Subnet`), so a type added to the provider is judged without a list to keep up to date."""
    parts = type_token.split(":")
    if len(parts) != 3 or parts[0] != "aws":
        return False
    try:
        module = importlib.import_module(f"pulumi_aws.{parts[1].split('/')[0]}")
        args = getattr(module, f"{parts[2]}Args")
        return "tags" in inspect.signature(args.__init__).parameters
    except (ImportError, AttributeError, TypeError, ValueError):
        return False


def _tag_keys(tags: Any) -> set[str] | None:
    """Keys of a tags input: a mapping, or the Auto Scaling group's list of {key, value}; None when unknown."""
    if isinstance(tags, Mapping):
        return set(tags)
    if _is_list(tags):
        return {t.get("key") for t in tags if isinstance(t, Mapping)}
    return None if _known(tags) else set()


def required_tags(r: Resource, settings: PolicyConfig) -> Iterator[str]:
    """Every taggable resource carries the cost-allocation tags; launch templates also tag the instances and
    volumes they launch, which are where a GPU fleet's cost is."""
    if not taggable(r.type):
        return
    keys = _tag_keys(r.props.get("tags"))
    all_keys = _tag_keys(r.props.get("tagsAll"))  # provider default tags, where CrossGuard sees them
    if keys is None or all_keys is None:
        return
    missing = [t for t in settings.required_tags if t not in keys | all_keys]
    if missing:
        yield f"tags lack {', '.join(missing)}"
    if r.type == LAUNCH_TEMPLATE:
        specs = {s.get("resourceType"): _tag_keys(s.get("tags")) or set()
                 for s in _list(r.props.get("tagSpecifications")) if isinstance(s, Mapping)}
        for launched in ("instance", "volume"):
            lacking = [t for t in settings.required_tags if t not in specs.get(launched, set())]
            if lacking:
                yield f"tagSpecifications for {launched} lack {', '.join(lacking)}"


# --- GPU budget ---------------------------------------------------------------------------------------------------

def gpu_groups_at_max(resources: Sequence[Resource]) -> list[tuple[Resource, int, int]]:
    """(group, maxSize, GPUs per instance) of every GPU group, with the most GPUs any of its types carries."""
    by_urn = {r.urn: r for r in resources}
    out = []
    for r in resources:
        if r.type not in (GROUP, NODE_GROUP):
            continue
        size = (r.props.get("scalingConfig") or {}).get("maxSize") if r.type == NODE_GROUP else r.props.get("maxSize")
        gpus = max((gpu_count(t) for t in _group_instance_types(r, by_urn)), default=0)
        if gpus and isinstance(size, (int, float)):
            out.append((r, int(size), gpus))
    return out


def gpu_budget(resources: Sequence[Resource], settings: PolicyConfig) -> Iterator[tuple[Resource | None, str]]:
    """GPU-hours a month with every GPU group at its maxSize stay within `gpuscale:policy.gpuHoursPerMonth`."""
    budget = settings.gpu_hours_per_month
    if budget is None:
        return
    groups = gpu_groups_at_max(resources)
    total = sum(size * gpus for _, size, gpus in groups) * HOURS_PER_MONTH
    if total > budget:
        parts = ", ".join(f"{r.name} {size}x{gpus}" for r, size, gpus in groups)
        yield None, (f"at their maxima the GPU groups run {total:,} GPU-hours a month ({parts} GPUs, "
                     f"{HOURS_PER_MONTH} h), over the budget of {budget:,} (gpuscale:policy.gpuHoursPerMonth)")


# --- desired capacity ---------------------------------------------------------------------------------------------

def desired_capacity_unmanaged(r: Resource, settings: PolicyConfig) -> Iterator[str]:
    """The program never sets a group's desired capacity after creation: that belongs to its autoscaler, and a
    `pulumi up` would reset it behind the autoscaler's back."""
    if r.type == GROUP and r.props.get("desiredCapacity") is not None and "desiredCapacity" not in r.ignore_changes:
        yield "sets desiredCapacity without ignoreChanges: [\"desiredCapacity\"]"
    if r.type == NODE_GROUP and (r.props.get("scalingConfig") or {}).get("desiredSize") is not None and \
            "scalingConfig.desiredSize" not in r.ignore_changes:
        yield "sets scalingConfig.desiredSize without ignoreChanges: [\"scalingConfig.desiredSize\"]"


RULES: dict[str, Rule] = {r.name: r for r in (
    Rule("imdsv2-required", "Launch templates and instances require IMDSv2 session tokens", imdsv2_required),
    Rule("ebs-encrypted", "EBS volumes are encrypted", ebs_encrypted),
    Rule("no-public-ip-on-gpu", "GPU instances get no public IP address", no_public_ip_on_gpu, stack=True),
    Rule("eks-api-not-public", "The EKS API endpoint is not open to the whole internet", eks_api_not_public),
    Rule("no-wildcard-iam-actions", "Identity policies allow no wildcard actions", no_wildcard_iam_actions),
    Rule("put-metric-data-scoped", "cloudwatch:PutMetricData is scoped to the allowed namespaces",
         put_metric_data_scoped),
    Rule("required-tags", "Taggable resources carry the cost-allocation tags", required_tags),
    Rule("gpu-budget", "GPU-hours a month at the groups' maxima stay within the stack's budget", gpu_budget,
         stack=True),
    Rule("desired-capacity-unmanaged", "Desired capacity is never managed by the program",
         desired_capacity_unmanaged),
)}
"""Every rule by name; the name is what `gpuscale:policy` and the pack config use."""
