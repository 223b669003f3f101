"""GPU headroom in the simulator: warm nodes a burst's first pods take at once (preemption), the preempted
placeholder's node re-added by the autoscaler, and the measured effect on prod's latency-safe service."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from gpuscale.config import load_stack_file
from gpuscale.config.headroom import HeadroomConfig
from gpuscale.sim.serving import first_new_pod_seconds, simulate_service
from gpuscale.sim.traces import burst

ROOT = Path(__file__).resolve().parents[2]


def chat(window: int | None = None):
    config = load_stack_file(ROOT, "prod")
    # One warm node on chat's group, as `gpuscale:headroom: [{nodeGroup: l4-ondemand, nodes: 1}]` would give.
    config = replace(config, headroom=(HeadroomConfig("l4-ondemand", 1),))
    svc = next(s for s in config.services if s.name == "chat")
    if window is not None:
        b = svc.scaling.behavior
        svc = replace(svc, scaling=replace(svc.scaling, behavior=replace(
            b, scale_up=replace(b.scale_up, stabilization_window_seconds=window))))
    return config, svc


def run(config, svc):
    sim = simulate_service(svc, config, burst(), ["stack", "ideal"])
    return sim.runs["stack"], {r.preset: r for r in sim.results}


def test_headroom_hides_node_provisioning_and_refills():
    config, svc = chat(window=0)
    cs = svc.workload.cold_start
    with_run, _ = run(config, svc)
    without_run, _ = run(replace(config, headroom=()), svc)
    hidden = first_new_pod_seconds(without_run) - first_new_pod_seconds(with_run)
    # The placeholder's node is up: no autoscaler buffer, no scan, no node, no device plugin.
    assert hidden >= cs.node_provisioning_seconds + cs.device_plugin_ready_seconds
    # The preempted placeholder made the autoscaler add a node for it: more nodes billed than the service used.
    assert with_run.billed_instances.max() > without_run.billed_instances.max()
    # Before the burst the headroom node is billed beside the group's floor.
    assert with_run.billed_instances[0] == without_run.billed_instances[0] + 1


def test_goal_on_prods_chat_is_not_met_and_why():
    """Issue 15's goal: first response after a burst within pod start + model load + 10 s, cost within 1.1x the
    ideal's. Measured: not met with headroom alone. The image pull stays (the placeholder pre-pulls nothing), and
    prod's 270 s scale-up window delays the decision far longer than any node; at one burst the warm node's cost
    is extra over an ideal that needs no new pod."""
    config, svc = chat()
    cs = svc.workload.cold_start
    goal = cs.model_load_seconds + 10
    stack_run, results = run(config, svc)
    assert first_new_pod_seconds(stack_run) is None, "the warm pod clears the 100-request burst inside the window"
    assert results["stack"].cost_vs_ideal > 1.1
    config, svc = chat(window=0)
    stack_run, results = run(config, svc)
    first = first_new_pod_seconds(stack_run)
    assert goal < first <= cs.image_pull_seconds + cs.model_load_seconds + 70  # + KEDA poll and metric window
    assert results["stack"].cost_vs_ideal > 1.1


def test_suggested_headroom_is_the_smallest_that_meets_the_target():
    from gpuscale.sim.serving import suggest_headroom

    config, svc = chat(window=0)
    config = replace(config, headroom=())
    s = suggest_headroom(svc, config, burst(), target_p95=235)
    assert s.nodes == 1 and [n for n, _, _ in s.tried] == [0, 1]
    assert s.tried[0][1] > 235 >= s.tried[1][1]
    assert s.cost_per_day == svc.workload.price_per_instance_hour * 24
    unreachable = suggest_headroom(svc, config, burst(), target_p95=1)
    assert unreachable.nodes is None and unreachable.cost_per_day is None


def test_cli_suggest_headroom_needs_a_service():
    from click.testing import CliRunner

    from gpuscale.sim.cli import simulate

    out = CliRunner().invoke(simulate, ["--stack", "prod", "--suggest-headroom", "--project-dir", str(ROOT)])
    assert out.exit_code == 2 and "--suggest-headroom: name the service with --service" in out.output
    out = CliRunner().invoke(simulate, ["--stack", "prod", "--service", "chat", "--suggest-headroom",
                                        "--target-p95", "200", "--project-dir", str(ROOT)])
    assert out.exit_code == 0 and "no headroom the group's maxSize allows meets the target" in out.output
