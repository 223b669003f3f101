"""The HorizontalPodAutoscaler as kube-controller-manager decides, one sync at a time.

The rules follow Kubernetes v1.33, pkg/controller/podautoscaler: replica_calculator.go (the proposal of each metric:
how pods that are pending, unready or missing metrics count, the tolerance band), horizontal.go (several metrics,
stabilization, the scale-up limit without `behavior`, the behavior policies) and metrics/utilization.go (integer
averages). Defaults are the controller's flags (config/v1alpha1/defaults.go) and the API's defaulting of `behavior`
(pkg/apis/autoscaling/v2/defaults.go). Times are seconds on the simulation's clock; metric values are milli-units
as the metrics APIs carry them, so the integer arithmetic matches upstream's.

`HorizontalController` is one HPA's controller state; `HpaScaler` drives a `PodCluster` with it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# The behavior API's shapes, which the stack config shares.
from ..config.hpa_behavior import DISABLED, MIN, Behavior, ScalingRules

SYNC_PERIOD = 15
"""--horizontal-pod-autoscaler-sync-period (defaults.go: 15 s)."""
DOWNSCALE_STABILIZATION = 300
"""--horizontal-pod-autoscaler-downscale-stabilization (defaults.go: 5 min)."""
TOLERANCE = 0.1
"""--horizontal-pod-autoscaler-tolerance (defaults.go: 0.1), each direction unless the HPA sets its own."""
CPU_INITIALIZATION_PERIOD = 300
"""--horizontal-pod-autoscaler-cpu-initialization-period (defaults.go: 5 min)."""
INITIAL_READINESS_DELAY = 30
"""--horizontal-pod-autoscaler-initial-readiness-delay (defaults.go: 30 s)."""
SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4.0
"""Without `behavior`, one sync grows the target to at most max(2 x current, 4) (horizontal.go)."""

RUNNING, PENDING, FAILED = "Running", "Pending", "Failed"
RESOURCE, PODS, OBJECT, EXTERNAL = "Resource", "Pods", "Object", "External"
UTILIZATION, AVERAGE_VALUE, VALUE = "Utilization", "AverageValue", "Value"


class MetricError(ValueError):
    """A metric that yields no proposal this sync (no pods, no metrics, no ready pods)."""


# --- inputs -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pod:
    """What the replica calculator reads of one pod of the scale target."""

    name: str
    phase: str = RUNNING
    ready: bool = True
    start_time: float = 0.0
    ready_transition: float = 0.0
    """When the Ready condition last changed."""
    deleting: bool = False
    cpu_request: int = 1000
    """Milli-CPU requested (summed over containers); what `Utilization` targets of CPU divide by."""


@dataclass(frozen=True)
class PodMetric:
    value: int
    """Milli-units."""
    timestamp: float = 0.0
    window: float = 60.0


@dataclass(frozen=True)
class MetricSpec:
    source: str
    """``Resource`` (cpu), ``Pods``, ``Object`` or ``External``."""
    target_type: str
    """``Utilization`` (percent of the request, Resource only), ``AverageValue`` or ``Value``."""
    target: int
    """Percent for Utilization, milli-units otherwise."""


@dataclass(frozen=True)
class Tolerances:
    scale_down: float = TOLERANCE
    scale_up: float = TOLERANCE

    def within(self, ratio: float) -> bool:
        # Inclusive at both edges: a ratio exactly at 1 - down or 1 + up is no change.
        return 1.0 - self.scale_down <= ratio <= 1.0 + self.scale_up


# --- the replica calculator -----------------------------------------------------------------------------------------
@dataclass
class _Grouped:
    ready: int = 0
    unready: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Readiness:
    """How long CPU samples of starting pods are distrusted (the controller's flags)."""

    cpu_initialization_period: float = CPU_INITIALIZATION_PERIOD
    initial_readiness_delay: float = INITIAL_READINESS_DELAY


def _group_pods(pods: Sequence[Pod], metrics: Mapping[str, PodMetric], cpu: bool, now: float,
                readiness: Readiness) -> _Grouped:
    g = _Grouped()
    for pod in pods:
        if pod.deleting or pod.phase == FAILED:
            g.ignored.append(pod.name)
        elif pod.phase == PENDING:
            g.unready.append(pod.name)
        elif pod.name not in metrics:
            g.missing.append(pod.name)
        elif cpu and _cpu_unready(pod, metrics[pod.name], now, readiness):
            g.unready.append(pod.name)
        else:
            g.ready += 1
    return g


def _cpu_unready(pod: Pod, metric: PodMetric, now: float, r: Readiness) -> bool:
    """CPU samples of starting pods are not trusted: inside the initialization period a pod counts only when ready
    and sampled a full window after it became ready; later, only a pod that never became ready is left out."""
    if pod.start_time + r.cpu_initialization_period > now:
        return not pod.ready or metric.timestamp < pod.ready_transition + metric.window
    return not pod.ready and pod.start_time + r.initial_readiness_delay > pod.ready_transition


def _usage_ratio(values: Mapping[str, int], target: int, requests: Mapping[str, int] | None) -> tuple[float, int]:
    """(ratio, current) with upstream's integer averages: utilization in whole percent of the requests summed over
    the pods with metrics, or the average value in milli-units."""
    if requests is not None:
        matched = [name for name in values if name in requests]
        requested = sum(requests[name] for name in matched)
        if requested == 0:
            raise MetricError("no metrics returned matched known pods")
        utilization = sum(values[name] for name in matched) * 100 // requested
        return utilization / target, utilization
    current = sum(values.values()) // len(values)
    return current / target, current


def pod_metric_replicas(current: int, spec: MetricSpec, pods: Sequence[Pod], metrics: Mapping[str, PodMetric],
                        tolerances: Tolerances = Tolerances(), now: float = 0.0,
                        readiness: Readiness = Readiness()) -> int:
    """A Resource (cpu) or Pods metric's proposal (GetResourceReplicas / calcPlainMetricReplicas)."""
    if not pods:
        raise MetricError("no pods returned by selector while calculating replica count")
    cpu = spec.source == RESOURCE
    g = _group_pods(pods, metrics, cpu, now, readiness)
    by_name = {p.name: p for p in pods}
    # Metrics of pods the selector no longer lists still count, as upstream keeps them (they only lack a request).
    values = {n: m.value for n, m in metrics.items() if n not in g.ignored and n not in g.unready}
    if not values:
        raise MetricError("did not receive metrics for targeted pods (pods might be unready)")
    requests = {p.name: p.cpu_request for p in pods} if spec.target_type == UTILIZATION else None
    ratio, _ = _usage_ratio(values, spec.target, requests)
    scale_up_with_unready = bool(g.unready) and ratio > 1.0
    if not scale_up_with_unready and not g.missing:
        return current if tolerances.within(ratio) else math.ceil(ratio * g.ready)
    if g.missing:
        if ratio < 1.0:
            # On a scale-down a pod without a metric counts as using its request fully (or the target, if higher).
            for name in g.missing:
                values[name] = (by_name[name].cpu_request * max(100, spec.target) // 100 if requests is not None
                                else spec.target)
        elif ratio > 1.0:
            for name in g.missing:
                values[name] = 0
    if scale_up_with_unready:
        for name in g.unready:
            values[name] = 0
    new_ratio, _ = _usage_ratio(values, spec.target, requests)
    if tolerances.within(new_ratio) or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return current  # too small a change, or the filled-in pods would reverse the direction
    proposal = math.ceil(new_ratio * len(values))
    if (new_ratio < 1.0 and proposal > current) or (new_ratio > 1.0 and proposal < current):
        return current
    return proposal


def _ready_running(pods: Sequence[Pod]) -> int:
    if not pods:
        raise MetricError("no pods returned by selector while calculating replica count")
    return sum(1 for p in pods if p.phase == RUNNING and p.ready)


def object_metric_replicas(spec_replicas: int, status_replicas: int, spec: MetricSpec, values: Sequence[int],
                           pods: Sequence[Pod], tolerances: Tolerances = Tolerances()) -> int:
    """An Object or External metric's proposal. `Value`: the ratio against the target times the ready pods (from
    zero, ceil of the ratio); `AverageValue`: the total over the target per pod (GetObjectPerPodMetricReplicas,
    GetExternalPerPodMetricReplicas). An Object metric is one value, an External one the sum of its series."""
    if not values:
        raise MetricError("no metric values")
    usage = sum(values)
    if spec.target_type == AVERAGE_VALUE:
        per_pod = spec.target * status_replicas
        # No pods: upstream's float division gives no ratio within the band, so the total alone decides.
        ratio = usage / per_pod if per_pod else math.nan
        return status_replicas if tolerances.within(ratio) else math.ceil(usage / spec.target)
    ratio = usage / spec.target
    if spec_replicas == 0:
        return math.ceil(ratio)
    if tolerances.within(ratio):
        return spec_replicas
    return math.ceil(ratio * _ready_running(pods))


# --- the controller -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Normalized:
    replicas: int
    condition: str
    """Upstream's ScalingLimited reason: DesiredWithinRange, ScaleUpLimit, ScaleDownLimit, TooManyReplicas,
    TooFewReplicas."""


class HorizontalController:
    """One HPA: its recommendations and scale events over time, and the decision of each sync."""

    def __init__(self, min_replicas: int, max_replicas: int, metrics: Sequence[MetricSpec], *,
                 behavior: Behavior | None = None, tolerances: Tolerances = Tolerances(),
                 downscale_window: int = DOWNSCALE_STABILIZATION, readiness: Readiness = Readiness()):
        self.min, self.max, self.metrics = min_replicas, max_replicas, tuple(metrics)
        self.behavior, self.tolerances, self.downscale_window = behavior, tolerances, downscale_window
        self.readiness = readiness
        self.up, self.down = behavior.resolved(downscale_window) if behavior is not None else (None, None)
        self._recommendations: list[list[float]] = []  # [timestamp, recommendation]
        self._up_events: list[list[float]] = []  # [timestamp, replicas added or removed]
        self._down_events: list[list[float]] = []

    # The history a sync reads; tests seed it the way upstream's tests do.
    def record_recommendation(self, at: float, replicas: int) -> None:
        self._recommendations.append([at, replicas])

    def record_scale(self, at: float, previous: int, new: int) -> None:
        """A rescale the controller made (storeScaleEvent): kept only with `behavior`; the new event takes the slot
        of one older than its direction's longest policy period, if any, else it is appended."""
        if self.behavior is None:
            return
        events, rules = (self._up_events, self.up) if new > previous else (self._down_events, self.down)
        longest = max((p.period_seconds for p in rules.policies), default=0)
        outdated = [i for i, (when, _) in enumerate(events) if when < at - longest]
        event = [at, abs(new - previous)]
        if outdated:
            events[outdated[-1]] = event
        else:
            events.append(event)

    def proposal(self, now: float, spec_replicas: int, status_replicas: int, pods: Sequence[Pod],
                 readings: Sequence[Any]) -> int | None:
        """computeReplicasForMetrics: the largest proposal over the metrics; None (no scaling this sync) when every
        metric failed, or some failed and the rest would scale down."""
        replicas, invalid = 0, 0
        for spec, reading in zip(self.metrics, readings):
            try:
                if reading is None:
                    raise MetricError(f"no {spec.source} metric")
                if spec.source in (RESOURCE, PODS):
                    p = pod_metric_replicas(spec_replicas, spec, pods, reading, self.tolerances, now, self.readiness)
                else:
                    p = object_metric_replicas(spec_replicas, status_replicas, spec, reading, pods, self.tolerances)
            except MetricError:
                invalid += 1
                continue
            replicas = max(replicas, p)
        if invalid >= len(self.metrics) or (invalid and replicas < spec_replicas):
            return None
        return replicas

    def stabilize(self, now: float, current: int, desired: int) -> int:
        """Without behavior: the highest recommendation of the downscale window; with it, the current count brought
        within [lowest of the scale-up window, highest of the scale-down window]. The new recommendation replaces one
        that has left every window, or is appended."""
        recs = self._recommendations
        if self.behavior is None:
            cutoff = now - self.downscale_window
            result = max([desired] + [r for at, r in recs if at >= cutoff])
            old = [i for i, (at, _) in enumerate(recs) if at < cutoff]
        else:
            up_cut, down_cut = now - self.up.stabilization_window_seconds, \
                now - self.down.stabilization_window_seconds
            lowest = min([desired] + [r for at, r in recs if at > up_cut])
            highest = max([desired] + [r for at, r in recs if at > down_cut])
            result = min(max(current, lowest), highest)
            old = [i for i, (at, _) in enumerate(recs) if at < up_cut and at < down_cut]
        if old:
            recs[old[-1]] = [now, desired]
        else:
            recs.append([now, desired])
        return result

    def limit_rate(self, now: float, current: int, desired: int) -> Normalized:
        """The bounds on this sync's change: min/max replicas, and max(2 x current, 4) without behavior, or the
        behavior policies counted from the replica count at the start of each policy's period."""
        if self.behavior is None:
            up_limit = int(max(SCALE_UP_LIMIT_FACTOR * current, SCALE_UP_LIMIT_MINIMUM))
            highest, reason = (up_limit, "ScaleUpLimit") if self.max > up_limit else (self.max, "TooManyReplicas")
            if desired < self.min:
                return Normalized(self.min, "TooFewReplicas")
            if desired > highest:
                return Normalized(highest, reason)
            return Normalized(desired, "DesiredWithinRange")
        if desired > current:
            # Never below current: events from a busier policy period must not shrink the target.
            limit = max(self._policy_limit(now, current, self.up, +1), current)
            highest, reason = (limit, "ScaleUpLimit") if self.max > limit else (self.max, "TooManyReplicas")
            if desired > highest:
                return Normalized(highest, reason)
        elif desired < current:
            limit = min(self._policy_limit(now, current, self.down, -1), current)
            lowest, reason = (limit, "ScaleDownLimit") if self.min < limit else (self.min, "TooFewReplicas")
            if desired < lowest:
                return Normalized(lowest, reason)
        return Normalized(desired, "DesiredWithinRange")

    def _policy_limit(self, now: float, current: int, rules: ScalingRules, direction: int) -> int:
        if rules.select_policy == DISABLED:
            return current
        proposals = []
        for p in rules.policies:
            # Changes in both directions within the period: the count the period started from.
            start = current - self._changed(now, p.period_seconds, self._up_events) \
                + self._changed(now, p.period_seconds, self._down_events)
            if p.kind == "Pods":
                proposals.append(start + direction * p.value)
            elif direction > 0:
                proposals.append(math.ceil(start * (1 + p.value / 100)))
            else:
                proposals.append(int(start * (1 - p.value / 100)))
        # "Max" picks the policy allowing the largest change: the highest limit up, the lowest down.
        largest_change = rules.select_policy != MIN
        return (max if (direction > 0) == largest_change else min)(proposals)

    @staticmethod
    def _changed(now: float, period: int, events: list[list[float]]) -> int:
        return sum(n for at, n in events if at > now - period)

    def sync(self, now: float, spec_replicas: int, status_replicas: int, pods: Sequence[Pod],
             readings: Sequence[Any]) -> int:
        """One reconcile: the replica count the scale target gets (its current count when nothing changes)."""
        current = spec_replicas
        if current == 0 and self.min != 0:
            return 0  # autoscaling is disabled for a target at zero (what KEDA relies on)
        if current > self.max:
            desired = self.max
        elif current < self.min:
            desired = self.min
        else:
            proposal = self.proposal(now, spec_replicas, status_replicas, pods, readings)
            if proposal is None:
                return current
            desired = self.stabilize(now, current, proposal)
            desired = self.limit_rate(now, current, desired).replicas
        if desired != current:
            self.record_scale(now, current, desired)
        return desired


# --- in the simulation ----------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4096)
def listed_pods(ready: int, loading: int, pending: int) -> tuple[Pod, ...]:
    """A scale target's pods as the controller lists them: ready ones, Running ones still loading (not ready), and
    Pending ones (unscheduled or pulling their image)."""
    return tuple([Pod(f"r{i}") for i in range(ready)] + [Pod(f"l{i}", ready=False) for i in range(loading)]
                 + [Pod(f"p{i}", phase=PENDING, ready=False) for i in range(pending)])


class HpaScaler:
    """An HPA on the pods of a `PodCluster`: every sync it lists the pods (pending ones in phase Pending, loading ones
    Running but not ready, with their GPU's idle reading) and reads their GPU utilisation as the agent published it
    `metric_delay` seconds ago."""

    def __init__(self, controller: HorizontalController, *, metric_delay: int = 0, sync_period: int = SYNC_PERIOD):
        self.hpa, self.delay, self.period = controller, metric_delay, sync_period

    @staticmethod
    def pods(ready: int, loading: int, pending: int) -> tuple[Pod, ...]:
        return listed_pods(ready, loading, pending)

    def readings(self, t: int, sim: Any, pods: tuple[Pod, ...]) -> list[Any]:
        util = sim.util[t - self.delay] if t >= self.delay else None
        if util is None:
            return [None] * len(self.hpa.metrics)
        # Quantity.MilliValue rounds up; the epsilon keeps float noise from adding a milli-unit.
        busy, idle = PodMetric(math.ceil(util * 1000 - 1e-6), t), PodMetric(0, t)
        reading = {p.name: busy if p.ready else idle for p in pods if p.phase == RUNNING}
        return [reading] * len(self.hpa.metrics)

    def step(self, t: int, sim: Any) -> None:
        if t % self.period:
            return
        cluster = sim.fleet
        ready, loading, pending = cluster.pod_phases
        pods = self.pods(ready, loading, pending)
        desired = self.hpa.sync(t, cluster.desired, ready + loading + pending, pods, self.readings(t, sim, pods))
        if desired != cluster.desired:
            cluster.set_desired(t, desired)
