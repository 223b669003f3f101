"""GPU headroom: gpuscale:headroom read and refused by key; the GpuHeadroom component's PriorityClass and placeholder
Deployment valid against Kubernetes' schema, holding whole nodes of the group's GPU class; a priority the
cluster-autoscaler would ignore refused by both; prod's headroom planned and checked for room."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
from kube_support import validate_object

from gpuscale.plan.checks import run_checks
from gpuscale.components.charts import upstream_facts
from gpuscale.components.gpu_headroom import GpuHeadroom, GpuHeadroomArgs, placeholder_deployment, priority_class
from gpuscale.config import ConfigError, load_stack_config
from gpuscale.config.headroom import PAUSE_IMAGE, PREPULL_COMMAND, expendable_cutoff

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "config"))
sys.path.insert(0, str(ROOT / "tests" / "components"))
sys.path.insert(0, str(ROOT / "tests" / "sim"))
from components_harness import Harness  # noqa: E402
from test_config_validation import CATALOG, base  # noqa: E402
from prod_headroom import prod_with_chat_headroom  # noqa: E402


def headroom_args(**overrides) -> GpuHeadroomArgs:
    args: GpuHeadroomArgs = {"node_group": "l4-ondemand", "nodes": 2, "gpus_per_node": 4, "priority": -10,
                             "node_selector": {"gpuscale.io/gpu-class": "l4"}}
    args.update(overrides)  # type: ignore[typeddict-item]
    return args


def test_cutoff_is_the_pinned_autoscalers_flag_default():
    # flags.go at the chart's app release: "Pods with priority below cutoff ... don't cause scale up".
    assert upstream_facts("cluster_autoscaler")["flagDefaults"]["expendable-pods-priority-cutoff"] == "-10"
    assert expendable_cutoff() == -10


@pytest.mark.parametrize("minor", ["1.29", "1.33"])
@pytest.mark.parametrize("prepull", [[], ["kserve/huggingfaceserver:v0.16.0", "vllm/vllm-openai:v0.11.0"]])
def test_objects_valid_against_kubernetes_schema(minor, prepull):
    args = headroom_args(prepull_images=prepull)
    validate_object(priority_class(args), minor)
    validate_object(placeholder_deployment(args), minor)


def test_placeholder_prepulls_each_image_with_an_init_container():
    images = ["kserve/huggingfaceserver:v0.16.0", "vllm/vllm-openai:v0.11.0"]
    pod = placeholder_deployment(headroom_args(prepull_images=images))["spec"]["template"]["spec"]
    inits = pod["initContainers"]
    assert [c["image"] for c in inits] == images and len({c["name"] for c in inits}) == 2
    for c in inits:
        # A no-op that exits at once; tiny requests, no GPU (the pause container holds the node's GPUs).
        assert c["command"] == list(PREPULL_COMMAND) == ["true"]
        assert c["imagePullPolicy"] == "IfNotPresent"
        assert c["resources"]["requests"] == {"cpu": "10m", "memory": "16Mi"}
    assert "initContainers" not in placeholder_deployment(headroom_args())["spec"]["template"]["spec"]


def test_placeholder_holds_whole_nodes_of_the_gpu_class():
    dep = placeholder_deployment(headroom_args(nodes=3, gpus_per_node=8))
    assert dep["spec"]["replicas"] == 3
    pod = dep["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == priority_class(headroom_args())["metadata"]["name"]
    assert pod["nodeSelector"] == {"gpuscale.io/gpu-class": "l4"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Equal", "value": "true",
                                   "effect": "NoSchedule"}]
    (container,) = pod["containers"]
    assert container["image"] == PAUSE_IMAGE
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "8" == container["resources"]["limits"][
        "nvidia.com/gpu"]
    assert priority_class(headroom_args())["value"] == -10 and not priority_class(headroom_args())["globalDefault"]


def test_schema_check_can_fail():
    dep = placeholder_deployment(headroom_args())
    dep["spec"]["template"]["spec"]["priorityClass"] = "x"  # the field is priorityClassName
    with pytest.raises(Exception):
        validate_object(dep, "1.33")


@pytest.mark.parametrize("field, value", [
    ("priority", -11), ("priority", 0), ("priority", 5), ("nodes", 0), ("gpus_per_node", 0),
    ("node_group", "L4"), ("node_selector", {"x": "y"}), ("image", "registry.k8s.io/pause"),
    ("prepull_images", ["vllm/vllm-openai"]), ("prepull_images", "vllm/vllm-openai:v0.11.0")])
def test_component_refuses_bad_args(field, value):
    harness = Harness()
    with pytest.raises(ValueError, match=rf"^{field}(\[\d+\])? \(GpuHeadroom \"h\"\): "):
        harness.run(lambda: GpuHeadroom("h", headroom_args(**{field: value})))
    assert [r.type for r in harness.resources if r.type != "pulumi:pulumi:Stack"] == []


def load(entries):
    cfg = copy.deepcopy(base())
    cfg["gpuscale:headroom"] = entries
    cfg["gpuscale:modelBuckets"] = [{"name": "models-bucket"}]
    return load_stack_config(cfg, "test", CATALOG)


def test_config_reads_headroom():
    (h,) = load([{"nodeGroup": "l4", "nodes": 1}]).headroom
    assert (h.node_group, h.nodes, h.priority, h.image) == ("l4", 1, -10, PAUSE_IMAGE)
    assert load([{"nodeGroup": "l4", "nodes": 1, "priority": -1}]).headroom[0].priority == -1


@pytest.mark.parametrize("entry, key, allowed", [
    ({"nodeGroup": "l4", "nodes": 1, "priority": -11}, "gpuscale:headroom[0].priority",
     "expendable-pods-priority-cutoff (-10)"),
    ({"nodeGroup": "l4", "nodes": 1, "priority": 0}, "gpuscale:headroom[0].priority", "from -10 to -1"),
    ({"nodeGroup": "nope", "nodes": 1}, "gpuscale:headroom[0].nodeGroup", "l4"),
    ({"nodeGroup": "l4", "nodes": 0}, "gpuscale:headroom[0].nodes", "[1, 100]"),
    ({"nodeGroup": "l4", "nodes": 1000}, "gpuscale:headroom[0].nodes", "[1, 100]"),
    ({"nodeGroup": "l4", "nodes": 1, "image": "registry.k8s.io/pause"}, "gpuscale:headroom[0].image", "tag"),
    ({"nodeGroup": "l4", "nodes": 1, "extra": 1}, "gpuscale:headroom[0]", "extra"),
])
def test_config_refuses_bad_headroom(entry, key, allowed):
    with pytest.raises(ConfigError) as e:
        load([entry])
    assert key in str(e.value) and allowed in str(e.value)


def test_config_refuses_two_entries_for_one_group():
    with pytest.raises(ConfigError, match=r"headroom\[1\]\.nodeGroup.*one headroom entry per node group"):
        load([{"nodeGroup": "l4", "nodes": 1}, {"nodeGroup": "l4", "nodes": 2}])


def with_services(entries, services):
    cfg = copy.deepcopy(base())
    cfg["gpuscale:kubernetes"] = {"serving": {"mode": "standard"}}
    cfg["gpuscale:services"] = services
    cfg["gpuscale:headroom"] = entries
    cfg["gpuscale:modelBuckets"] = [{"name": "models-bucket"}]
    return load_stack_config(cfg, "test", CATALOG)


def model_service(name, **model):
    return {"name": name, "nodeGroup": "l4", "model": {"storageUri": f"s3://models-bucket/{name}", **model},
            "minReplicas": 1, "maxReplicas": 1, "scaling": {"preset": "hpa-example"},
            "workload": {"concurrencyPerReplica": 4, "serviceTime": {"meanSeconds": 60},
                         "coldStart": {"nodeProvisioningSeconds": 120, "imagePullSeconds": 90,
                                       "modelLoadSeconds": 75}, "price": {"perInstanceHour": 0.8}}}


RUNTIME = model_service("chat", format="huggingface")
CUSTOM = model_service("own", container={"image": "vllm/vllm-openai:v0.11.0", "port": 8000})
# A runtime by name that the KServe chart does not install (the cluster's own ServingRuntime): its image is unknown.
OTHER_RUNTIME = model_service("other", format="huggingface", runtime="my-vllm-runtime")


def test_prepull_images_from_the_groups_services():
    (h,) = with_services([{"nodeGroup": "l4", "nodes": 1}], [CUSTOM]).headroom
    assert h.prepull_images == ("vllm/vllm-openai:v0.11.0",)  # on by default: the image is known
    # A KServe runtime's image is among the facts (the pinned chart's kserve.servingruntime.huggingfaceserver image
    # and tag): pre-pulled by default too, no `images:` needed.
    (h,) = with_services([{"nodeGroup": "l4", "nodes": 1}], [CUSTOM, RUNTIME]).headroom
    assert h.prepull_images == ("vllm/vllm-openai:v0.11.0", "kserve/huggingfaceserver:v0.16.0")
    # `images:` adds extra images after the services' own, each once.
    (h,) = with_services([{"nodeGroup": "l4", "nodes": 1, "images": ["kserve/huggingfaceserver:v0.16.0",
                                                                      "example/sidecar:1.2"]}], [RUNTIME]).headroom
    assert h.prepull_images == ("kserve/huggingfaceserver:v0.16.0", "example/sidecar:1.2")
    # A runtime the chart does not install: its image is unknown, so nothing is pre-pulled by default...
    (h,) = with_services([{"nodeGroup": "l4", "nodes": 1}], [RUNTIME, OTHER_RUNTIME]).headroom
    assert h.prepull_images == ()
    # ... until `images:` names it.
    (h,) = with_services([{"nodeGroup": "l4", "nodes": 1, "images": ["example/vllm:0.11"]}],
                         [RUNTIME, OTHER_RUNTIME]).headroom
    assert h.prepull_images == ("kserve/huggingfaceserver:v0.16.0", "example/vllm:0.11")
    (h,) = with_services([{"nodeGroup": "l4", "nodes": 1, "prepullImages": False}], [CUSTOM]).headroom
    assert h.prepull_images == ()


def test_a_runtime_service_on_a_warm_node_finds_its_image_only_when_pre_pulled():
    config = with_services([{"nodeGroup": "l4", "nodes": 1}], [RUNTIME, CUSTOM])
    (h,) = config.headroom
    chat, own = (next(s for s in config.services if s.name == n) for n in ("chat", "own"))
    assert chat.model.image == "kserve/huggingfaceserver:v0.16.0" and h.prepulls(chat) and h.prepulls(own)
    from dataclasses import replace
    assert not replace(h, prepull_images=("vllm/vllm-openai:v0.11.0",)).prepulls(chat)


@pytest.mark.parametrize("entry, services, key, allowed", [
    ({"prepullImages": True}, [OTHER_RUNTIME], "gpuscale:headroom[0].images", "not among the stack's facts"),
    ({"prepullImages": True}, [CUSTOM, RUNTIME, OTHER_RUNTIME], "gpuscale:headroom[0].images", "other"),
    ({"prepullImages": True}, [], "gpuscale:headroom[0].prepullImages", "no service on the node group"),
    ({"prepullImages": False, "images": ["a/b:1"]}, [CUSTOM], "gpuscale:headroom[0].images",
     "only with prepullImages: true"),
    ({"images": ["kserve/huggingfaceserver"]}, [RUNTIME], "gpuscale:headroom[0].images", "tag or digest"),
    ({"prepullImages": "yes"}, [CUSTOM], "gpuscale:headroom[0].prepullImages", "true or false"),
])
def test_config_refuses_bad_prepull(entry, services, key, allowed):
    with pytest.raises(ConfigError) as e:
        with_services([{"nodeGroup": "l4", "nodes": 1, **entry}], services)
    assert key in str(e.value) and allowed in str(e.value)


def test_prods_chat_group_keeps_one_warm_node_with_the_runtime_image():
    from dataclasses import replace

    config = prod_with_chat_headroom()
    (h,) = config.headroom
    chat = next(s for s in config.services if s.name == "chat")
    # The pinned KServe's Hugging Face runtime image (charts/kserve-resources/values.yaml at v0.16.0), from the
    # facts: the entry names no `images:`.
    assert (h.node_group, h.nodes, h.prepull_images) == ("l4-ondemand", 1, ("kserve/huggingfaceserver:v0.16.0",))
    assert h.prepulls(chat)
    # The group has room for chat's ten pods and the warm node.
    assert not [f for f in run_checks(config) if f.check == "headroom-room"]
    tight = replace(config, node_groups=tuple(replace(g, max_size=10) if g.name == "l4-ondemand" else g
                                              for g in config.node_groups))
    (finding,) = [f for f in run_checks(tight) if f.check == "headroom-room"]
    assert finding.severity == "warning" and "gpuscale:headroom[0].nodes" in finding.settings
    assert "maxSize 10" in finding.message


def test_a_changed_priority_replaces_the_priority_class():
    """The API server refuses to update a PriorityClass's value (ValidatePriorityClassUpdate) and pulumi-kubernetes
    replaces one only for its name: the component marks the value itself, and deletes the fixed-name class first."""
    harness = Harness()
    harness.run(lambda: GpuHeadroom("h", headroom_args()))
    klass = harness.one("kubernetes:scheduling.k8s.io/v1:PriorityClass")
    assert set(klass.replace_on_changes) == {"value", "preemptionPolicy"} and klass.delete_before_replace
    assert "value" in klass.inputs and "preemptionPolicy" in klass.inputs, "the marks name the inputs as sent"
    deployment = harness.one("kubernetes:apps/v1:Deployment")
    assert not deployment.replace_on_changes and not deployment.delete_before_replace
    assert klass.urn in deployment.dependencies


def test_a_changed_priority_rolls_the_placeholders_onto_the_new_class():
    """Pods take their class's value when admitted: the template carries it, so a new value recreates them."""
    low, high = (placeholder_deployment(headroom_args(priority=p))["spec"] for p in (-10, -3))
    assert low["template"]["metadata"]["annotations"] != high["template"]["metadata"]["annotations"]
    assert high["template"]["metadata"]["annotations"]["gpuscale.io/priority"] == "-3"
    # No surge placeholder (it would need one more whole node): all old ones go, the new ones take their nodes; a
    # rolling update, not Recreate, so that stacks deployed before can apply it.
    assert low["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "100%"}}
