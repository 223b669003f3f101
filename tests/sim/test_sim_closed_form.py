"""Closed-form cases: steady states, the HPA's formula, KPA's panic thresholds, the source articles' 150P."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sim_support import config, group, workload

from gpuscale.sim.cluster_autoscaler import ca_settings
from gpuscale.sim.engine import Engine
from gpuscale.sim.hpa import AVERAGE_VALUE, PODS, MetricSpec, Pod, PodMetric, pod_metric_replicas
from gpuscale.sim.knative import KpaScaler
from gpuscale.sim.pods import PodCluster
from gpuscale.sim.presets import PRESETS
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
    # 4.4 replicas busy, not 4.5: at 4.5 the HPA's seventh pod reads 64.286 % (milli-units, rounded up) and its
    # proposal ceil(7 x 0.857146) stays 7, where exact arithmetic gives 6; upstream's HPA behaves the same.
    busy = 4.4
    expected = math.ceil(busy / per_replica_target - 1e-9)
    got = settle(preset, busy * CONCURRENCY / SERVICE, minSize=1, scaling=SCALING)
    assert got == expected, f"{preset}: {got} replicas for {busy} busy at a {per_replica_target:.0%} target"


def test_kpa_default_target_utilisation_is_seventy_percent():
    cfg = config(group(workload=STEADY, maxSize=40))
    svc = service_model(cfg.auto_scaling_groups[0].workload)
    cluster = PodCluster(svc, 0, 40, 0, 40, ca_settings(cfg.kubernetes.cluster_autoscaler))
    run = Engine(svc, cluster, KpaScaler(CONCURRENCY, 0, 40), np.full(3600, RATE), 3600).run()
    assert run.ready_replicas[-1] == math.ceil(4.5 / 0.7), "KPA defaults: target 70% of container concurrency"


@pytest.mark.parametrize("current, ready, metric, target, expected", [
    (2, 2, 200, 100, 4),  # the docs' example: twice the target doubles the replicas
    (4, 4, 50, 100, 2),  # half the target halves them
    (10, 10, 109, 100, 10),  # within the 10% tolerance: no change
    (10, 10, 111, 100, 12),  # just outside it: ceil(10 x 1.11)
    (4, 2, 200, 100, 4),  # two pods without a metric count as 0 on a scale-up: (400 + 0) / 400 is on target
    (3, 2, 300, 100, 6),  # one without a metric: (600 + 0) / 300 = 2x
    (4, 2, 20, 100, 3),  # on a scale-down they count as on target: (40 + 200) / 400 = 0.6
])
def test_hpa_formula_from_the_kubernetes_docs(current, ready, metric, target, expected):
    pods = [Pod(f"p{i}") for i in range(current)]
    metrics = {f"p{i}": PodMetric(metric * 1000) for i in range(ready)}
    assert pod_metric_replicas(current, MetricSpec(PODS, AVERAGE_VALUE, target * 1000), pods, metrics) == expected


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
    assert set(PRESETS) == {"static", "hf-like", "coreweave-kpa", "hpa-example", "keda-queue", "stack", "ideal"}
    assert all(p.source for p in PRESETS.values())
