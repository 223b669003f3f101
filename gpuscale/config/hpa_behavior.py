"""The HorizontalPodAutoscaler's `behavior` (autoscaling/v2): one shape for the stack config (a service's `hpa` or
`keda` scaling, gpuscale/config/pod_autoscalers.py), the components that render it, and the simulator's HPA
(gpuscale/sim/hpa.py). Defaults are the API's (Kubernetes v1.33, pkg/apis/autoscaling/v2/defaults.go)."""

from __future__ import annotations

from dataclasses import dataclass

MAX, MIN, DISABLED = "Max", "Min", "Disabled"


@dataclass(frozen=True)
class ScalingPolicy:
    kind: str
    """``Pods`` or ``Percent``."""
    value: int
    period_seconds: int


@dataclass(frozen=True)
class ScalingRules:
    stabilization_window_seconds: int | None = None
    """None: 0 for scale-up, the controller's downscale stabilization for scale-down (the API's defaulting)."""
    policies: tuple[ScalingPolicy, ...] | None = None
    select_policy: str | None = None


# pkg/apis/autoscaling/v2/defaults.go: up by max(100 %, 4 pods) per 15 s with no window; down by 100 % per 15 s.
DEFAULT_SCALE_UP_POLICIES = (ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15))
DEFAULT_SCALE_DOWN_POLICIES = (ScalingPolicy("Percent", 100, 15),)


@dataclass(frozen=True)
class Behavior:
    scale_up: ScalingRules = ScalingRules()
    scale_down: ScalingRules = ScalingRules()

    def resolved(self, downscale_window: int) -> tuple[ScalingRules, ScalingRules]:
        """Both directions with every field the API server and controller fill in (`downscale_window`: the
        controller's --horizontal-pod-autoscaler-downscale-stabilization)."""
        up, down = self.scale_up, self.scale_down
        up = ScalingRules(0 if up.stabilization_window_seconds is None else up.stabilization_window_seconds,
                          up.policies or DEFAULT_SCALE_UP_POLICIES, up.select_policy or MAX)
        down = ScalingRules(downscale_window if down.stabilization_window_seconds is None
                            else down.stabilization_window_seconds,
                            down.policies or DEFAULT_SCALE_DOWN_POLICIES, down.select_policy or MAX)
        return up, down
