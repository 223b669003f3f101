"""The `scaling:` section of a self-managed GPU Auto Scaling group, and `gpuscale:alerts`.

A group with `scaling:` gets (components/gpu_scaling_policies.py): target tracking on the fleet's mean per-GPU
utilization, optionally a second target on a demand signal, burst step scaling on 10-second alarms, scale to zero
after an idle window with a wake-up from a queue sized to its backlog (gpuscale/config/wake.py), and a termination
lifecycle hook that gives instances time to drain. Everything AWS would refuse, and every pair of policies that
would fight, is refused here with the key, the value and what is allowed (see docs/scaling.md for the reasoning
behind each rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .reader import REQUIRED, ConfigError, Section

if TYPE_CHECKING:
    from .agent import AgentConfig
    from .groups import AutoScalingGroupConfig

TARGET_TRACKING_PERIODS = (10, 30, 60)
"""Periods target tracking accepts for its metric (TargetTrackingMetricStat.Period, EC2 Auto Scaling API)."""
AWS_METRIC_PERIOD = 60
"""SQS, load balancer and Auto Scaling group metrics arrive once a minute: nothing on them can look closer."""
SIGNAL_KINDS = ("sqs", "alb")
SQS_QUEUE_PATTERN = r"[A-Za-z0-9_-]{1,80}|[A-Za-z0-9_-]{1,75}\.fifo"
ALB_PATTERN = r"app/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}"
TARGET_GROUP_PATTERN = r"targetgroup/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}"
SNS_TOPIC_PATTERN = r"[A-Za-z0-9_-]{1,256}"
EMAIL_PATTERN = r"[^@\s]+@[^@\s]+\.[^@\s]+"
MAX_WAKE_CAPACITY = 1000
"""An Auto Scaling group's largest max size here (gpuscale.config.groups.MAX_GROUP_SIZE)."""


def is_alarm_period(seconds: int) -> bool:
    """PutMetricAlarm accepts 10, 20, 30 or any multiple of 60 seconds (20 was added after 10 and 30)."""
    return seconds in (10, 20, 30) or (seconds >= 60 and seconds % 60 == 0)


def max_evaluation_periods(period: int) -> int:
    """Period x EvaluationPeriods may not exceed one day for periods under an hour, seven days otherwise."""
    return (86_400 if period < 3600 else 604_800) // period


@dataclass(frozen=True)
class TargetTrackingConfig:
    target_gpu_utilization: float
    """Fleet mean per-GPU utilization to hold, percent, (0, 100]."""
    disable_scale_in: bool
    period_seconds: int = 60
    """Period of the tracked metric: 10, 30 or 60."""


@dataclass(frozen=True)
class DemandSignalConfig:
    kind: str
    """"sqs" (a queue's visible messages) or "alb" (requests per target of a load balancer's target group)."""
    queue_name: str | None
    load_balancer: str | None
    """ALB: final portion of the load balancer's ARN, app/<name>/<id>."""
    target_group: str | None
    """ALB: final portion of the target group's ARN, targetgroup/<name>/<id>."""


@dataclass(frozen=True)
class DemandTargetConfig:
    signal: DemandSignalConfig
    target_per_instance: float
    """Queue messages per in-service instance, or requests per target per minute, to hold."""
    disable_scale_in: bool = False
    """Only add capacity on demand. AWS scales in when every target tracking policy whose scale-in is enabled
    agrees, so with this set the GPU target alone decides scale-in."""


@dataclass(frozen=True)
class BurstStepConfig:
    lower_bound_above_target: float
    """Percent points of fleet utilization above the target where this step starts."""
    adjustment_percent: int
    """Capacity added, in percent of the current capacity (at least one instance)."""


@dataclass(frozen=True)
class BurstConfig:
    period_seconds: int
    evaluation_periods: int
    steps: tuple[BurstStepConfig, ...]


@dataclass(frozen=True)
class ScaleToZeroConfig:
    idle_minutes: int
    wake: DemandSignalConfig
    warm_minimum: int
    """Least capacity the wake policy sets when demand arrives at zero instances."""
    idle_gpu_utilization: float = 5.0
    """Fleet utilization (percent) at or below which the group counts as idle while the queue is empty."""
    wake_messages_per_instance: float | None = None
    """Size the wake to the backlog: ceil(visible messages / this) instances, from warm_minimum up to wake_maximum.
    None: every wake sets warm_minimum."""
    wake_maximum: int | None = None
    """Most capacity a wake sets (the group's maxSize); needed with wake_messages_per_instance."""


@dataclass(frozen=True)
class ScalingConfig:
    target: TargetTrackingConfig
    demand: DemandTargetConfig | None
    burst: BurstConfig | None
    scale_to_zero: ScaleToZeroConfig | None
    scale_in_protection: bool
    drain_timeout_seconds: int


@dataclass(frozen=True)
class AlertsConfig:
    sns_topic_name: str | None
    """Name of an SNS topic the stack creates for alarm notifications; None with no email: no notifications."""
    email: str | None
    """Address subscribed to the topic (AWS sends a confirmation mail first)."""
    throttle_minutes: int = 10
    """Minutes of throttling before the thermal and power alarms fire."""
    throttled_fraction: float = 0.5
    """Share of the group's GPU-seconds that must be throttled in each of those minutes."""


def read_scaling(group_section: Section, group: AutoScalingGroupConfig, agent: AgentConfig) -> ScalingConfig | None:
    """The group's `scaling:` section, or None when it has none (a fixed-size group)."""
    s = group_section.optional_section("scaling")
    if s is None:
        return None
    return read_scaling_settings(s, group, agent)


SCALING_ARGS_ALIASES = {"gpuUtilization": "target_gpu_utilization"}
"""The stack config's target key and GpuScalingPoliciesArgs' name for it (the rest differ by case only)."""


def read_scaling_settings(s: Section, group: Any, agent: AgentConfig | None,
                          demand_signal: str | None = None) -> ScalingConfig:
    """The scaling settings of a group: the stack config's `scaling:` section, and GpuScalingPoliciesArgs.

    `group` has the group's `min_size` and `max_size`; `agent` the agent's flush interval (None: a component that
    is not told it); `demand_signal`: where the demand section keeps its signal (the Args nest it in `signal`, the
    stack config writes it inline)."""
    target = _read_target(s.section("target"), agent)
    demand = _read_demand(s.optional_section("demand"), target, demand_signal)
    burst = _read_burst(s.optional_section("burst"), target, agent)
    scale_to_zero = _read_scale_to_zero(s.optional_section("scaleToZero"), group, demand, demand_signal is not None)
    protection = s.bool("scaleInProtection", False)
    drain = s.int("drainTimeoutSeconds", 300, min=30, max=7200)  # PutLifecycleHook HeartbeatTimeout range
    s.finish()
    config = ScalingConfig(target, demand, burst, scale_to_zero, protection, drain)
    check_no_fights(scaling_triggers(config, s.path, s.name), s.where)
    return config


def reject_scaling_on_node_group(s: Section) -> None:
    """EKS managed node groups are sized by cluster-autoscaler; ASG policies on them would fight it."""
    if s.has("scaling"):
        raise s.fail("scaling", s.data["scaling"],
                     "no scaling section on a node group: cluster-autoscaler owns the size of EKS managed node "
                     "groups, and Auto Scaling policies on their group would fight it. Put CloudWatch-scaled "
                     "fleets in gpuscale:autoScalingGroups")


def read_alerts(value: Any) -> AlertsConfig:
    """`gpuscale:alerts`; when absent, alarms exist but notify nobody."""
    s = Section(value if value is not None else {}, "gpuscale:alerts")
    topic, email = read_alert_recipients(s)
    minutes, fraction = read_throttle_alarm(s)
    s.finish()
    return AlertsConfig(topic, email, minutes, fraction)


def read_alert_recipients(s: Section) -> tuple[Any, Any]:
    """Where alarms notify: an SNS topic's name and an email address (`gpuscale:alerts`, GpuAlertTopicArgs)."""
    topic = s.input("snsTopicName", None, read=lambda name, default: s.str(
        name, default, pattern=SNS_TOPIC_PATTERN,
        describe="an SNS topic name: 1 to 256 letters, digits, hyphens or underscores"))
    email = s.input("email", None, read=lambda name, default: s.str(
        name, default, pattern=EMAIL_PATTERN, describe="an email address"))
    return topic, email


def read_throttle_alarm(s: Section) -> tuple[Any, Any]:
    """How long and how much throttling fires the thermal and power alarms (`gpuscale:alerts`, GpuAlarmsArgs)."""
    minutes = s.int("throttleMinutes", 10, min=1, max=1440)  # 60 s periods: one day at most
    fraction = s.float("throttledFraction", 0.5, min=0, max=1, min_exclusive=True)
    return minutes, fraction


def read_target_utilization(s: Section, default: Any = REQUIRED) -> Any:
    """A fleet's mean per-GPU utilization target, percent (0, 100]."""
    return s.float("gpuUtilization", default, min=0, max=100, min_exclusive=True)


def read_demand_target(s: Section | None, signal_key: str | None = None) -> DemandTargetConfig | None:
    """A demand target (a queue's backlog or a load balancer's requests per instance) on its own."""
    return _read_demand(s, None, signal_key)


def check_agent_period(s: Section, key: str, period: int, agent: AgentConfig | None) -> None:
    """A period over the agent's metrics must span at least one flush.

    The agent stamps each datapoint with its sample time (1 s storage resolution) but sends a batch only every
    flushIntervalSeconds. A period shorter than that is evaluated before its datapoints can have arrived, so most
    evaluations see it empty: the alarm flaps to INSUFFICIENT_DATA or reads a partial sum as low load.
    """
    if agent is not None and period < agent.flush_interval_seconds:
        raise s.fail(key, period, f"a period >= gpuscale:agent.flushIntervalSeconds ({agent.flush_interval_seconds:g}"
                                  " s): the agent sends datapoints that often, so a shorter period is evaluated "
                                  "before its data arrives")


def _read_target(s: Section, agent: AgentConfig | None) -> TargetTrackingConfig:
    utilization = read_target_utilization(s)
    disable_scale_in = s.bool("disableScaleIn", False)
    period = s.int("periodSeconds", 60)
    if period not in TARGET_TRACKING_PERIODS:
        raise s.fail("periodSeconds", period, "10, 30 or 60 (the periods target tracking accepts)")
    check_agent_period(s, "periodSeconds", period, agent)
    s.finish()
    return TargetTrackingConfig(utilization, disable_scale_in, period)


def _read_signal(s: Section) -> DemandSignalConfig:
    kind = s.str("kind", choices=SIGNAL_KINDS)
    own = {"sqs": ("queueName",), "alb": ("loadBalancer", "targetGroup")}
    for other, keys in own.items():
        for key in keys if other != kind else ():
            if s.has(key):
                raise s.fail(key, s.data[key], f"{key} only with kind: {other}")
    if kind == "sqs":
        queue = s.str("queueName", pattern=SQS_QUEUE_PATTERN,
                      describe="an SQS queue name: 1 to 80 letters, digits, hyphens or underscores (.fifo allowed)")
        return DemandSignalConfig(kind, queue, None, None)
    lb = s.str("loadBalancer", pattern=ALB_PATTERN,
               describe="the final portion of an Application Load Balancer ARN, app/<name>/<16 hex digits>")
    tg = s.str("targetGroup", pattern=TARGET_GROUP_PATTERN,
               describe="the final portion of a target group ARN, targetgroup/<name>/<16 hex digits>")
    return DemandSignalConfig(kind, None, lb, tg)


def _read_demand(s: Section | None, target: TargetTrackingConfig | None,
                 signal_key: str | None = None) -> DemandTargetConfig | None:
    if s is None:
        return None
    if signal_key is None:
        signal = _read_signal(s)
    else:
        signal_section = s.section(signal_key)
        signal = _read_signal(signal_section)
        signal_section.finish()
    per_instance = s.float("targetPerInstance", min=0, min_exclusive=True)
    disable_scale_in = s.bool("disableScaleIn", target.disable_scale_in if target is not None else False)
    s.finish()
    return DemandTargetConfig(signal, per_instance, disable_scale_in)


def _read_burst(s: Section | None, target: TargetTrackingConfig, agent: AgentConfig | None) -> BurstConfig | None:
    if s is None:
        return None
    period = s.int("periodSeconds", 10, min=10)
    if not is_alarm_period(period):
        raise s.fail("periodSeconds", period, "10, 20, 30 or a multiple of 60 (the periods CloudWatch alarms accept)")
    check_agent_period(s, "periodSeconds", period, agent)
    limit = max_evaluation_periods(period)
    evaluations = s.int("evaluationPeriods", 3, min=1, max=limit)
    steps = []
    for step in s.sections("steps", min_items=1):
        steps.append(BurstStepConfig(step.float("lowerBoundAboveTarget", min=0),
                                     step.int("adjustmentPercent", min=1, max=1000)))
        step.finish()
    for i in range(1, len(steps)):
        if steps[i].lower_bound_above_target <= steps[i - 1].lower_bound_above_target:
            raise s.fail(f"steps[{i}].lowerBoundAboveTarget", steps[i].lower_bound_above_target,
                         f"a bound above the previous step's ({steps[i - 1].lower_bound_above_target:g}): steps "
                         "run from the smallest overshoot to the largest")
    last = len(steps) - 1
    if target.target_gpu_utilization + steps[last].lower_bound_above_target >= 100:
        raise s.fail(f"steps[{last}].lowerBoundAboveTarget", steps[last].lower_bound_above_target,
                     f"a bound below {100 - target.target_gpu_utilization:g} (target {target.target_gpu_utilization:g}"
                     " + bound must stay under 100 % utilization, or the step can never fire)")
    s.finish()
    return BurstConfig(period, evaluations, tuple(steps))


def _read_scale_to_zero(s: Section | None, group: Any, demand: DemandTargetConfig | None,
                        own_maximum: bool = False) -> ScaleToZeroConfig | None:
    if s is None:
        return None
    if group.min_size != 0:
        raise ConfigError(s.path, dict(s.data), where=s.where, allowed=
                          f"scaleToZero only on a group with minSize 0: AWS keeps the desired capacity at or above "
                          f"minSize, so the idle policy could never reach zero (this group has minSize "
                          f"{group.min_size})")
    idle = s.int("idleMinutes", 15, min=1, max=1440)  # 60 s periods x evaluations <= one day
    idle_utilization = s.float("idleGpuUtilization", 5.0, min=0, max=100)
    warm = s.int("warmMinimum", 1, min=1, max=group.max_size)
    wake_section = s.optional_section("wake")
    if wake_section is not None:
        wake = _read_signal(wake_section)
        wake_section.finish()
    elif demand is not None:
        wake = demand.signal
    else:
        raise s.fail("wake", REQUIRED, "a wake signal (kind: sqs, queueName: ...), or a scaling.demand section whose "
                                   "signal wakes the group: GPU metrics are empty at zero instances")
    if wake.kind != "sqs":
        raise s.fail("wake.kind" if wake_section is not None else "wake", wake.kind,
                     "kind: sqs. A load balancer counts RequestCount only for requests it could route to a target, "
                     "so with zero instances it reports no demand and could never wake the group")
    per_instance = s.float("wakeMessagesPerInstance", None, min=0, min_exclusive=True)
    if per_instance is None and demand is not None and demand.signal == wake:
        # The demand target already says how many queued messages one instance should hold: wake to that.
        per_instance = demand.target_per_instance
    maximum = group.max_size
    if own_maximum:  # GpuScalingPoliciesArgs say it; the stack config takes the group's maxSize
        maximum = s.int("wakeMaximum", None, min=warm, max=MAX_WAKE_CAPACITY)
        if per_instance is not None and not s.has("wakeMaximum"):
            s.report("wakeMaximum", None, f"an integer >= {s.name('warmMinimum')} ({warm}), normally the group's max "
                                          "size: a wake sized to the backlog needs the most capacity it may set")
    s.finish()
    return ScaleToZeroConfig(idle, wake, warm, idle_utilization, per_instance, maximum)


# --- Policies that would fight -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    closed_low: bool = True
    closed_high: bool = True

    def contains(self, x: float) -> bool:
        above = self.low < x or (self.closed_low and x == self.low)
        below = x < self.high or (self.closed_high and x == self.high)
        return above and below

    def overlaps(self, other: Interval) -> bool:
        lo, hi = max(self.low, other.low), min(self.high, other.high)
        return lo < hi or (lo == hi and self.contains(lo) and other.contains(lo))

    def __str__(self) -> str:
        return f"{'[' if self.closed_low else '('}{self.low:g}, {self.high:g}{']' if self.closed_high else ')'}"


@dataclass(frozen=True)
class Trigger:
    """Where one policy moves capacity: while `metric` is inside `interval`, it scales in `direction`."""

    policy: str
    """The config key that set it, e.g. gpuscale:autoScalingGroups[0].scaling.burst.steps[0].lowerBoundAboveTarget."""
    value: Any
    """That key's value."""
    metric: str
    direction: int
    """+1 adds capacity, -1 removes it."""
    interval: Interval


def scaling_triggers(config: ScalingConfig, path: str = "scaling",
                     spell: Callable[[str], str] | None = None) -> list[Trigger]:
    """Every (metric, range, direction) the group's policies act on; the simulator reads the same list. Keys are
    `path` + the stack config's key, each part spelt by `spell` where given (a component's Args names)."""
    util, inf = "fleet GPU utilization (%)", float("inf")

    def at(key: str) -> str:
        spelt = ".".join(spell(part) for part in key.split(".")) if spell else key
        return f"{path}.{spelt}" if path else spelt
    target = config.target.target_gpu_utilization
    key = at("target.gpuUtilization")
    triggers = [Trigger(key, target, util, +1, Interval(target, 100, closed_low=False))]
    if not config.target.disable_scale_in:
        triggers.append(Trigger(key, target, util, -1, Interval(0, target, closed_high=False)))
    if config.burst is not None:
        lowest = config.burst.steps[0].lower_bound_above_target
        triggers.append(Trigger(at("burst.steps[0].lowerBoundAboveTarget"), lowest, util, +1,
                                Interval(target + lowest, 100)))
    if config.demand is not None:
        per_instance = config.demand.target_per_instance
        name = f"demand per instance ({_describe(config.demand.signal)})"
        dkey = at("demand.targetPerInstance")
        triggers.append(Trigger(dkey, per_instance, name, +1, Interval(per_instance, inf, closed_low=False)))
        if not config.demand.disable_scale_in:
            triggers.append(Trigger(dkey, per_instance, name, -1, Interval(0, per_instance, closed_high=False)))
    if config.scale_to_zero is not None:
        z = config.scale_to_zero
        queue = f"visible messages ({_describe(z.wake)})"
        triggers += [Trigger(at("scaleToZero.idleGpuUtilization"), z.idle_gpu_utilization, util, -1,
                             Interval(0, z.idle_gpu_utilization)),
                     Trigger(at("scaleToZero.idleMinutes"), z.idle_minutes, queue, -1, Interval(0, 0)),
                     Trigger(at("scaleToZero.wake"), z.wake.queue_name, queue, +1, Interval(1, inf))]
    return triggers


def check_no_fights(triggers: list[Trigger], where: str | None = None) -> None:
    """Refuse two policies that act on the same metric in opposite directions over a common range of values."""
    for i, a in enumerate(triggers):
        for b in triggers[i + 1:]:
            if a.metric == b.metric and a.direction != b.direction and a.policy != b.policy and \
                    a.interval.overlaps(b.interval):
                out, in_ = (a, b) if a.direction > 0 else (b, a)
                raise ConfigError(b.policy, b.value, f"policies that do not fight: {out.policy} adds capacity while "
                                                  f"{a.metric} is in {out.interval}, and {in_.policy} removes it "
                                                  f"while it is in {in_.interval}", where)


def _describe(signal: DemandSignalConfig) -> str:
    return f"queue {signal.queue_name}" if signal.kind == "sqs" else f"{signal.load_balancer}/{signal.target_group}"
