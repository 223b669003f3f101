"""Cases transcribed from Kubernetes v1.33's own HPA tests (pkg/controller/podautoscaler/replica_calculator_test.go
and horizontal_test.go), fed through the simulator's HPA model. Each case names its upstream test.

Conventions of the upstream harness, carried over: a CPU pod has two containers, each requesting the listed
quantity and using the listed level (so a pod requests and uses twice each); metric values are milli-units; the
replica calculator tests run with a 2 min CPU initialization period and a 10 s readiness delay; pods start at the
zero time unless "hot" (started now, inside the initialization period) or "cool" (3 min ago, past it); metric
samples carry the zero timestamp and a one-minute window.
"""

from __future__ import annotations

import pytest

from gpuscale.config.hpa_behavior import ScalingPolicy
from gpuscale.sim.hpa import (AVERAGE_VALUE, EXTERNAL, FAILED, OBJECT, PENDING, PODS, RESOURCE, RUNNING, UTILIZATION,
                              VALUE, Behavior, HorizontalController, MetricError, MetricSpec, Pod, PodMetric,
                              Readiness, ScalingRules, Tolerances, object_metric_replicas,
                              pod_metric_replicas)

NOW = 1_000_000.0
ZERO = 0.0  # Go's zero time: long before NOW
HOT, COOL = NOW, NOW - 180
CALC_READINESS = Readiness(cpu_initialization_period=120, initial_readiness_delay=10)


def cpu_pods(requests, readiness=None, phases=None, starts=None, deleting=None):
    n = len(requests)
    return [Pod(f"test-pod-{i}", phase=(phases or [RUNNING] * n)[i], ready=(readiness or [True] * n)[i],
                start_time=(starts or [ZERO] * n)[i], ready_transition=ZERO, deleting=(deleting or [False] * n)[i],
                cpu_request=2 * round(requests[i] * 1000)) for i in range(n)]


def cpu_levels(*levels, names=None):
    return {(names[i] if names else f"test-pod-{i}"): PodMetric(2 * level, ZERO, 60) for i, level in enumerate(levels)}


def calc_cpu(current, target, requests, levels, **pods):
    return pod_metric_replicas(current, MetricSpec(RESOURCE, UTILIZATION, target), cpu_pods(requests, **pods), levels,
                               now=NOW, readiness=CALC_READINESS)


RESOURCE_CASES = [
    # (upstream test, current replicas, target %, requests, levels, pod options, expected replicas)
    ("TestReplicaCalcScaleUp", 3, 30, [1, 1, 1], cpu_levels(300, 500, 700), {}, 5),
    ("TestReplicaCalcScaleUpUnreadyLessScale", 3, 30, [1, 1, 1], cpu_levels(300, 500, 700),
     {"readiness": [False, True, True]}, 4),
    ("TestReplicaCalcScaleUpHotCpuLessScale", 3, 30, [1, 1, 1], cpu_levels(300, 500, 700),
     {"starts": [HOT, COOL, COOL]}, 4),
    ("TestReplicaCalcScaleUpUnreadyNoScale", 3, 30, [1, 1, 1], cpu_levels(400, 500, 700),
     {"readiness": [True, False, False]}, 3),
    ("TestReplicaCalcScaleHotCpuNoScale", 3, 30, [1, 1, 1], cpu_levels(400, 500, 700),
     {"readiness": [True, False, False], "starts": [COOL, HOT, HOT]}, 3),
    ("TestReplicaCalcScaleUpIgnoresFailedPods", 2, 30, [1, 1, 1, 1], cpu_levels(500, 700),
     {"readiness": [True, True, False, False], "phases": [RUNNING, RUNNING, FAILED, FAILED]}, 4),
    ("TestReplicaCalcScaleUpIgnoresDeletionPods", 2, 30, [1, 1, 1, 1], cpu_levels(500, 700),
     {"readiness": [True, True, False, False], "deleting": [False, False, True, True]}, 4),
    ("TestReplicaCalcScaleDown", 5, 50, [1] * 5, cpu_levels(100, 300, 500, 250, 250), {}, 3),
    ("TestReplicaCalcScaleDownExcludeUnreadyPods", 5, 50, [1] * 5, cpu_levels(100, 300, 500, 250, 250),
     {"readiness": [True, True, True, False, False]}, 2),
    ("TestReplicaCalcScaleDownExcludeUnscheduledPods", 5, 50, [1] * 5, cpu_levels(100),
     {"readiness": [True, False, False, False, False], "phases": [RUNNING] + [PENDING] * 4}, 1),
    ("TestReplicaCalcScaleDownIgnoreHotCpuPods", 5, 50, [1] * 5, cpu_levels(100, 300, 500, 250, 250),
     {"starts": [COOL, COOL, COOL, HOT, HOT]}, 2),
    ("TestReplicaCalcScaleDownIgnoresFailedPods", 5, 50, [1] * 7, cpu_levels(100, 300, 500, 250, 250),
     {"readiness": [True] * 5 + [False] * 2, "phases": [RUNNING] * 5 + [FAILED] * 2}, 3),
    ("TestReplicaCalcScaleDownIgnoresDeletionPods", 5, 50, [1] * 7, cpu_levels(100, 300, 500, 250, 250),
     {"readiness": [True] * 5 + [False] * 2, "deleting": [False] * 5 + [True] * 2}, 3),
    ("TestReplicaCalcTolerance", 3, 100, [0.9, 1.0, 1.1], cpu_levels(1010, 1030, 1020), {}, 3),
    ("TestReplicaCalcSuperfluousMetrics", 4, 100, [1] * 4, cpu_levels(4000, 9500, 3000, 7000, 3200, 2000), {}, 24),
    ("TestReplicaCalcMissingMetrics", 4, 100, [1] * 4, cpu_levels(400, 95), {}, 3),
    ("TestReplicaCalcMissingMetricsNoChangeEq", 2, 100, [1, 1], cpu_levels(1000), {}, 2),
]


@pytest.mark.parametrize("name, current, target, requests, levels, options, expected", RESOURCE_CASES,
                         ids=[c[0] for c in RESOURCE_CASES])
def test_replica_calculator_resource(name, current, target, requests, levels, options, expected):
    assert calc_cpu(current, target, requests, levels, **options) == expected, name


@pytest.mark.parametrize("name, levels", [
    ("TestReplicaCalcDisjointResourcesMetrics", cpu_levels(100, names=["an-older-pod-name"])),
    ("TestReplicaCalcEmptyMetrics", cpu_levels()),
])
def test_replica_calculator_resource_errors(name, levels):
    with pytest.raises(MetricError):
        calc_cpu(1, 100, [1], levels)


def qps_pods(n, readiness=None, starts=None):
    return [Pod(f"test-pod-{i}", ready=(readiness or [True] * n)[i], start_time=(starts or [ZERO] * n)[i])
            for i in range(n)]


POD_METRIC_CASES = [
    # (upstream test, current, levels, target, readiness, starts, expected)
    ("TestReplicaCalcScaleUpCM", 3, [20000, 10000, 30000], 15000, None, None, 4),
    # Readiness and CPU warm-up do not apply to custom metrics.
    ("TestReplicaCalcScaleUpCMUnreadyHotCpuNoLessScale", 3, [50000, 10000, 30000], 15000, [True, True, False],
     [COOL, COOL, HOT], 6),
    ("TestReplicaCalcScaleUpCMUnreadyHotCpuScaleWouldScaleDown", 3, [50000, 15000, 30000], 15000,
     [False, True, False], [HOT, COOL, HOT], 7),
    ("TestReplicaCalcScaleUpCMExternal", 1, [8600], 4400, None, None, 2),  # a pod metric despite its name
    ("TestReplicaCalcScaleDownCM", 5, [12000] * 5, 20000, None, None, 3),
    ("TestReplicaCalcToleranceCM", 3, [20000, 21000, 21000], 20000, None, None, 3),
    ("TestPlainMetricReplicaCalcMissingMetricsNoChangeEq", 5, [20000, 19000, 21000], 20000, None, None, 5),
]


@pytest.mark.parametrize("name, current, levels, target, readiness, starts, expected", POD_METRIC_CASES,
                         ids=[c[0] for c in POD_METRIC_CASES])
def test_replica_calculator_pods_metric(name, current, levels, target, readiness, starts, expected):
    metrics = {f"test-pod-{i}": PodMetric(v) for i, v in enumerate(levels)}
    got = pod_metric_replicas(current, MetricSpec(PODS, AVERAGE_VALUE, target), qps_pods(current, readiness, starts),
                              metrics, now=NOW, readiness=CALC_READINESS)
    assert got == expected, name


OBJECT_CASES = [
    # (upstream test, source, target type, current, value, target, readiness, expected)
    ("TestReplicaCalcScaleUpCMObject", OBJECT, VALUE, 3, 20000, 15000, None, 4),
    ("TestReplicaCalcScaleUpCMPerPodObject", OBJECT, AVERAGE_VALUE, 3, 20000, 5000, None, 4),
    ("TestReplicaCalcScaleUpCMObjectIgnoresUnreadyPods", OBJECT, VALUE, 3, 50000, 10000, [False, True, False], 5),
    ("TestReplicaCalcScaleDownCMObject", OBJECT, VALUE, 5, 12000, 20000, None, 3),
    ("TestReplicaCalcScaleDownPerPodCMObject", OBJECT, AVERAGE_VALUE, 5, 6000, 2000, None, 3),
    ("TestReplicaCalcToleranceCMObject", OBJECT, VALUE, 3, 20666, 20000, None, 3),
    ("TestReplicaCalcTolerancePerPodCMObject", OBJECT, AVERAGE_VALUE, 4, 20166, 5000, None, 4),
    ("TestReplicaCalcScaleUpCMExternalIgnoresUnreadyPods", EXTERNAL, VALUE, 3, 8600, 4400, [False, True, False], 2),
    ("TestReplicaCalcScaleUpPerPodCMExternal", EXTERNAL, AVERAGE_VALUE, 3, 8600, 2150, None, 4),
    ("TestReplicaCalcScaleDownCMExternal", EXTERNAL, VALUE, 5, 8600, 14334, None, 3),
    ("TestReplicaCalcScaleDownPerPodCMExternal", EXTERNAL, AVERAGE_VALUE, 5, 8600, 2867, None, 3),
    ("TestReplicaCalcToleranceCMExternal", EXTERNAL, VALUE, 3, 8600, 8888, None, 3),
    ("TestReplicaCalcTolerancePerPodCMExternal", EXTERNAL, AVERAGE_VALUE, 3, 8600, 2900, None, 3),
]


@pytest.mark.parametrize("name, source, kind, current, value, target, readiness, expected", OBJECT_CASES,
                         ids=[c[0] for c in OBJECT_CASES])
def test_replica_calculator_object_and_external(name, source, kind, current, value, target, readiness, expected):
    got = object_metric_replicas(current, current, MetricSpec(source, kind, target), (value,),
                                 qps_pods(current, readiness))
    assert got == expected, name


@pytest.mark.skip(reason="container resource metrics (one container's usage, `container: container2`) are not "
                         "modelled: the simulator's metrics are per pod")
def test_replica_calculator_container_metrics():
    """TestReplicaCalcContainerScaleUp, TestReplicaCalcScaleUpContainerHotCpuLessScale,
    TestReplicaCalcMissingContainerMetricScaleUpIgnoresFailedPods, TestReplicaCalcScaleUpContainerIgnoresFailedPods,
    TestReplicaCalcScaleUpContainerIgnoresDeletionPods, TestReplicaCalcContainerScaleDown,
    TestReplicaCalcScaleDownContainerExcludeUnreadyPods, TestReplicaCalcScaleDownContainerExcludeUnscheduledPods,
    TestReplicaCalcScaleDownContainerIgnoreHotCpuPods, TestReplicaCalcScaleDownContainerIgnoresFailedPods,
    TestReplicaCalcScaleDownIgnoresDeletionPods_StillRunning."""


def test_tolerance_edges_are_no_change_in_each_direction():
    """replica_calculator.go Tolerances.isWithin: the band is inclusive, and each direction has its own width."""
    pods = qps_pods(10)
    spec = MetricSpec(PODS, AVERAGE_VALUE, 100_000)

    def at(value, tolerances=Tolerances()):
        return pod_metric_replicas(10, spec, pods, {p.name: PodMetric(value) for p in pods}, tolerances)

    assert at(110_000) == 10 and at(90_000) == 10, "exactly 1.1 and 0.9 are inside the default band"
    assert at(110_001) == 12 and at(89_999) == 9
    narrow_up = Tolerances(scale_down=0.1, scale_up=0.05)
    assert at(106_000, narrow_up) == 11 and at(91_000, narrow_up) == 10


# --- horizontal.go: behavior rate limits (TestScalingWithRules) ---------------------------------------------------
def rules(pods, pods_period, percent, percent_period, window):
    """upstream's generateScalingRules: a Pods policy and a Percent policy where non-zero, selectPolicy Max."""
    policies = []
    if pods:
        policies.append(ScalingPolicy("Pods", pods, pods_period))
    if percent:
        policies.append(ScalingPolicy("Percent", percent, percent_period))
    return ScalingRules(window, tuple(policies), "Max")


def spread(changes, period):
    """upstream's generateEventsUniformDistribution: events centred in equal segments of the last `period` s."""
    segment = period / len(changes)
    return [(-(period - segment * (i + 1) + segment / 2), c) for i, c in enumerate(changes)]


SCALING_WITH_RULES = [
    # (name, up events, down events, min, max, up rules, down rules, current, prenormalized, expected, condition)
    ("prenormalized desired replicas within range", [], [], 3, 8, None, None, 5, 7, 7, "DesiredWithinRange"),
    ("prenormalized desired replicas < minReplicas", [], [], 2, 8, None, None, 3, 1, 2, "TooFewReplicas"),
    ("prenormalized desired replicas within range when minReplicas is 0", [], [], 0, 10, None, None, 1, 0, 0,
     "DesiredWithinRange"),
    ("maxReplicas is the limit because maxReplicas < scaleUpLimit", [], [], 1, 10, None, None, 20, 1000, 10,
     "TooManyReplicas"),
    ("desired replica count is more than the maximum replica count", [], [], 100, 150, None, None, 100, 1000, 150,
     "TooManyReplicas"),
    ("scaleUpLimit is the limit because scaleUpLimit < maxReplicas with user policies", [], [], 1, 2000,
     rules(0, 0, 1, 60, 0), None, 3, 1000, 4, "ScaleUpLimit"),
    ("scaleUp with default behavior", [], [], 1, 1000, None, None, 10, 50, 20, "ScaleUpLimit"),
    ("scaleUp with pods policy larger than percent policy", [], [], 1, 1000, rules(100, 60, 100, 60, 0), None,
     10, 500, 110, "ScaleUpLimit"),
    ("scaleUp with percent policy larger than pods policy", [], [], 1, 1000, rules(2, 60, 100, 60, 0), None,
     10, 500, 20, "ScaleUpLimit"),
    ("scaleUp with spec MaxReplicas limitation with large pod policy", [], [], 1, 1000, rules(100, 60, 0, 0, 0),
     None, 10, 50, 50, "DesiredWithinRange"),
    ("scaleUp with spec MaxReplicas limitation with large percent policy", [], [], 1, 1000,
     rules(10000, 60, 0, 0, 0), None, 10, 50, 50, "DesiredWithinRange"),
    ("scaleUp with pod policy limitation", [], [], 1, 1000, rules(30, 60, 0, 0, 0), None, 10, 50, 40,
     "ScaleUpLimit"),
    ("scaleUp with percent policy limitation", [], [], 1, 1000, rules(0, 0, 200, 60, 0), None, 10, 50, 30,
     "ScaleUpLimit"),
    ("scaleDown with percent policy larger than pod policy", [], [], 1, 1000, None, rules(20, 60, 1, 60, 300),
     100, 2, 80, "ScaleDownLimit"),
    ("scaleDown with pod policy larger than percent policy", [], [], 1, 1000, None, rules(2, 60, 1, 60, 300),
     100, 2, 98, "ScaleDownLimit"),
    ("scaleDown with spec MinReplicas=nil limitation with large pod policy", [], [], 1, 1000, None,
     rules(100, 60, 0, 0, 300), 10, 0, 1, "TooFewReplicas"),
    ("scaleDown with spec MinReplicas limitation with large percent policy", [], [], 5, 1000, None,
     rules(0, 0, 100, 60, 300), 10, 2, 5, "TooFewReplicas"),
    ("scaleDown with pod policy limitation", [], [], 1, 1000, None, rules(5, 60, 0, 0, 300), 10, 2, 5,
     "ScaleDownLimit"),
    ("scaleDown with percent policy limitation", [], [], 1, 1000, None, rules(0, 0, 50, 60, 300), 10, 5, 5,
     "DesiredWithinRange"),
    ("scaleUp with spec MaxReplicas limitation with large pod policy and events", spread([1, 5, 9], 120), [], 1, 200,
     rules(300, 60, 0, 0, 0), None, 100, 500, 200, "TooManyReplicas"),
    ("scaleUp with spec MaxReplicas limitation with large percent policy and events", spread([1, 5, 9], 120), [],
     1, 200, rules(0, 0, 10000, 60, 0), None, 100, 500, 200, "TooManyReplicas"),
    ("scaleUp with currentReplicas limitation with rate.PeriodSeconds with a lot of recent scale up events",
     spread([1, 5, 9], 120), [], 1, 1000, rules(5, 120, 0, 0, 0), None, 100, 500, 100, "ScaleUpLimit"),
    ("scaleUp with pod policy and previous scale up events", spread([1, 5, 9], 120), [], 1, 1000,
     rules(150, 120, 0, 0, 0), None, 100, 500, 235, "ScaleUpLimit"),
    ("scaleUp with percent policy and previous scale up events", spread([1, 5, 9], 120), [], 1, 1000,
     rules(0, 0, 200, 120, 0), None, 100, 500, 255, "ScaleUpLimit"),
    ("scaleUp with percent policy and previous scale up and down events", spread([4], 120), spread([2], 120), 1,
     1000, rules(0, 0, 300, 300, 0), None, 6, 24, 16, "ScaleUpLimit"),
    ("scaleDown with default policy and previous events", [], spread([1, 5, 9], 120), 1, 1000, None, None, 10, 5, 5,
     "DesiredWithinRange"),
    ("scaleDown with spec MinReplicas=nil limitation with large pod policy and previous events", [],
     spread([1, 5, 9], 120), 1, 1000, None, rules(115, 120, 0, 0, 300), 100, 0, 1, "TooFewReplicas"),
    ("scaleDown with spec MinReplicas limitation with large pod policy and previous events", [],
     spread([1, 5, 9], 120), 5, 1000, None, rules(130, 120, 0, 0, 300), 100, 0, 5, "TooFewReplicas"),
    ("scaleDown with spec MinReplicas limitation with large percent policy and previous events", [],
     spread([1, 5, 9], 120), 5, 1000, None, rules(0, 0, 100, 120, 300), 100, 2, 5, "TooFewReplicas"),
    ("scaleDown with pod policy limitation and previous events", [], spread([1, 5, 9], 120), 1, 1000, None,
     rules(5, 120, 0, 0, 300), 100, 2, 100, "ScaleDownLimit"),
    ("scaleDown with percent policy limitation and previous events", [], spread([2, 4, 6], 120), 1, 1000, None,
     rules(0, 0, 50, 120, 300), 100, 0, 56, "ScaleDownLimit"),
    ("scaleDown with percent policy and previous scale up and down events", spread([2], 120), spread([4], 120), 1,
     1000, None, rules(0, 0, 50, 180, 0), 10, 1, 6, "ScaleDownLimit"),
    ("scaleDown with previous events preventing further scale down", [], spread([10, 10, 10], 120), 1, 1000, None,
     rules(0, 0, 10, 120, 300), 100, 0, 100, "ScaleDownLimit"),
    ("scaleDown with with previous events still allowing more scale down", [], spread([10, 10, 10], 120), 1, 1000,
     None, rules(0, 0, 1000, 120, 300), 10, 5, 5, "DesiredWithinRange"),
    ("check 'outdated' flag for events for one behavior for up", spread([8, 12, 9, 11], 120), [], 1, 1000,
     rules(1000, 60, 0, 0, 0), None, 100, 200, 200, "DesiredWithinRange"),
    ("check that events were not marked 'outdated' for two different policies in the behavior for up",
     spread([8, 12, 9, 11], 120), [], 1, 1000, rules(1000, 120, 100, 60, 0), None, 100, 200, 200,
     "DesiredWithinRange"),
    ("check that events were marked 'outdated' for two different policies in the behavior for up",
     spread([8, 12, 9, 11], 120), [], 1, 1000, rules(1000, 30, 100, 60, 0), None, 100, 200, 200,
     "DesiredWithinRange"),
    ("check 'outdated' flag for events for one behavior for down", [], spread([8, 12, 9, 11], 120), 1, 1000, None,
     rules(1000, 60, 0, 0, 300), 100, 5, 5, "DesiredWithinRange"),
    ("check that events were not marked 'outdated' for two different policies in the behavior for down", [],
     spread([8, 12, 9, 11], 120), 1, 1000, None, rules(1000, 120, 100, 60, 300), 100, 5, 5, "DesiredWithinRange"),
    ("check that events were marked 'outdated' for two different policies in the behavior for down", [],
     spread([8, 12, 9, 11], 120), 1, 1000, None, rules(1000, 30, 100, 60, 300), 100, 5, 5, "DesiredWithinRange"),
]


@pytest.mark.parametrize("name, up_events, down_events, lo, hi, up, down, current, desired, expected, condition",
                         SCALING_WITH_RULES, ids=[c[0] for c in SCALING_WITH_RULES])
def test_scaling_with_rules(name, up_events, down_events, lo, hi, up, down, current, desired, expected, condition):
    """TestScalingWithRules: convertDesiredReplicasWithBehaviorRate with the given history."""
    hpa = HorizontalController(lo, hi, (), behavior=Behavior(up or ScalingRules(), down or ScalingRules()))
    for at, change in sorted(up_events):
        hpa.record_scale(at, 0, change)
    for at, change in sorted(down_events):
        hpa.record_scale(at, change, 0)
    got = hpa.limit_rate(0.0, current, desired)
    assert (got.replicas, got.condition) == (expected, condition), name


# --- horizontal.go: stabilization ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name, history, desired, expected", [
    ("empty log", [], 5, 5),
    ("stabilize", [(4, -120), (5, -60)], 3, 5),
    ("no stabilize", [(1, -120), (2, -60)], 3, 3),
    ("no stabilize - old recommendations", [(10, -600), (9, -540)], 3, 3),
    ("stabilize - old recommendations", [(10, -600), (4, -60), (5, -120), (9, -540)], 3, 5),
])
def test_normalize_desired_replicas(name, history, desired, expected):
    """TestNormalizeDesiredReplicas: without behavior, the highest recommendation of the last 5 minutes."""
    hpa = HorizontalController(1, 100, ())
    for replicas, at in history:
        hpa.record_recommendation(at, replicas)
    assert hpa.stabilize(0.0, 100, desired) == expected, name


@pytest.mark.parametrize("name, history, current, desired, expected, up_window, down_window", [
    ("empty recommendations for scaling down", [], 100, 5, 5, 0, 0),
    ("simple scale down stabilization", [(4, -120), (5, -60)], 100, 3, 5, 0, 180),
    ("simple scale up stabilization", [(4, -120), (5, -60)], 1, 7, 4, 300, 0),
    ("no scale down stabilization", [(1, -120), (2, -60)], 100, 3, 3, 300, 0),
    ("no scale up stabilization", [(4, -120), (5, -60)], 1, 3, 3, 0, 300),
    ("no scale down stabilization, reuse recommendation element", [(10, -600), (9, -540)], 100, 3, 3, 0, 0),
    ("no scale up stabilization, reuse recommendation element", [(10, -600), (9, -540)], 1, 100, 100, 0, 0),
    ("scale down stabilization, reuse one of obsolete recommendation element",
     [(10, -600), (4, -60), (5, -120), (9, -540)], 100, 3, 5, 0, 180),
    ("scale up stabilization, reuse one of obsolete recommendation element",
     [(10, -6000), (6, -60), (5, -120), (9, -180)], 1, 100, 5, 300, 0),
    ("scale up and down stabilization, do not scale up when prenormalized rec goes down", [(2, -6000), (3, -180)],
     2, 1, 2, 300, 300),
    ("scale up and down stabilization, do not scale down when prenormalized rec goes up", [(2, -6000), (1, -180)],
     2, 3, 2, 300, 300),
])
def test_normalize_desired_replicas_with_behavior(name, history, current, desired, expected, up_window,
                                                   down_window):
    """TestNormalizeDesiredReplicasWithBehavior: the current count brought within [lowest of the scale-up window,
    highest of the scale-down window]."""
    hpa = HorizontalController(1, 1000, (), behavior=Behavior(ScalingRules(up_window), ScalingRules(down_window)))
    for replicas, at in history:
        hpa.record_recommendation(at, replicas)
    assert hpa.stabilize(0.0, current, desired) == expected, name


def test_scale_up_limit_without_behavior_is_twice_current_or_four():
    """horizontal.go calculateScaleUpLimit (TestScalingWithRules's "maxReplicas is the limit..." case runs with the
    test file's factor of 8; the controller's is 2)."""
    hpa = HorizontalController(1, 1000, ())
    assert hpa.limit_rate(0, 1, 50).replicas == 4 and hpa.limit_rate(0, 3, 50).replicas == 6
    assert hpa.limit_rate(0, 10, 50).replicas == 20 and hpa.limit_rate(0, 10, 50).condition == "ScaleUpLimit"


# --- horizontal.go: several metrics in one sync --------------------------------------------------------------------
def cpu_and_external(levels):
    pods = cpu_pods([1] * len(levels))
    pods = [Pod(p.name, cpu_request=1000) for p in pods]
    metrics = {p.name: PodMetric(level) for p, level in zip(pods, levels)}
    return pods, metrics


@pytest.mark.parametrize("name, spec_replicas, target, levels, expected", [
    # One metric fails: a scale-up on the others goes ahead, a scale-down does not.
    ("TestScaleUpOneMetricEmpty", 3, 30, [300, 400, 500], 4),
    ("TestNoScaleDownOneMetricEmpty", 5, 50, [100, 300, 500, 250, 250], 5),
    ("TestNoScaleDownOneMetricInvalid", 5, 50, [100, 300, 500, 250, 250], 5),
])
def test_one_metric_failing(name, spec_replicas, target, levels, expected):
    pods, metrics = cpu_and_external(levels)
    hpa = HorizontalController(2, 6, (MetricSpec(RESOURCE, UTILIZATION, target), MetricSpec(EXTERNAL, VALUE, 100)))
    assert hpa.sync(NOW, spec_replicas, spec_replicas, pods, (metrics, None)) == expected, name


def test_the_largest_proposal_wins():
    """computeReplicasForMetrics: with several metrics the HPA takes the largest proposal."""
    pods, metrics = cpu_and_external([300, 300, 300])
    hpa = HorizontalController(1, 20, (MetricSpec(RESOURCE, UTILIZATION, 30), MetricSpec(EXTERNAL, VALUE, 1000)))
    readings = (metrics, (5000,))
    assert hpa.proposal(NOW, 3, 3, pods, readings) == 15, "CPU on target (3); the external metric at 5x: 5 x 3 pods"
    assert hpa.sync(NOW, 3, 3, pods, readings) == 6, "then capped at max(2 x 3, 4) without behavior"
