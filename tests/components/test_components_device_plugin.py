"""NvidiaDevicePlugin: on our AL2023 GPU nodes only (not by NFD labels plain EKS nodes lack), tolerating the GPU
taint, with the MIG strategy and time-slicing written in the plugin's own config format."""

from __future__ import annotations

import pytest
import yaml

from gpuscale.components.charts import CHARTS, upstream_facts
from gpuscale.components.nvidia_device_plugin import NvidiaDevicePlugin

RELEASE = "kubernetes:helm.sh/v3:Release"


def values_of(harness, **args) -> dict:
    harness.run(lambda: NvidiaDevicePlugin("dp", {"ami_families": ["al2023"], **args}))
    release = harness.one(RELEASE)
    pin = CHARTS["nvidia-device-plugin"]
    assert (release.inputs["chart"], release.inputs["version"]) == (pin.name, pin.version)
    return release.inputs["values"]


def test_schedules_onto_exactly_our_al2023_gpu_nodes_and_tolerates_the_gpu_taint(harness):
    values = values_of(harness)
    terms = values["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [
        {"key": "gpuscale.io/gpu-class", "operator": "Exists"},
        {"key": "gpuscale.io/ami-family", "operator": "In", "values": ["al2023"]}]}], \
        "one term (terms are ORed): replaces the chart's NFD terms, which plain EKS nodes never match"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in values["tolerations"]
    assert values["priorityClassName"] == "system-node-critical"


def test_config_is_the_plugins_v1_format_with_the_mig_strategy(harness):
    values = values_of(harness, mig_strategy="single")
    assert values["migStrategy"] == "single" and values["config"]["default"] == "default"
    config = yaml.safe_load(values["config"]["map"]["default"])
    assert config == {"version": "v1", "flags": {"migStrategy": "single"}}, "no sharing section without slicing"


def test_time_slicing_replicas_share_each_gpu(harness):
    config = yaml.safe_load(values_of(harness, time_slicing_replicas=4)["config"]["map"]["default"])
    assert config["sharing"] == {"timeSlicing": {"resources": [{"name": "nvidia.com/gpu", "replicas": 4}]}}
    keys = set(upstream_facts("nvidia_device_plugin")["configJsonKeys"])

    def all_keys(value):
        if isinstance(value, dict):
            for k, v in value.items():
                yield k
                yield from all_keys(v)
        elif isinstance(value, list):
            for item in value:
                yield from all_keys(item)
    assert set(all_keys(config)) - {"migStrategy"} <= keys, "every key exists in the plugin's config API (v1)"


@pytest.mark.parametrize("args, message", [
    ({"mig_strategy": "auto"}, "mig_strategy (D): 'auto' is not allowed; allowed: one of none, single, mixed"),
    ({"time_slicing_replicas": 0}, "time_slicing_replicas (D): 0 is not allowed; allowed: an integer in [1, 64]"),
    ({"ami_families": []}, "ami_families (D): [] is not allowed"),
    ({"mig_strategy": "mixed", "time_slicing_replicas": 2},
     "time_slicing_replicas (D): 2 is not allowed; allowed: 1 with mig_strategy: mixed"),
])
def test_bad_args_are_refused(harness, args, message):
    with pytest.raises(ValueError) as raised:
        harness.run(lambda: NvidiaDevicePlugin("dp", {"ami_families": ["al2023"], **args}))
    assert str(raised.value).startswith(message.replace("(D)", '(NvidiaDevicePlugin "dp")'))
    assert harness.of_type(RELEASE) == []
