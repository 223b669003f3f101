"""Pre-apply checks: settings that validate one by one but will misbehave together, found before `pulumi up`.

`gpuscale plan` calls `run_checks(config, plan)`. Most checks need only the validated stack config; the plan, when
given, adds what only the declared resources show (a scaling policy on a group that cluster-autoscaler also
sizes). Each `Finding` names the settings involved by their full keys, so the fix is one search away.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from ...config import PROJECT, StackConfig
from .kubernetes import kubernetes_findings
from .caches import cache_findings
from .headroom import headroom_findings
from .serving import serving_findings
from ...components.endpoint_access import open_to_internet
from ...components.labels import CA_TAG_PREFIX
from ...config.policy import PolicyConfig
from ...config.scaling import AWS_METRIC_PERIOD

ERROR, WARNING, INFO = "error", "warning", "info"


@dataclass(frozen=True)
class Finding:
    severity: str
    """``error`` (will not work as configured), ``warning`` (works, but not as intended) or ``info``."""
    check: str
    """Which check found it, e.g. ``cold-start``."""
    settings: tuple[str, ...]
    """Full keys of the settings involved, e.g. ``gpuscale:autoScalingGroups[0].scaling.burst.periodSeconds``."""
    message: str
    group: str = ""
    """The group the finding is about, by its name (`infer-l40s`), where it is about one: a key's index alone
    (`autoScalingGroups[2]`) makes the reader count entries."""

    def to_json(self) -> dict[str, Any]:
        return {"severity": self.severity, "check": self.check, "settings": list(self.settings),
                "message": self.message, **({"group": self.group} if self.group else {})}

    def __str__(self) -> str:
        about = f"group {self.group}: " if self.group else ""
        return f"{self.severity}: [{self.check}] {about}{self.message} ({', '.join(self.settings)})"


def about_group(name: str, findings: list[Finding]) -> list[Finding]:
    """`findings` of one group's checks, each naming the group."""
    return [replace(f, group=f.group or name) for f in findings]


def run_checks(config: StackConfig, plan: Any | None = None) -> list[Finding]:
    """Every finding for the stack, errors first."""
    findings: list[Finding] = []
    for i, group in enumerate(config.auto_scaling_groups):
        key = f"{PROJECT}:autoScalingGroups[{i}]"
        findings += about_group(group.name, _metric_periods(key, group, config.agent) + _wake_path(key, group)
                                + _cold_start(key, group, config.agent) + _time_to_capacity(key, group, config.agent))
    for i, group in enumerate(getattr(config, "node_groups", ())):
        findings += about_group(group.name, _node_group_time_to_capacity(f"{PROJECT}:nodeGroups[{i}]", group, config))
    findings += _shared_queues(config)
    findings += _api_endpoint(config)
    findings += _queue_visibility(config)
    findings += kubernetes_findings(config, plan, Finding)
    findings += serving_findings(config, plan, Finding)
    findings += headroom_findings(config, Finding)
    findings += cache_findings(config, plan, Finding)
    if plan is not None:
        findings += _autoscalers_in_plan(plan, config)
        findings += policy_findings(plan, config.policy)
    order = {ERROR: 0, WARNING: 1, INFO: 2}
    return sorted(findings, key=lambda f: order[f.severity])


def policy_findings(plan: Any, settings: PolicyConfig) -> list[Finding]:
    """The policy rules (`gpuscale.policy`) on the planned resources: a mandatory finding is an error, an advisory
    one a warning, one the stack accepts (`gpuscale:policy.accept`) information with its reason. `settings`: the
    stack's `gpuscale:policy`, or PolicyConfig() for the rules' defaults."""
    from ...policy import MANDATORY, evaluate, resources_of_plan

    found = []
    for f in evaluate(resources_of_plan(plan), settings):
        severity = INFO if f.accepted is not None else ERROR if f.level == MANDATORY else WARNING
        text = f"{f.resource}: {f.message}" + (f" (accepted: {f.accepted})" if f.accepted is not None else "")
        found.append(Finding(severity, f"policy:{f.rule}", (f"{PROJECT}:policy.enforcement.{f.rule}",), text))
    return found


def _periods(key: str, scaling: Any) -> Iterator[tuple[str, int]]:
    """(key, seconds) of every period over the agent's metrics."""
    yield f"{key}.scaling.target.periodSeconds", scaling.target.period_seconds
    if scaling.burst is not None:
        yield f"{key}.scaling.burst.periodSeconds", scaling.burst.period_seconds


def _metric_periods(key: str, group: Any, agent: Any) -> list[Finding]:
    if group.scaling is None:
        return []
    flush = agent.flush_interval_seconds
    return [Finding(ERROR, "metric-period", (period_key, f"{PROJECT}:agent.flushIntervalSeconds"),
                    f"a {period} s period is shorter than the agent's {flush:g} s flush: most periods are evaluated "
                    "before their datapoints arrive, so the alarm flaps or reads low")
            for period_key, period in _periods(key, group.scaling) if period < flush]


def _wake_path(key: str, group: Any) -> list[Finding]:
    scaling = group.scaling
    sizes = (f"{key}.minSize",)
    if group.min_size != 0:
        return []
    if scaling is None:
        if group.workload is None:
            return []
        return [Finding(WARNING, "wake", (*sizes, f"{key}.scaling"),
                        "the group has a workload but no scaling section and minSize 0: it stays at zero and "
                        "serves nothing")]
    scaling_in = [f"{key}.scaling.target.disableScaleIn"] if not scaling.target.disable_scale_in else []
    if scaling.demand is not None and not scaling.demand.disable_scale_in:
        scaling_in.append(f"{key}.scaling.demand.disableScaleIn")
    if scaling.scale_to_zero is None and scaling_in:
        return [Finding(ERROR, "wake", (*sizes, *scaling_in, f"{key}.scaling.scaleToZero"),
                        "target tracking may scale this group in to zero, and at zero the GPU metrics it tracks are "
                        "empty: nothing would ever scale it out again. Add scaling.scaleToZero with a wake signal, "
                        "or minSize >= 1")]
    zero = scaling.scale_to_zero
    if zero is not None and scaling.demand is not None and zero.wake != scaling.demand.signal:
        return [Finding(WARNING, "wake", (f"{key}.scaling.scaleToZero.wake", f"{key}.scaling.demand"),
                        "the wake signal and the demand signal differ: requests on the demand signal alone never "
                        "wake the group from zero")]
    return []


def _cold_start(key: str, group: Any, agent: Any) -> list[Finding]:
    w = group.workload
    if w is None:
        return []
    cs = w.cold_start
    found = []
    cold, warm = cs.cold_seconds, cs.warm_seconds
    boot_to_serve = cs.image_pull_seconds + cs.model_load_seconds
    phases = tuple(f"{key}.workload.coldStart.{k}" for k in ("nodeProvisioningSeconds", "imagePullSeconds",
                                                             "modelLoadSeconds"))
    from_zero = _first_capacity_seconds(group, agent)
    if from_zero is not None and w.request_timeout_seconds < from_zero:
        found.append(Finding(WARNING, "cold-start", (f"{key}.workload.requestTimeoutSeconds", *phases),
                             f"requests arriving at zero capacity wait about {from_zero:.0f} s (wake plus cold start) "
                             f"for the first instance, longer than the {w.request_timeout_seconds:g} s request "
                             "timeout: the first requests after idle time out"))
    if w.readiness_deadline_seconds is not None and w.readiness_deadline_seconds < cold:
        found.append(Finding(ERROR, "cold-start", (f"{key}.workload.readinessDeadlineSeconds", *phases),
                             f"a new instance needs about {cold:.0f} s to serve, more than its "
                             f"{w.readiness_deadline_seconds:g} s readiness deadline: it is failed before it is ready"))
    if group.health_check_grace_seconds < boot_to_serve:
        found.append(Finding(ERROR, "cold-start", (f"{key}.healthCheckGraceSeconds", *phases[1:]),
                             f"after boot an instance needs about {boot_to_serve:.0f} s (image pull and model load) "
                             f"to become healthy, more than the {group.health_check_grace_seconds} s health check "
                             "grace period: the group replaces instances before they ever serve"))
    if group.scaling is not None and group.instance_warmup_seconds < boot_to_serve:
        found.append(Finding(WARNING, "cold-start", (f"{key}.instanceWarmupSeconds", *phases[1:]),
                             f"the {group.instance_warmup_seconds} s instance warmup ends before the instance serves "
                             f"(about {boot_to_serve:.0f} s after boot): its idle GPUs pull the group's utilisation "
                             "down and hold back scale-out"))
    if warm is not None and group.warm_pool is None:
        found.append(Finding(INFO, "cold-start", (f"{key}.workload.coldStart.warmPoolResumeSeconds", f"{key}.warmPool"),
                             "warmPoolResumeSeconds is set but the group has no warm pool; it is not used"))
    return found


def _first_capacity_seconds(group: Any, agent: Any) -> float | None:
    """From a request at zero capacity to the first instance serving: wake alarm (one minute period, evaluated
    when it closes) plus the cold start; None when the group never sits at zero."""
    scaling, w = group.scaling, group.workload
    if group.min_size > 0 or scaling is None or scaling.scale_to_zero is None:
        return None
    start = w.cold_start.warm_seconds if group.warm_pool is not None and w.cold_start.warm_seconds is not None \
        else w.cold_start.cold_seconds
    return AWS_METRIC_PERIOD + start


def _time_to_capacity(key: str, group: Any, agent: Any) -> list[Finding]:
    """The simulator's answer for a burst of 100 requests onto the group idle at its minimum size (zero, or the floor
    it keeps), with the group's own scaling."""
    if group.scaling is None or group.workload is None:
        return []
    from ...sim.results import simulate_group
    from ...sim.traces import burst

    result = simulate_group(group, agent, burst(), ["stack"]).results[0]
    cs = group.workload.cold_start
    start = f"cold start {cs.cold_seconds:.0f} s"
    if group.warm_pool is not None and cs.warm_seconds is not None:
        start += f", {cs.warm_seconds:.0f} s from the warm pool"
    onto = f"onto the group idle at its {group.min_size} instances" if group.min_size else "onto the group at zero"
    if result.time_to_capacity is None:
        text = f"a burst of 100 requests {onto} never gets enough capacity within an hour"
    else:
        text = (f"a burst of 100 requests {onto} has capacity for all of them after about "
                f"{result.time_to_capacity} s ({start}) and is served after "
                f"{_seconds(result.completion)}; see `gpuscale simulate` for the comparison")
    return [Finding(INFO, "time-to-capacity", (f"{key}.scaling", f"{key}.workload"), text)]


def _node_group_time_to_capacity(key: str, group: Any, config: Any) -> list[Finding]:
    """The same burst onto an EKS node group: cluster-autoscaler with the stack's settings adds nodes for the pods the
    burst leaves pending (one pod per replica of work; a model service's own pod autoscaler has a finding of its
    own, gpuscale/plan/checks/serving.py)."""
    if group.workload is None or config.kubernetes is None:
        return []
    from ...sim.results import simulate_group
    from ...sim.traces import burst

    result = simulate_group(group, config.agent, burst(), ["stack"], kubernetes=config.kubernetes).results[0]
    ca = config.kubernetes.cluster_autoscaler
    cs = group.workload.cold_start
    start = (f"pending pod to GPU ready at most {cs.gpu_ready_seconds(ca.scan_interval_seconds):.0f} s, then image "
             f"pull and model load {cs.image_pull_seconds + cs.model_load_seconds:.0f} s")
    onto = f"onto the group idle at its {group.min_size} nodes" if group.min_size else "onto the group at zero"
    settings = (f"{key}.workload", f"{PROJECT}:kubernetes.clusterAutoscaler")
    if result.time_to_capacity is None:
        text = f"a burst of 100 requests {onto} never gets enough capacity within an hour ({start})"
    else:
        text = (f"a burst of 100 requests {onto} has capacity for all of them after about {result.time_to_capacity} s "
                f"with cluster-autoscaler adding nodes ({start}) and is served after {_seconds(result.completion)}; "
                "see `gpuscale simulate` for the comparison")
    return [Finding(INFO, "time-to-capacity", settings, text)]


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{math.ceil(value)} s"


def _api_endpoint(config: StackConfig) -> list[Finding]:
    """A new cluster whose API endpoint answers the whole internet (by the rule the policy rule eks-api-not-public
    applies to the planned cluster: one definition of "open")."""
    c = getattr(config, "cluster", None)  # the simulator's checks pass a config of groups alone
    if c is None or c.mode != "create":
        return []
    open_to = open_to_internet(c.public_access, c.public_access_cidrs)
    if not open_to:
        return []
    accepted = any(a.rule == "eks-api-not-public" for a in getattr(config, "policy", PolicyConfig()).accepted)
    key = f"{PROJECT}:cluster.apiEndpoint"
    return [Finding(WARNING, "api-endpoint", (f"{key}.publicAccess", f"{key}.publicAccessCidrs"),
                    f"the Kubernetes API of {c.name} is public to {', '.join(open_to)}: anyone on the internet can "
                    "reach it (IAM still authenticates every call). Set publicAccessCidrs to the networks that "
                    "deploy, or publicAccess: false"
                    + (" (the stack accepts it: gpuscale:policy.accept names rule eks-api-not-public)" if accepted
                       else ""))]


def _queue_visibility(config: StackConfig) -> list[Finding]:
    """A created queue whose messages reappear before its consumers' mean request is done: a second instance (or
    pod) runs the same request, and the backlog the scaling reads counts it twice. Consumers: the Auto Scaling
    groups whose instances take the queue's messages, and the model services whose KEDA wake names it."""
    found = []
    groups = {g.name: (i, g) for i, g in enumerate(config.auto_scaling_groups)}
    services = {f"{PROJECT}:services[{i}].scaling.keda.wake.queueName": (i, s)
                for i, s in enumerate(getattr(config, "services", ()))}
    for q in getattr(config, "queues", ()):
        if q.existing:
            continue
        consumers = [(f"{PROJECT}:autoScalingGroups[{groups[n][0]}]", n, groups[n][1].workload)
                     for n in q.consumer_groups]
        consumers += [(f"{PROJECT}:services[{services[u.key][0]}]", f"service {services[u.key][1].name}",
                       services[u.key][1].workload) for u in q.uses if u.key in services]
        for key, name, workload in consumers:
            if workload is not None and q.visibility_timeout_seconds < workload.service_time.mean_seconds:
                found.append(Finding(
                    WARNING, "queue-visibility",
                    (q.setting_key("visibilityTimeoutSeconds"), f"{key}.workload.serviceTime.meanSeconds"),
                    f"queue {q.name} hides a received request for {q.visibility_timeout_seconds} s, less than the "
                    f"{workload.service_time.mean_seconds:g} s {name} takes on average: most requests are "
                    "received again, and run twice, before they are done"))
    return found


def _shared_queues(config: StackConfig) -> list[Finding]:
    """Two groups scaling on one queue both see the whole backlog: together they add twice what it needs."""
    users: dict[str, list[tuple[str, str]]] = {}  # queue -> (key, group name)
    for i, g in enumerate(config.auto_scaling_groups):
        s = g.scaling
        if s is None:
            continue
        key = f"{PROJECT}:autoScalingGroups[{i}].scaling"
        for path, signal in ((f"{key}.demand", s.demand.signal if s.demand else None),
                             (f"{key}.scaleToZero.wake", s.scale_to_zero.wake if s.scale_to_zero else None)):
            if signal is not None and signal.kind == "sqs":
                users.setdefault(signal.queue_name, []).append((path, g.name))
    found = []
    for queue, uses in users.items():
        groups = sorted({name for _, name in uses})
        if len(groups) > 1:
            found.append(Finding(WARNING, "two-autoscalers", tuple(path for path, _ in uses),
                                 f"queue {queue} drives {len(groups)} groups ({', '.join(groups)}): each scales for "
                                 "the whole backlog, so together they add capacity several times over"))
    return found


GROUP, TAG, NODE_GROUP = "aws:autoscaling/group:Group", "aws:autoscaling/tag:Tag", "aws:eks/nodeGroup:NodeGroup"
_OVERWRITE = "the two overwrite each other's desired capacity"
ATTACHMENTS = {
    "aws:autoscaling/policy:Policy": (ERROR, "scaling policy", _OVERWRITE),
    "aws:autoscaling/schedule:Schedule": (ERROR, "scheduled action", _OVERWRITE),
    "aws:autoscaling/lifecycleHook:LifecycleHook": (
        WARNING, "lifecycle hook", "cluster-autoscaler drains a node before it terminates it, and the hook then holds "
        "the drained instance (and its GPU bill) until the hook times out or something completes it")}
"""What a plan attaches to an Auto Scaling group by name (`autoscalingGroupName`): severity, noun, consequence on a
group that cluster-autoscaler sizes."""
UNKNOWN = "(known after apply)"


def _autoscalers_in_plan(plan: Any, config: Any) -> list[Finding]:
    """Anything setting the desired capacity of an Auto Scaling group that cluster-autoscaler also sizes: one named
    by a `k8s.io/cluster-autoscaler/` tag (a Tag resource, or the group's own tags), or the group EKS creates for a
    managed node group. Two controllers on one desired capacity overwrite each other."""
    resources = tuple(plan.resources)
    by_urn = {r.urn: r for r in resources}
    owners: dict[str, Any] = {}  # exact ASG name -> the resource that puts it under cluster-autoscaler
    patterns: list[tuple[re.Pattern[str], Any]] = []  # names known only by their form (auto-names, namePrefix)
    for r in resources:
        if r.type == TAG and _is_ca_key((r.inputs.get("tag") or {}).get("key")):
            owners.setdefault(str(r.inputs.get("autoscalingGroupName")), _owner(r, by_urn))
        elif r.type == GROUP and any(_is_ca_key(t.get("key")) for t in r.inputs.get("tags") or []
                                     if isinstance(t, dict)):
            patterns.append((_group_name_pattern(r), r))
        elif r.type == NODE_GROUP:
            # EKS names the group's ASG eks-<node group name>-<uuid>; the node group name is often an auto-name.
            ng = re.escape(str(r.inputs.get("nodeGroupName") or "")) or _auto_name(r.name)
            patterns.append((re.compile(f"eks-{ng}-[0-9a-f-]{{36}}"), _owner(r, by_urn)))
    owners.pop(UNKNOWN, None)
    found = []
    for r in resources:
        if r.type not in ATTACHMENTS:
            continue
        target = str(r.inputs.get("autoscalingGroupName", ""))
        owner = owners.get(target) or next((o for pattern, o in patterns if pattern.fullmatch(target)), None)
        if owner is None and target == UNKNOWN:  # a real preview: the name is an output, its source a dependency
            owner = next((_owner(by_urn[u], by_urn) for u in r.options.get("dependsOn", ())
                          if u in by_urn and by_urn[u].type == NODE_GROUP), None)
        if owner is None:
            continue
        severity, what, consequence = ATTACHMENTS[r.type]
        settings = (_setting(r, by_urn, config), _setting(owner, by_urn, config))
        found.append(Finding(severity, "two-autoscalers", settings,
                             f"{what} {r.name} acts on Auto Scaling group {target}, which cluster-autoscaler sizes "
                             f"(from {owner.name}): {consequence}", _group_of(owner, by_urn, config)))
    return found


def _is_ca_key(key: Any) -> bool:
    return isinstance(key, str) and key.startswith(CA_TAG_PREFIX + "/")


def _auto_name(name: str) -> str:
    """Pulumi's auto-name for a resource: its name, a dash and seven hex characters."""
    return re.escape(name) + "-[0-9a-f]{7}"


def _group_name_pattern(group: Any) -> re.Pattern[str]:
    if group.inputs.get("name") not in (None, UNKNOWN):
        return re.compile(re.escape(str(group.inputs["name"])))
    if group.inputs.get("namePrefix") not in (None, UNKNOWN):
        return re.compile(re.escape(str(group.inputs["namePrefix"])) + ".+")
    return re.compile(_auto_name(group.name))


PLATFORM_TYPE = "gpuscale:index:GpuPlatform"
"""components/platform.py's type token: the whole stack's component, which holds every configured entry's."""


def _holds_entries(resource: Any) -> bool:
    """Whether `resource` is where the configured entries' components sit: the stack, or a GpuPlatform."""
    return resource.parent is None or resource.type == PLATFORM_TYPE


def _owner(resource: Any, by_urn: dict[str, Any]) -> Any:
    """The component a resource belongs to (a GpuNodeGroup for its Tags and node group), else the resource."""
    parent = by_urn.get(resource.parent or "")
    return parent if parent is not None and not parent.custom and not _holds_entries(parent) else resource


def _group_of(resource: Any, by_urn: dict[str, Any], config: Any) -> str:
    """The name of the configured group a resource belongs to, or ""."""
    setting = _setting(resource, by_urn, config)
    for key, groups in (("nodeGroups", config.node_groups), ("autoScalingGroups", config.auto_scaling_groups)):
        for i, g in enumerate(groups):
            if setting.startswith(f"{PROJECT}:{key}[{i}]"):
                return g.name
    return ""


def _setting(resource: Any, by_urn: dict[str, Any], config: Any) -> str:
    """The config entry a resource comes from (`gpuscale:nodeGroups[0]`), or its own name when the program declared
    it outside any configured group."""
    top = resource
    while by_urn.get(top.parent or "") is not None and not _holds_entries(by_urn[top.parent]):
        top = by_urn[top.parent]
    for key, groups, suffix in (("nodeGroups", config.node_groups, ""),
                                ("autoScalingGroups", config.auto_scaling_groups, "-scaling")):
        for i, g in enumerate(groups):
            if not top.custom and top.name == g.name + suffix:
                return f"{PROJECT}:{key}[{i}]" + (".scaling" if suffix else "")
    return f"resource {resource.name}"
