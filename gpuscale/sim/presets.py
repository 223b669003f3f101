"""Named ways to scale one group, each with its source, to run side by side on the same hardware and workload.

Every preset serves the group's workload on the group's instances (same cold start, same price, same minimum and
maximum size), so the comparison is about scaling decisions only: a group's minSize is a choice of how much latency
to buy, and every preset keeps it (hosted platforms and Knative call it min replicas; their scale to zero applies
only where it is 0). Sources (see docs/simulate.md):
- static: a fixed fleet, the "no autoscaling" scenario of the cost article (25 pods at all times).
- hf-like: a hosted endpoint platform: scale-up decisions every 3 minutes and scale-down every 5 on accelerator
  utilisation, scale to zero after 15 minutes without requests, 502 while a replica starts from zero.
- coreweave-kpa: Knative KPA with the values a GPU cloud publishes for its inference service (at Knative's 2 s tick:
  the 15 s its table names is not a Knative setting).
- hpa-example: the behavior of the HPA manifest in the LLM autoscaling article (75% GPU utilisation, up by
  max(50%, 2 pods) per 30 s, down 1 pod per 60 s after 300 s), with Kubernetes' default minReplicas of 1 (the
  article's manifest keeps 2, which would hold two GPUs all day), or the group's floor where that is higher.
- keda-queue: KEDA's defaults on the request queue (an SQS trigger, in-flight messages counted): one replica per
  `concurrencyPerReplica` messages, activation above 0 messages, polling every 30 s, back to zero after a 300 s
  cooldown, the HPA it creates without behavior.
- stack: the group's own scaling: on an Auto Scaling group its `scaling:` section as EC2 Auto Scaling runs it; on an
  EKS node group the stack's cluster-autoscaler settings, with one pod per replica of pending work (the pod-level
  autoscaler of node-group services is not configured yet).
- ideal: instant, perfect decisions with the same cold start; a bound, not a policy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config.pod_autoscalers import PRESETS as SERVICE_PRESETS
from ..config.groups import NodeGroupConfig
from .cluster_autoscaler import ca_settings
from .ec2 import FixedScaler, IdealScaler, StackScaler, agent_delay, instance_fleet
from .engine import Engine, Scaler
from .fleet import InstanceFleet, busy_units
from .hpa import AVERAGE_VALUE, PODS, HorizontalController, HpaScaler, MetricSpec
from .keda import KedaScaler, QueueTrigger, ScaledObject
from .knative import KpaScaler, kpa_config
from .pods import PodCluster
from .service import ServiceModel

HF_UP_EVERY = 180
HF_DOWN_EVERY = 300
HF_IDLE_TO_ZERO = 900
HF_UTILIZATION_THRESHOLD = 80.0
"""Our assumption: the platform's page lists per-accelerator criteria that our copy does not include."""

# The presets a model service can deploy (gpuscale/config/pod_autoscalers.py PRESETS) are the one definition: a group runs
# the same values. The GPU cloud's table also names a 15 s tick, which Knative cannot be configured with (its
# multiscaler ticks every 2 s), so the preset runs Knative's.
_COREWEAVE = SERVICE_PRESETS["coreweave-kpa"]
COREWEAVE_KPA = kpa_config(_COREWEAVE.scaling, _COREWEAVE.knative_config)
_HPA_EXAMPLE = SERVICE_PRESETS["hpa-example"]
HPA_EXAMPLE_BEHAVIOR = _HPA_EXAMPLE.scaling.behavior
HPA_EXAMPLE_TARGET = _HPA_EXAMPLE.scaling.target
HPA_EXAMPLE_MIN_REPLICAS = _HPA_EXAMPLE.min_replicas
_KEDA_QUEUE = SERVICE_PRESETS["keda-queue"].scaling


class HostedScaler:
    """A hosted endpoint platform: periodic decisions on mean utilisation, its minimum replicas after idle (zero
    unless the group keeps a floor), wake on a request."""

    def __init__(self, replicas_per_instance: int, min_replicas: int = 0):
        self.per_instance, self.min = replicas_per_instance, min_replicas
        self._util_sum = [0.0]
        self._util_n = [0]
        self._last_request = -HF_IDLE_TO_ZERO

    def _mean(self, t: int, window: int) -> float | None:
        lo = max(0, t + 1 - window)
        n = self._util_n[t + 1] - self._util_n[lo]
        # A floor was up and idle before the trace began: those seconds count as 0 % in the window's mean (without
        # them the first decision, at second 0, would read the burst's first second as the whole window).
        before = window - (t + 1) if self.min and t + 1 < window else 0
        return (self._util_sum[t + 1] - self._util_sum[lo]) / (n + before) if n + before else None

    def step(self, t: int, sim: Engine) -> None:
        fleet: InstanceFleet = sim.fleet
        util = sim.util[t]
        self._util_sum.append(self._util_sum[-1] + (util or 0.0))
        self._util_n.append(self._util_n[-1] + (util is not None))
        if sim.received_now > 0 or sim.outstanding > 0:
            self._last_request = t  # idle means no request received and none being processed
        replicas = fleet.desired * self.per_instance
        wanted = replicas
        if replicas == 0 and sim.received_now > 0:
            wanted = 1  # a request to an endpoint at zero starts one replica
        elif replicas > self.min and t - self._last_request >= HF_IDLE_TO_ZERO:
            wanted = self.min
        elif replicas and t % HF_UP_EVERY == 0 and (mean := self._mean(t, HF_UP_EVERY)) is not None \
                and mean > HF_UTILIZATION_THRESHOLD:
            wanted = math.ceil(replicas * mean / HF_UTILIZATION_THRESHOLD)
        elif replicas > 1 and t % HF_DOWN_EVERY == 0 and (mean := self._mean(t, HF_DOWN_EVERY)) is not None \
                and mean < HF_UTILIZATION_THRESHOLD:
            wanted = max(1, self.min, math.ceil(replicas * mean / HF_UTILIZATION_THRESHOLD))
        if wanted != replicas:
            fleet.set_desired(t, math.ceil(wanted / self.per_instance))


@dataclass(frozen=True)
class Setup:
    fleet: InstanceFleet | PodCluster
    scaler: Scaler
    at_zero_capacity: str | None
    """Overrides the workload's front end where the preset's platform documents its own; None keeps it."""


@dataclass(frozen=True)
class StackEnv:
    """What every group of a stack shares: the agent's delivery of GPU metrics and the cluster-autoscaler's
    settings (gpuscale.config.kubernetes.ClusterAutoscalerConfig)."""

    agent: Any
    cluster_autoscaler: Any


@dataclass(frozen=True)
class Preset:
    name: str
    source: str
    build: Callable[[ServiceModel, Any, StackEnv, int | None, bool], Setup]
    """(service, group, stack environment, static replicas, start at zero) -> the fleet and its scaler."""


def _static(svc: ServiceModel, group: Any, env: StackEnv, replicas: int | None, at_zero: bool) -> Setup:
    # A fixed fleet is provisioned ahead of demand by definition: it never starts at zero.
    count = group.max_size if replicas is None else math.ceil(replicas / svc.replicas_per_instance)
    fleet = InstanceFleet(svc, count, count, count)
    return Setup(fleet, FixedScaler(), None)


def _floor_replicas(svc: ServiceModel, group: Any) -> int:
    """The group's minSize in replicas: every preset keeps it, so presets differ in scaling decisions only."""
    return group.min_size * svc.replicas_per_instance


def _hosted(svc: ServiceModel, group: Any, env: StackEnv, _: int | None, at_zero: bool) -> Setup:
    fleet = InstanceFleet(svc, group.min_size, group.max_size, group.min_size)
    return Setup(fleet, HostedScaler(svc.replicas_per_instance, _floor_replicas(svc, group)), "refuse")


def _pods(svc: ServiceModel, group: Any, env: StackEnv, min_pods: int, at_zero: bool) -> PodCluster:
    """The group's GPUs as a node group the stack's cluster-autoscaler sizes (with the group's own overrides where
    it is a node group)."""
    max_pods = group.max_size * svc.replicas_per_instance
    min_pods = min(max(min_pods, _floor_replicas(svc, group)), max_pods)
    settings = ca_settings(env.cluster_autoscaler, getattr(group, "autoscaler", None))
    # The group's floor is up before the trace begins; only a preset's own minimum above it starts from zero.
    return PodCluster(svc, group.min_size, group.max_size, min_pods, max_pods, settings,
                      start_at_zero=at_zero and not group.min_size)


def _coreweave(svc: ServiceModel, group: Any, env: StackEnv, _: int | None, at_zero: bool) -> Setup:
    cluster = _pods(svc, group, env, 0, at_zero)
    # Knative's activator buffers requests while a revision is at zero: they queue, they are not refused.
    return Setup(cluster, KpaScaler(svc.concurrency, cluster.min_pods, cluster.max_pods, COREWEAVE_KPA), "queue")


def _hpa(svc: ServiceModel, group: Any, env: StackEnv, _: int | None, at_zero: bool) -> Setup:
    cluster = _pods(svc, group, env, HPA_EXAMPLE_MIN_REPLICAS, at_zero)
    # A Pods metric: each pod's GPU utilisation (percent, as milli-units) averaged against the target.
    hpa = HorizontalController(cluster.min_pods, cluster.max_pods,
                               (MetricSpec(PODS, AVERAGE_VALUE, round(HPA_EXAMPLE_TARGET * 1000)),),
                               behavior=HPA_EXAMPLE_BEHAVIOR)
    return Setup(cluster, HpaScaler(hpa, metric_delay=agent_delay(env.agent)), None)


def _keda(svc: ServiceModel, group: Any, env: StackEnv, _: int | None, at_zero: bool) -> Setup:
    cluster = _pods(svc, group, env, 0, at_zero)
    so = ScaledObject(min_replica_count=cluster.min_pods, max_replica_count=cluster.max_pods,
                      polling_interval=_KEDA_QUEUE.polling_interval_seconds,
                      cooldown_period=_KEDA_QUEUE.cooldown_period_seconds)
    return Setup(cluster, KedaScaler(so, QueueTrigger(queue_length=svc.concurrency)), "queue")


class PendingPodsScaler:
    """A node group's own setup until its services get a pod autoscaler: one pod per replica of outstanding work
    (requests waiting or in flight over the replica's concurrency), so cluster-autoscaler alone decides the nodes."""

    def step(self, t: int, sim: Engine) -> None:
        cluster: PodCluster = sim.fleet
        wanted = busy_units(sim.outstanding, sim.svc.concurrency)
        if wanted != cluster.desired:
            cluster.set_desired(t, wanted)


def _stack(svc: ServiceModel, group: Any, env: StackEnv, _: int | None, at_zero: bool) -> Setup:
    if isinstance(group, NodeGroupConfig):
        return Setup(_pods(svc, group, env, 0, at_zero), PendingPodsScaler(), None)
    fleet = instance_fleet(svc, group, scaling=group.scaling)
    scaler = FixedScaler() if group.scaling is None else StackScaler(group, group.scaling, env.agent)
    return Setup(fleet, scaler, None)


def _ideal(svc: ServiceModel, group: Any, env: StackEnv, _: int | None, at_zero: bool) -> Setup:
    return Setup(instance_fleet(svc, group, ideal=True), IdealScaler(), None)


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("static", "fixed fleet at the group's maxSize (or --static-replicas); cost article, scenario 1", _static),
    Preset("hf-like", "hosted endpoints: up every 3 min, down every 5, zero after 15 min idle, 502 at zero",
           _hosted),
    Preset("coreweave-kpa", _COREWEAVE.source + "; cluster-autoscaler adds nodes", _coreweave),
    Preset("hpa-example", _HPA_EXAMPLE.source + "; cluster-autoscaler adds nodes", _hpa),
    Preset("keda-queue", "KEDA on the request queue: 1 pod per concurrency's worth of messages, poll 30 s, zero "
                         "after 300 s cooldown; cluster-autoscaler adds nodes", _keda),
    Preset("stack", "the group's own scaling: section on EC2 Auto Scaling; on a node group the stack's "
                    "cluster-autoscaler, one pod per replica of pending work", _stack),
    Preset("ideal", "instant, perfect decisions, same cold start: the bound", _ideal),
)}
