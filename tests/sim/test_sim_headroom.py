"""GPU headroom in the simulator: warm nodes a burst's first pods take at once (preemption), the preempted
placeholder's node re-added by the autoscaler, and the measured effect on prod's latency-safe service."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from prod_headroom import prod_with_chat_headroom, prod_with_knative_chat
from gpuscale.config.headroom import HeadroomConfig
from gpuscale.sim.serving import first_new_pod_seconds, simulate_service
from gpuscale.sim.traces import burst

ROOT = Path(__file__).resolve().parents[2]


def chat(window: int | None = None, period: int | None = None, prepull: bool = False):
    """prod and its chat service; one warm node on chat's group, without pre-pull unless `prepull` (prod's own
    entry, which pre-pulls the runtime image); `window`, `period`: chat's scale-up window and GPU metric period."""
    config = prod_with_chat_headroom()
    (own,) = config.headroom
    config = replace(config, headroom=(own if prepull else HeadroomConfig("l4-ondemand", 1),))
    svc = next(s for s in config.services if s.name == "chat")
    scaling = svc.scaling
    if window is not None:
        b = scaling.behavior
        scaling = replace(scaling, behavior=replace(b, scale_up=replace(b.scale_up,
                                                                        stabilization_window_seconds=window)))
    if period is not None:
        scaling = replace(scaling, gpu_utilization=replace(scaling.gpu_utilization, period_seconds=period))
    return config, replace(svc, scaling=scaling)


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


def test_prepulled_headroom_skips_the_image_pull():
    from gpuscale.config.services import ContainerConfig

    config, svc = chat(prepull=True)
    (own,) = config.headroom
    assert own.prepulls(svc)
    cs = svc.workload.cold_start
    pulled, _ = run(config, svc)
    bare, _ = run(*chat(prepull=False))
    assert first_new_pod_seconds(bare) - first_new_pod_seconds(pulled) == cs.image_pull_seconds
    # A custom container is covered only by its own image; the entry's images stand for KServe runtimes.
    custom = replace(svc, model=replace(svc.model, format=None, container=ContainerConfig("example/server:1.0", (),
                                                                                          8000)))
    assert not own.prepulls(custom)
    assert replace(own, prepull_images=("example/server:1.0",)).prepulls(custom)
    assert not replace(own, prepull_images=()).prepulls(svc)


def test_prepulled_headroom_appears_in_compare():
    config, svc = chat(prepull=True)
    sim = simulate_service(svc, config, burst(), ["stack", "ideal"], lever_rows=True)
    first = {name: first_new_pod_seconds(r) for name, r in sim.runs.items()}
    assert first["no headroom pre-pull"] - first["stack"] == svc.workload.cold_start.image_pull_seconds
    assert first["no headroom"] > first["no headroom pre-pull"]


def test_goal_is_not_met_with_keda_and_why():
    """Issue 15's goal: first response after a burst within pod start + model load + 10 s, cost within 1.1x the
    ideal's. Measured on prod (one warm node pre-pulling the image, scale-up window 0, 10 s metric period): the
    image pull and the node are hidden, but the pod autoscaler's own reaction (the agent's sample and flush, the
    metric period, the HPA's 15 s sync) exceeds the 10 s margin even at a 1 s period; and the warm node and its
    refill cost more than 1.1x an ideal that adds no pod for the burst."""
    config, svc = chat(prepull=True)
    cs = svc.workload.cold_start
    goal = cs.model_load_seconds + 10
    stack_run, results = run(config, svc)
    first = first_new_pod_seconds(stack_run)
    assert goal < first <= cs.model_load_seconds + 30
    assert results["stack"].cost_vs_ideal > 1.1
    fastest, _ = run(*chat(prepull=True, period=1))
    assert goal < first_new_pod_seconds(fastest) == cs.model_load_seconds + 15  # the HPA's 15 s sync
    # The old 270 s window (for cold nodes) would leave the burst to the warm pod and the warm node idle.
    held, held_results = run(*chat(prepull=True, window=270))
    assert first_new_pod_seconds(held) is None and held_results["stack"].cost_vs_ideal > 1.1


def test_goal_time_is_met_with_chat_on_knatives_autoscaler_and_the_cost_is_not():
    """The same warm node with chat in Knative mode on the KPA (preset coreweave-kpa; batch stays on KEDA in Standard
    mode): the KPA reads the requests themselves every 2 s, so the first new pod is ready a model load after the
    burst, within the goal. The cost stays above 1.1x the ideal: the warm node, and its refill after the burst
    preempts it, are capacity the ideal never holds."""
    config = prod_with_knative_chat()
    svc = next(s for s in config.services if s.name == "chat")
    assert svc.serving_mode == "knative" and next(s for s in config.services if s.name == "batch").serving_mode \
        == "standard"
    cs = svc.workload.cold_start
    sim = simulate_service(svc, config, burst(), ["stack", "ideal"], lever_rows=True)
    first = {name: first_new_pod_seconds(r) for name, r in sim.runs.items()}
    results = {r.preset: r for r in sim.results}
    assert first["stack"] <= cs.model_load_seconds + 10 < first["no headroom pre-pull"] < first["no headroom"]
    assert first["no headroom"] - first["stack"] >= cs.node_provisioning_seconds + cs.image_pull_seconds
    assert results["stack"].cost_vs_ideal > 1.1
    # Why no autoscaler can meet the cost: the ideal serves this burst on the floor's one node alone (one instance
    # through the whole window), so one warm node idle beside it is already 1x the ideal's cost on top (>= 2x).
    assert results["ideal"].instance_seconds == sim.window
    assert results["stack"].cost_vs_ideal >= 1 + sim.window / results["ideal"].instance_seconds
    # The KEDA service on the same node misses the goal (test above): the pod autoscaler made the difference.
    keda_config = prod_with_chat_headroom()
    keda_run, _ = run(keda_config, next(s for s in keda_config.services if s.name == "chat"))
    assert first_new_pod_seconds(keda_run) > cs.model_load_seconds + 10


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
                                        "--target-p95", "150", "--project-dir", str(ROOT)])
    assert out.exit_code == 0 and "no headroom the group's maxSize allows meets the target" in out.output


def test_the_knative_chat_stack_plans_both_modes_side_by_side(tmp_path):
    """The stack the goal is met on is one the program deploys: planned offline from a copy of the project whose
    prod stack file is that config, it installs Knative Serving beside KEDA, annotates each InferenceService with
    its own mode (chat Knative with the preset's KPA annotations, batch Standard), and passes the pre-apply checks."""
    import yaml

    from prod_headroom import ROOT, knative_chat_values
    from gpuscale.config import load_stack_file
    from gpuscale.plan.checks import ERROR, run_checks
    from gpuscale.plan.engine import plan_in_subprocess

    for entry in ROOT.iterdir():
        if entry.name not in ("stacks", ".git"):
            (tmp_path / entry.name).symlink_to(entry)
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.prod.yaml").write_text(yaml.safe_dump({"config": knative_chat_values()}))
    plan = plan_in_subprocess(tmp_path, "prod")
    types = {r.type for r in plan.resources}
    assert {"gpuscale:index:KnativeServing", "gpuscale:index:Keda", "gpuscale:index:GpuHeadroom"} <= types
    isvcs = {r.inputs["metadata"]["name"]: r.inputs["metadata"]["annotations"] for r in plan.resources
             if r.type == "kubernetes:serving.kserve.io/v1beta1:InferenceService"}
    assert isvcs["chat"]["serving.kserve.io/deploymentMode"] == "Knative"
    assert isvcs["chat"]["autoscaling.knative.dev/target-utilization-percentage"] == "90"
    assert isvcs["batch"]["serving.kserve.io/deploymentMode"] == "Standard"
    scaled = [r.inputs["spec"]["scaleTargetRef"]["name"] for r in plan.resources
              if r.type == "kubernetes:keda.sh/v1alpha1:ScaledObject"]
    assert scaled == ["batch-predictor"]
    config = load_stack_file(tmp_path, "prod")
    assert [f for f in run_checks(config, plan) if f.severity == ERROR] == []
