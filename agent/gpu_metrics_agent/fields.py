"""Readers of one GPU's plain fields: one NVML call each, converted to the catalogue's units.

A reader is a closure over the device handle, the NVML function and its constants, built once per device: the
sampler calls them every second on every GPU, and closures spare the attribute look-ups a method would repeat.
Each writes into ``values`` only after its NVML call succeeded, so a failure never leaves half a field.
"""

from __future__ import annotations

from typing import Callable

from . import catalogue as cat
from .nvml_errors import ErrorTiers

Reader = Callable[[dict, list], None]
"""Fills ``values`` (metric name -> value) and, for MIG, the list of MIG readings."""

_UTILIZATION, _MEMORY_CONTROLLER = cat.GPU_UTILIZATION.name, cat.GPU_MEMORY_CONTROLLER_UTILIZATION.name
_USED, _TOTAL, _RATIO = cat.GPU_MEMORY_USED.name, cat.GPU_MEMORY_TOTAL.name, cat.GPU_MEMORY_UTILIZATION.name
_POWER, _ENERGY, _TEMPERATURE = cat.GPU_POWER.name, cat.GPU_ENERGY.name, cat.GPU_TEMPERATURE.name
_SM_CLOCK, _ECC = cat.GPU_SM_CLOCK.name, cat.GPU_ECC_UNCORRECTED.name
_THERMAL, _POWER_CAP = cat.GPU_THERMAL_THROTTLE.name, cat.GPU_POWER_THROTTLE.name


def _reason_mask(nvml, *names: str) -> int:
    # The reason bits kept their values when NVML renamed "throttle reasons" to "clocks event reasons".
    mask = 0
    for name in names:
        mask |= getattr(nvml, "nvmlClocksEventReason" + name, None) or getattr(nvml, "nvmlClocksThrottleReason" + name)
    return mask


def _field(structure: type, name: str) -> Callable:
    """Reads one field of a pynvml structure through its ctypes descriptor. pynvml's structures run a Python
    __getattribute__ on every attribute read; the descriptor reads the same memory at a quarter of the cost, and
    utilization and memory are read on every GPU every cycle."""
    return getattr(structure, name).__get__


def preferred(nvml, tiers: ErrorTiers, current: str, legacy: str) -> Callable:
    """NVML's current function, falling back for good to its deprecated twin on a driver that lacks the new one."""
    legacy_fn = getattr(nvml, legacy, None)
    chosen = getattr(nvml, current, None) or legacy_fn
    missing = tiers.function_not_found

    def call(*args):
        nonlocal chosen
        try:
            return chosen(*args)
        except missing:
            if legacy_fn is None or chosen is legacy_fn:
                raise
            chosen = legacy_fn
            return chosen(*args)

    return call


def plain_readers(nvml, tiers: ErrorTiers, handle) -> list[tuple[str, Reader]]:
    """(field name, reader) for each plain field, in the order they are read."""
    utilization_rates = nvml.nvmlDeviceGetUtilizationRates
    busy, memory_busy = _field(nvml.c_nvmlUtilization_t, "gpu"), _field(nvml.c_nvmlUtilization_t, "memory")
    memory_info = nvml.nvmlDeviceGetMemoryInfo
    used_of, total_of = _field(nvml.c_nvmlMemory_t, "used"), _field(nvml.c_nvmlMemory_t, "total")
    power_usage = nvml.nvmlDeviceGetPowerUsage
    energy = nvml.nvmlDeviceGetTotalEnergyConsumption
    temperature = preferred(nvml, tiers, "nvmlDeviceGetTemperatureV", "nvmlDeviceGetTemperature")
    gpu_sensor = nvml.NVML_TEMPERATURE_GPU
    clock_info, sm_clock = nvml.nvmlDeviceGetClockInfo, nvml.NVML_CLOCK_SM
    clock_reasons = preferred(nvml, tiers, "nvmlDeviceGetCurrentClocksEventReasons",
                              "nvmlDeviceGetCurrentClocksThrottleReasons")
    thermal_mask = _reason_mask(nvml, "SwThermalSlowdown", "HwThermalSlowdown")
    power_mask = _reason_mask(nvml, "SwPowerCap", "HwPowerBrakeSlowdown")
    ecc_errors = nvml.nvmlDeviceGetTotalEccErrors
    uncorrected, volatile = nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nvml.NVML_VOLATILE_ECC

    def read_utilization(values: dict, migs: list) -> None:
        rates = utilization_rates(handle)
        values[_UTILIZATION] = float(busy(rates))
        values[_MEMORY_CONTROLLER] = float(memory_busy(rates))

    def read_memory(values: dict, migs: list) -> None:
        memory = memory_info(handle)
        used, total = used_of(memory), total_of(memory)
        values[_USED] = float(used)
        values[_TOTAL] = float(total)
        if total:
            values[_RATIO] = 100.0 * used / total

    def read_power(values: dict, migs: list) -> None:
        values[_POWER] = power_usage(handle) / 1000.0  # mW -> W

    def read_energy(values: dict, migs: list) -> None:
        values[_ENERGY] = energy(handle) / 1000.0  # mJ -> J

    def read_temperature(values: dict, migs: list) -> None:
        values[_TEMPERATURE] = float(temperature(handle, gpu_sensor))

    def read_sm_clock(values: dict, migs: list) -> None:
        values[_SM_CLOCK] = clock_info(handle, sm_clock) * 1e6  # MHz -> Hz

    def read_clock_reasons(values: dict, migs: list) -> None:
        reasons = clock_reasons(handle)
        values[_THERMAL] = 1.0 if reasons & thermal_mask else 0.0
        values[_POWER_CAP] = 1.0 if reasons & power_mask else 0.0

    def read_ecc(values: dict, migs: list) -> None:
        values[_ECC] = float(ecc_errors(handle, uncorrected, volatile))

    return [("utilization", read_utilization), ("memory", read_memory), ("power", read_power),
            ("energy", read_energy), ("temperature", read_temperature), ("sm_clock", read_sm_clock),
            ("clock_reasons", read_clock_reasons), ("ecc", read_ecc)]
