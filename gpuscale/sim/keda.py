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

from .hpa import AVERAGE_VALUE, EXTERNAL, SYNC_PERIOD, Behavior, HorizontalController, MetricSpec

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
    """An `aws-sqs-queue` trigger."""

    queue_length: float = SQS_QUEUE_LENGTH
    """Messages per replica (an AverageValue target)."""
    activation_queue_length: float = SQS_ACTIVATION_QUEUE_LENGTH

    def is_active(self, length: float) -> bool:
        return length > self.activation_queue_length


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


def keda_hpa(so: ScaledObject, trigger: QueueTrigger) -> HorizontalController:
    """The HPA KEDA creates for the ScaledObject: the trigger's external metric with an AverageValue target."""
    metric = MetricSpec(EXTERNAL, AVERAGE_VALUE, round(trigger.queue_length * 1000))
    return HorizontalController(so.hpa_min_replicas, so.hpa_max_replicas, (metric,), behavior=so.behavior)


class KedaScaler:
    """KEDA on a `PodCluster`, scaling on the request queue (waiting plus in flight, as SQS counts visible and
    in-flight messages): the operator polls for activity every polling interval; the HPA syncs every 15 s on the
    queue length the metrics adapter reads live."""

    def __init__(self, so: ScaledObject, trigger: QueueTrigger = QueueTrigger(), *, hpa_sync: int = SYNC_PERIOD):
        self.so, self.trigger, self.hpa_sync = so, trigger, hpa_sync
        self.executor = ScaleExecutor(so)
        self.hpa = keda_hpa(so, trigger)

    def step(self, t: int, sim: Any) -> None:
        cluster = sim.fleet
        length = sim.outstanding
        if t % self.so.polling_interval == 0:
            replicas = self.executor.request_scale(t, cluster.desired, self.trigger.is_active(length))
            if replicas is not None and replicas != cluster.desired:
                cluster.set_desired(t, replicas)
        if t % self.hpa_sync == 0:
            ready, loading, pending = cluster.pod_phases
            reading = (max(0, math.floor(length * 1000)),)
            desired = self.hpa.sync(t, cluster.desired, ready + loading + pending, (), (reading,))
            if desired != cluster.desired:
                cluster.set_desired(t, desired)
