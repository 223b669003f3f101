"""`gpuscale simulate --service`: a model service on the EKS path, built from its config, and the shipped stacks'
services measured on the burst trace against the ideal and the presets (issue 14's targets). These read the stack
files as they are, so detuning a service fails here."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
from sim_support import CATALOG, REPO, stack

from gpuscale.config import load_stack_config, read_stack_values, stack_file_path
from gpuscale.config.pod_autoscalers import KpaScaling, PRESETS
from gpuscale.config.serving import KnativeAutoscalerConfig
from gpuscale.sim.keda import GpuUtilizationTrigger, KedaScaler, QueueTrigger, RequestRateTrigger
from gpuscale.sim.knative import KpaScaler, kpa_config, kpa_target
from gpuscale.sim.serving import SERVICE_PRESETS, service_plans, simulate_service
from gpuscale.sim.traces import burst

COST_VS_IDEAL = 1.1
COMPLETION_VS_IDEAL = 1.25
SERVICES = [(name, s.name) for name in ("dev", "prod") for s in stack(name).services]


def service_of(cfg, name):
    return next(s for s in cfg.services if s.name == name)


def compare(name: str, service: str, cfg=None, presets=SERVICE_PRESETS) -> dict:
    """`gpuscale simulate --stack NAME --service SERVICE --compare` on the burst trace."""
    cfg = cfg or stack(name)
    sim = simulate_service(service_of(cfg, service), cfg, burst(), list(presets))
    return {r.preset: r for r in sim.results}


def with_service(cfg, service, **changes):
    """The stack with one service's fields replaced."""
    services = tuple(replace(s, **changes) if s.name == service else s for s in cfg.services)
    return replace(cfg, services=services)


def test_both_stacks_declare_services_to_measure():
    assert ("dev", "chat") in SERVICES and len([s for s in SERVICES if s[0] == "prod"]) >= 2


@pytest.mark.parametrize("name, service", SERVICES)
def test_each_service_comes_within_the_ideals_cost_and_completion(name, service):
    r = compare(name, service)
    own = r["stack"]
    assert own.timed_out == 0 and own.completion is not None, f"{name}/{service}: every request is served"
    assert own.cost_vs_ideal <= COST_VS_IDEAL, f"{name}/{service}: cost {own.cost_vs_ideal:.3f}x the ideal's"
    assert own.completion_vs_ideal <= COMPLETION_VS_IDEAL, \
        f"{name}/{service}: completion {own.completion_vs_ideal:.3f}x the ideal's"


# Where a service cannot strictly beat a preset, the test named here measures why (issue 14: "if a target is
# impossible, show it with a measurement").
MEASURED_IMPOSSIBLE = {
    ("prod", "chat", "hf-like", "completion"): "test_prod_chat_completes_with_the_ideal",
    ("prod", "chat", "hpa-example", "completion"): "test_prod_chat_completes_with_the_ideal",
    ("prod", "batch", "hf-like", "completion"): "test_prod_batch_completes_at_the_eks_paths_floor",
    ("prod", "batch", "hpa-example", "cost"): "test_prod_batch_cannot_undercut_hpa_example_within_the_completion_bound",
}


@pytest.mark.parametrize("name, service", SERVICES)
@pytest.mark.parametrize("rival", ["hf-like", "hpa-example"])
def test_each_service_beats_hf_like_and_hpa_example(name, service, rival):
    r = compare(name, service)
    own, other = r["stack"], r[rival]
    for measure in ("completion", "cost"):
        if (name, service, rival, measure) in MEASURED_IMPOSSIBLE:
            continue
        mine, theirs = getattr(own, measure), getattr(other, measure)
        assert theirs is None or mine < theirs, f"{name}/{service}: {measure} {mine} against {rival}'s {theirs}"


def test_prod_chat_completes_with_the_ideal():
    """The warm pod serves the whole 100-request burst (284 s) before a new node's pod could (about 310 s): the
    ideal adds nothing, and neither preset can finish sooner than it."""
    r = compare("prod", "chat")
    assert r["stack"].completion == r["ideal"].completion == r["hf-like"].completion == r["hpa-example"].completion
    assert r["stack"].cost_vs_ideal == pytest.approx(1.0)


def test_prod_chat_owes_its_cost_to_the_scale_up_window():
    """Without its 270 s scale-up window the GPU trigger adds a node that arrives after the burst: the same completion
    at nearly twice the cost."""
    cfg = stack("prod")
    chat = service_of(cfg, "chat")
    behavior = chat.scaling.behavior
    eager = replace(chat.scaling, behavior=replace(behavior, scale_up=replace(behavior.scale_up,
                                                                              stabilization_window_seconds=0)))
    r = compare("prod", "chat", with_service(cfg, "chat", scaling=eager), ("stack", "ideal"))
    assert r["stack"].completion_vs_ideal == 1.0 and r["stack"].cost_vs_ideal > 1.5


def test_prod_batch_completes_at_the_eks_paths_floor():
    """One pod per message (every job on a pod of its own from the first poll) finishes no sooner than the stack's
    one pod per eight: every job already starts in the first round. hf-like finishes later: it wakes on the
    gateway's request rate, which moves only once Prometheus has scraped the gateway after the burst."""
    cfg = stack("prod")
    batch = service_of(cfg, "batch")
    fastest = replace(batch.scaling, wake=replace(batch.scaling.wake, per_replica=1))
    r = compare("prod", "batch")
    floor = compare("prod", "batch", with_service(cfg, "batch", scaling=fastest), ("stack", "ideal"))["stack"]
    assert r["stack"].completion == floor.completion < r["hf-like"].completion


def test_prod_batch_cannot_undercut_hpa_example_within_the_completion_bound():
    """hpa-example keeps one pod and grows it slowly: cheap and 2.6x late. Over every messages-per-pod the batch
    service could use, none within 1.25x the ideal's completion costs less than hpa-example does."""
    cfg = stack("prod")
    batch = service_of(cfg, "batch")
    r = compare("prod", "batch")
    frontier = []
    for per in range(1, 51):  # from 50 up the service runs two pods or one: slower still
        scaling = replace(batch.scaling, wake=replace(batch.scaling.wake, per_replica=per))
        run = compare("prod", "batch", with_service(cfg, "batch", scaling=scaling), ("stack", "ideal"))["stack"]
        frontier.append((per, run.cost, run.completion_vs_ideal))
    within = [(per, cost) for per, cost, completion in frontier if completion <= COMPLETION_VS_IDEAL]
    assert within and min(cost for _, cost in within) > r["hpa-example"].cost
    assert r["hpa-example"].completion_vs_ideal > 2


def dev_values():
    return copy.deepcopy(read_stack_values(stack_file_path(REPO, "dev")))


def test_every_stage_of_the_cold_start_counts_once_on_the_path():
    """Dev's chat from zero: the activator pokes the KPA at once, cluster-autoscaler helps the GPU pod once it is
    30 s old (a scan every 10 s), then node 120 s, device plugin 30 s, image 90 s, model 75 s: ready at 345 s. Each
    stage shortened by 60 s makes the first pod ready 60 s sooner (what issue 15's levers change)."""
    cfg = stack("dev")
    chat = service_of(cfg, "chat")

    def first_ready(c) -> int:
        sim = simulate_service(service_of(c, "chat"), c, burst(), ["stack"])
        return int(np.flatnonzero(sim.runs["stack"].ready_replicas)[0])
    assert first_ready(cfg) == 30 + 120 + 30 + 90 + 75
    cold = chat.workload.cold_start
    for stage in ("node_provisioning_seconds", "device_plugin_ready_seconds", "image_pull_seconds",
                  "model_load_seconds"):
        shorter = replace(cold, **{stage: getattr(cold, stage) - 60})
        faster = with_service(cfg, "chat", workload=replace(chat.workload, cold_start=shorter))
        assert first_ready(faster) == first_ready(cfg) - 60, stage


def standard_values(wake: dict, source: str = "prometheus") -> dict:
    values = dev_values()
    serving = {"mode": "standard", "metricsSource": source}
    if source == "prometheus":
        serving["prometheusUrl"] = "http://prometheus-server.monitoring.svc:80"
    values["gpuscale:kubernetes"]["serving"] = serving
    values["gpuscale:services"][0]["scaling"] = {"keda": {"wake": wake}}
    return values


def test_the_front_end_at_zero_queues_or_refuses_as_the_mode_says():
    """Knative's activator and an SQS-fed service hold requests while the service wakes; a Standard-mode service
    woken by the gateway's request count has no endpoint meanwhile, so requests get 502/503 and retry."""
    knative = compare("dev", "chat", presets=("stack",))["stack"]
    sqs = load_stack_config(standard_values({"kind": "sqs", "queueName": "chat-requests"}, "cloudwatch"), "dev",
                            CATALOG)
    gateway = load_stack_config(standard_values({"kind": "requests"}), "dev", CATALOG)
    assert knative.refused == 0 and compare("dev", "chat", sqs, ("stack",))["stack"].refused == 0
    refused = compare("dev", "chat", gateway, ("stack",))["stack"]
    assert refused.refused > 0 and refused.served == pytest.approx(100)
    # The wake's own Prometheus server, GPU metrics still in CloudWatch: deployed the same way, refused the same way.
    wake = {"kind": "requests", "prometheusUrl": "http://prom.monitoring.svc:9090"}
    own_server = load_stack_config(standard_values(wake, "cloudwatch"), "dev", CATALOG)
    assert own_server.services[0].workload.at_zero_capacity == "refuse"
    assert compare("dev", "chat", own_server, ("stack",))["stack"].refused > 0


def test_scalers_are_built_from_the_services_config():
    cfg = stack("prod")
    knative = KnativeAutoscalerConfig()
    plans = {p.name: p for p in service_plans(service_of(cfg, "batch"), knative, list(SERVICE_PRESETS))}
    assert plans["stack"].scaling is service_of(cfg, "batch").scaling
    assert plans["hpa-example"].min_replicas == 1, "the preset's own floor"
    assert plans["coreweave-kpa"].knative.max_scale_up_rate == 1.5, "the preset brings its cluster-wide values"
    sim = simulate_service(service_of(cfg, "batch"), cfg, burst(), ["stack"])
    assert sim.kind == "service" and any("cold start: node 120" in note for note in sim.notes)


def test_keda_triggers_from_config():
    from gpuscale.sim.serving import build_scaler, pod_cluster
    from gpuscale.sim.service import service_model

    cfg = stack("prod")
    chat, batch = service_of(cfg, "chat"), service_of(cfg, "batch")
    group = next(g for g in cfg.node_groups if g.name == chat.node_group)
    svc = service_model(chat.workload)
    cluster = pod_cluster(svc, chat, group, cfg.kubernetes.cluster_autoscaler, chat.min_replicas, True)
    scaler = build_scaler(chat.scaling, svc, cluster, cfg.agent, KnativeAutoscalerConfig())
    assert isinstance(scaler, KedaScaler) and scaler.so.polling_interval == 10
    (gpu,) = scaler.triggers
    assert isinstance(gpu, GpuUtilizationTrigger) and gpu.metric.target_type == "Value"
    assert gpu.delay == 11 and gpu.period == chat.scaling.gpu_utilization.period_seconds
    svc = service_model(batch.workload)
    group = next(g for g in cfg.node_groups if g.name == batch.node_group)
    cluster = pod_cluster(svc, batch, group, cfg.kubernetes.cluster_autoscaler, 0, True)
    (queue,) = build_scaler(batch.scaling, svc, cluster, cfg.agent, KnativeAutoscalerConfig()).triggers
    assert isinstance(queue, QueueTrigger) and queue.queue_length == 8
    hf = build_scaler(PRESETS["hf-like"].scaling, svc, cluster, cfg.agent, KnativeAutoscalerConfig())
    requests = next(t for t in hf.triggers if isinstance(t, RequestRateTrigger))
    assert requests.metric.target == round(8 / 120 * 1000), "what one replica serves per second"
    assert requests.delay == 15, "seen a scrape of the gateway late (Istio's sample PodMonitor: every 15 s)"


def test_a_requests_wake_sees_the_burst_once_prometheus_has_scraped_the_gateway():
    """The gateway's counter reaches Prometheus at its next scrape: a slower scrape wakes the service later, by
    whole KEDA polls; a rate() range shorter than two scrapes is refused (it would read nothing, and KEDA reads no
    result as 0)."""
    from gpuscale.config import ConfigError
    from gpuscale.sim.serving import first_new_pod_seconds

    def woken(scrape: int) -> int:
        wake = {"kind": "requests", "scrapeIntervalSeconds": scrape, "periodSeconds": 120}
        cfg = load_stack_config(standard_values(wake), "dev", CATALOG)
        run = simulate_service(cfg.services[0], cfg, burst(), ["stack"]).runs["stack"]
        return first_new_pod_seconds(run)

    fast, slow = woken(1), woken(60)
    assert fast < slow <= fast + 60 + 30, "at most a scrape and a KEDA poll (30 s) later"
    with pytest.raises(ConfigError) as err:
        load_stack_config(standard_values({"kind": "requests", "scrapeIntervalSeconds": 60}), "dev", CATALOG)
    assert err.value.key.endswith("scaling.keda.wake.periodSeconds") and "at least 120 s" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_stack_config(standard_values({"kind": "sqs", "queueName": "q", "scrapeIntervalSeconds": 15},
                                          "cloudwatch"), "dev", CATALOG)
    assert err.value.key.endswith("wake.scrapeIntervalSeconds")


def test_kpa_target_resolves_as_knative_does():
    """resources/target.go ResolveMetricTarget: containerConcurrency times the utilisation; an annotation target
    never above containerConcurrency; rps from its default 200 at 70 %."""
    knative = KnativeAutoscalerConfig()
    assert kpa_target(KpaScaling(), knative, 4) == (pytest.approx(2.8), 4.0)
    assert kpa_target(KpaScaling(target=10), knative, 4) == (pytest.approx(2.8), 4.0)
    assert kpa_target(KpaScaling(target=2, target_utilization_percentage=100), knative, 4) == (2.0, 2.0)
    assert kpa_target(KpaScaling(metric="rps"), knative, 4) == (pytest.approx(140.0), 200.0)
    coreweave = PRESETS["coreweave-kpa"]
    config = kpa_config(coreweave.scaling, coreweave.knative_config)
    assert (config.stable_window, config.max_scale_up_rate, config.max_scale_down_rate,
            config.scale_to_zero_grace_period, config.target_utilization) == (180, 1.5, 1.01, 1800, 0.9)


def test_kpa_on_requests_per_second():
    """metric: rps averages the requests received per second, not those in flight."""
    values = dev_values()
    values["gpuscale:services"][0]["scaling"] = {"kpa": {"metric": "rps", "target": 0.05}}
    cfg = load_stack_config(values, "dev", CATALOG)
    sim = simulate_service(service_of(cfg, "chat"), cfg, burst(), ["stack"])
    run = sim.runs["stack"]
    assert run.completed == pytest.approx(100) and int(np.flatnonzero(run.ready_replicas)[0]) == 345
    from gpuscale.sim.serving import build_scaler, pod_cluster
    from gpuscale.sim.service import service_model

    chat = service_of(cfg, "chat")
    svc = service_model(chat.workload)
    cluster = pod_cluster(svc, chat, cfg.node_groups[0], cfg.kubernetes.cluster_autoscaler, 0, True)
    scaler = build_scaler(chat.scaling, svc, cluster, cfg.agent, cfg.kubernetes.serving.knative)
    assert isinstance(scaler, KpaScaler) and scaler.rps and scaler.decider.spec.target_value == pytest.approx(0.035)
