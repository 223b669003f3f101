"""Closed-form cases: steady states, the HPA's formula, KPA's panic thresholds, the source articles' 150P."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sim_support import config, group, workload

from gpuscale.sim.engine import Engine
from gpuscale.sim.kubernetes import HPA_DEFAULT_UP, HpaPolicy, HpaRules, HpaScaler, KpaScaler, KpaSettings, hpa_replicas
from gpuscale.sim.presets import HPA_EXAMPLE_DOWN, HPA_EXAMPLE_UP, PRESETS
from gpuscale.sim.results import simulate_group
from gpuscale.sim.service import service_model
from gpuscale.sim.traces import Trace, burst

CONCURRENCY, SERVICE = 4, 20
STEADY = workload(concurrencyPerReplica=CONCURRENCY, serviceTime={"meanSeconds": SERVICE, "distribution": "fixed"},
                  coldStart={"nodeProvisioningSeconds": 30, "imagePullSeconds": 20, "modelLoadSeconds": 10})


def constant(rate: float, seconds: int) -> Trace:
    return Trace("constant", np.full(seconds, rate), f"{rate} requests/s")


def settle(preset: str, rate: float, **group_keys) -> int:
    """Replicas the preset holds at the end of three hours of constant load."""
    cfg = config(group(workload=STEADY, maxSize=40, **group_keys))
    sim = simulate_group(cfg.auto_scaling_groups[0], cfg.agent, constant(rate, 3 * 3600), [preset],
                         duration=3 * 3600)
    ready = sim.runs[preset].ready_replicas
    assert ready[-1200:].min() == ready[-1200:].max(), f"{preset} still moving in the last 20 minutes"
    return int(ready[-1])


# Load in replicas-worth of busy slots: requests/s x service time / concurrency (Little's law). 4.5 replicas busy.
RATE = 4.5 * CONCURRENCY / SERVICE
SCALING = {"target": {"gpuUtilization": 75, "periodSeconds": 10}, "scaleInProtection": True}


@pytest.mark.parametrize("preset, per_replica_target", [
    ("ideal", 1.0),  # exactly the slots outstanding work needs
    ("stack", 0.75),  # target tracking on 75% GPU utilisation
    ("hpa-example", 0.75),  # the HPA on 75% GPU utilisation
    ("coreweave-kpa", 0.9),  # KPA: container concurrency x 90% target utilisation
    ("hf-like", 0.8),  # the hosted platform's 80% utilisation threshold
])
def test_constant_load_settles_at_load_over_per_replica_target(preset, per_replica_target):
    expected = math.ceil(4.5 / per_replica_target - 1e-9)
    got = settle(preset, RATE, minSize=1, scaling=SCALING)
    assert got == expected, f"{preset}: {got} replicas for 4.5 busy at a {per_replica_target:.0%} target"


def test_kpa_default_target_utilisation_is_seventy_percent():
    cfg = config(group(workload=STEADY, maxSize=40))
    svc = service_model(cfg.auto_scaling_groups[0].workload)
    from gpuscale.sim.fleet import PodCluster

    cluster = PodCluster(svc, 0, 40, 0, 40)
    run = Engine(svc, cluster, KpaScaler(CONCURRENCY, 0, 40), np.full(3600, RATE), 3600).run()
    assert run.ready_replicas[-1] == math.ceil(4.5 / 0.7), "KPA defaults: target 70% of container concurrency"


@pytest.mark.parametrize("current, ready, metric, target, expected", [
    (2, 2, 200, 100, 4),  # the docs' example: twice the target doubles the replicas
    (4, 4, 50, 100, 2),  # half the target halves them
    (10, 10, 109, 100, 10),  # within the 10% tolerance: no change
    (10, 10, 111, 100, 12),  # just outside it: ceil(10 x 1.11)
    (4, 2, 200, 100, 4),  # two pods starting count as 0% on a scale-up: (400 + 0) / 400 is on target
    (3, 2, 300, 100, 6),  # one starting pod: (600 + 0) / 300 = 2x
    (4, 2, 20, 100, 3),  # on a scale-down starting pods count as on target: (40 + 200) / 400 = 0.6
])
def test_hpa_formula_from_the_kubernetes_docs(current, ready, metric, target, expected):
    assert hpa_replicas(current, ready, metric, target) == expected


def test_hpa_scale_down_stabilization_keeps_the_highest_recommendation_for_300_s():
    hpa = HpaScaler(75, 1, 20)
    assert hpa._stabilize(0, 10, 10) == 10
    assert hpa._stabilize(15, 4, 10) == 10, "a lower recommendation inside the window is held off"
    assert hpa._stabilize(285, 4, 10) == 10, "the 10 at t=0 is still inside the 300 s window"
    assert hpa._stabilize(300, 4, 10) == 4, "once it leaves the window the decrease goes through"


def test_hpa_behavior_policies_limit_each_period():
    example = HpaScaler(75, 1, 20, scale_up=HPA_EXAMPLE_UP, scale_down=HPA_EXAMPLE_DOWN)
    assert example._limit(0, 4, 20) == 6, "up by max(50%, 2 pods) per 30 s: max(6, 6)"
    assert example._limit(0, 10, 20) == 15, "50% of 10 beats 2 pods"
    example._events.append((0, 5))
    assert example._limit(20, 15, 30) == 15, "the 5 added 20 s ago used this period's 50% of 10"
    assert example._limit(0, 6, 1) == 5, "down by one pod per 60 s"
    default = HpaScaler(75, 1, 100, scale_up=HPA_DEFAULT_UP)
    assert default._limit(0, 2, 50) == 6, "default: max(100%, 4 pods) per 15 s"
    assert HpaRules(0, (HpaPolicy("Pods", 1, 60),), "Min").select == "Min"


def test_kpa_enters_panic_at_200_percent_and_leaves_after_a_stable_window():
    kpa = KpaScaler(10, 0, 100)  # target 7 concurrent requests per pod (70% of 10)
    assert kpa.decide(0, 2, 14, 21.0) == 2 and not kpa.in_panic, "3 pods wanted of 2 ready: 150%, no panic"
    assert kpa.decide(2, 2, 14, 21.1) == 4 and kpa.in_panic, "4 pods wanted of 2 ready: 200% enters panic"
    assert kpa.decide(4, 4, 1, 1) == 4 and kpa.in_panic, "in panic the KPA never scales down"
    assert kpa.decide(61, 4, 1, 1) == 4 and kpa.in_panic, "59 s after the last panic tick: still panicking"
    assert kpa.decide(62, 4, 1, 1) == 2 and not kpa.in_panic, "60 s (the stable window) later it leaves panic, " \
                                                               "and scales down at most by half (rate 2)"


def test_kpa_scale_rates():
    kpa = KpaScaler(10, 0, 1000, KpaSettings(max_scale_up_rate=1.5, max_scale_down_rate=1.01))
    assert kpa.decide(0, 10, 700, 0) == 15, "1.5x the ready pods at most"
    assert kpa.decide(2, 0, 700, 0) == 2, "from zero the KPA counts one ready pod: ceil(1.5)"
    assert kpa.decide(4, 10, 0, 0) == 9, "1.01: at most 1% or one pod down"


def test_150p_static_25_replicas_over_6_steps():
    """The cost article's scenario 1: 25 pods at all times, 100 requests, six steps of P each."""
    cfg = config(group(maxSize=25))
    sim = simulate_group(cfg.auto_scaling_groups[0], cfg.agent, burst(), ["static", "ideal"], duration=6 * 60,
                         step_seconds=60)
    static, ideal = sim.results
    assert static.cost_p == pytest.approx(150), "25 replicas x 6 steps"
    assert static.completion == 4 * 60, "100 requests on 25 replicas, one step each: 4 steps"
    assert static.latency_p50 == 2 * 60 and static.latency_p99 == 4 * 60, "a quarter of them per step"
    # The article's optimal case pays only for the compute the 100 requests use: 100 replica-steps.
    assert ideal.cost_p == pytest.approx(100)
    assert ideal.completion == 4 * 60


def test_ideal_finishes_a_burst_after_one_cold_start_and_the_rounds_it_needs():
    cold = {"nodeProvisioningSeconds": 90, "imagePullSeconds": 60, "modelLoadSeconds": 30}
    cfg = config(group(maxSize=5, workload=workload(concurrencyPerReplica=4, coldStart=cold)))
    sim = simulate_group(cfg.auto_scaling_groups[0], cfg.agent, burst(), ["ideal"])
    # 100 requests on 5 instances x 4 slots: 5 rounds of 60 s after a 180 s cold start.
    assert sim.results[0].completion == 180 + 5 * 60
    assert sim.results[0].time_to_capacity == 180
    assert sim.results[0].cost_p == pytest.approx(5 * (180 + 5 * 60) / 60)


def test_every_preset_is_named_with_a_source():
    assert set(PRESETS) == {"static", "hf-like", "coreweave-kpa", "hpa-example", "stack", "ideal"}
    assert all(p.source for p in PRESETS.values())
