"""KServe's local model cache: the LocalModelNodeGroup and LocalModelCache valid against the pinned v0.16 CRDs, on
exactly the service's nodes; KServe's chart values for it known to the pinned chart; the InferenceService naming the
node group whose copy it mounts; every bad argument refused by name before anything is declared."""

from __future__ import annotations

import sys
from pathlib import Path

import jsonschema
import pulumi
import pytest
from crd_support import validate_custom_resource
from kube_support import unknown_chart_values, validate_object

from gpuscale.components.charts import upstream_facts
from gpuscale.components.kserve import KServe, kserve_values
from gpuscale.components.local_model_cache import (JOB_NAMESPACE, LocalModelCache, LocalModelCacheArgs,
                                                   model_object, node_group_object)
from gpuscale.components.model_service import NODE_GROUP, ModelService
from gpuscale.config.caches import LOCAL_MODEL_HOST_PATH
from gpuscale.config.reader import ConfigErrors

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "components"))
from components_harness import Harness  # noqa: E402
from test_serving_components import ISSUER, OIDC_ARN, isvc_object, service  # noqa: E402

SELECTOR = {"gpuscale.io/gpu-class": "l4", "gpuscale.io/capacity-type": "on-demand"}


def cache_args(**overrides) -> LocalModelCacheArgs:
    args: LocalModelCacheArgs = {
        "node_groups": [{"name": "l4-ondemand", "node_selector": SELECTOR, "storage_limit": "100Gi"}],
        "models": [{"name": "chat", "storage_uri": "s3://models/chat-8b", "model_size": "16Gi",
                    "node_groups": ["l4-ondemand"]}],
        "oidc_provider_arn": OIDC_ARN, "oidc_issuer_url": ISSUER}
    args.update(overrides)  # type: ignore[typeddict-item]
    return args


def test_objects_are_valid_against_the_pinned_crds():
    args = cache_args()
    validate_custom_resource(node_group_object(args["node_groups"][0]))
    validate_custom_resource(model_object(args["models"][0]))


def test_the_crd_check_refuses_a_misspelt_field():
    obj = model_object(cache_args()["models"][0])
    obj["spec"]["sourceModelURI"] = obj["spec"].pop("sourceModelUri")
    with pytest.raises(jsonschema.ValidationError):
        validate_custom_resource(obj)


def test_the_volume_is_the_agents_host_path_on_the_services_nodes():
    spec = node_group_object(cache_args()["node_groups"][0])["spec"]
    pv = spec["persistentVolumeSpec"]
    assert pv["local"] == {"path": LOCAL_MODEL_HOST_PATH} == {"path": "/mnt/models"}
    (term,) = pv["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert {e["key"]: e["values"] for e in term["matchExpressions"]} == {k: [v] for k, v in SELECTOR.items()}
    assert spec["storageLimit"] == pv["capacity"]["storage"] == "100Gi"
    assert spec["persistentVolumeClaimSpec"]["storageClassName"] == pv["storageClassName"]
    # The PV and claim specs are core objects too: valid as Kubernetes' own.
    validate_object({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "x"}, "spec": pv}, "1.33")
    validate_object({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "x", "namespace": "n"},
                     "spec": spec["persistentVolumeClaimSpec"]}, "1.33")


def test_the_model_cache_source_is_the_services_storage_uri():
    spec = model_object(cache_args()["models"][0])["spec"]
    assert spec == {"sourceModelUri": "s3://models/chat-8b", "modelSize": "16Gi", "nodeGroups": ["l4-ondemand"]}


def test_kserve_values_turn_on_the_agent_on_the_cache_nodes_only():
    values = kserve_values({"mode": "standard", "local_model_nodes": [SELECTOR]})
    assert unknown_chart_values(values, "kserve", "kserve") == []
    local = values["kserve"]["localmodel"]
    assert local["enabled"] is True and local["agent"]["hostPath"] == LOCAL_MODEL_HOST_PATH
    terms = local["agent"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"]
    assert terms == node_group_object(cache_args()["node_groups"][0])["spec"]["persistentVolumeSpec"][
        "nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert local["agent"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert "localmodel" not in kserve_values({"mode": "standard"})["kserve"]


def test_kserve_refuses_a_cache_node_selector_without_the_gpu_class():
    with pytest.raises(ValueError, match=r"local_model_nodes\[0\]\.node_selector .*gpuscale.io/gpu-class"):
        Harness().run(lambda: KServe("kserve", {"mode": "standard", "local_model_nodes": [{"a": "b"}]}))


def test_the_component_declares_groups_caches_and_the_download_role():
    harness = Harness()
    harness.run(lambda: LocalModelCache("model-cache", cache_args()))
    kinds = sorted(r.type for r in harness.resources if r.type.startswith("kubernetes:"))
    assert kinds == ["kubernetes:core/v1:ServiceAccountPatch", "kubernetes:serving.kserve.io/v1alpha1:LocalModelCache",
                     "kubernetes:serving.kserve.io/v1alpha1:LocalModelNodeGroup"]
    patch = harness.one("kubernetes:core/v1:ServiceAccountPatch")
    assert patch.inputs["metadata"]["namespace"] == JOB_NAMESPACE and patch.inputs["metadata"]["name"] == "default"
    (role,) = harness.of_type("gpuscale:index:IrsaRole")
    policy = harness.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"]
    assert "arn:aws:s3:::models/chat-8b/*" in policy


@pytest.mark.parametrize("overrides, key, allowed", [
    ({"models": [{"name": "chat", "storage_uri": "s3://models/chat", "model_size": "16GB",
                  "node_groups": ["l4-ondemand"]}]}, "models[0].model_size", "a Kubernetes storage quantity"),
    ({"models": [{"name": "chat", "storage_uri": "pvc://models/chat", "model_size": "16Gi",
                  "node_groups": ["l4-ondemand"]}]}, "models[0].storage_uri", "an s3:// storageUri"),
    ({"models": [{"name": "chat", "storage_uri": "s3://models/chat", "model_size": "16Gi",
                  "node_groups": ["l4-spot"]}]}, "models[0].node_groups", "names of node_groups (l4-ondemand)"),
    ({"node_groups": [{"name": "l4-ondemand", "node_selector": {"x": "y"}, "storage_limit": "100Gi"}]},
     "node_groups[0].node_selector", "gpuscale.io/gpu-class"),
    ({"node_groups": [{"name": "l4-ondemand", "node_selector": SELECTOR, "storage_limit": "lots"}]},
     "node_groups[0].storage_limit", "a Kubernetes storage quantity"),
    ({"node_groups": []}, "node_groups", "a list of at least 1"),
    ({"models": [{"name": "chat", "storage_uri": "s3://models/chat", "model_size": "16Gi",
                  "node_groups": ["l4-ondemand"]},
                 {"name": "batch", "storage_uri": "s3://models/chat", "model_size": "16Gi",
                  "node_groups": ["l4-ondemand"]}]}, "models[1].storage_uri", "each storage_uri once (chat caches"),
], ids=["size", "pvc", "unknown-group", "no-gpu-class", "limit", "no-groups", "same-uri"])
def test_bad_arguments_are_refused_by_name_before_anything_is_declared(overrides, key, allowed):
    harness = Harness()
    with pytest.raises((ValueError, ConfigErrors)) as caught:
        harness.run(lambda: LocalModelCache("mc", cache_args(**overrides)))
    errors = getattr(caught.value, "errors", [caught.value])
    error = next((e for e in errors if getattr(e, "key", None) == key), None)
    assert error is not None and allowed in str(error), str(caught.value)
    assert [r.type for r in harness.resources if r.type != "pulumi:pulumi:Stack"] == []


def test_a_cached_service_names_the_node_group_of_its_copy():
    # The annotation KServe's setLocalModelLabel reads (pkg/constants NodeGroupAnnotationKey at the pin).
    assert NODE_GROUP == upstream_facts("kserve")["annotations"]["nodeGroup"]
    obj = isvc_object(service(local_model_node_group="l4-ondemand"))
    validate_custom_resource(obj)
    assert obj["metadata"]["annotations"][NODE_GROUP] == "l4-ondemand"
    assert NODE_GROUP not in isvc_object(service())["metadata"]["annotations"]
    # The storageUri stays the model's: KServe's webhook matches it to the cache's sourceModelUri.
    assert obj["spec"]["predictor"]["model"]["storageUri"] == "s3://models/chat"
    with pytest.raises(ValueError, match="local_model_node_group"):
        Harness().run(lambda: ModelService("chat", service(local_model_node_group="L4 group")))


def test_every_kubernetes_child_waits_for_kserve():
    harness = Harness()

    def program():
        kserve = KServe("kserve", {"mode": "standard", "local_model_nodes": [SELECTOR]})
        LocalModelCache("model-cache", cache_args(), opts=pulumi.ResourceOptions(depends_on=[kserve]))
    harness.run(program)
    # A dependency on a component is recorded as one on its children: the controller release is among them.
    controller = harness.one("kubernetes:helm.sh/v3:Release", "kserve-controller").urn
    children = [r for r in harness.resources if r.type.startswith("kubernetes:") and r.name.startswith("model-cache")]
    assert len(children) == 3
    for r in children:
        assert controller in r.dependencies, f"{r.name} does not wait for KServe"
