"""`verticalScaling:` of a `gpuscale:services` entry: bounds that bracket the service's requests, no GPUs, a cluster
minor with in-place resize, Standard mode only; every bad value named with its key, the value and what is allowed."""

from __future__ import annotations

import pytest
from test_config_services import S, svc
from test_config_validation import CATALOG, _set, assert_rejected, cluster

from gpuscale.config import load_stack_config
from gpuscale.config.vertical import VerticalScalingConfig, inplace_resize_refusal

V = f"{S}.verticalScaling"
KEDA = {"keda": {"gpuUtilization": {"target": 70}}}


def standard_service(cfg: dict, vertical: dict | None = None) -> dict:
    """The base config with one Standard-mode service (cpu 1, memory 8Gi by default, on a g6.xlarge: 4 vCPUs,
    16 GiB) resizing in place between 500m-2 CPUs and 4Gi-12Gi."""
    from test_config_services import with_service
    cfg.clear()
    cfg.update(with_service("standard"))
    svc(cfg).update(scaling=KEDA, minReplicas=1)
    svc(cfg)["verticalScaling"] = vertical if vertical is not None else {
        "minCpu": "500m", "maxCpu": "2", "minMemory": "4Gi", "maxMemory": "12Gi"}
    return cfg


def vs(cfg: dict) -> dict:
    return svc(cfg)["verticalScaling"]


def _then(*steps):
    def mutate(cfg):
        standard_service(cfg)
        for step in steps:
            step(cfg)
    return mutate


BAD = [
    ("gpu-resource", _then(_set(vs, "controlledResources", ["cpu", "nvidia.com/gpu"])),
     f"{V}.controlledResources[1]", "GPUs (nvidia.com/gpu) cannot be resized in place"),
    ("gpus-word", _then(_set(vs, "controlledResources", ["gpus"])), f"{V}.controlledResources[0]",
     "cannot be resized in place"),
    ("unknown-resource", _then(_set(vs, "controlledResources", ["ephemeral-storage"])),
     f"{V}.controlledResources[0]", "one of cpu, memory"),
    ("empty-resources", _then(_set(vs, "controlledResources", [])), f"{V}.controlledResources",
     "a list of at least 1"),
    ("repeated-resources", _then(_set(vs, "controlledResources", ["cpu", "cpu"])), f"{V}.controlledResources",
     "without repeated"),
    ("min-cpu-over-request", _then(_set(vs, "minCpu", "1500m")), f"{V}.minCpu",
     "at most the service's cpu request (1)"),
    ("max-cpu-under-request", _then(_set(vs, "maxCpu", "800m")), f"{V}.maxCpu",
     "at least the service's cpu request (1)"),
    ("min-memory-over-request", _then(_set(vs, "minMemory", "10Gi")), f"{V}.minMemory",
     "at most the service's memory request (8Gi)"),
    ("max-memory-under-request", _then(_set(vs, "maxMemory", "6Gi")), f"{V}.maxMemory",
     "at least the service's memory request (8Gi)"),
    ("max-cpu-over-node", _then(_set(vs, "maxCpu", "6")), f"{V}.maxCpu", "has 4 vCPUs"),
    ("max-memory-over-node", _then(_set(vs, "maxMemory", "64Gi")), f"{V}.maxMemory", "MiB of memory"),
    ("max-cpu-missing", _then(lambda c: vs(c).pop("maxCpu")), f"{V}.maxCpu", "a value is required"),
    ("max-memory-missing", _then(lambda c: vs(c).pop("maxMemory")), f"{V}.maxMemory", "a value is required"),
    ("bad-quantity", _then(_set(vs, "maxCpu", "two")), f"{V}.maxCpu", "a Kubernetes CPU quantity"),
    ("memory-policy", _then(_set(vs, "memoryRestartPolicy", "Never")), f"{V}.memoryRestartPolicy",
     "NotRequired, RestartContainer"),
    ("enabled-not-bool", _then(_set(vs, "enabled", "yes")), f"{V}.enabled", "true or false"),
    ("typo", _then(_set(vs, "maxCPU", "2")), f"{V}.maxCPU", "known keys"),
    ("old-cluster", _then(_set(cluster, "kubernetesVersion", "1.32")), "gpuscale:cluster.kubernetesVersion",
     "1.33 or later with a service's verticalScaling"),
    # With cluster-autoscaler off, nothing else needs an existing cluster's minor: in-place resize still does.
    ("existing-cluster-without-version", _then(lambda c: c.__setitem__("gpuscale:cluster", {
        "mode": "existing", "name": "c1"}), lambda c: c["gpuscale:kubernetes"].update(
            clusterAutoscaler={"enabled": False})), "gpuscale:cluster.kubernetesVersion", "1.33 or later"),
    ("knative-mode", lambda c: (standard_service(c), c["gpuscale:kubernetes"]["serving"].update(mode="knative"),
                                svc(c).update(scaling={"kpa": {"metric": "concurrency"}}, minReplicas=0)),
     V, "only with KServe's standard serving mode"),
]


@pytest.mark.parametrize("mutate,key,allowed", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_vertical_scaling_is_rejected_naming_key_and_allowed(mutate, key, allowed):
    assert_rejected(mutate, key, allowed)


def test_a_valid_section_reaches_the_typed_config_with_defaults():
    config = load_stack_config(standard_service({}), "test", CATALOG)
    assert config.services[0].vertical_scaling == VerticalScalingConfig(
        "500m", "2", "4Gi", "12Gi", ("cpu", "memory"), "NotRequired")


def test_floors_default_to_the_requests_and_cpu_alone_may_be_resized():
    cfg = standard_service({}, {"maxCpu": "3", "maxMemory": "8Gi", "controlledResources": ["cpu"],
                                "memoryRestartPolicy": "RestartContainer"})
    got = load_stack_config(cfg, "test", CATALOG).services[0].vertical_scaling
    assert got == VerticalScalingConfig("1", "3", "8Gi", "8Gi", ("cpu",), "RestartContainer")


def test_disabled_section_is_none_and_its_keys_are_not_checked():
    cfg = standard_service({}, {"enabled": False, "maxCpu": "64"})
    assert load_stack_config(cfg, "test", CATALOG).services[0].vertical_scaling is None


def test_a_service_without_the_section_does_not_need_a_new_cluster():
    cfg = standard_service({})
    del svc(cfg)["verticalScaling"]
    cluster(cfg)["kubernetesVersion"] = "1.30"
    assert load_stack_config(cfg, "test", CATALOG).services[0].vertical_scaling is None


@pytest.mark.parametrize("version,refused", [("1.27", True), ("1.32", True), ("1.33", False), ("1.35", False),
                                             (None, True)])
def test_in_place_resize_needs_kubernetes_1_33(version, refused):
    assert (inplace_resize_refusal(version) is not None) == refused
