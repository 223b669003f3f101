"""The fake NVML stays honest: only real pynvml names and signatures, real error classes and structures; and the
agent calls nothing pynvml lacks."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pynvml
import pytest

import gpu_metrics_agent
from gpu_metrics_agent.fake_nvml import FakeNvml

AGENT_SOURCES = sorted(Path(gpu_metrics_agent.__file__).parent.glob("*.py"))


def _fake_api() -> dict[str, object]:
    return {name: member for name, member in inspect.getmembers(FakeNvml, inspect.isfunction)
            if name.startswith("nvml")}


@pytest.mark.parametrize("name", sorted(_fake_api()))
def test_every_fake_function_is_a_real_pynvml_function_with_the_same_parameters(name):
    real = getattr(pynvml, name, None)
    assert callable(real), f"pynvml has no {name}"
    fake_params = list(inspect.signature(_fake_api()[name]).parameters)[1:]  # without self
    assert fake_params == list(inspect.signature(real).parameters), name


def _nvml_names_called_by_the_agent() -> set[str]:
    names = set()
    for path in AGENT_SOURCES:
        if path.name == "fake_nvml.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            # The injected module is always called ``nvml`` or ``self._nvml``.
            if isinstance(node, ast.Attribute) and (
                    (isinstance(node.value, ast.Name) and node.value.id == "nvml")
                    or (isinstance(node.value, ast.Attribute) and node.value.attr == "_nvml")):
                names.add(node.attr)
            # getattr(nvml, "NVML_GPM_METRIC_...") and the error tier tables name attributes by string
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    node.value.startswith(("nvml", "NVML_", "NVMLError_")) and not node.value.startswith("nvml_"):
                names.add(node.value)
    return names


def test_the_agent_uses_only_names_pynvml_has():
    names = _nvml_names_called_by_the_agent()
    assert "nvmlDeviceGetUtilizationRates" in names and "NVML_GPM_METRIC_DRAM_BW_UTIL" in names
    prefixes_not_names = {"nvmlClocksEventReason", "nvmlClocksThrottleReason"}
    missing = sorted(n for n in names - prefixes_not_names if not hasattr(pynvml, n))
    assert missing == []


def test_every_nvml_function_the_agent_calls_is_implemented_by_the_fake():
    functions = {n for n in _nvml_names_called_by_the_agent() if n.startswith("nvml") and callable(
        getattr(pynvml, n, None)) and inspect.isfunction(getattr(pynvml, n))}
    assert sorted(functions - set(_fake_api())) == []


def test_the_fake_raises_the_real_error_classes():
    nvml = FakeNvml(1)
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetCount()
    nvml.nvmlInit()
    nvml.gpus[0].unsupported.add("nvmlDeviceGetPowerUsage")
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlDeviceGetPowerUsage(nvml.nvmlDeviceGetHandleByIndex(0))
    nvml.lose_gpu(0)
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        nvml.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(AttributeError, match="does not implement"):
        nvml.nvmlDeviceGetFanSpeed  # noqa: B018 - a real pynvml function the fake does not model
    assert nvml.NVML_CLOCK_SM == pynvml.NVML_CLOCK_SM, "constants pass through to pynvml"


def test_the_fake_returns_the_real_structures():
    nvml = FakeNvml(1)
    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    assert isinstance(nvml.nvmlDeviceGetUtilizationRates(handle), pynvml.c_nvmlUtilization_t)
    assert isinstance(nvml.nvmlDeviceGetMemoryInfo(handle), pynvml.c_nvmlMemory_t)
    assert isinstance(nvml.nvmlGpmSampleAlloc(), pynvml.c_nvmlGpmSample_t)
