"""KEDA: a ScaledObject on a queue, its 0 <-> 1 decisions and the HPA it creates for 1 <-> N.

The rules follow KEDA v2.17: pkg/scaling/executor/scale_scaledobjects.go (RequestScale: activation from zero or the
idle count, the cooldown before going back to zero or idle, the minimum otherwise), pkg/scaling/executor/
scale_executor.go (cooldown 300 s, initial cooldown 0), apis/keda/v1alpha1/withtriggers_types.go (polling interval
30 s), scaledobject_types.go (the HPA's minReplicas at least 1, maxReplicas 100), controllers/keda/hpa.go (the HPA
gets `advanced.horizontalPodAutoscalerConfig.behavior`, none by default) and pkg/scalers/aws_sqs_queue_scaler.go
(queueLength 5 per replica as an AverageValue target, activationQueueLength 0, in-flight messages counted; active
while the length is strictly greater than the activation value).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .hpa import (AVERAGE_VALUE, EXTERNAL, SYNC_PERIOD, VALUE, Behavior, HorizontalController, MetricSpec,
                  listed_pods)

POLLING_INTERVAL = 30
COOLDOWN_PERIOD = 300
INITIAL_COOLDOWN_PERIOD = 0
HPA_MIN_REPLICAS = 1
HPA_MAX_REPLICAS = 100
SQS_QUEUE_LENGTH = 5
SQS_ACTIVATION_QUEUE_LENGTH = 0


@dataclass(frozen=True)
class ScaledObject:
    min_replica_count: int = 0
    max_replica_count: int | None = None
    """None: KEDA's default HPA maximum (100)."""
    idle_replica_count: int | None = None
    polling_interval: int = POLLING_INTERVAL
    cooldown_period: int = COOLDOWN_PERIOD
    initial_cooldown_period: int = INITIAL_COOLDOWN_PERIOD
    behavior: Behavior | None = None
    """advanced.horizontalPodAutoscalerConfig.behavior; None leaves the HPA without one (its legacy limits)."""

    @property
    def hpa_min_replicas(self) -> int:
        return self.min_replica_count if self.min_replica_count > 0 else HPA_MIN_REPLICAS

    @property
    def hpa_max_replicas(self) -> int:
        return HPA_MAX_REPLICAS if self.max_replica_count is None else self.max_replica_count


@dataclass(frozen=True)
class QueueTrigger:
    """An `aws-sqs-queue` trigger: the queue's visible and in-flight messages, read live from SQS (waiting, in
    service and retrying requests in the simulation)."""

    queue_length: float = SQS_QUEUE_LENGTH
    """Messages per replica (an AverageValue target)."""
    activation_queue_length: float = SQS_ACTIVATION_QUEUE_LENGTH

    @property
    def metric(self) -> MetricSpec:
        return MetricSpec(EXTERNAL, AVERAGE_VALUE, round(self.queue_length * 1000))

    def is_active(self, length: float) -> bool:
        return length > self.activation_queue_length

    def observe(self, t: int, sim: Any) -> None:
        """Nothing to keep: SQS answers with the live count."""

    def value(self, t: int, sim: Any) -> float | None:
        return sim.outstanding


class WindowedTrigger:
    """A trigger on a metric averaged over `period` seconds and seen `delay` seconds late (a CloudWatch or PromQL
    query over the agent's or the gateway's series); `observe` records each second's reading."""

    def __init__(self, metric: MetricSpec, activation: float, period: int, delay: int, before: float | None):
        """`before`: the reading of every second before the trace (the service idle at its floor)."""
        self.metric, self.activation, self.period, self.delay = metric, activation, max(1, period), delay
        self._lead = self.period + delay
        self._readings: list[float | None] = [before] * self._lead

    def reading(self, t: int, sim: Any) -> float | None:
        raise NotImplementedError

    def observe(self, t: int, sim: Any) -> None:
        self._readings.append(self.reading(t, sim))

    def value(self, t: int, sim: Any) -> float | None:
        end = self._lead + t - self.delay + 1
        window = [r for r in self._readings[end - self.period:end] if r is not None]
        return sum(window) / len(window) if window else None

    def is_active(self, value: float | None) -> bool:
        return value is not None and value > self.activation


class GpuUtilizationTrigger(WindowedTrigger):
    """The mean GPU utilisation (percent) over the service's pods that hold a GPU: ready pods report their share of
    busy slots, pods still loading their model an idle GPU; no pod, no datapoint. A `Value` target: the HPA proposes
    ceil(ready pods x mean / target), as for a mean (a per-pod `AverageValue` on a mean would not grow with load)."""

    def __init__(self, target: float, *, period: int, delay: int, activation: float = 0.0, idle_pods: int = 0):
        """`idle_pods`: pods serving before the trace (their GPUs read 0 %); none: no datapoint."""
        super().__init__(MetricSpec(EXTERNAL, VALUE, round(target * 1000)), activation, period, delay,
                         0.0 if idle_pods else None)

    def reading(self, t: int, sim: Any) -> float | None:
        ready, loading, _ = sim.fleet.pod_phases
        util = sim.util[t]
        if ready + loading == 0:
            return None
        return (util or 0.0) * ready / (ready + loading)


class RequestRateTrigger(WindowedTrigger):
    """Requests per second reaching the gateway (new and retried), averaged over the window: a Prometheus `rate()`
    of the gateway's request counter; an AverageValue target per replica."""

    def __init__(self, per_replica: float, *, period: int, delay: int = 0, activation: float = 0.0):
        super().__init__(MetricSpec(EXTERNAL, AVERAGE_VALUE, round(per_replica * 1000)), activation, period, delay,
                         0.0)

    def reading(self, t: int, sim: Any) -> float | None:
        return sim.received_now


class ScaleExecutor:
    """RequestScale for one ScaledObject (no pause, fallback or trigger errors)."""

    def __init__(self, so: ScaledObject, created: float = 0.0):
        self.so, self.created = so, created
        self.last_active: float | None = None

    def request_scale(self, now: float, current: int, active: bool) -> int | None:
        """The replica count to set after one poll, or None to leave the target to its HPA."""
        so, minimum = self.so, self.so.min_replica_count
        idle = so.idle_replica_count
        if active:
            self.last_active = now
            if (idle is not None and current < minimum) or current == 0:
                return minimum if minimum > 0 else 1
            return None
        if (idle is not None and current > idle) or (current > 0 and minimum == 0):
            cooled = (self.created + so.initial_cooldown_period < now) if self.last_active is None \
                else (self.last_active + so.cooldown_period < now)
            if cooled:
                return idle if idle is not None else minimum
            return None
        if current < minimum and idle is None:
            return minimum
        return None


def keda_hpa(so: ScaledObject, *triggers: Any) -> HorizontalController:
    """The HPA KEDA creates for the ScaledObject: one external metric per trigger, with the trigger's target."""
    return HorizontalController(so.hpa_min_replicas, so.hpa_max_replicas, tuple(t.metric for t in triggers),
                                behavior=so.behavior)


class KedaScaler:
    """KEDA on a `PodCluster`: every polling interval the operator asks each trigger whether it is active (0 <-> 1);
    every 15 s the HPA it created reads each trigger's metric through KEDA's metrics adapter, live, and takes the
    largest proposal (1 <-> N). The default trigger is the request queue (waiting plus in flight, as SQS counts
    visible and in-flight messages)."""

    def __init__(self, so: ScaledObject, trigger: Any = QueueTrigger(), *more: Any, hpa_sync: int = SYNC_PERIOD):
        self.so, self.triggers, self.hpa_sync = so, (trigger, *more), hpa_sync
        self.trigger = trigger
        self.executor = ScaleExecutor(so)
        self.hpa = keda_hpa(so, *self.triggers)

    def step(self, t: int, sim: Any) -> None:
        cluster = sim.fleet
        for trigger in self.triggers:
            trigger.observe(t, sim)
        if t % self.so.polling_interval == 0:
            active = any(trigger.is_active(trigger.value(t, sim)) for trigger in self.triggers)
            replicas = self.executor.request_scale(t, cluster.desired, active)
            if replicas is not None and replicas != cluster.desired:
                cluster.set_desired(t, replicas)
        if t % self.hpa_sync == 0:
            phases = cluster.pod_phases
            values = [trigger.value(t, sim) for trigger in self.triggers]
            readings = [None if v is None else (max(0, math.floor(v * 1000)),) for v in values]
            desired = self.hpa.sync(t, cluster.desired, sum(phases), listed_pods(*phases), readings)
            if desired != cluster.desired:
                cluster.set_desired(t, desired)
