"""Knative Serving's pod autoscaler (KPA) as it decides, tick by tick.

The rules follow Knative Serving v1.18: pkg/autoscaler/scaling/autoscaler.go (the decider: stable and panic
proposals, rate bounds, panic mode, scale-down delay, activation scale, excess burst capacity),
pkg/reconciler/autoscaling/kpa/scaler.go and kpa.go (min/max and initial scale, the Active condition, scale to zero
after the stable window and the grace period, the activator in the path), resources/decider.go (the decider's
target), multiscaler.go (the 2 s tick). Defaults are config-autoscaler's (pkg/autoscaler/config/config.go,
defaultConfig) and config-deployment's progress deadline (pkg/deployment/config.go, 600 s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..config.serving import KnativeAutoscalerConfig

TICK = 2
"""multiscaler.go tickInterval."""
TARGET_MIN = 0.01
"""autoscaling.TargetMin: the smallest per-pod target the decider uses."""
PROGRESS_DEADLINE = 600
ACTIVATION_TIMEOUT_BUFFER = 30
"""scaler.go: a revision stuck activating longer than the progress deadline plus this goes back to zero."""


_UPSTREAM = KnativeAutoscalerConfig()
"""config-autoscaler's defaults, as the stack config holds them."""


@dataclass(frozen=True)
class KpaConfig:
    """config-autoscaler with a revision's annotations applied; upstream's defaults (config.go defaultConfig)."""

    target_utilization: float = _UPSTREAM.target_utilization_percentage / 100
    """container-concurrency-target-percentage 70 %."""
    container_concurrency_target_default: float = 100
    target_burst_capacity: float = _UPSTREAM.target_burst_capacity
    """-1: the activator always stays in the path; 0: only at zero."""
    panic_window_percentage: float = _UPSTREAM.panic_window_percentage
    panic_threshold_percentage: float = _UPSTREAM.panic_threshold_percentage
    max_scale_up_rate: float = _UPSTREAM.max_scale_up_rate
    max_scale_down_rate: float = _UPSTREAM.max_scale_down_rate
    stable_window: int = _UPSTREAM.stable_window_seconds
    scale_to_zero_grace_period: int = _UPSTREAM.scale_to_zero_grace_period_seconds
    scale_to_zero_pod_retention_period: int = 0
    scale_down_delay: int = 0
    initial_scale: int = 1
    activation_scale: int = 1
    enable_scale_to_zero: bool = _UPSTREAM.enable_scale_to_zero
    tick: int = TICK
    progress_deadline: int = PROGRESS_DEADLINE
    """The revision's progress deadline (config-deployment, or its `serving.knative.dev/progress-deadline`)."""


RPS_TARGET_DEFAULT = 200.0
"""config-autoscaler requests-per-second-target-default."""
RPS_TARGET_UTILIZATION = 0.7
"""The target utilisation of metrics other than concurrency: not configurable cluster-wide (autoscalerconfig.go
TargetUtilization); a revision's target-utilization-percentage overrides it."""


def kpa_target(kpa: Any, knative: Any, concurrency: int) -> tuple[float, float]:
    """(target, total) per pod as Knative resolves them (resources/target.go ResolveMetricTarget): concurrency aims
    at containerConcurrency (or the annotation's target, never above it) times the target utilisation; rps at the
    annotation's target (or the default) times it."""
    if kpa.metric == "rps":
        total = kpa.target if kpa.target is not None else RPS_TARGET_DEFAULT
        utilization = RPS_TARGET_UTILIZATION
    else:
        total = float(concurrency) if kpa.target is None else min(kpa.target, float(concurrency))
        utilization = knative.target_utilization_percentage / 100
    if kpa.target_utilization_percentage is not None:
        utilization = kpa.target_utilization_percentage / 100
    return max(TARGET_MIN, total * utilization), total


def kpa_config(kpa: Any, knative: Any, progress_deadline: int = PROGRESS_DEADLINE) -> KpaConfig:
    """The revision's effective autoscaler settings: its annotations (gpuscale.config.pod_autoscalers.KpaScaling) over the
    cluster-wide config-autoscaler (KnativeAutoscalerConfig)."""
    def pick(value: Any, default: Any) -> Any:
        return default if value is None else value
    return KpaConfig(
        target_utilization=pick(kpa.target_utilization_percentage, knative.target_utilization_percentage) / 100,
        target_burst_capacity=knative.target_burst_capacity,
        panic_window_percentage=pick(kpa.panic_window_percentage, knative.panic_window_percentage),
        panic_threshold_percentage=pick(kpa.panic_threshold_percentage, knative.panic_threshold_percentage),
        max_scale_up_rate=knative.max_scale_up_rate, max_scale_down_rate=knative.max_scale_down_rate,
        stable_window=pick(kpa.window_seconds, knative.stable_window_seconds),
        scale_to_zero_grace_period=knative.scale_to_zero_grace_period_seconds,
        scale_to_zero_pod_retention_period=pick(kpa.scale_to_zero_retention_seconds, 0),
        scale_down_delay=pick(kpa.scale_down_delay_seconds, 0), initial_scale=pick(kpa.initial_scale, 1),
        activation_scale=pick(kpa.activation_scale, 1), enable_scale_to_zero=knative.enable_scale_to_zero,
        progress_deadline=progress_deadline)


@dataclass(frozen=True)
class DeciderSpec:
    target_value: float
    """Concurrency per pod the autoscaler aims at: container concurrency x target utilisation."""
    total_value: float
    """Concurrency one pod can take (its container concurrency)."""
    target_burst_capacity: float = 211
    panic_threshold: float = 2.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    stable_window: float = 60
    scale_down_delay: float = 0
    activation_scale: int = 1
    reachable: bool = True


def decider_spec(config: KpaConfig, container_concurrency: int, reachable: bool = True) -> DeciderSpec:
    """MakeDecider and ResolveMetricTarget: a concurrency target of container concurrency (or the default when it is
    0) times the target utilisation."""
    total = float(container_concurrency or config.container_concurrency_target_default)
    return DeciderSpec(max(TARGET_MIN, total * config.target_utilization), total, config.target_burst_capacity,
                       config.panic_threshold_percentage / 100, config.max_scale_up_rate, config.max_scale_down_rate,
                       config.stable_window, config.scale_down_delay, config.activation_scale, reachable)


@dataclass(frozen=True)
class ScaleResult:
    desired: int
    excess_burst_capacity: int
    """Negative: the ready pods cannot take a burst of the target burst capacity, so the activator stays in the
    path and buffers."""


class Decider:
    """One revision's autoscaler (autoscaler.go). Created at `now` with `ready` pods: with more than one it starts in
    panic, holding them until it has a stable window of data."""

    def __init__(self, spec: DeciderSpec, ready: int, now: float = 0.0):
        self.spec = spec
        self.panic_time: float | None = now if ready > 1 else None
        self.max_panic_pods = ready
        self._delay: list[tuple[float, int]] = []

    def update(self, spec: DeciderSpec) -> None:
        self.spec = spec

    @property
    def in_panic(self) -> bool:
        return self.panic_time is not None

    def scale(self, now: float, ready: int, stable: float, panic: float) -> ScaleResult:
        s = self.spec
        counted = max(1.0, float(ready))  # with no ready pod the rates apply to one, so it can leave zero
        max_up = math.ceil(s.max_scale_up_rate * counted)
        max_down = math.floor(counted / s.max_scale_down_rate) if s.reachable else 0.0
        stable_pods = math.ceil(stable / s.target_value)
        panic_pods = math.ceil(panic / s.target_value)
        desired_stable = int(min(max(stable_pods, max_down), max_up))
        desired_panic = int(min(max(panic_pods, max_down), max_up))
        if s.activation_scale > 1:
            if stable_pods > 0 and s.activation_scale > desired_stable:
                desired_stable = s.activation_scale
            if panic_pods > 0 and s.activation_scale > desired_panic:
                desired_panic = s.activation_scale
        over = panic_pods / counted >= s.panic_threshold
        if over:
            self.panic_time = now
        elif self.panic_time is not None and self.panic_time + s.stable_window < now:
            # Panic ends strictly after a full stable window without crossing the threshold.
            self.panic_time, self.max_panic_pods = None, 0
        desired = desired_stable
        if self.panic_time is not None:
            # Provision for the larger window, and never below what this panic already reached.
            desired = max(desired, desired_panic)
            self.max_panic_pods = max(self.max_panic_pods, desired)
            desired = self.max_panic_pods
        if s.reachable and s.scale_down_delay > 0:
            self._delay = [(at, n) for at, n in self._delay if now - at < s.scale_down_delay] + [(now, desired)]
            desired = max(n for _, n in self._delay)
        if s.target_burst_capacity == 0:
            ebc = 0
        elif s.target_burst_capacity > 0:
            ebc = math.floor(ready * s.total_value - s.target_burst_capacity - panic)
        else:
            ebc = -1
        return ScaleResult(desired, int(ebc))


ACTIVE, ACTIVATING, INACTIVE = "active", "activating", "inactive"


class PodAutoscaler:
    """The KPA reconciler around a decider: scale bounds, initial scale, the Active condition, scale to zero, and
    whether the activator is in the path (the serverless service in proxy mode)."""

    def __init__(self, config: KpaConfig, min_scale: int, max_scale: int, *, reachable: bool = True,
                 initialized: bool = True, active: bool = True, now: float = 0.0):
        self.config, self.reachable = config, reachable
        self.min_scale = min_scale if reachable else 0  # min-scale is not kept for an unreachable revision
        self.max_scale = max_scale
        self.initialized = initialized
        self.state = ACTIVE if active else INACTIVE
        self.since = -math.inf  # when the Active condition last changed
        self.proxy_since: float | None = -math.inf  # the activator has been in the path since then

    @property
    def activator_in_path(self) -> bool:
        return self.proxy_since is not None

    def _min_ready(self) -> int:
        if not self.initialized:
            return max(self.min_scale, self.config.initial_scale)
        return max(self.min_scale, 1)

    def reconcile(self, now: float, result: ScaleResult | None, ready: int, current: int) -> int | None:
        """The replica count to set this tick, or None to leave it."""
        want = -1 if result is None else result.desired
        apply = want >= 0
        if apply:
            low = self.min_scale
            if self.config.initial_scale > 1 and not self.initialized:
                low = max(low, self.config.initial_scale)
            want = max(low, want if not self.max_scale else min(self.max_scale, want))
            want, apply = self._scale_to_zero(now, want)
        self._update_condition(now, want, ready)
        serve = want > 0 and result is not None and result.excess_burst_capacity >= 0
        if serve:
            self.proxy_since = None
        elif self.proxy_since is None:
            self.proxy_since = now
        return want if apply and want != current else None

    def _scale_to_zero(self, now: float, desired: int) -> tuple[int, bool]:
        c = self.config
        if desired != 0:
            return desired, True
        if not c.enable_scale_to_zero:
            return 1, True
        if self.state == ACTIVATING:
            if now - self.since >= c.progress_deadline + ACTIVATION_TIMEOUT_BUFFER:
                return 0, True
            return -1, False
        if self.state == ACTIVE:
            # Active for a stable window: mark inactive first (the activator goes into the path), zero later.
            return (0, False) if now - self.since >= c.stable_window else (1, True)
        retention = c.scale_to_zero_pod_retention_period if self.reachable else 0
        inactive_for = now - self.since
        if inactive_for >= max(c.scale_to_zero_grace_period, retention):
            return 0, True
        if retention > 0 and inactive_for < retention:
            return 0, False
        proxy_for = now - self.proxy_since if self.proxy_since is not None else 0.0
        return 0, c.scale_to_zero_grace_period - proxy_for <= 0

    def _update_condition(self, now: float, want: int, ready: int) -> None:
        min_ready = self._min_ready()
        if ready >= min_ready:
            self.initialized = True
        if want == 0 or min_ready == 0:
            new = INACTIVE
        elif ready < min_ready:
            new = ACTIVATING if want > 0 or self.state != INACTIVE else INACTIVE
        else:
            new = ACTIVE if want > 0 or self.state != INACTIVE else self.state
        if new != self.state:
            self.state, self.since = new, now


class KpaScaler:
    """The KPA on a `PodCluster`: concurrency (requests in flight and buffered) averaged over the stable and panic
    windows each tick; the activator buffers a revision at zero and reports at once when a request arrives."""

    def __init__(self, concurrency: int, min_scale: int, max_scale: int, config: KpaConfig = KpaConfig(), *,
                 reachable: bool = True, spec: DeciderSpec | None = None, rps: bool = False):
        """`spec`: the decider's target as the revision resolves it (default: containerConcurrency times the target
        utilisation); `rps`: the metric is requests per second (received at the activator or the queue-proxy)
        instead of requests in flight."""
        self.config, self.rps = config, rps
        self._cum_received = [0.0]
        self.decider = Decider(spec or decider_spec(config, concurrency, reachable), min_scale)
        self.pa = PodAutoscaler(config, min_scale, max_scale, reachable=reachable, active=min_scale > 0)
        self.stable_window = int(config.stable_window)
        self.panic_window = max(1, int(config.stable_window * config.panic_window_percentage / 100))
        self.excess_burst_capacity: list[tuple[int, int]] = []
        """(second, excess burst capacity) of each tick, for reports and tests."""
        self._last = min_scale

    def step(self, t: int, sim: Any) -> None:
        cluster = sim.fleet
        if self.rps:
            self._cum_received.append(self._cum_received[-1] + sim.received_now)
        # The activator reports a request for a revision whose last decision was zero at once (multiscaler Poke).
        poked = self._last == 0 and sim.received_now > 0
        if t % self.config.tick and not poked:
            return
        cum = self._cum_received if self.rps else sim.cum_outstanding
        stable = (cum[t + 1] - cum[max(0, t + 1 - self.stable_window)]) / min(t + 1, self.stable_window)
        panic = (cum[t + 1] - cum[max(0, t + 1 - self.panic_window)]) / min(t + 1, self.panic_window)
        ready = cluster.ready_replicas
        result = self.decider.scale(t, ready, stable, panic)
        self.excess_burst_capacity.append((t, result.excess_burst_capacity))
        self._last = result.desired
        desired = self.pa.reconcile(t, result, ready, cluster.desired)
        if desired is not None:
            cluster.set_desired(t, desired)
