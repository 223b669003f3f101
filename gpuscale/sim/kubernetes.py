"""Pod autoscalers on Kubernetes: the HorizontalPodAutoscaler and Knative's KPA.

Both set a pod count on a `PodCluster`, where pods that do not fit wait for the cluster-autoscaler to add a node.
Defaults are the documented ones; the presets override them with the values their sources give.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .engine import Engine

# --- HorizontalPodAutoscaler (kubernetes.io, "Horizontal Pod Autoscaling") ---------------------------------------
HPA_SYNC_SECONDS = 15
"""--horizontal-pod-autoscaler-sync-period default."""
HPA_TOLERANCE = 0.1
"""--horizontal-pod-autoscaler-tolerance default: no scaling while the ratio is within 10% of 1."""


@dataclass(frozen=True)
class HpaPolicy:
    kind: str
    """``Pods`` or ``Percent``."""
    value: int
    period_seconds: int


@dataclass(frozen=True)
class HpaRules:
    stabilization_seconds: int
    policies: tuple[HpaPolicy, ...]
    select: str = "Max"
    """``Max``: the policy allowing the largest change wins; ``Min``: the smallest."""


# The documented default behavior: up by max(100%, 4 pods) per 15 s at once; down by up to 100% per 15 s after
# a 300 s stabilization window.
HPA_DEFAULT_UP = HpaRules(0, (HpaPolicy("Percent", 100, 15), HpaPolicy("Pods", 4, 15)))
HPA_DEFAULT_DOWN = HpaRules(300, (HpaPolicy("Percent", 100, 15),))


def hpa_replicas(current: int, ready: int, metric: float, target: float, tolerance: float = HPA_TOLERANCE) -> int:
    """The HPA's recommendation: desired = ceil(ready x metric / target) over the pods that report.

    Pods without a metric (starting) count as 0 on a scale up and as exactly on target on a scale down, and if
    that reverses the direction or lands within the tolerance the HPA keeps `current`.
    """
    ratio = metric / target
    missing = current - ready
    if missing <= 0:
        return current if abs(ratio - 1) <= tolerance else math.ceil(ratio * ready)
    if abs(ratio - 1) <= tolerance:
        return current
    filled = (metric * ready + (0.0 if ratio > 1 else target * missing)) / (current * target)
    if abs(filled - 1) <= tolerance or (filled > 1) != (ratio > 1):
        return current
    return math.ceil(filled * current)


class HpaScaler:
    def __init__(self, target_utilization: float, min_replicas: int, max_replicas: int, *,
                 scale_up: HpaRules = HPA_DEFAULT_UP, scale_down: HpaRules = HPA_DEFAULT_DOWN, metric_delay: int = 0):
        self.target, self.min, self.max = target_utilization, min_replicas, max_replicas
        self.up, self.down, self.delay = scale_up, scale_down, metric_delay
        self._recommendations: list[tuple[int, int]] = []
        self._events: list[tuple[int, int]] = []  # (t, change)

    def step(self, t: int, sim: Engine) -> None:
        if t % HPA_SYNC_SECONDS:
            return
        fleet = sim.fleet
        current = fleet.desired
        util = sim.util[t - self.delay] if t >= self.delay else None
        recommendation = current if util is None else hpa_replicas(current, fleet.ready, util, self.target)
        desired = self._stabilize(t, min(self.max, max(self.min, recommendation)), current)
        desired = min(self.max, max(self.min, self._limit(t, current, desired)))
        if desired != current:
            self._events.append((t, desired - current))
            fleet.set_desired(t, desired)

    def _stabilize(self, t: int, recommendation: int, current: int) -> int:
        """The highest recommendation in the scale-down window caps a decrease, the lowest in the scale-up window
        caps an increase (the documented stabilization)."""
        keep = max(self.up.stabilization_seconds, self.down.stabilization_seconds)
        self._recommendations = [(s, r) for s, r in self._recommendations if t - s < keep]
        up = min([recommendation] + [r for s, r in self._recommendations if t - s < self.up.stabilization_seconds])
        down = max([recommendation] + [r for s, r in self._recommendations
                                       if t - s < self.down.stabilization_seconds])
        self._recommendations.append((t, recommendation))
        return min(max(current, up), down)

    def _limit(self, t: int, current: int, desired: int) -> int:
        """Behavior policies: change against the replica count at the start of each policy's period."""
        if desired > current:
            limits = []
            for p in self.up.policies:
                start = current - sum(c for s, c in self._events if t - s < p.period_seconds and c > 0)
                limits.append(start + p.value if p.kind == "Pods" else math.ceil(start * (1 + p.value / 100)))
            return min(desired, max(limits) if self.up.select == "Max" else min(limits))
        if desired < current:
            limits = []
            for p in self.down.policies:
                start = current - sum(c for s, c in self._events if t - s < p.period_seconds and c < 0)
                limits.append(start - p.value if p.kind == "Pods" else int(start * (1 - p.value / 100)))
            return max(desired, min(limits) if self.down.select == "Max" else max(limits))
        return desired


# --- Knative Pod Autoscaler (knative.dev, "Configuring the autoscaler" and its config-autoscaler defaults) -------
@dataclass(frozen=True)
class KpaSettings:
    stable_window: int = 60
    panic_window: int = 6
    """panic-window-percentage 10% of the stable window."""
    panic_threshold: float = 2.0
    """panic-threshold-percentage 200%."""
    tick: int = 2
    """tick-interval 2 s."""
    target_utilization: float = 0.7
    """container-concurrency-target-percentage 70%."""
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    scale_to_zero_grace: int = 30


class KpaScaler:
    def __init__(self, concurrency: int, min_scale: int, max_scale: int, settings: KpaSettings = KpaSettings()):
        self.s, self.min, self.max = settings, min_scale, max_scale
        self.target = concurrency * settings.target_utilization
        """Concurrent requests per pod the KPA aims for."""
        self.panic_since: int | None = None
        self._panic_max = 0
        self._last_wanted = 0

    def decide(self, t: int, ready_pods: int, stable_concurrency: float, panic_concurrency: float) -> int:
        """One tick of the KPA: the desired pods from the windowed total concurrency."""
        ready = max(1, ready_pods)  # Knative uses one pod when none is ready, so it can scale from zero
        up_limit = math.ceil(self.s.max_scale_up_rate * ready)
        down_limit = math.floor(ready / self.s.max_scale_down_rate)
        stable = math.ceil(stable_concurrency / self.target - 1e-9)
        panic = math.ceil(panic_concurrency / self.target - 1e-9)
        over_threshold = panic / ready >= self.s.panic_threshold
        if over_threshold:
            self.panic_since = t
        elif self.panic_since is not None and t - self.panic_since >= self.s.stable_window:
            self.panic_since, self._panic_max = None, 0
        if self.panic_since is not None:
            # In panic the KPA follows the short window and never scales down.
            desired = max(min(max(panic, down_limit), up_limit), self._panic_max)
            self._panic_max = desired
        else:
            desired = min(max(stable, down_limit), up_limit)
        return min(self.max, max(self.min, desired))

    @property
    def in_panic(self) -> bool:
        return self.panic_since is not None

    def step(self, t: int, sim: Engine) -> None:
        fleet = sim.fleet
        # The activator holds requests for a revision at zero and pokes the autoscaler at once.
        poked = fleet.desired == 0 and sim.outstanding > 0
        if t % self.s.tick and not poked:
            return
        cum = sim.cum_outstanding
        stable = (cum[t + 1] - cum[max(0, t + 1 - self.s.stable_window)]) / min(t + 1, self.s.stable_window)
        panic = (cum[t + 1] - cum[max(0, t + 1 - self.s.panic_window)]) / min(t + 1, self.s.panic_window)
        desired = self.decide(t, fleet.ready, stable, panic)
        if desired > 0:
            self._last_wanted = t
        elif t - self._last_wanted < self.s.scale_to_zero_grace:
            desired = max(desired, min(1, fleet.desired))  # the last pod stays for the grace period
        if desired != fleet.desired:
            fleet.set_desired(t, desired)
