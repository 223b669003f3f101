"""The caches' pre-apply checks: a model cache the service's pods cannot reach (other nodes, no matching storageUri,
KServe's local model agent off, no role for the downloads), an image cache on a group no service uses, caches larger
than the node's image volume; and silence where everything is wired."""

from __future__ import annotations

import copy
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from crd_support import validate_custom_resource
from kube_support import project_with_stack_lines

from gpuscale.plan.checks import Finding, run_checks
from gpuscale.plan.checks.caches import cache_findings
from gpuscale.components.kserve import KServe
from gpuscale.components.local_model_cache import LocalModelCache
from gpuscale.components.model_service import ModelService
from gpuscale.config import load_stack_file
from gpuscale.config.caches import ImageCacheConfig, ModelCacheConfig
from gpuscale.plan.engine import plan_in_subprocess

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "components"))
from components_harness import Harness  # noqa: E402
from test_model_cache import SELECTOR, cache_args  # noqa: E402
from test_serving_components import service  # noqa: E402


def planned(service_args=None, cache=None, kserve=None) -> SimpleNamespace:
    """The resources a program declaring KServe, the cache and one service would plan."""
    harness = Harness()

    def program():
        KServe("kserve", kserve or {"mode": "standard", "local_model_nodes": [SELECTOR]})
        LocalModelCache("model-cache", cache or cache_args())
        ModelService("chat", service_args or service(node_selector=SELECTOR, local_model_node_group="l4-ondemand",
                                                     model={"storage_uri": "s3://models/chat-8b",
                                                            "format": "huggingface", "runtime": None,
                                                            "container": None}))
    harness.run(program)
    return SimpleNamespace(resources=harness.resources)


def checks(plan) -> list[tuple[str, str]]:
    config = load_stack_file(ROOT, "dev")
    return [(f.check, f.message) for f in cache_findings(config, plan, Finding)]


def test_a_wired_cache_has_no_finding():
    assert checks(planned()) == []


def test_a_cache_on_other_nodes_is_unreachable():
    spot = {"gpuscale.io/gpu-class": "l4", "gpuscale.io/capacity-type": "spot"}
    found = checks(planned(service_args=service(
        node_selector=spot, model={"storage_uri": "s3://models/chat-8b/v2", "format": "huggingface",
                                   "runtime": None, "container": None})))
    assert [c for c, _ in found] == ["model-cache-unreachable"]
    assert "does not land on" in found[0][1] and "chat" in found[0][1]


def test_a_cache_no_service_reads_is_reported():
    found = checks(planned(service_args=service(node_selector=SELECTOR)))  # s3://models/chat: not under chat-8b
    assert [c for c, _ in found] == ["model-cache-unreachable"]
    assert "which no planned InferenceService reads" in found[0][1]


def test_kserve_without_the_local_model_agent_is_reported():
    found = checks(planned(kserve={"mode": "standard"}))
    assert [c for c, _ in found] == ["model-cache-unreachable"]
    assert "kserve.localmodel.enabled" in found[0][1]


def test_config_checks_unused_image_cache_and_room():
    config = load_stack_file(ROOT, "prod")
    groups = tuple(replace(g, image_cache=ImageCacheConfig("snap-0123456789abcdef0"))
                   if g.name == "l4-ondemand" else g for g in config.node_groups)
    services = tuple(s for s in config.services if s.node_group != "l4-ondemand")
    found = run_checks(replace(config, node_groups=groups, services=services))
    unused = [f for f in found if f.check == "image-cache-unused"]
    assert len(unused) == 1 and unused[0].group == "l4-ondemand"
    assert unused[0].settings[0].endswith(".imageCache.snapshotId")
    big = ModelCacheConfig("local", "16Gi", "1Ti", 125.0)
    services = tuple(replace(s, model_cache=big) if s.name == "chat" else s for s in config.services)
    room = [f for f in run_checks(replace(config, services=services)) if f.check == "model-cache-room"]
    assert len(room) == 1 and "1024 GiB per node" in room[0].message


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_shipped_stacks_have_no_cache_findings(stack):
    config = load_stack_file(ROOT, stack)
    assert cache_findings(config, None, Finding) == []


def test_downloads_without_a_role_are_reported():
    plan = planned()
    plan.resources = [r for r in plan.resources if r.type != "kubernetes:core/v1:ServiceAccountPatch"]
    found = checks(plan)
    assert [c for c, _ in found] == ["model-cache-permissions"]
    assert "cannot read the models from S3" in found[0][1]


@pytest.fixture(scope="module")
def cached_prod(tmp_path_factory):
    """prod with chat's model cache on (the program itself, planned offline in a copy of the project whose stack
    file adds `modelCache` to chat)."""
    project = project_with_stack_lines(tmp_path_factory.mktemp("project"), ROOT, "prod",
                                       "    - name: chat\n      nodeGroup: l4-ondemand\n",
                                       "      modelCache: {kind: local, modelSize: 16Gi, storageLimit: 20Gi}\n")
    return project, plan_in_subprocess(project, "prod")


def test_a_cache_in_prod_is_planned_on_chats_nodes_and_reachable(cached_prod):
    project, plan = cached_prod
    (cache,) = [r.inputs for r in plan.resources if r.type.endswith(":LocalModelCache") and r.custom]
    assert cache["spec"]["sourceModelUri"] == "s3://gpuscale-prod-models/chat-8b-fp16"
    assert cache["spec"]["nodeGroups"] == ["l4-ondemand"]
    isvcs = {r.inputs["metadata"]["name"]: r.inputs for r in plan.resources
             if r.type == "kubernetes:serving.kserve.io/v1beta1:InferenceService"}
    # batch reads the same model on the Spot group: it names its own group, so KServe does not pin it to chat's.
    assert isvcs["batch"]["metadata"]["annotations"]["serving.kserve.io/nodegroup"] == "l4-spot"
    assert isvcs["chat"]["metadata"]["annotations"]["serving.kserve.io/nodegroup"] == "l4-ondemand"
    for r in plan.resources:
        if r.type.startswith("kubernetes:serving.kserve.io/v1alpha1:"):
            validate_custom_resource(r.inputs)
    config = load_stack_file(project, "prod")
    assert [f for f in run_checks(config, plan) if f.check.startswith(("model-cache", "image-cache"))] == []
    # Without batch's annotation, the check finds exactly what KServe would do (on a copy: the plan is shared).
    copied = SimpleNamespace(resources=[replace(r, inputs=copy.deepcopy(r.inputs)) for r in plan.resources])
    for r in copied.resources:
        if r.type.endswith(":InferenceService") and r.inputs["metadata"]["name"] == "batch":
            del r.inputs["metadata"]["annotations"]["serving.kserve.io/nodegroup"]
    found = [f for f in cache_findings(config, copied, Finding) if f.check == "model-cache-unreachable"]
    assert len(found) == 1 and "InferenceService batch" in found[0].message
