"""The burst scenario on the stacks: the ideal bounds every preset, and the stacks' settings beat the others."""

from __future__ import annotations

import pytest
from sim_support import stack

from gpuscale.sim.presets import PRESETS
from gpuscale.sim.results import simulate_group
from gpuscale.sim.traces import burst


def compare(name: str, group: str, proposed: bool = True) -> dict:
    cfg = stack(name, proposed)
    g = next(g for g in cfg.auto_scaling_groups if g.name == group)
    sim = simulate_group(g, cfg.agent, burst(), list(PRESETS))
    return {r.preset: r for r in sim.results}


# The groups whose settings this simulator's measurements tuned (tests/sim/sim_support.py, PROPOSED).
TUNED = [("dev", "infer"), ("prod", "infer-l40s")]


@pytest.mark.parametrize("name, group", TUNED)
def test_stack_beats_hf_like_and_hpa_example_on_cost_and_completion(name, group):
    r = compare(name, group)
    stack_ = r["stack"]
    assert stack_.completion is not None and stack_.timed_out == 0, "the stack serves every request"
    for other in ("hf-like", "hpa-example"):
        assert stack_.cost < r[other].cost, f"{name}/{group}: stack {stack_.cost:.3f}, {other} {r[other].cost:.3f}"
        done = r[other].completion
        assert done is None or stack_.completion < done, f"{name}/{group}: {other} finishes first"


@pytest.mark.parametrize("name, group", TUNED)
def test_stack_within_1_1x_ideal_cost_and_1_25x_its_completion(name, group):
    r = compare(name, group)
    assert r["stack"].cost_vs_ideal <= 1.1, f"{name}/{group}: {r['stack'].cost_vs_ideal:.3f}x the ideal's cost"
    assert r["stack"].completion_vs_ideal <= 1.25, f"{name}/{group}: {r['stack'].completion_vs_ideal:.3f}x"


@pytest.mark.parametrize("name", ["dev", "prod"])
def test_ideal_bounds_completion_and_time_to_capacity(name):
    cfg = stack(name)
    for g in cfg.auto_scaling_groups:
        sim = simulate_group(g, cfg.agent, burst(), [p for p in PRESETS if p != "static"])
        r = {x.preset: x for x in sim.results}
        ideal = r.pop("ideal")
        assert ideal.completion is not None and ideal.timed_out == 0
        for preset, other in r.items():
            if other.completion is not None:
                assert ideal.completion <= other.completion, f"{g.name}: {preset} finished before the ideal"
            if other.time_to_capacity is not None:
                assert ideal.time_to_capacity <= other.time_to_capacity, f"{g.name}: {preset} had capacity first"
