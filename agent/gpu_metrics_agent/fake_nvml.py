"""A fake NVML: the slice of nvidia-ml-py's API the agent calls, backed by plain Python state.

It lives in the package, not under tests, because ``gpu-metrics-agent --fake-gpus N`` (a demo without a GPU) and
``benchmarks/agent_bench.py`` use it too. It raises the real ``pynvml.NVMLError_*`` classes and fills the real
ctypes structures (utilization, memory, event data, GPM), so a field the agent misreads fails here as it would on
a GPU. Faults a test can inject: a GPU lost mid-run, a device that errors, NVML init failing then recovering, fields
or whole functions the driver lacks, a hung call, XID events, MIG instances.

Anything not implemented here is looked up in pynvml: constants and structure types pass through, functions do
not (``AttributeError``), so the agent cannot call something the fake never modelled.
"""

from __future__ import annotations

import ctypes
import threading
import types
import uuid as uuidlib
from collections import deque
from dataclasses import dataclass, field

import pynvml

_GIB = 1024**3


def _error(code: int) -> pynvml.NVMLError:
    # NVMLError.__new__ maps the code to its subclass, e.g. NVMLError_GpuIsLost.
    return pynvml.NVMLError(code)


@dataclass
class FakeMig:
    """One MIG device (GPU instance + compute instance) of a fake GPU."""

    gpu_instance: int
    compute_instance: int = 0
    memory_total: int = 10 * _GIB
    memory_used: int = 0
    profile: str = "1g.10gb"
    sms: int = 16
    gpm: dict[int, float] | None = None
    """GPM readings of this GPU instance (NVML_GPM_METRIC_* id -> value); None where the driver has no GPM per
    MIG instance."""
    parent: "FakeGpu | None" = field(default=None, repr=False)


@dataclass
class FakeGpu:
    """One fake GPU's readings, in NVML's raw units, and its injected faults. Tests change these between cycles."""

    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    pci_bus_id: str = ""
    """"" gives 00000000:<index + 0x10>:00.0."""
    utilization_gpu: int = 0
    utilization_memory: int = 0
    memory_total: int = 80 * _GIB
    memory_used: int = 0
    power_mw: int = 70_000
    energy_mj: int = 0
    temperature_c: int = 35
    sm_clock_mhz: int = 1980
    clock_reasons: int = 0
    ecc_uncorrected: int = 0
    gpm: dict[int, float] | None = None
    """GPM readings by NVML_GPM_METRIC_* id; None for a GPU without GPM (pre-Hopper)."""
    mig: list[FakeMig] | None = None
    """None: not MIG-capable. A list: MIG enabled with these devices (empty list: capable, but disabled)."""
    unsupported: set[str] = field(default_factory=set)
    """NVML function names that raise NotSupported on this GPU."""
    lost: bool = False
    error: int | None = None
    """An NVML error code every call on this GPU raises (a failing device), or None."""
    xids: deque = field(default_factory=deque)

    @classmethod
    def synthetic(cls, index: int) -> "FakeGpu":
        """Plausible H100 readings that differ from GPU to GPU."""
        total = 80 * _GIB
        return cls(uuid=f"GPU-{uuidlib.UUID(int=index + 1)}", utilization_gpu=(37 + 11 * index) % 100,
                   utilization_memory=(21 + 5 * index) % 100, memory_total=total,
                   memory_used=total * ((20 + 7 * index) % 90) // 100, power_mw=250_000 + 10_000 * index,
                   energy_mj=1_000_000_000 + 1000 * index, temperature_c=45 + index,
                   gpm={pynvml.NVML_GPM_METRIC_SM_UTIL: 60.0 + index, pynvml.NVML_GPM_METRIC_SM_OCCUPANCY: 40.0,
                        pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL: 30.0, pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL: 25.5})

    @classmethod
    def from_recording(cls, reading: dict) -> "FakeGpu":
        """A GPU from one entry of a recorded-readings file (see tests/agent/golden/readings.json)."""
        data = dict(reading)
        if data.get("gpm") is not None:
            data["gpm"] = {getattr(pynvml, name): float(value) for name, value in data["gpm"].items()}
        if data.get("mig") is not None:
            data["mig"] = [FakeMig(**m) for m in data["mig"]]
        data["unsupported"] = set(data.get("unsupported", ()))
        gpu = cls(**data)
        for mig in gpu.mig or ():
            mig.parent = gpu
        return gpu


class _EventSet:
    def __init__(self) -> None:
        self.gpus: list[FakeGpu] = []


class FakeNvml:
    """An NVML module stand-in. Pass it where the agent takes ``nvml=``."""

    def __init__(self, gpus: int | list[FakeGpu] = 1, missing_functions: set[str] | None = None) -> None:
        self.gpus: list[FakeGpu] = [FakeGpu.synthetic(i) for i in range(gpus)] if isinstance(gpus, int) else gpus
        for gpu in self.gpus:
            for mig in gpu.mig or ():
                mig.parent = gpu
        self.missing_functions: set[str] = set(missing_functions or ())
        """Functions this 'driver' lacks: they raise FunctionNotFound (an older driver)."""
        self.driver_missing = False
        self.init_failures: deque[int] = deque()
        """Error codes the next nvmlInit calls raise, one per call, before init succeeds again."""
        self.init_calls = 0
        self.stall: threading.Event | None = None
        """While set to an unset Event, every device call blocks on it: a hung driver call."""
        self.longest_event_wait_ms = 0
        self._initialized = False
        self._samples: dict[int, tuple[FakeGpu, int, dict[int, float]]] = {}
        self._sample_counter = 0

    @classmethod
    def from_recording(cls, recording: dict) -> "FakeNvml":
        return cls([FakeGpu.from_recording(g) for g in recording["gpus"]])

    def __getattr__(self, name: str):
        value = getattr(pynvml, name)
        if isinstance(value, types.FunctionType):
            raise AttributeError(f"the fake NVML does not implement {name}")
        return value

    # --- fault injection ---------------------------------------------------------------------------------------
    def fail_init(self, times: int = 1, code: int = pynvml.NVML_ERROR_DRIVER_NOT_LOADED) -> None:
        self.init_failures.extend([code] * times)

    def lose_gpu(self, index: int) -> None:
        self.gpus[index].lost = True

    def inject_xid(self, index: int, xid: int = 79) -> None:
        self.gpus[index].xids.append(xid)

    # --- checks shared by every call ---------------------------------------------------------------------------
    def _require(self, function: str) -> None:
        if function in self.missing_functions:
            raise _error(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        if not self._initialized:
            raise _error(pynvml.NVML_ERROR_UNINITIALIZED)

    def _gpu(self, handle, function: str) -> FakeGpu:
        self._require(function)
        gpu = handle.parent if isinstance(handle, FakeMig) else handle
        if self.stall is not None:
            self.stall.wait()
        if gpu.lost:
            raise _error(pynvml.NVML_ERROR_GPU_IS_LOST)
        if gpu.error is not None:
            raise _error(gpu.error)
        if function in gpu.unsupported:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return gpu

    # --- library lifecycle -------------------------------------------------------------------------------------
    def nvmlInit(self) -> None:
        self.init_calls += 1
        if self.driver_missing:
            raise _error(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
        if self.init_failures:
            raise _error(self.init_failures.popleft())
        self._initialized = True

    def nvmlShutdown(self) -> None:
        self._require("nvmlShutdown")
        self._initialized = False

    def nvmlSystemGetDriverVersion(self) -> str:
        self._require("nvmlSystemGetDriverVersion")
        return "550.90.07-fake"

    def nvmlDeviceGetCount(self) -> int:
        self._require("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        self._require("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return self._gpu(self.gpus[index], "nvmlDeviceGetHandleByIndex")

    # --- per-device readings -----------------------------------------------------------------------------------
    def nvmlDeviceGetUUID(self, handle) -> str:
        return self._gpu(handle, "nvmlDeviceGetUUID").uuid

    def nvmlSystemGetNVMLVersion(self) -> str:
        self._require("nvmlSystemGetNVMLVersion")
        return "12.550.90.07-fake"

    def nvmlDeviceGetName(self, handle) -> str:
        gpu = self._gpu(handle, "nvmlDeviceGetName")
        return f"{gpu.name} MIG {handle.profile}" if isinstance(handle, FakeMig) else gpu.name

    def nvmlDeviceGetPciInfo(self, handle):
        gpu = self._gpu(handle, "nvmlDeviceGetPciInfo")
        bus_id = gpu.pci_bus_id or f"00000000:{0x10 + self.gpus.index(gpu):02X}:00.0"
        return pynvml.nvmlPciInfo_t(busId=bus_id.encode())

    def nvmlDeviceGetMinorNumber(self, handle) -> int:
        return self.gpus.index(self._gpu(handle, "nvmlDeviceGetMinorNumber"))

    def nvmlDeviceGetAttributes(self, device):
        self._gpu(device, "nvmlDeviceGetAttributes")
        if not isinstance(device, FakeMig):  # NVML answers this for MIG devices only
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return pynvml.c_nvmlDeviceAttributes(multiprocessorCount=device.sms)

    def nvmlDeviceGetUtilizationRates(self, handle):
        gpu = self._gpu(handle, "nvmlDeviceGetUtilizationRates")
        if gpu.mig:  # NVML has no whole-GPU utilization while MIG is on
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return pynvml.c_nvmlUtilization_t(gpu=gpu.utilization_gpu, memory=gpu.utilization_memory)

    def nvmlDeviceGetMemoryInfo(self, handle, version=None):
        gpu = self._gpu(handle, "nvmlDeviceGetMemoryInfo")
        src = handle if isinstance(handle, FakeMig) else gpu
        return pynvml.c_nvmlMemory_t(total=src.memory_total, free=src.memory_total - src.memory_used,
                                     used=src.memory_used)

    def nvmlDeviceGetPowerUsage(self, handle) -> int:
        return self._gpu(handle, "nvmlDeviceGetPowerUsage").power_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, handle) -> int:
        return self._gpu(handle, "nvmlDeviceGetTotalEnergyConsumption").energy_mj

    def nvmlDeviceGetTemperatureV(self, handle, sensor, version=pynvml.nvmlTemperature_v1) -> int:
        return self._temperature(handle, sensor, "nvmlDeviceGetTemperatureV")

    def nvmlDeviceGetTemperature(self, handle, sensor) -> int:
        return self._temperature(handle, sensor, "nvmlDeviceGetTemperature")

    def _temperature(self, handle, sensor, function: str) -> int:
        gpu = self._gpu(handle, function)
        if sensor != pynvml.NVML_TEMPERATURE_GPU:
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gpu.temperature_c

    def nvmlDeviceGetClockInfo(self, handle, type) -> int:
        gpu = self._gpu(handle, "nvmlDeviceGetClockInfo")
        if type != pynvml.NVML_CLOCK_SM:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return gpu.sm_clock_mhz

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle) -> int:
        return self._gpu(handle, "nvmlDeviceGetCurrentClocksEventReasons").clock_reasons

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle) -> int:
        return self._gpu(handle, "nvmlDeviceGetCurrentClocksThrottleReasons").clock_reasons

    def nvmlDeviceGetTotalEccErrors(self, handle, errorType, counterType) -> int:
        gpu = self._gpu(handle, "nvmlDeviceGetTotalEccErrors")
        if (errorType, counterType) != (pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_VOLATILE_ECC):
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return gpu.ecc_uncorrected

    # --- XID events ----------------------------------------------------------------------------------------
    def nvmlEventSetCreate(self) -> _EventSet:
        self._require("nvmlEventSetCreate")
        return _EventSet()

    def nvmlDeviceRegisterEvents(self, handle, eventTypes, eventSet) -> None:
        gpu = self._gpu(handle, "nvmlDeviceRegisterEvents")
        if eventTypes & pynvml.nvmlEventTypeXidCriticalError:
            eventSet.gpus.append(gpu)

    def nvmlEventSetWait(self, eventSet, timeoutms):
        self._require("nvmlEventSetWait")
        self.longest_event_wait_ms = max(self.longest_event_wait_ms, timeoutms)
        for gpu in eventSet.gpus:
            if gpu.lost:
                raise _error(pynvml.NVML_ERROR_GPU_IS_LOST)
            if gpu.xids:
                return pynvml.c_nvmlEventData_t(eventType=pynvml.nvmlEventTypeXidCriticalError,
                                                eventData=gpu.xids.popleft())
        raise _error(pynvml.NVML_ERROR_TIMEOUT)

    def nvmlEventSetFree(self, eventSet) -> None:
        self._require("nvmlEventSetFree")
        eventSet.gpus.clear()

    # --- GPM (Hopper and newer) ----------------------------------------------------------------------------
    def nvmlGpmQueryDeviceSupport(self, device):
        gpu = self._gpu(device, "nvmlGpmQueryDeviceSupport")
        return pynvml.c_nvmlGpmSupport_t(version=pynvml.NVML_GPM_SUPPORT_VERSION,
                                         isSupportedDevice=int(gpu.gpm is not None))

    def nvmlGpmSampleAlloc(self):
        self._require("nvmlGpmSampleAlloc")
        self._sample_counter += 1
        # An opaque pointer NVML would own; only its address identifies the sample, it is never dereferenced.
        address = 0x10000 + 16 * self._sample_counter
        return ctypes.cast(ctypes.c_void_p(address), pynvml.c_nvmlGpmSample_t)

    def nvmlGpmSampleFree(self, gpmSample) -> None:
        self._require("nvmlGpmSampleFree")
        self._samples.pop(ctypes.cast(gpmSample, ctypes.c_void_p).value, None)

    def nvmlGpmSampleGet(self, device, gpmSample):
        gpu = self._gpu(device, "nvmlGpmSampleGet")
        if gpu.gpm is None:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        self._sample_counter += 1
        self._samples[ctypes.cast(gpmSample, ctypes.c_void_p).value] = (gpu, self._sample_counter, dict(gpu.gpm))
        return gpmSample

    def nvmlGpmMigSampleGet(self, device, gpuInstanceId, gpmSample):
        gpu = self._gpu(device, "nvmlGpmMigSampleGet")
        mig = next((m for m in gpu.mig or () if m.gpu_instance == gpuInstanceId), None)
        if mig is None:
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if mig.gpm is None:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        self._sample_counter += 1
        self._samples[ctypes.cast(gpmSample, ctypes.c_void_p).value] = (mig, self._sample_counter, dict(mig.gpm))
        return gpmSample

    def nvmlGpmMetricsGet(self, metricsGet):
        self._require("nvmlGpmMetricsGet")
        if metricsGet.version != pynvml.NVML_GPM_METRICS_GET_VERSION:
            raise _error(pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH)
        first = self._samples.get(ctypes.cast(metricsGet.sample1, ctypes.c_void_p).value)
        second = self._samples.get(ctypes.cast(metricsGet.sample2, ctypes.c_void_p).value)
        # NVML needs two samples of the same GPU, the second taken later.
        if first is None or second is None or first[0] is not second[0] or first[1] >= second[1]:
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        readings = second[2]
        for i in range(metricsGet.numMetrics):
            metric = metricsGet.metrics[i]
            if metric.metricId in readings:
                metric.value, metric.nvmlReturn = readings[metric.metricId], pynvml.NVML_SUCCESS
            else:
                metric.nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
        return metricsGet

    # --- MIG -------------------------------------------------------------------------------------------------
    def nvmlDeviceGetMigMode(self, device) -> list[int]:
        gpu = self._gpu(device, "nvmlDeviceGetMigMode")
        if gpu.mig is None:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        mode = pynvml.NVML_DEVICE_MIG_ENABLE if gpu.mig else pynvml.NVML_DEVICE_MIG_DISABLE
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, device) -> int:
        gpu = self._gpu(device, "nvmlDeviceGetMaxMigDeviceCount")
        if gpu.mig is None:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, device, index) -> FakeMig:
        gpu = self._gpu(device, "nvmlDeviceGetMigDeviceHandleByIndex")
        if not gpu.mig or index >= len(gpu.mig):
            raise _error(pynvml.NVML_ERROR_NOT_FOUND)
        return gpu.mig[index]

    def nvmlDeviceGetGpuInstanceId(self, device) -> int:
        self._gpu(device, "nvmlDeviceGetGpuInstanceId")
        return device.gpu_instance

    def nvmlDeviceGetComputeInstanceId(self, device) -> int:
        self._gpu(device, "nvmlDeviceGetComputeInstanceId")
        return device.compute_instance
