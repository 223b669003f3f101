"""Pre-apply checks of the model services (gpuscale/plan/checks/serving.py, through `run_checks`): each fails on a config
that violates it, naming the keys involved, and the shipped stacks pass them all."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import pytest

from gpuscale.plan.checks import ERROR, INFO, WARNING, run_checks
from gpuscale.config import ConfigError, load_stack_config, read_stack_values, stack_file_path
from gpuscale.instance_types import RecordedInstanceTypes

ROOT = Path(__file__).resolve().parents[2]
SERVING_CHECKS = ("serving-timing", "agent-metric", "two-autoscalers", "serving-capacity", "queue-visibility")


def values(stack: str) -> dict:
    return copy.deepcopy(read_stack_values(stack_file_path(ROOT, stack)))


def load(v: dict, stack: str):
    return load_stack_config(v, stack, RecordedInstanceTypes())


def findings(v: dict, stack: str, check: str, plan=None) -> list:
    return [f for f in run_checks(load(v, stack), plan) if f.check == check]


def service(v: dict, name: str) -> dict:
    return next(s for s in v["gpuscale:services"] if s["name"] == name)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_shipped_stacks_pass_the_serving_checks(stack):
    config = load(values(stack), stack)
    found = run_checks(config)
    assert not [f for f in found if f.check in SERVING_CHECKS and f.severity in (ERROR, WARNING)], found
    infos = [f for f in found if f.check == "time-to-capacity" and f.settings[0].startswith("gpuscale:services")]
    assert len(infos) == len(config.services) and all(f.severity == INFO for f in infos)
    assert "--service" in infos[0].message


def test_a_gpu_metric_window_shorter_than_the_agents_flush():
    v = values("prod")
    service(v, "chat")["scaling"]["keda"]["gpuUtilization"]["periodSeconds"] = 5
    [f] = [f for f in findings(v, "prod", "serving-timing") if f.severity == ERROR]
    assert f.settings == ("gpuscale:services[0].scaling.keda.gpuUtilization.periodSeconds",
                          "gpuscale:agent.flushIntervalSeconds")
    assert "5 s, less than the agent's 10 s flush" in f.message


def test_a_cooldown_shorter_than_the_polling_interval():
    v = values("prod")
    service(v, "batch")["scaling"]["keda"]["cooldownPeriodSeconds"] = 5
    [f] = findings(v, "prod", "serving-timing")
    assert f.severity == WARNING and f.settings == ("gpuscale:services[1].scaling.keda.cooldownPeriodSeconds",
                                                    "gpuscale:services[1].scaling.keda.pollingIntervalSeconds")


def test_a_progress_deadline_shorter_than_the_pods_own_start():
    v = values("dev")
    service(v, "chat")["progressDeadlineSeconds"] = 100
    [f] = findings(v, "dev", "serving-timing")
    assert f.severity == ERROR and f.settings[0] == "gpuscale:services[0].progressDeadlineSeconds"
    assert "about 165 s (image pull and model load)" in f.message


def test_knative_gives_up_activating_before_a_new_node_serves():
    """Dev's chat from zero needs 30 + 10 + 120 + 30 + 90 + 75 = 355 s; Knative gives up at the deadline + 30 s."""
    v = values("dev")
    service(v, "chat")["progressDeadlineSeconds"] = 300
    [f] = findings(v, "dev", "serving-timing")
    assert f.severity == ERROR and "about 355 s" in f.message and "back to zero" in f.message
    service(v, "chat")["progressDeadlineSeconds"] = 330  # 330 + 30 >= 355: activation waits long enough
    assert findings(v, "dev", "serving-timing") == []


def test_a_standard_deadline_other_than_kserves_fixed_600_is_refused_by_the_config():
    """KServe v0.16 fixes a Standard predictor's Deployment deadline at 600 s: the config reader refuses any other
    (the same rule as ModelService, components/kube_values.py: progress_deadline_refusal)."""
    v = values("prod")
    service(v, "batch")["progressDeadlineSeconds"] = 200
    with pytest.raises(ConfigError) as e:
        load(v, "prod")
    assert "gpuscale:services[1].progressDeadlineSeconds" in str(e.value) and "200" in str(e.value)
    assert "600 in standard mode" in str(e.value)


def test_a_standard_deadline_short_of_a_new_node_is_a_warning():
    """Standard mode's deadline is KServe's 600 s: a start from a new node that takes longer is a warning."""
    v = values("prod")
    service(v, "batch")["workload"]["coldStart"]["modelLoadSeconds"] = 500
    [f] = findings(v, "prod", "serving-timing")
    assert f.severity == WARNING and "reports the service failed" in f.message


def test_a_knative_deadline_may_be_other_than_600():
    v = values("dev")
    service(v, "chat")["progressDeadlineSeconds"] = 900
    assert load(v, "dev").services[0].progress_deadline_seconds == 900


def test_a_request_timeout_shorter_than_the_wake_from_zero():
    v = values("prod")
    service(v, "batch")["requestTimeoutSeconds"] = 300
    [f] = findings(v, "prod", "serving-timing")
    assert f.severity == ERROR and f.settings[:2] == ("gpuscale:services[1].requestTimeoutSeconds",
                                                      "gpuscale:services[1].minReplicas")
    assert "about 350 s" in f.message, "KEDA's 10 s poll, then 340 s to a pod on a new node"


def test_refused_requests_count_their_retry_against_the_timeout():
    v = values("dev")
    v["gpuscale:kubernetes"]["serving"] = {"mode": "standard", "metricsSource": "prometheus",
                                           "prometheusUrl": "http://prometheus-server.monitoring.svc:80"}
    v["gpuscale:kubernetes"]["agent"] = {"serviceMonitor": True}
    chat = service(v, "chat")
    chat["scaling"] = {"keda": {"wake": {"kind": "requests"}}}
    chat["requestTimeoutSeconds"] = 390
    chat["workload"]["clientRetrySeconds"] = 30
    [f] = findings(v, "dev", "serving-timing")
    assert "refused (502/503) and retry every 30 s about 415 s" in f.message


def prod_reading(source: str, metric: str) -> dict:
    """prod with its chat service's GPU trigger on `metric`, read from `source` (Prometheus scrapes the agent)."""
    v = values("prod")
    if source == "prometheus":
        v["gpuscale:kubernetes"]["serving"].update(metricsSource="prometheus",
                                                   prometheusUrl="http://prometheus-server.monitoring.svc:80")
        v["gpuscale:kubernetes"]["agent"] = {"serviceMonitor": True}
    service(v, "chat")["scaling"]["keda"]["gpuUtilization"]["metric"] = metric
    return v


@pytest.mark.parametrize("metric, source", [
    ("DCGM_FI_DEV_GPU_UTIL", "cloudwatch"),  # dcgm-exporter's name: not the agent's CloudWatch series
    ("GpuUtilization", "cloudwatch"),  # the agent's, but per GPU: not rolled up to the node group
    ("NodeGpuUtilization", "prometheus"),  # a CloudWatch name; Prometheus has gpuscale_node_gpu_utilization_ratio
])
def test_a_trigger_on_a_metric_the_agent_does_not_publish(metric, source):
    v = prod_reading(source, metric)
    [f] = findings(v, "prod", "agent-metric")
    assert f.severity == ERROR and f.settings == ("gpuscale:services[0].scaling.keda.gpuUtilization.metric",
                                                  "gpuscale:kubernetes.serving.metricsSource")
    assert metric in f.message


@pytest.mark.parametrize("metric, source", [("NodeGpuUtilization", "cloudwatch"),
                                            ("gpuscale_gpu_utilization_ratio", "prometheus"),
                                            ("gpuscale_node_gpu_utilization_ratio", "prometheus")])
def test_the_agents_own_series_pass(metric, source):
    v = prod_reading(source, metric)
    assert findings(v, "prod", "agent-metric") == []


def test_prometheus_that_nothing_tells_to_scrape_the_agent():
    v = values("prod")
    v["gpuscale:kubernetes"]["serving"].update(metricsSource="prometheus",
                                               prometheusUrl="http://prometheus-server.monitoring.svc:80")
    [f] = findings(v, "prod", "agent-metric")
    assert f.severity == WARNING and "gpuscale:kubernetes.agent.serviceMonitor" in f.settings


def test_a_gpu_trigger_on_a_shared_node_group_reads_its_neighbours():
    v = values("prod")
    service(v, "batch")["nodeGroup"] = "l4-ondemand"
    [f] = findings(v, "prod", "agent-metric")
    assert f.severity == WARNING and f.settings[0] == "gpuscale:services[0].scaling.keda.gpuUtilization.metric"
    assert "batch" in f.message


def resource(type_: str, name: str, inputs: dict):
    return SimpleNamespace(type=type_, name=name, inputs=inputs, urn=f"urn:{name}", parent=None, custom=True,
                           options={})


def isvc(name: str, autoscaler_class: str | None = None):
    annotations = {"serving.kserve.io/autoscalerClass": autoscaler_class} if autoscaler_class else {}
    return resource("kubernetes:serving.kserve.io/v1beta1:InferenceService", f"{name}-isvc",
                    {"metadata": {"name": name, "annotations": annotations}})


def scaled_object(target: str):
    return resource("kubernetes:keda.sh/v1alpha1:ScaledObject", f"{target}-so",
                    {"spec": {"scaleTargetRef": {"name": target}}})


def plan_of(*resources):
    return SimpleNamespace(resources=resources)


def test_two_pod_autoscalers_on_one_service():
    """Standard mode's default autoscaler class is hpa: a ScaledObject beside it makes two HPAs on one Deployment."""
    v = values("prod")
    two = plan_of(isvc("chat"), scaled_object("chat-predictor"), isvc("batch", "external"),
                  scaled_object("batch-predictor"))
    [f] = findings(v, "prod", "two-autoscalers", two)
    assert f.severity == ERROR and f.settings == ("gpuscale:services[0].scaling",)
    assert "2 pod autoscalers" in f.message and "autoscalerClass: hpa" in f.message
    one_each = plan_of(isvc("chat", "external"), scaled_object("chat-predictor"), isvc("batch", "keda"))
    assert findings(v, "prod", "two-autoscalers", one_each) == []


def test_each_inferenceservice_gets_the_default_class_of_its_own_deployment_mode():
    """In a stack whose default is Standard, an InferenceService annotated with Knative mode and no class is scaled
    by the KPA (Knative mode's default class), not by Standard mode's HPA: a ScaledObject beside it is a second."""
    v = values("prod")
    knative = isvc("chat")
    knative.inputs["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] = "Knative"
    [f] = findings(v, "prod", "two-autoscalers", plan_of(knative, scaled_object("chat-predictor"),
                                                           isvc("batch", "keda")))
    assert "autoscalerClass: kpa" in f.message
    # A Standard one (the annotation spelled out, or its deprecated name) keeps the HPA class.
    legacy = isvc("chat")
    legacy.inputs["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] = "RawDeployment"
    [f] = findings(v, "prod", "two-autoscalers", plan_of(legacy, scaled_object("chat-predictor"),
                                                         isvc("batch", "keda")))
    assert "autoscalerClass: hpa" in f.message


def test_a_service_without_any_pod_autoscaler():
    v = values("prod")
    none = plan_of(isvc("chat", "external"), isvc("batch", "keda"))
    [f] = findings(v, "prod", "two-autoscalers", none)
    assert "no pod autoscaler" in f.message and f.settings == ("gpuscale:services[0].scaling",)


def test_the_batch_services_queue_is_created_with_its_own_visibility():
    """The queue a service's KEDA wake names is created by the stack (gpuscale:queues), consumed by pods; a
    visibility timeout shorter than the service's mean request runs requests twice."""
    v = values("prod")
    queue = next(q for q in load(v, "prod").queues if q.name == "gpuscale-prod-batch-generate")
    assert queue.consumer_groups == () and queue.uses[0].key == "gpuscale:services[1].scaling.keda.wake.queueName"
    v["gpuscale:queues"] = [q for q in v["gpuscale:queues"] if q["name"] != "gpuscale-prod-batch-generate"]
    [f] = findings(v, "prod", "queue-visibility")
    assert f.severity == WARNING and "30 s, less than the 120 s service batch takes on average" in f.message
    assert f.settings[1] == "gpuscale:services[1].workload.serviceTime.meanSeconds"


def test_services_asking_for_more_gpus_than_their_node_group_has():
    v = values("dev")
    service(v, "chat")["maxReplicas"] = 3  # l4-spot: two single-GPU nodes at its maxSize
    [f] = findings(v, "dev", "serving-capacity")
    assert f.severity == WARNING
    assert f.settings == ("gpuscale:services[0].maxReplicas", "gpuscale:nodeGroups[0].maxSize")
    assert "2 GPUs at maxSize 2 hold fewer than the 3" in f.message


def test_a_wake_range_that_one_failed_scrape_empties():
    """prod's batch woken by the gateway's request rate over 30 s scraped every 15 s: two samples, what rate() needs;
    one failed scrape leaves one, and KEDA reads nothing as 0. Three scrapes ride one out."""
    v = values("prod")
    v["gpuscale:kubernetes"]["serving"].update(metricsSource="prometheus", prometheusUrl="http://prom:9090")
    service(v, "batch")["scaling"]["keda"]["wake"] = {"kind": "requests", "periodSeconds": 30}
    v["gpuscale:queues"] = [q for q in v["gpuscale:queues"] if q["name"] != "gpuscale-prod-batch-generate"]
    [f] = [f for f in findings(v, "prod", "serving-timing") if "scrape" in f.message]
    assert f.severity == WARNING and f.settings == ("gpuscale:services[1].scaling.keda.wake.periodSeconds",
                                                    "gpuscale:services[1].scaling.keda.wake.scrapeIntervalSeconds")
    assert "covers 30 s, 2 scrapes of 15 s" in f.message
    service(v, "batch")["scaling"]["keda"]["wake"]["periodSeconds"] = 45
    assert not [f for f in findings(v, "prod", "serving-timing") if "scrape" in f.message]
