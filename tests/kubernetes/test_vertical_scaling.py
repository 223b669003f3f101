"""In-place vertical scaling of a model service: the predictor's resizePolicy valid in the pinned InferenceService
CRD, the VerticalPodAutoscaler valid in the pinned VPA CRD and aimed at the Deployment KServe's Standard mode names,
the VPA chart's values its own, and every bad argument refused before anything is declared."""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import jsonschema
import pytest
from crd_support import validate_custom_resource
from kube_support import unknown_chart_values
from test_serving_components import isvc_object, service

from gpuscale.components.charts import CHARTS, VPA_VERSION, upstream_facts
from gpuscale.components.model_service import CONTAINER_NAME, ModelService
from gpuscale.components.vertical_pod_autoscaler import (IN_PLACE_OR_RECREATE, VerticalPodAutoscaler,
                                                         vertical_pod_autoscaler_spec, vpa_values)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "components"))
from components_harness import Harness  # noqa: E402  (the component tests' harness)

VERTICAL = {"min_cpu": "1", "max_cpu": "3", "min_memory": "8Gi", "max_memory": "14Gi",
            "controlled_resources": ["cpu", "memory"], "memory_restart_policy": "NotRequired"}


def vpa_object(spec: dict) -> dict:
    return {"apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler",
            "metadata": {"name": "chat", "namespace": "gpuscale-serving"}, "spec": spec}


def declared(harness: Harness) -> list[str]:
    return sorted(r.type for r in harness.resources if r.type != "pulumi:pulumi:Stack")


def test_the_runtime_predictor_gets_a_resize_policy_valid_in_kserves_crd():
    obj = isvc_object(service(vertical_scaling=VERTICAL))
    validate_custom_resource(obj)
    assert obj["spec"]["predictor"]["model"]["resizePolicy"] == [
        {"resourceName": "cpu", "restartPolicy": "NotRequired"},
        {"resourceName": "memory", "restartPolicy": "NotRequired"}]


def test_a_custom_container_gets_it_too_with_a_restart_for_memory_when_asked():
    args = service(model={"storage_uri": "pvc://models/chat", "format": None, "runtime": None,
                          "container": {"image": "example.com/server:1.2", "args": [], "port": 9000}},
                   vertical_scaling={**VERTICAL, "memory_restart_policy": "RestartContainer"})
    obj = isvc_object(args)
    validate_custom_resource(obj)
    [container] = obj["spec"]["predictor"]["containers"]
    assert container["resizePolicy"][1] == {"resourceName": "memory", "restartPolicy": "RestartContainer"}


def test_without_vertical_scaling_there_is_no_resize_policy():
    assert "resizePolicy" not in isvc_object(service())["spec"]["predictor"]["model"]


def test_the_vpa_is_valid_in_the_pinned_crd_and_resizes_only_the_predictor_container():
    spec = vertical_pod_autoscaler_spec("chat-predictor", CONTAINER_NAME, VERTICAL)
    validate_custom_resource(vpa_object(spec))
    assert spec["updatePolicy"]["updateMode"] == IN_PLACE_OR_RECREATE == "InPlaceOrRecreate"
    ours, others = spec["resourcePolicy"]["containerPolicies"]
    assert ours == {"containerName": "kserve-container", "minAllowed": {"cpu": "1", "memory": "8Gi"},
                    "maxAllowed": {"cpu": "3", "memory": "14Gi"}, "controlledResources": ["cpu", "memory"],
                    "controlledValues": "RequestsAndLimits"}
    assert others == {"containerName": "*", "mode": "Off"}


@pytest.mark.parametrize("path, value", [
    (("updatePolicy", "updateMode"), "InPlaceOrRestart"),
    (("resourcePolicy", "containerPolicies", 0, "controlledValues"), "LimitsOnly"),
    (("targetRef", "kindName"), "Deployment"),
])
def test_the_schema_check_can_fail(path, value):
    spec = copy.deepcopy(vertical_pod_autoscaler_spec("chat-predictor", CONTAINER_NAME, VERTICAL))
    node = spec
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        validate_custom_resource(vpa_object(spec))


def test_the_in_place_mode_is_in_the_pinned_crd_and_needs_no_feature_gate():
    facts = upstream_facts("vertical_pod_autoscaler")
    assert facts["chart"]["version"] == CHARTS["vertical-pod-autoscaler"].version
    assert facts["chart"]["appVersion"] == VPA_VERSION, "the chart runs the VPA release the gates are read at"
    assert facts["licence"] == "Apache-2.0" and re.fullmatch(r"[0-9a-f]{40}", facts["commit"])
    schema = facts["crds"]["VerticalPodAutoscaler"]["schema"]["properties"]["spec"]["properties"]
    assert IN_PLACE_OR_RECREATE in schema["updatePolicy"]["properties"]["updateMode"]["enum"]
    assert facts["featureGates"] and "InPlaceOrRecreate" not in facts["featureGates"], \
        "InPlaceOrRecreate has a gate again at this VPA: enable it in vpa_values"


def test_the_chart_values_are_the_charts():
    values = vpa_values({"kubernetes_version": "1.33", "node_selector": {"gpuscale.io/node-role": "system"}})
    assert unknown_chart_values(values, "vertical_pod_autoscaler") == []
    assert values["updater"]["extraArgs"] == ["--in-place-skip-disruption-budget=true"]
    assert values["recommender"]["nodeSelector"] == {"gpuscale.io/node-role": "system"}


def test_the_chart_is_installed_pinned():
    harness = Harness()
    harness.run(lambda: VerticalPodAutoscaler("vpa", {"kubernetes_version": "1.34"}))
    release = harness.one("kubernetes:helm.sh/v3:Release")
    assert (release.inputs["chart"], release.inputs["version"]) == ("vertical-pod-autoscaler", "0.11.0")
    assert release.inputs["repositoryOpts"]["repo"] == "https://kubernetes.github.io/autoscaler"


def test_a_standard_service_declares_its_vpa_on_kserves_deployment():
    harness = Harness()
    harness.run(lambda: ModelService("chat", service(vertical_scaling=VERTICAL)))
    vpa = harness.one("kubernetes:autoscaling.k8s.io/v1:VerticalPodAutoscaler")
    # KServe's Standard mode names the predictor's Deployment <name>-predictor (constants.PredictorServiceName).
    assert vpa.inputs["spec"]["targetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                               "name": "chat-predictor"}
    validate_custom_resource({"apiVersion": vpa.inputs["apiVersion"], "kind": vpa.inputs["kind"],
                              "metadata": vpa.inputs["metadata"], "spec": vpa.inputs["spec"]})
    isvc = harness.one("kubernetes:serving.kserve.io/v1beta1:InferenceService")
    assert isvc.inputs["spec"]["predictor"]["model"]["resizePolicy"][0]["resourceName"] == "cpu"


@pytest.mark.parametrize("overrides, key, allowed", [
    ({"serving_mode": "knative", "scaling_mode": "kpa", "progress_deadline_seconds": 600,
      "scaling": {"metric": "concurrency"}}, "vertical_scaling", "only with KServe's standard serving mode"),
    ({"vertical_scaling": {**VERTICAL, "controlled_resources": ["cpu", "nvidia.com/gpu"]}},
     "vertical_scaling.controlled_resources[1]", "GPUs (nvidia.com/gpu) cannot be resized in place"),
    ({"vertical_scaling": {**VERTICAL, "min_cpu": "3"}}, "vertical_scaling.min_cpu",
     "at most the service's cpu request (2)"),
    ({"vertical_scaling": {**VERTICAL, "max_memory": "10Gi"}}, "vertical_scaling.max_memory",
     "at least the service's memory request (12Gi)"),
    ({"vertical_scaling": {**VERTICAL, "memory_restart_policy": "Always"}},
     "vertical_scaling.memory_restart_policy", "NotRequired, RestartContainer"),
    ({"vertical_scaling": {k: v for k, v in VERTICAL.items() if k != "max_cpu"}}, "vertical_scaling.max_cpu",
     "a value is required"),
])
def test_bad_vertical_scaling_args_are_refused_before_anything_is_declared(overrides, key, allowed):
    args = service(**overrides)
    args.setdefault("vertical_scaling", VERTICAL)
    harness = Harness()
    with pytest.raises(ValueError) as caught:
        harness.run(lambda: ModelService("chat", args))
    errors = {e.key: e for e in getattr(caught.value, "errors", [caught.value])}
    assert key in errors, caught.value
    assert allowed in errors[key].allowed, errors[key]
    assert declared(harness) == []


def test_an_old_cluster_is_refused_by_the_chart_component():
    harness = Harness()
    with pytest.raises(ValueError, match=re.escape("kubernetes_version (VerticalPodAutoscaler \"vpa\"): '1.30' is "
                                                   "not allowed; allowed: 1.33 or later")):
        harness.run(lambda: VerticalPodAutoscaler("vpa", {"kubernetes_version": "1.30"}))
    assert declared(harness) == []


def test_the_program_declares_the_vpa_and_the_services_vpa_when_the_stack_config_asks(tmp_path):
    """prod with in-place CPU resize on chat (g6.xlarge: 4 vCPUs): the VPA release once, chat's VerticalPodAutoscaler
    on its Deployment, its resizePolicy; the batch service, which does not ask, gets neither."""
    from components_harness import stack_values
    values = copy.deepcopy(stack_values("prod"))
    [chat] = [s for s in values["gpuscale:services"] if s["name"] == "chat"]
    chat["verticalScaling"] = {"minCpu": "2", "maxCpu": "3.5", "maxMemory": chat["memory"],
                               "controlledResources": ["cpu"]}
    harness = Harness()
    harness.run_program("prod", values)
    release = [r for r in harness.of_type("kubernetes:helm.sh/v3:Release")
               if r.inputs.get("chart") == "vertical-pod-autoscaler"]
    assert len(release) == 1 and release[0].inputs["version"] == CHARTS["vertical-pod-autoscaler"].version
    [vpa] = harness.of_type("kubernetes:autoscaling.k8s.io/v1:VerticalPodAutoscaler")
    assert vpa.inputs["metadata"]["name"] == "chat"
    assert vpa.inputs["spec"]["resourcePolicy"]["containerPolicies"][0]["maxAllowed"] == {"cpu": "3.5",
                                                                                         "memory": chat["memory"]}
    validate_custom_resource({k: vpa.inputs[k] for k in ("apiVersion", "kind", "metadata", "spec")})
    policies = {r.inputs["metadata"]["name"]: r.inputs["spec"]["predictor"]["model"].get("resizePolicy")
                for r in harness.of_type("kubernetes:serving.kserve.io/v1beta1:InferenceService")
                if "model" in r.inputs["spec"]["predictor"]}
    assert policies["chat"][0] == {"resourceName": "cpu", "restartPolicy": "NotRequired"}
    assert all(p is None for name, p in policies.items() if name != "chat")


def test_a_stack_without_vertical_scaling_installs_no_vpa():
    harness = Harness()
    harness.run_program("prod")
    assert not harness.of_type("kubernetes:autoscaling.k8s.io/v1:VerticalPodAutoscaler")
    assert not [r for r in harness.of_type("kubernetes:helm.sh/v3:Release")
                if r.inputs.get("chart") == "vertical-pod-autoscaler"]
