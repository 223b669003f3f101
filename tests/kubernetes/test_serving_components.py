"""The serving components by their inputs: each mode's objects (beyond what the stacks use) valid against the pinned
CRDs and read by the pinned upstream, every bad argument refused with its name before anything is declared, and the
schema checks themselves able to fail on a wrong field name."""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import jsonschema
import pytest
from crd_support import validate_custom_resource
from kube_support import unknown_chart_values

from gpuscale.components.charts import upstream_facts
from gpuscale.components.keda import Keda, keda_policy
from gpuscale.components.knative_serving import (KnativeServing, KnativeServingArgs, autoscaler_config,
                                                 knative_serving_spec)
from gpuscale.components.kserve import KServe, kserve_values
from gpuscale.components.model_service import ModelService, ModelServiceArgs, inference_service, keda_args
from gpuscale.components.pod_autoscaling import scaled_object_spec, trigger_authentication_spec
from gpuscale.config.serving import KnativeAutoscalerConfig

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "components"))
from components_harness import Harness  # noqa: E402  (the component tests' harness)

ISSUER = "https://oidc.eks.us-west-2.amazonaws.com/id/ABC123"
OIDC_ARN = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/ABC123"
QUEUE = "https://sqs.us-west-2.amazonaws.com/123456789012/jobs"
BEHAVIOR = {"scale_up": {"stabilization_window_seconds": 60, "select_policy": "Max",
                         "policies": [{"kind": "Percent", "value": 50, "period_seconds": 30},
                                      {"kind": "Pods", "value": 2, "period_seconds": 30}]},
            "scale_down": {"stabilization_window_seconds": 300, "select_policy": None,
                           "policies": [{"kind": "Pods", "value": 1, "period_seconds": 60}]}}
KPA = {"metric": "rps", "target": 12.5, "target_utilization_percentage": 80.0, "window_seconds": 180,
       "panic_window_percentage": 16.7, "panic_threshold_percentage": 200.0, "initial_scale": 1,
       "scale_to_zero_retention_seconds": 1800, "activation_scale": 2, "scale_down_delay_seconds": 30}


def service(**overrides) -> ModelServiceArgs:
    args: ModelServiceArgs = {
        "name": "chat", "namespace": "gpuscale-serving", "serving_mode": "standard",
        "model": {"storage_uri": "s3://models/chat", "format": "huggingface", "runtime": None, "container": None},
        "gpus": 1, "cpu": "2", "memory": "12Gi", "min_replicas": 0, "max_replicas": 4,
        "request_timeout_seconds": 600, "progress_deadline_seconds": 600, "concurrency": 4,
        "node_selector": {"gpuscale.io/gpu-class": "l4", "gpuscale.io/capacity-type": "spot"},
        "scaling_mode": "keda",
        "scaling": {"gpu_utilization": {"metric": "NodeGpuUtilization", "target": 70.0, "period_seconds": 60},
                    "wake": {"kind": "sqs", "per_replica": 8, "activation": 0, "queue_url": QUEUE},
                    "polling_interval_seconds": 10, "cooldown_period_seconds": 120, "behavior": BEHAVIOR},
        "metrics": {"kind": "cloudwatch", "region": "us-west-2", "asg_name": "eks-l4-spot-1234"},
        "oidc_provider_arn": OIDC_ARN, "oidc_issuer_url": ISSUER}
    args.update(overrides)  # type: ignore[typeddict-item]
    # `scaling` here: the settings of whichever scaling mode the test picks, under that mode's own key.
    args[args["scaling_mode"]] = args.pop("scaling")  # type: ignore[literal-required]
    return args


def isvc_object(args: ModelServiceArgs) -> dict:
    body = inference_service(args, "chat-predictor")
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": args["name"], "namespace": args["namespace"], "annotations": body["annotations"]},
            "spec": body["spec"]}


def scaled_object(args: ModelServiceArgs, auth: str | None = "chat-aws") -> dict:
    spec = scaled_object_spec(keda_args(args), args["metrics"], args["namespace"], args["name"], "chat-predictor",
                              args["min_replicas"], args["max_replicas"], auth)
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "chat"}, "spec": spec}


def assert_scaler_keys(so: dict) -> None:
    scalers = upstream_facts("keda")["scalerMetadata"]
    for trigger in so["spec"]["triggers"]:
        keys = scalers[trigger["type"]]
        assert set(trigger["metadata"]) <= set(keys)
        assert {k for k, v in keys.items() if v == "required"} <= set(trigger["metadata"])


def test_knative_mode_with_rps_and_every_kpa_setting_is_valid_and_read_by_knative():
    args = service(serving_mode="knative", scaling_mode="kpa", scaling=KPA, progress_deadline_seconds=900)
    obj = isvc_object(args)
    validate_custom_resource(obj)
    knative = set(upstream_facts("knative_serving")["autoscalingAnnotations"].values())
    annotations = obj["metadata"]["annotations"]
    assert {k for k in annotations if k.startswith("autoscaling.knative.dev/")} <= knative
    assert annotations["autoscaling.knative.dev/metric"] == "rps"
    assert annotations["autoscaling.knative.dev/target"] == "12.5"
    assert annotations["autoscaling.knative.dev/window"] == "180s"
    assert annotations["autoscaling.knative.dev/scale-to-zero-pod-retention-period"] == "1800s"
    assert annotations["serving.knative.dev/progress-deadline"] == "900s"
    assert obj["spec"]["predictor"]["containerConcurrency"] == 4


def test_unset_kpa_values_leave_the_cluster_wide_settings():
    unset = {k: None for k in KPA} | {"metric": "concurrency"}
    annotations = isvc_object(service(serving_mode="knative", scaling_mode="kpa", scaling=unset))["metadata"][
        "annotations"]
    assert sorted(k for k in annotations if k.startswith("autoscaling.knative.dev/")) == \
        ["autoscaling.knative.dev/class", "autoscaling.knative.dev/metric"]


def test_a_custom_container_gets_the_model_through_storage_uri():
    args = service(model={"storage_uri": "pvc://models/chat", "format": None, "runtime": None,
                          "container": {"image": "example.com/server:1.2", "args": ["--port", "9000"], "port": 9000}})
    obj = isvc_object(args)
    validate_custom_resource(obj)
    [container] = obj["spec"]["predictor"]["containers"]
    assert container["name"] == "kserve-container" and container["ports"] == [{"containerPort": 9000,
                                                                                 "protocol": "TCP"}]
    assert container["env"] == [{"name": "STORAGE_URI", "value": "pvc://models/chat"}]


def test_keda_on_cloudwatch_and_sqs_is_valid_and_uses_the_scalers_keys():
    args = service()
    so = scaled_object(args)
    validate_custom_resource(so)
    assert_scaler_keys(so)
    gpu, queue = so["spec"]["triggers"]
    assert gpu["metadata"]["metricStatPeriod"] == "60" and gpu["metadata"]["dimensionValue"] == "eks-l4-spot-1234"
    assert queue["metadata"]["queueLength"] == "8" and gpu["authenticationRef"]["name"] == "chat-aws"
    behavior = so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleUp"]["policies"][1] == {"type": "Pods", "value": 2, "periodSeconds": 30}
    assert "selectPolicy" not in behavior["scaleDown"], "unset: the API's default"
    validate_custom_resource({"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
                              "metadata": {"name": "chat-aws"}, "spec": trigger_authentication_spec()})


def test_prometheus_gpu_trigger_selects_the_services_own_pods_in_the_agents_units():
    args = service(metrics={"kind": "prometheus", "region": "us-west-2", "asg_name": "x",
                            "prometheus_url": "http://prometheus.monitoring.svc:9090"},
                   scaling={"gpu_utilization": {"metric": "gpuscale_gpu_utilization_ratio", "target": 75.0,
                                                "period_seconds": 30},
                            "wake": {"kind": "requests", "per_replica": 2.5, "activation": 0.1,
                                     "query": 'sum(rate(gateway_requests_total{service="chat"}[1m]))'},
                            "polling_interval_seconds": 15, "cooldown_period_seconds": 900, "behavior": None})
    so = scaled_object(args, auth=None)
    validate_custom_resource(so)
    assert_scaler_keys(so)
    gpu, requests = so["spec"]["triggers"]
    assert gpu["metadata"]["query"] == ('avg(avg_over_time(gpuscale_gpu_utilization_ratio{namespace="gpuscale-serving",'
                                        'pod=~"chat-predictor-.+"}[30s]))')
    assert gpu["metadata"]["threshold"] == "0.75", "the agent's Prometheus series are ratios"
    assert requests["metadata"]["activationThreshold"] == "0.1" and "authenticationRef" not in requests


def test_hpa_mode_is_a_scaled_object_with_the_gpu_trigger_and_the_behavior_only():
    args = service(scaling_mode="hpa", min_replicas=1,
                   scaling={"metric": "NodeGpuUtilization", "target": 75.0, "behavior": BEHAVIOR, "period_seconds": 60})
    so = scaled_object(args)
    validate_custom_resource(so)
    [trigger] = so["spec"]["triggers"]
    assert trigger["type"] == "aws-cloudwatch" and so["spec"]["minReplicaCount"] == 1
    assert so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"][
        "stabilizationWindowSeconds"] == 300
    assert isvc_object(args)["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "external"


def test_knative_serving_spec_is_valid_and_upstream_defaults_round_trip():
    defaults = KnativeAutoscalerConfig()
    args: KnativeServingArgs = {"autoscaler": {f: getattr(defaults, f) for f in defaults.__dataclass_fields__}}
    spec = knative_serving_spec(args)
    validate_custom_resource({"apiVersion": "operator.knative.dev/v1beta1", "kind": "KnativeServing",
                              "metadata": {"name": "knative-serving"}, "spec": spec})
    upstream = upstream_facts("knative_serving")["configAutoscaler"]
    for key, value in autoscaler_config(args["autoscaler"]).items():
        assert value.removesuffix("s") == upstream[key].removesuffix("s") or float(value) == float(upstream[key]), key


@pytest.mark.parametrize("kind, break_it", [
    ("InferenceService", lambda o: o["spec"]["predictor"].update(minReplica=1)),
    ("InferenceService", lambda o: o["spec"]["predictor"]["model"].update(modelFormat="huggingface")),
    ("ScaledObject", lambda o: o["spec"].update(pollingIntervall=10)),
    ("ScaledObject", lambda o: o["spec"]["triggers"][0].update(metadata={"queueLength": 8})),
    ("TriggerAuthentication", lambda o: o["spec"]["podIdentity"].update(provider="aws-iam")),
    ("KnativeServing", lambda o: o["spec"].update(ingres={"kourier": {"enabled": True}})),
])
def test_the_crd_checks_refuse_a_wrong_field(kind, break_it):
    objects = {
        "InferenceService": isvc_object(service()),
        "ScaledObject": scaled_object(service()),
        "TriggerAuthentication": {"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
                                  "metadata": {"name": "a"}, "spec": trigger_authentication_spec()},
        "KnativeServing": {"apiVersion": "operator.knative.dev/v1beta1", "kind": "KnativeServing",
                           "metadata": {"name": "k"}, "spec": knative_serving_spec({"autoscaler": {
                               f: getattr(KnativeAutoscalerConfig(), f)
                               for f in KnativeAutoscalerConfig.__dataclass_fields__}})}}
    obj = copy.deepcopy(objects[kind])
    validate_custom_resource(obj)
    break_it(obj)
    with pytest.raises(jsonschema.ValidationError):
        validate_custom_resource(obj)


@pytest.mark.parametrize("overrides, message", [
    ({"name": "Chat"}, "name (ModelService \"chat\"): 'Chat' is not allowed; allowed: a DNS-1123 label"),
    ({"serving_mode": "serverless"}, "serving_mode (ModelService \"chat\"): 'serverless' is not allowed; allowed: "
                                     "one of knative, standard"),
    ({"scaling_mode": "kpa"}, "scaling_mode (ModelService \"chat\"): 'kpa' is not allowed; allowed: one of hpa, keda"),
    ({"model": {"storage_uri": "s3://models/x", "format": "huggingface", "runtime": None,
                "container": {"image": "a:1", "args": [], "port": 8080}}},
     "model.format (ModelService \"chat\"): 'huggingface' is not allowed; allowed: exactly one of format"),
    ({"model": {"storage_uri": "gs://m/x", "format": "huggingface", "runtime": None, "container": None}},
     "model.storage_uri (ModelService \"chat\"): 'gs://m/x' is not allowed"),
    ({"model": {"storage_uri": None, "format": None, "runtime": None,
                "container": {"image": "server", "args": [], "port": 8080}}},
     "model.container.image (ModelService \"chat\"): 'server'"),
    ({"gpus": 0}, "gpus (ModelService \"chat\"): 0 is not allowed"),
    ({"memory": "12 GB"}, "memory (ModelService \"chat\"): '12 GB' is not allowed"),
    ({"min_replicas": 5}, "min_replicas (ModelService \"chat\"): 5 is not allowed; allowed: min_replicas <= "
                          "max_replicas (4)"),
    ({"progress_deadline_seconds": 900}, "progress_deadline_seconds (ModelService \"chat\"): 900 is not allowed; "
                                         "allowed: 600 in standard"),
    ({"node_selector": {"gpuscale.io/capacity-type": "spot"}}, "node_selector (ModelService \"chat\"): "),
    ({"scaling_mode": "hpa", "scaling": {"metric": "NodeGpuUtilization", "target": 70.0, "behavior": None,
                                         "period_seconds": 60}},
     "min_replicas (ModelService \"chat\"): 0 is not allowed; allowed: at least 1"),
])
def test_bad_service_args_are_refused_with_their_name_before_anything_is_declared(overrides, message):
    """The component's rules are the stack config's (read_model, read_service_pods), under the Args' names."""
    harness = Harness()
    with pytest.raises(ValueError, match=re.escape(message)):
        harness.run(lambda: ModelService("chat", service(**overrides)))
    assert [r.type for r in harness.resources if r.type != "pulumi:pulumi:Stack"] == []


@pytest.mark.parametrize("scaling, message", [
    ({"gpu_utilization": None, "wake": {"kind": "sqs", "per_replica": 2.5, "activation": 0, "queue_url": QUEUE}},
     "wake.per_replica: 2.5 is not allowed; allowed: a whole number"),
    ({"gpu_utilization": {"metric": "NodeGpuUtilisation", "target": 70.0, "period_seconds": 60}},
     "gpu_utilization.metric: 'NodeGpuUtilisation' is not allowed"),
    ({"gpu_utilization": None, "wake": None}, "keda: "),
    ({"gpu_utilization": {"metric": "NodeGpuUtilization", "target": 70.0, "period_seconds": 60}, "wake": None},
     "min_replicas: 0 is not allowed; allowed: at least 1 without a wake trigger"),
])
def test_bad_triggers_are_refused_before_any_child(scaling, message):
    harness = Harness()
    args = service(scaling={**service()["keda"], **scaling})
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        harness.run(lambda: ModelService("chat", args))
    assert [r.type for r in harness.resources if r.type != "pulumi:pulumi:Stack"] == ["gpuscale:index:ModelService"]


def test_a_standard_service_declares_its_role_account_isvc_auth_and_scaler():
    harness = Harness()
    harness.run(lambda: ModelService("chat", service()))
    types = sorted(r.type for r in harness.resources if r.type.startswith("kubernetes:"))
    assert types == ["kubernetes:core/v1:ServiceAccount", "kubernetes:keda.sh/v1alpha1:ScaledObject",
                     "kubernetes:keda.sh/v1alpha1:TriggerAuthentication",
                     "kubernetes:serving.kserve.io/v1beta1:InferenceService"]
    assert len(harness.of_type("gpuscale:index:IrsaRole")) == 1
    # KServe refuses a changed deploymentMode once recorded: a service moved between modes is replaced, old first.
    isvc = harness.one("kubernetes:serving.kserve.io/v1beta1:InferenceService")
    assert isvc.replace_on_changes == ('metadata.annotations["serving.kserve.io/deploymentMode"]',)
    assert isvc.delete_before_replace


def test_keda_without_aws_triggers_gets_no_role():
    assert keda_policy({"oidc_provider_arn": OIDC_ARN, "oidc_issuer_url": ISSUER, "read_cloudwatch": False,
                        "queue_arns": []}) == []
    harness = Harness()
    harness.run(lambda: Keda("keda", {"oidc_provider_arn": OIDC_ARN, "oidc_issuer_url": ISSUER,
                                      "read_cloudwatch": False, "queue_arns": []}))
    assert not harness.of_type("gpuscale:index:IrsaRole")
    release = harness.one("kubernetes:helm.sh/v3:Release")
    assert "podIdentity" not in release.inputs["values"]


def test_kserve_mode_picks_the_routing_and_a_bad_mode_is_refused():
    # Kourier routes Knative services (no Istio VirtualService); the Ingress key is read by Standard services only.
    assert kserve_values({"mode": "knative"})["kserve"]["controller"]["gateway"] == {
        "disableIstioVirtualHost": True, "disableIngressCreation": True}
    assert kserve_values({"mode": "standard"})["kserve"]["controller"]["deploymentMode"] == "Standard"
    assert kserve_values({"mode": "standard"})["kserve"]["controller"]["gateway"]["disableIstioVirtualHost"] is False
    # Standard by default with Knative installed beside it for some services: Kourier routes those.
    mixed = kserve_values({"mode": "standard", "knative": True})["kserve"]["controller"]
    assert mixed["deploymentMode"] == "Standard" and mixed["gateway"]["disableIstioVirtualHost"] is True
    with pytest.raises(ValueError, match="^mode \\(KServe \"kserve\"\\): 'raw' is not allowed; allowed: one of knative, "
                                         "standard"):
        Harness().run(lambda: KServe("kserve", {"mode": "raw"}))


@pytest.mark.parametrize("field, value, message", [
    ("stable_window_seconds", 5, "autoscaler.stable_window_seconds (KnativeServing \"knative-serving\"): 5 is not "
                                 "allowed; allowed: an integer in [6, 3600]"),
    ("max_scale_down_rate", 1.0, "autoscaler.max_scale_down_rate (KnativeServing \"knative-serving\"): 1.0 is not "
                                 "allowed; allowed: a number in (1.0, "),
    ("panic_threshold_percentage", 100.0, "autoscaler.panic_threshold_percentage (KnativeServing \"knative-serving\"): "
                                          "100.0 is not allowed"),
])
def test_knative_settings_outside_upstreams_bounds_are_refused(field, value, message):
    defaults = KnativeAutoscalerConfig()
    autoscaler = {f: getattr(defaults, f) for f in defaults.__dataclass_fields__} | {field: value}
    harness = Harness()
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        harness.run(lambda: KnativeServing("knative-serving", {"autoscaler": autoscaler}))
    assert [r.type for r in harness.resources if r.type != "pulumi:pulumi:Stack"] == []


def test_requests_wake_defaults_to_the_istio_gateways_counter_and_its_own_server():
    """hf-like as deployed: the GPU trigger on CloudWatch, the wake on the Istio ingress gateway's request counter
    (the ingress class KServe v0.16 gives a Standard-mode Ingress) from the wake's own Prometheus server."""
    args = service(scaling={"gpu_utilization": {"metric": "NodeGpuUtilization", "target": 80.0, "period_seconds": 60},
                            "wake": {"kind": "requests", "per_replica": 0.5, "activation": 0, "period_seconds": 120,
                                     "prometheus_url": "http://prometheus.monitoring.svc:9090"},
                            "polling_interval_seconds": 30, "cooldown_period_seconds": 900, "behavior": BEHAVIOR})
    so = scaled_object(args)
    validate_custom_resource(so)
    assert_scaler_keys(so)
    gpu, requests = so["spec"]["triggers"]
    assert gpu["type"] == "aws-cloudwatch" and gpu["authenticationRef"]["name"] == "chat-aws"
    assert requests["type"] == "prometheus" and "authenticationRef" not in requests
    assert requests["metadata"] == {
        "serverAddress": "http://prometheus.monitoring.svc:9090",
        "query": 'sum(rate(istio_requests_total{reporter="source",destination_service_namespace="gpuscale-serving",'
                 'destination_service_name="chat-predictor"}[120s]))',
        "threshold": "0.5", "activationThreshold": "0"}
    harness = Harness()
    harness.run(lambda: ModelService("chat", args))
    kinds = [r.type.rpartition(":")[2] for r in harness.resources if r.type.startswith("kubernetes:")]
    assert sorted(kinds) == ["InferenceService", "ScaledObject", "ServiceAccount", "TriggerAuthentication"]


@pytest.mark.parametrize("wake, message", [
    ({"kind": "requests", "per_replica": 2, "activation": 0},
     "wake.prometheus_url: None is not allowed; allowed: the Prometheus server holding the gateway's request counter"),
    ({"kind": "requests", "per_replica": 2, "activation": 0, "prometheus_url": "http://p:9090", "query": " "},
     "wake.query: ' ' is not allowed; allowed: a PromQL query"),
])
def test_requests_wake_without_a_server_or_with_a_blank_query_is_refused(wake, message):
    harness = Harness()
    args = service(scaling={**service()["keda"], "wake": wake})
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        harness.run(lambda: ModelService("chat", args))
    assert [r.type for r in harness.resources if r.type != "pulumi:pulumi:Stack"] == ["gpuscale:index:ModelService"]


def test_kserve_gives_standard_services_an_istio_ingress_only_when_asked():
    plain = kserve_values({"mode": "standard"})["kserve"]["controller"]["gateway"]
    assert plain["disableIngressCreation"] is True and "ingressGateway" not in plain
    counted = kserve_values({"mode": "standard", "ingress": True})
    assert counted["kserve"]["controller"]["gateway"] == {
        "disableIstioVirtualHost": False, "disableIngressCreation": False,
        "ingressGateway": {"className": "istio", "enableGatewayApi": False}}
    assert unknown_chart_values(counted, "kserve", "kserve") == []
    with pytest.raises(ValueError, match="^ingress \\(KServe \"kserve\"\\): 'yes' is not allowed"):
        Harness().run(lambda: KServe("kserve", {"mode": "standard", "ingress": "yes"}))


def test_exactly_the_scaling_modes_settings_object_is_given():
    """One optional object per mode instead of a union (the component host has no unions): the mode's own is
    required, another mode's refused, both by name before anything is declared."""
    extra = service()
    extra["kpa"] = KPA  # type: ignore[typeddict-unknown-key]
    missing = service()
    del missing["keda"]  # type: ignore[misc]
    for args, message in ((extra, "kpa (ModelService \"chat\"): {'metric': 'rps'"),
                          (missing, "keda (ModelService \"chat\"): (missing) is not allowed; allowed: a value is "
                                    "required")):
        harness = Harness()
        with pytest.raises(ValueError, match=re.escape(message)):
            harness.run(lambda: ModelService("chat", args))
        assert [r.type for r in harness.resources if r.type != "pulumi:pulumi:Stack"] == []
    with pytest.raises(ValueError, match=re.escape("allowed: only keda's settings with scaling_mode keda")):
        Harness().run(lambda: ModelService("chat", extra))


def test_the_program_deploys_hf_like_as_a_gateway_wake_through_an_istio_ingress():
    """prod's chat on the hf-like preset, its wake reading its own Prometheus: the ScaledObject's requests trigger
    (valid against the CRD and KEDA's prometheus scaler keys) and KServe told to create the Ingress it counts."""
    from components_harness import stack_values

    values = stack_values("prod")
    chat = next(s for s in values["gpuscale:services"] if s["name"] == "chat")
    server = "http://prometheus.monitoring.svc:9090"
    chat["scaling"] = {"preset": "hf-like", "keda": {"wake": {"prometheusUrl": server}}}
    harness = Harness()
    harness.run_program("prod", values)
    scaled = {r.inputs["metadata"]["name"]: r.inputs
              for r in harness.of_type("kubernetes:keda.sh/v1alpha1:ScaledObject")}
    so = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "chat"},
          "spec": scaled["chat"]["spec"]}
    validate_custom_resource(so)
    assert_scaler_keys(so)
    gpu, requests = so["spec"]["triggers"]
    assert gpu["type"] == "aws-cloudwatch" and requests["type"] == "prometheus"
    assert requests["metadata"]["serverAddress"] == server
    assert 'destination_service_name="chat-predictor"' in requests["metadata"]["query"]
    assert so["spec"]["cooldownPeriod"] == 900, "hf-like: zero 15 minutes after the last request"
    [controller] = [r for r in harness.of_type("kubernetes:helm.sh/v3:Release") if r.name == "kserve-controller"]
    gateway = controller.inputs["values"]["kserve"]["controller"]["gateway"]
    assert gateway["disableIngressCreation"] is False and gateway["ingressGateway"]["className"] == "istio"
