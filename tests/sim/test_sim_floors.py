"""A group's minSize is the same for every preset: presets differ in scaling decisions only, and a burst arrives
onto the floor, idle and warm, not onto a cold start."""

from __future__ import annotations

import pytest
from sim_support import config, group, stack, workload

from gpuscale.sim.presets import PRESETS
from gpuscale.sim.results import group_service, simulate_group
from gpuscale.sim.traces import BURST_REQUESTS, burst

POOLED = [p for p in PRESETS if p != "static"]
# 60 s per request, one request per replica, a 300 s cold start: anything the floor cannot take waits minutes.
SLOW_START = workload(coldStart={"nodeProvisioningSeconds": 100, "imagePullSeconds": 100, "modelLoadSeconds": 100})


def run(floor: int, presets=POOLED, trace=None):
    cfg = config(group(minSize=floor, maxSize=10, workload=SLOW_START,
                       scaling={"target": {"gpuUtilization": 70}} if floor else
                       {"target": {"gpuUtilization": 70},
                        "scaleToZero": {"idleMinutes": 5, "wake": {"kind": "sqs", "queueName": "q"}}}))
    sim = simulate_group(cfg.auto_scaling_groups[0], cfg.agent, trace or burst(), list(presets))
    return sim, {r.preset: r for r in sim.results}


@pytest.mark.parametrize("floor", [1, 3])
def test_every_preset_serves_the_floor_at_once_and_never_goes_below_it(floor):
    sim, results = run(floor)
    for name, result in results.items():
        # The floor serves `floor` requests at second 0; only the rest wait.
        assert result.queued == pytest.approx(BURST_REQUESTS - floor), name
        assert result.refused == 0, f"{name}: a floor never answers 502"
        billed = sim.runs[name].billed_instances[:sim.window]
        assert billed.min() >= floor, f"{name} went below the group's minSize"


def test_without_a_floor_the_burst_still_lands_on_zero():
    sim, results = run(0)
    for name, result in results.items():
        assert result.queued == pytest.approx(BURST_REQUESTS), f"{name}: nothing serves at second 0"
        assert sim.runs[name].ready_replicas[0] == 0, name


def test_hosted_platform_does_not_read_the_first_second_of_a_burst_as_its_whole_window():
    # Its floor was idle for the three minutes before the burst, so its first scale-up decision at second 0 sees a
    # mean of 1/180 of full load; the next decision (second 180) sees the burst.
    sim, _ = run(1, presets=["hf-like"])
    billed = sim.runs["hf-like"].billed_instances
    assert billed[:180].max() == 1 and billed[180] > 1


def test_prod_inference_group_is_latency_safe_on_a_burst():
    cfg = stack("prod")
    g = next(g for g in cfg.auto_scaling_groups if g.name == "infer-l40s")
    sim = simulate_group(g, cfg.agent, burst(), ["stack", "hf-like"])
    own = {r.preset: r for r in sim.results}["stack"]
    at_once = g.min_size * group_service(g).slots_per_instance
    assert own.queued == pytest.approx(BURST_REQUESTS - at_once), "the floor's slots serve at second 0"
    assert own.refused == 0 and own.timed_out == 0
    # Capacity on top of the floor comes from the warm pool: before a cold start (270 s) could have delivered it.
    assert own.time_to_capacity < g.workload.cold_start.cold_seconds
