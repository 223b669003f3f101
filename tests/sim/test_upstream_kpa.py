"""Cases transcribed from Knative Serving v1.18's autoscaler tests (pkg/autoscaler/scaling/autoscaler_test.go), fed
through the simulator's KPA decider; each names its upstream test. The upstream harness's spec: target per pod as
given, total value target / 0.75, panic threshold 2, scale rates 10, stable window 60 s, reachable; the pod
counter reports one ready pod unless a case says otherwise. Excess burst capacity is compared within one, as
upstream's approxEquateInt32 does. Then the reconciler's rules (kpa/scaler.go, kpa.go) through `PodAutoscaler`."""

from __future__ import annotations

import math

import pytest

from gpuscale.sim.knative import Decider, DeciderSpec, KpaConfig, PodAutoscaler, ScaleResult

UTILIZATION = 0.75


def spec(target: float, tbc: float, **changes) -> DeciderSpec:
    base = dict(target_value=target, total_value=target / UTILIZATION, target_burst_capacity=tbc, panic_threshold=2,
                max_scale_up_rate=10, max_scale_down_rate=10, stable_window=60, reachable=True)
    base.update(changes)
    return DeciderSpec(**base)


def ebc(total: float, tbc: float, concurrency: float, pods: float) -> int:
    """upstream's expectedEBC."""
    return math.floor(total / UTILIZATION * pods - tbc - concurrency)


def expect(result: ScaleResult, desired: int, excess: int | None = None) -> None:
    assert result.desired == desired
    if excess is not None:
        assert abs(result.excess_burst_capacity - excess) <= 1


def delay_spec(reachable: bool = True) -> DeciderSpec:
    return DeciderSpec(target_value=10, total_value=0, target_burst_capacity=0, panic_threshold=100,
                       max_scale_up_rate=10, max_scale_down_rate=10, scale_down_delay=300, reachable=reachable)


def test_autoscaler_scale_down_delay():
    """TestAutoscalerScaleDownDelay (simple, then gradual on the same autoscaler)."""
    a = Decider(delay_spec(), ready=0)
    expect(a.scale(2, 0, 40, 40), 4)
    expect(a.scale(300, 0, 0, 0), 4)  # less than the delay
    expect(a.scale(302, 0, 0, 0), 0)
    expect(a.scale(540, 0, 40, 40), 4)
    expect(a.scale(600, 0, 30, 30), 4)  # 4 still dominates
    expect(a.scale(660, 0, 0, 0), 4)
    expect(a.scale(840, 0, 0, 0), 3)  # 4 scrolls out
    expect(a.scale(900, 0, 0, 0), 0)


def test_autoscaler_scale_down_delay_not_reachable():
    """TestAutoscalerScaleDownDelayNotReachable: an unreachable revision skips the delay."""
    a = Decider(delay_spec(), ready=0)
    expect(a.scale(2, 0, 40, 40), 4)
    expect(a.scale(60, 0, 0, 0), 4)
    a.update(delay_spec(reachable=False))
    expect(a.scale(2, 0, 0, 0), 0)


def test_autoscaler_scale_down_delay_zero():
    """TestAutoscalerScaleDownDelayZero."""
    a = Decider(DeciderSpec(target_value=10, total_value=0, target_burst_capacity=0, panic_threshold=100,
                            max_scale_up_rate=10, max_scale_down_rate=10), ready=0)
    expect(a.scale(0, 0, 40, 40), 4)
    expect(a.scale(0.5, 0, 20, 20), 2)


def test_autoscaler_metrics():
    """TestAutoscalerMetrics / TestAutoscalerStableModeIncreaseWithConcurrencyDefault."""
    expect(Decider(spec(10, 100), 1).scale(0, 1, 50, 50), 5, ebc(10, 100, 50, 1))
    a = Decider(spec(10, 101), 1)
    expect(a.scale(0, 1, 50, 10), 5, ebc(10, 101, 10, 1))
    expect(a.scale(0, 1, 100, 10), 10, ebc(10, 101, 10, 1))


def test_autoscaler_unpanic_after_slow_increase():
    """TestAutoscalerUnpanicAfterSlowIncrease: panic ends strictly after a stable window without a new trigger."""
    a = Decider(spec(1, 98), 1)
    expect(a.scale(0, 10, 11, 25), 25, ebc(1, 98, 25, 10))
    assert a.panic_time == 0
    expect(a.scale(30, 40, 30, 41), 41, ebc(1, 98, 41, 40))
    assert a.panic_time == 0, "41 / 40 is below the threshold: panic time does not move"
    expect(a.scale(62, 55, 50, 56), 50, ebc(1, 98, 56, 55))
    assert not a.in_panic


def test_autoscaler_extend_panic_window():
    """TestAutoscalerExtendPanicWindow."""
    a = Decider(spec(1, 98), 1)
    expect(a.scale(0, 10, 11, 25), 25)
    expect(a.scale(30, 40, 30, 80), 80, ebc(1, 98, 80, 40))
    assert a.panic_time == 30


@pytest.mark.parametrize("name, target, tbc, ready, stable, panic, expected", [
    ("TestAutoscalerStableModeDecrease", 10, 98, 8, 100, 100, 10),
    ("TestAutoscalerStableModeNoTrafficScaleToZero", 10, 75, 1, 0, 0, 0),
    ("TestAutoscalerRateLimitScaleUp", 10, 61, 1, 1000, 1001, 10),
    ("TestAutoscalerRateLimitScaleDown", 10, 61, 100, 1, 1, 10),
    ("TestAutoscalerUseOnePodAsMinimumIfEndpointsNotFound", 10, 81, 0, 1000, 888, 10),
])
def test_autoscaler_single_decisions(name, target, tbc, ready, stable, panic, expected):
    expect(Decider(spec(target, tbc), 1).scale(0, ready, stable, panic), expected,
           ebc(target, tbc, panic, ready))


def test_autoscaler_stable_mode_decrease_then_rate_limits():
    """TestAutoscalerStableModeDecrease, TestAutoscalerRateLimitScaleUp/ScaleDown: the second decision."""
    a = Decider(spec(10, 98), 1)
    expect(a.scale(0, 8, 100, 100), 10)
    expect(a.scale(0, 8, 50, 50), 5, ebc(10, 98, 50, 8))
    up = Decider(spec(10, 61), 1)
    expect(up.scale(0, 1, 1000, 1001), 10)
    expect(up.scale(0, 10, 1000, 1001), 100, ebc(10, 61, 1001, 10))
    down = Decider(spec(10, 61), 1)
    expect(down.scale(0, 100, 1, 1), 10)
    expect(down.scale(0, 10, 1, 1), 1, ebc(10, 61, 1, 10))


def test_autoscaler_activation_scale():
    """TestAutoscalerActivationScale: once any pod is wanted, at least the activation scale."""
    a = Decider(spec(10, 75, activation_scale=2), 1)
    expect(a.scale(0, 1, 0, 0), 0)
    expect(a.scale(0, 1, 1, 0), 2)


def test_autoscaler_panic_mode_exponential_track_and_stabilize():
    """TestAutoscalerPanicModeExponentialTrackAndStabilize."""
    a = Decider(spec(1, 101), 1)
    expect(a.scale(0, 1, 6, 6), 6, ebc(1, 101, 6, 1))
    expect(a.scale(0, 6, 36, 36), 36, ebc(1, 101, 36, 6))
    assert a.panic_time == 0
    expect(a.scale(1, 36, 216, 216), 216, ebc(1, 101, 216, 36))
    expect(a.scale(1, 216, 1296, 1296), 1296, ebc(1, 101, 1296, 216))
    expect(a.scale(2, 1296, 1296, 1296), 1296, ebc(1, 101, 1296, 1296))


SCALE_TABLE = [
    # (label, target, tbc, stable, panic, ready, expected, expected EBC, (panic since, max panic pods), changes)
    ("AutoscalerNoDataAtZeroNoAutoscale", 10, 100, 0, 0, 1, 0, ebc(10, 100, 0, 1), None, {}),
    ("AutoscalerStableModeUnlimitedTBC", 181, -1, 21, 26, 1, 1, -1, None, {}),
    ("Autoscaler0TBC", 10, 0, 50, 49, 1, 5, 0, None, {}),
    ("AutoscalerStableModeNoChange", 10, 100, 50, 50, 1, 5, ebc(10, 100, 50, 1), None, {}),
    ("AutoscalerPanicStableLargerThanPanic", 1, 100, 50, 30, 5, 50, ebc(1, 100, 30, 5), (-5, 5), {}),
    ("AutoscalerPanicStableLessThanPanic", 1, 100, 20, 30, 5, 30, ebc(1, 100, 30, 5), (-5, 5), {}),
    ("AutoscalerStableModeNoChangeAlreadyScaled", 10, 100, 50, 50, 5, 5, ebc(10, 100, 50, 5), None, {}),
    ("AutoscalerStableModeIncreaseWithSmallScaleUpRate", 1, 1982, 3, 3.1, 2, 3, ebc(1, 1982, 3.1, 2), None,
     {"max_scale_up_rate": 1.1}),
    ("AutoscalerStableModeDecreaseWithSmallScaleDownRate", 10, 1982, 1, 1, 100, 90, ebc(10, 1982, 1, 100), None,
     {"max_scale_down_rate": 1.1}),
    ("AutoscalerStableModeDecreaseNonReachable", 10, 1982, 1, 1, 100, 1, ebc(10, 1982, 1, 100), None,
     {"max_scale_down_rate": 1.1, "reachable": False}),
    ("AutoscalerPanicModeDoublePodCount", 10, 84, 50, 100, 1, 10, ebc(10, 84, 100, 1), None, {}),
]


@pytest.mark.parametrize("label, target, tbc, stable, panic, ready, expected, excess, panicking, changes", SCALE_TABLE,
                         ids=[c[0] for c in SCALE_TABLE])
def test_autoscaler_scale(label, target, tbc, stable, panic, ready, expected, excess, panicking, changes):
    """TestAutoscalerScale."""
    a = Decider(spec(target, tbc, **changes), 1)
    if panicking:
        a.panic_time, a.max_panic_pods = panicking
    expect(a.scale(0, ready, stable, panic), expected, excess)


def test_autoscaler_panic_then_unpanic_scale_down():
    """TestAutoscalerPanicThenUnPanicScaleDown."""
    a = Decider(spec(10, 93), 1)
    expect(a.scale(0, 1, 100, 100), 10)
    expect(a.scale(0, 10, 100, 1000), 100, ebc(10, 93, 1000, 10))
    expect(a.scale(30, 10, 1, 1), 100, ebc(10, 93, 1, 10))  # still in panic: no scale-down
    expect(a.scale(61, 10, 1, 1), 1, ebc(10, 93, 1, 10))


def test_autoscaler_update_target():
    """TestAutoscalerUpdateTarget."""
    a = Decider(spec(10, 77), 1)
    expect(a.scale(0, 1, 100, 101), 10)
    a.update(spec(1, 71))
    expect(a.scale(0, 10, 100, 101), 100, ebc(1, 71, 101, 10))


def test_start_in_panic_mode():
    """TestStartInPanicMode: an autoscaler created over more than one ready pod starts in panic, holding them."""
    for ready in (0, 1):
        a = Decider(spec(100, 11), ready)
        assert not a.in_panic and a.max_panic_pods == ready
    a = Decider(spec(100, 11), 2)
    assert a.in_panic and a.max_panic_pods == 2


@pytest.mark.skip(reason="the simulator always has the ready pod count and concurrency data: the metric and pod "
                         "counter errors of TestAutoscalerNoDataNoAutoscale and TestCantCountPods do not occur")
def test_autoscaler_errors():
    """TestAutoscalerNoDataNoAutoscale, TestCantCountPods."""


# --- the reconciler: bounds, the Active condition and scale to zero (kpa/scaler.go, kpa.go) ------------------------
def test_scale_to_zero_waits_a_stable_window_then_the_grace_period():
    """scaler.go handleScaleToZero: an active revision wanting zero keeps one pod until it has been active a stable
    window, is then marked inactive (the activator goes into the path), and goes to zero once the activator has been
    in the path for the grace period."""
    config = KpaConfig(stable_window=60, scale_to_zero_grace_period=30)
    pa = PodAutoscaler(config, 0, 10, active=False)
    serve = ScaleResult(1, 0)
    assert pa.reconcile(0, serve, 0, 0) == 1, "a request wakes it"
    assert pa.reconcile(10, serve, 1, 1) is None and pa.state == "active" and not pa.activator_in_path
    zero = ScaleResult(0, 0)
    assert pa.reconcile(40, zero, 1, 1) is None and pa.state == "active", "active 30 s < 60 s: keep one pod"
    assert pa.reconcile(70, zero, 1, 1) is None and pa.state == "inactive" and pa.activator_in_path
    assert pa.reconcile(90, zero, 1, 1) is None, "20 s in proxy mode < 30 s grace"
    assert pa.reconcile(100, zero, 1, 1) == 0


def test_activator_stays_in_path_while_burst_capacity_is_short():
    """kpa.go: the serverless service serves directly only while the excess burst capacity is not negative."""
    pa = PodAutoscaler(KpaConfig(), 1, 10)
    pa.reconcile(0, ScaleResult(2, -5), 1, 1)
    assert pa.activator_in_path
    pa.reconcile(2, ScaleResult(2, 3), 2, 2)
    assert not pa.activator_in_path


def test_initial_scale_and_unreachable_bounds():
    """scaler.go: until the revision first reaches its initial scale, min is raised to it; an unreachable revision
    keeps no minimum."""
    pa = PodAutoscaler(KpaConfig(initial_scale=3), 1, 10, initialized=False)
    assert pa.reconcile(0, ScaleResult(1, 0), 0, 0) == 3
    assert pa.reconcile(2, ScaleResult(1, 0), 3, 3) is None and pa.initialized
    assert pa.reconcile(4, ScaleResult(1, 0), 3, 3) == 1, "initialized: back to the decider's 1"
    unreachable = PodAutoscaler(KpaConfig(), 4, 10, reachable=False)
    assert unreachable.min_scale == 0
