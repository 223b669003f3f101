"""`gpuscale:services` and `gpuscale:kubernetes.serving`: every bad value names its key, the value and what is
allowed; presets are values of the same dataclasses an explicit mode produces; the shipped stacks' services load."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from test_config_validation import CATALOG, _set, assert_rejected, base

from gpuscale.config import ConfigError, load_stack_config, load_stack_file
from gpuscale.config.pod_autoscalers import (HpaScaling, KedaScaling, KpaScaling, PRESETS, at_zero_behaviour,
                                             scales_to_zero_on_gpu_only)
from gpuscale.config.serving import KnativeAutoscalerConfig
from gpuscale.config.hpa_behavior import ScalingPolicy

ROOT = Path(__file__).resolve().parents[2]
K, S = "gpuscale:kubernetes.serving", "gpuscale:services[0]"


def service() -> dict:
    """A small valid Knative service on the base config's Spot L4 group."""
    return {"name": "chat", "nodeGroup": "l4",
            "model": {"storageUri": "s3://models-bucket/chat", "format": "huggingface"},
            "minReplicas": 0, "maxReplicas": 2, "scaling": {"kpa": {"metric": "concurrency"}},
            "workload": {"concurrencyPerReplica": 4, "serviceTime": {"meanSeconds": 60},
                         "coldStart": {"nodeProvisioningSeconds": 120, "imagePullSeconds": 90,
                                       "modelLoadSeconds": 75},
                         "price": {"perInstanceHour": 0.8}}}


def with_service(mode: str = "knative", **serving) -> dict:
    cfg = base()
    cfg["gpuscale:kubernetes"] = {"serving": {"mode": mode, **serving}}
    cfg["gpuscale:services"] = [service()]
    cfg["gpuscale:modelBuckets"] = [{"name": "models-bucket"}]
    return cfg


def serving(cfg):
    return cfg["gpuscale:kubernetes"]["serving"]


def svc(cfg):
    return cfg["gpuscale:services"][0]


def scaling(cfg):
    return svc(cfg)["scaling"]


def _standard(cfg):
    serving(cfg)["mode"] = "standard"


def _mutations(*steps):
    def mutate(cfg):
        for step in steps:
            step(cfg)
    return mutate


def _replace(getter, value):
    def mutate(cfg):
        target = getter(cfg)
        target.clear()
        target.update(copy.deepcopy(value))
    return mutate


def assert_service_rejected(mutate, key, allowed, mode="knative"):
    def apply(cfg):
        cfg.clear()
        cfg.update(with_service(mode))
        mutate(cfg)
    assert_rejected(apply, key, allowed)


KEDA_QUEUE = {"keda": {"wake": {"kind": "sqs", "queueName": "jobs"}}}
BAD = [
    ("services-without-serving", lambda c: c["gpuscale:kubernetes"].pop("serving"), K, "a serving section"),
    ("serving-mode", _set(serving, "mode", "raw"), f"{K}.mode", "knative, standard"),
    ("metrics-source", _set(serving, "metricsSource", "datadog"), f"{K}.metricsSource", "cloudwatch, prometheus"),
    ("prometheus-without-url", _set(serving, "metricsSource", "prometheus"), f"{K}.prometheusUrl",
     "query URL"),
    ("url-with-cloudwatch", _set(serving, "prometheusUrl", "http://prom:9090"), f"{K}.prometheusUrl",
     "only with metricsSource: prometheus"),
    ("knative-without-knative", _mutations(_standard, _set(serving, "knative", {"stableWindowSeconds": 60}),
                                           _replace(scaling, {"hpa": {"target": 70}}), _set(svc, "minReplicas", 1)),
     f"{K}.knative", "only where Knative Serving is installed"),
    ("knative-stable-window", _set(serving, "knative", {"stableWindowSeconds": 5}),
     f"{K}.knative.stableWindowSeconds", "[6, 3600]"),
    ("knative-panic-threshold", _set(serving, "knative", {"panicThresholdPercentage": 100}),
     f"{K}.knative.panicThresholdPercentage", "[110.0, 1000.0]"),
    ("knative-up-rate", _set(serving, "knative", {"maxScaleUpRate": 1.0}), f"{K}.knative.maxScaleUpRate",
     "(1.0,"),
    ("knative-typo", _set(serving, "knative", {"stableWindow": 60}), f"{K}.knative.stableWindow", "known keys"),
    ("name-not-dns", _set(svc, "name", "Chat_1"), f"{S}.name", "DNS-1123"),
    ("name-too-long", _set(svc, "name", "a" * 48), f"{S}.name", "47"),
    ("duplicate-name", lambda c: c["gpuscale:services"].append(service()), "gpuscale:services[1].name",
     "used once"),
    ("node-group-unknown", _set(svc, "nodeGroup", "infer"), f"{S}.nodeGroup", "one of l4"),
    ("too-many-gpus", _set(svc, "gpus", 2), f"{S}.gpus", "at most 1"),
    ("min-above-max", _set(svc, "minReplicas", 3), f"{S}.minReplicas", "<= maxReplicas (2)"),
    ("model-format-and-container", _set(lambda c: svc(c)["model"], "container", {"image": "vllm/vllm:0.9.0"}),
     f"{S}.model.format", "exactly one of format"),
    ("model-neither", _set(lambda c: svc(c)["model"], "format", None), f"{S}.model.format",
     "exactly one of format"),
    ("model-uri-scheme", _set(lambda c: svc(c)["model"], "storageUri", "gs://bucket/m"), f"{S}.model.storageUri",
     "s3://bucket/prefix or pvc://"),
    ("container-unpinned", _replace(lambda c: svc(c)["model"], {"container": {"image": "vllm/vllm"}}),
     f"{S}.model.container.image", "tag or digest"),
    ("cpu-quantity", _set(svc, "cpu", "two"), f"{S}.cpu", "CPU quantity"),
    ("no-scaling-mode", _replace(scaling, {}), f"{S}.scaling.preset", "exactly one of kpa, hpa, keda"),
    ("two-pod-autoscalers", _set(scaling, "hpa", {"target": 70}), f"{S}.scaling.hpa",
     "one pod autoscaler per service"),
    ("preset-unknown", _replace(scaling, {"preset": "fast"}), f"{S}.scaling.preset", "coreweave-kpa"),
    ("preset-other-mode-keys", _replace(scaling, {"preset": "coreweave-kpa", "hpa": {"target": 70}}),
     f"{S}.scaling.hpa", "only kpa: keys"),
    ("preset-needs-cluster-values", _replace(scaling, {"preset": "coreweave-kpa"}),
     f"{K}.knative.maxScaleUpRate", "1.5: preset coreweave-kpa needs it cluster-wide"),
    ("kpa-rps-without-target", _set(scaling, "kpa", {"metric": "rps"}), f"{S}.scaling.kpa.target",
     "requests per second per pod"),
    ("kpa-utilization", _set(scaling, "kpa", {"targetUtilizationPercentage": 0}),
     f"{S}.scaling.kpa.targetUtilizationPercentage", "[1, 100]"),
    ("kpa-panic-window", _set(scaling, "kpa", {"panicWindowPercentage": 0.5}),
     f"{S}.scaling.kpa.panicWindowPercentage", "[1.0, 100.0]"),
    ("kpa-retention", _set(scaling, "kpa", {"scaleToZeroRetentionSeconds": 7200}),
     f"{S}.scaling.kpa.scaleToZeroRetentionSeconds", "[0, 3600]"),
    ("kpa-zero-initial-scale", _set(scaling, "kpa", {"initialScale": 0}), f"{S}.scaling.kpa.initialScale",
     "allowZeroInitialScale: true"),
    ("hpa-to-zero", _mutations(_standard, _replace(scaling, {"hpa": {"target": 70}})), f"{S}.minReplicas",
     "no GPU to measure"),
    ("keda-gpu-only-to-zero", _mutations(_standard, _replace(scaling, {"keda": {"gpuUtilization": {"target": 70}}})),
     f"{S}.minReplicas", "no GPU to measure"),
    ("keda-no-trigger", _mutations(_standard, _replace(scaling, {"keda": {}})),
     f"{S}.scaling.keda.gpuUtilization", "at least one trigger"),
    ("keda-sqs-without-queue", _mutations(_standard, _replace(scaling, {"keda": {"wake": {"kind": "sqs"}}})),
     f"{S}.scaling.keda.wake.queueName", "a value is required"),
    ("keda-queue-preset-without-queue", _mutations(_standard, _replace(scaling, {"preset": "keda-queue"})),
     f"{S}.scaling.keda.wake", "queueName"),
    ("keda-requests-on-cloudwatch", _mutations(_standard, _replace(scaling, {"keda": {"wake": {"kind": "requests"}}})),
     f"{S}.scaling.keda.wake.kind", "requests with a Prometheus server: the wake's own"),
    ("hf-like-on-cloudwatch", _mutations(_standard, _replace(scaling, {"preset": "hf-like"})),
     f"{S}.scaling.keda.wake.kind", "gpuscale:kubernetes.serving.prometheusUrl"),
    ("requests-wake-bad-server", _mutations(_standard, _replace(scaling, {"keda": {"wake": {
        "kind": "requests", "prometheusUrl": "prometheus:9090"}}})),
     f"{S}.scaling.keda.wake.prometheusUrl", "the Prometheus server's query URL"),
    ("requests-wake-blank-query", _mutations(_standard, _replace(scaling, {"keda": {"wake": {
        "kind": "requests", "prometheusUrl": "http://prometheus.monitoring.svc:9090", "query": "  "}}})),
     f"{S}.scaling.keda.wake.query", "a PromQL expression"),
    ("sqs-wake-with-query", _mutations(_standard, _replace(scaling, {"keda": {"wake": {
        "kind": "sqs", "queueName": "jobs", "query": "sum(rate(x[1m]))"}}})),
     f"{S}.scaling.keda.wake.query", "query only with kind: requests"),
    ("sqs-wake-with-server", _mutations(_standard, _replace(scaling, {"keda": {"wake": {
        "kind": "sqs", "queueName": "jobs", "prometheusUrl": "http://prometheus.monitoring.svc:9090"}}})),
     f"{S}.scaling.keda.wake.prometheusUrl", "prometheusUrl only with kind: requests"),
    ("hpa-example-at-zero", _mutations(_standard, _replace(scaling, {"preset": "hpa-example"})),
     f"{S}.minReplicas", ">= 1 with preset hpa-example"),
    ("hpa-policy-type", _mutations(_standard, _set(svc, "minReplicas", 1), _replace(scaling, {"hpa": {"behavior": {
        "scaleUp": {"policies": [{"type": "Replicas", "value": 2, "periodSeconds": 15}]}}}})),
     f"{S}.scaling.hpa.behavior.scaleUp.policies[0].type", "Pods, Percent"),
    ("hpa-policy-period", _mutations(_standard, _set(svc, "minReplicas", 1), _replace(scaling, {"hpa": {"behavior": {
        "scaleDown": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 3600}]}}}})),
     f"{S}.scaling.hpa.behavior.scaleDown.policies[0].periodSeconds", "[1, 1800]"),
    ("workload-missing", lambda c: svc(c).pop("workload"), f"{S}.workload", "a value is required"),
    ("workload-price-missing", lambda c: svc(c)["workload"].pop("price"), f"{S}.workload.price",
     "node group l4's workload section"),
    ("workload-node-time-missing", lambda c: svc(c)["workload"]["coldStart"].pop("nodeProvisioningSeconds"),
     f"{S}.workload.coldStart.nodeProvisioningSeconds", "a value is required"),
    ("retry-with-queue", _set(lambda c: svc(c)["workload"], "clientRetrySeconds", 5),
     f"{S}.workload.clientRetrySeconds", "only where requests are refused"),
    ("service-typo", _set(svc, "minReplica", 1), f"{S}.minReplica", "known keys"),
]


@pytest.mark.parametrize("mutate,key,allowed", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_service_config_is_rejected_naming_key_and_allowed(mutate, key, allowed):
    assert_service_rejected(mutate, key, allowed)


def test_service_outside_eks_is_refused():
    cfg = with_service()
    cfg.pop("gpuscale:nodeGroups")
    assert_rejected(lambda c: (c.clear(), c.update(cfg)), f"{S}.nodeGroup", "services run on EKS")


def test_a_valid_service_reaches_the_typed_config():
    config = load_stack_config(with_service(), "test", CATALOG)
    (chat,) = config.services
    assert config.kubernetes.serving.mode == "knative"
    assert config.kubernetes.serving.knative == KnativeAutoscalerConfig()
    assert chat.serving_mode == "knative" and chat.scaling == KpaScaling()
    assert chat.workload.at_zero_capacity == "queue", "the activator holds requests at zero"
    assert chat.workload.cold_start.image_pull_seconds == 90 and chat.workload.cold_start.model_load_seconds == 75
    assert chat.workload.replicas_per_instance == 1 and chat.workload.readiness_deadline_seconds == 600


def test_one_stack_mixes_knative_and_standard_services_each_by_its_pod_autoscaler():
    """KServe's mode is a default that each InferenceService's deploymentMode annotation overrides: a kpa service in
    a standard stack runs in Knative mode (Knative Serving is then installed), an hpa one beside it in Standard mode;
    the pods' rules follow the service's own mode (Standard mode fixes the progress deadline, Knative's is free)."""
    from gpuscale.config.services import knative_installed

    cfg = with_service("standard", knative={"stableWindowSeconds": 90})
    svc(cfg)["progressDeadlineSeconds"] = 900  # allowed in Knative mode only
    steady = copy.deepcopy(service())
    steady.update(name="steady", minReplicas=1, scaling={"hpa": {"target": 70}})
    cfg["gpuscale:services"].append(steady)
    config = load_stack_config(cfg, "test", CATALOG)
    chat, other = config.services
    assert (chat.serving_mode, other.serving_mode) == ("knative", "standard")
    assert chat.progress_deadline_seconds == 900 and config.kubernetes.serving.knative.stable_window_seconds == 90
    assert knative_installed(config.kubernetes.serving, config.services)
    assert not knative_installed(config.kubernetes.serving, config.services[1:])
    # The same deadline on the Standard service is refused by the Standard mode's rule.
    steady["progressDeadlineSeconds"] = 900
    with pytest.raises(ConfigError) as err:
        load_stack_config(cfg, "test", CATALOG)
    assert err.value.key == "gpuscale:services[1].progressDeadlineSeconds"


def test_node_stages_and_price_come_from_the_node_group_workload():
    cfg = with_service()
    cfg["gpuscale:nodeGroups"][0]["workload"] = {
        "concurrencyPerReplica": 4, "serviceTime": {"meanSeconds": 60}, "requestTimeoutSeconds": 600,
        "coldStart": {"nodeProvisioningSeconds": 150, "devicePluginReadySeconds": 20, "imagePullSeconds": 90,
                      "modelLoadSeconds": 60}, "price": {"perInstanceHour": 0.9, "currency": "EUR"}}
    del svc(cfg)["workload"]["price"], svc(cfg)["workload"]["coldStart"]["nodeProvisioningSeconds"]
    chat = load_stack_config(cfg, "test", CATALOG).services[0]
    assert chat.workload.cold_start.node_provisioning_seconds == 150
    assert chat.workload.cold_start.device_plugin_ready_seconds == 20
    assert (chat.workload.price_per_instance_hour, chat.workload.currency) == (0.9, "EUR")


def test_a_preset_is_the_same_dataclass_an_explicit_mode_gives_and_keys_override_it():
    cfg = with_service("standard")
    svc(cfg)["scaling"] = {"preset": "keda-queue", "keda": {"wake": {"queueName": "jobs"},
                                                            "cooldownPeriodSeconds": 120}}
    chat = load_stack_config(cfg, "test", CATALOG).services[0]
    assert isinstance(chat.scaling, KedaScaling) and chat.preset == "keda-queue"
    assert chat.scaling.wake.kind == "sqs" and chat.scaling.wake.queue_name == "jobs"
    assert chat.scaling.cooldown_period_seconds == 120
    assert chat.scaling.polling_interval_seconds == PRESETS["keda-queue"].scaling.polling_interval_seconds
    explicit = copy.deepcopy(cfg)
    svc(explicit)["scaling"] = {"keda": {"wake": {"kind": "sqs", "queueName": "jobs"}, "cooldownPeriodSeconds": 120}}
    assert load_stack_config(explicit, "test", CATALOG).services[0].scaling == chat.scaling


def test_coreweave_preset_loads_where_the_cluster_holds_its_values():
    cfg = with_service(knative={"maxScaleUpRate": 1.5, "maxScaleDownRate": 1.01,
                                "scaleToZeroGracePeriodSeconds": 1800})
    svc(cfg)["scaling"] = {"preset": "coreweave-kpa"}
    config = load_stack_config(cfg, "test", CATALOG)
    assert config.services[0].scaling == PRESETS["coreweave-kpa"].scaling
    assert config.kubernetes.serving.knative == PRESETS["coreweave-kpa"].knative_config


def test_hpa_example_preset_keeps_the_articles_behavior():
    cfg = with_service("standard")
    svc(cfg).update(minReplicas=1, scaling={"preset": "hpa-example"})
    hpa = load_stack_config(cfg, "test", CATALOG).services[0].scaling
    assert isinstance(hpa, HpaScaling) and hpa.target == 75
    assert hpa.behavior.scale_up.policies == (ScalingPolicy("Percent", 50, 30), ScalingPolicy("Pods", 2, 30))
    assert hpa.behavior.scale_down.stabilization_window_seconds == 300


def test_every_preset_says_where_requests_go_at_zero():
    behaviour = {name: at_zero_behaviour(p.scaling) for name, p in PRESETS.items()}
    assert behaviour == {"coreweave-kpa": "queue", "hf-like": "refuse", "hpa-example": "refuse",
                         "keda-queue": "queue"}
    assert scales_to_zero_on_gpu_only(PRESETS["hpa-example"].scaling)
    assert not scales_to_zero_on_gpu_only(PRESETS["hf-like"].scaling)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_shipped_stacks_declare_services(stack):
    config = load_stack_file(ROOT, stack)
    assert config.kubernetes.serving is not None
    names = {g.name for g in config.node_groups}
    assert config.services and all(s.node_group in names for s in config.services)
    if stack == "dev":
        assert len(config.services) == 1 and config.services[0].min_replicas == 0, "one small service, to zero"
    else:
        assert len(config.services) >= 2
        assert any(s.min_replicas >= 1 for s in config.services), "a latency-safe service"
        assert any(s.min_replicas == 0 and s.workload.at_zero_capacity == "queue" for s in config.services), \
            "a batch service whose work waits on its queue at zero"


def test_hf_like_loads_with_a_prometheus_server_from_the_serving_section_or_the_wake():
    on_prometheus = with_service("standard", metricsSource="prometheus",
                                 prometheusUrl="http://prometheus.monitoring.svc:9090")
    svc(on_prometheus)["scaling"] = {"preset": "hf-like"}
    wake = load_stack_config(on_prometheus, "test", CATALOG).services[0].scaling.wake
    assert wake == PRESETS["hf-like"].scaling.wake, "the serving section's server, the default gateway query"
    assert wake.query is None and wake.prometheus_url is None
    on_cloudwatch = with_service("standard")
    svc(on_cloudwatch)["scaling"] = {"preset": "hf-like", "keda": {"wake": {
        "prometheusUrl": "http://prometheus.monitoring.svc:9090", "query": 'sum(rate(nginx_requests_total[1m]))'}}}
    chat = load_stack_config(on_cloudwatch, "test", CATALOG).services[0]
    assert chat.scaling.wake.prometheus_url == "http://prometheus.monitoring.svc:9090"
    assert chat.scaling.wake.query == "sum(rate(nginx_requests_total[1m]))"
    assert chat.scaling.gpu_utilization == PRESETS["hf-like"].scaling.gpu_utilization
    assert chat.workload.at_zero_capacity == "refuse", "no activator in Standard mode: the gateway answers 502/503"


def test_a_custom_wake_query_is_checked_on_its_own_range():
    """The rate() range that must hold two scrapes is the query's own where it names one (`[5m]`), which is then
    the simulator's window too; a query without one (a recording rule) keeps periodSeconds, unchecked."""
    from gpuscale.config.pod_autoscalers import promql_ranges

    assert promql_ranges('sum(rate(x{a="b"}[5m]))') == [300] and promql_ranges("rate(x[1h30m]) + y") == [5400]
    assert promql_ranges("max_over_time(rate(x[1m])[30m:1m])") == [60, 1800] and promql_ranges("service:rps") == []

    def wake_config(**wake):
        cfg = with_service("standard", metricsSource="prometheus", prometheusUrl="http://prom:9090")
        svc(cfg).update(minReplicas=0, scaling={"keda": {"wake": {"kind": "requests", **wake}}})
        return cfg

    five_minutes = load_stack_config(wake_config(query="sum(rate(requests_total[5m]))", scrapeIntervalSeconds=60),
                                     "test", CATALOG)
    assert five_minutes.services[0].scaling.wake.period_seconds == 300
    said = load_stack_config(wake_config(query="sum(rate(requests_total[5m]))", periodSeconds=300), "test", CATALOG)
    assert said.services[0].scaling.wake.period_seconds == 300, "the query's own range, spelt out, is accepted"
    rule = load_stack_config(wake_config(query="service:requests:rate1m", periodSeconds=30, scrapeIntervalSeconds=60),
                             "test", CATALOG)
    assert rule.services[0].scaling.wake.period_seconds == 30
    for wake, key, allowed in (
            ({"query": "sum(rate(requests_total[10s]))"}, "query", "at least 30 s"),
            ({"query": "sum(rate(requests_total[5m]))", "periodSeconds": 60}, "periodSeconds", "300, the query's"),
            ({"periodSeconds": 20}, "periodSeconds", "at least 30 s")):
        with pytest.raises(ConfigError) as err:
            load_stack_config(wake_config(**wake), "test", CATALOG)
        assert err.value.key == f"{S}.scaling.keda.wake.{key}" and allowed in err.value.allowed, err.value


def test_a_kpa_service_refused_for_another_mistake_does_not_also_refuse_the_knative_section():
    cfg = with_service("standard", knative={"stableWindowSeconds": 90})
    svc(cfg)["gpus"] = 4
    with pytest.raises(ConfigError) as err:
        load_stack_config(cfg, "test", CATALOG)
    assert [e.key for e in getattr(err.value, "errors", [err.value])] == [f"{S}.gpus"]
