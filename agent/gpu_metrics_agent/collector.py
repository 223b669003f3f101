"""One collection: NVML in, an immutable Snapshot out, with NVML's errors handled by tier.

- A field a GPU does not offer: absent from the snapshot (handled inside ``GpuDevice``).
- A device that raises: skipped for this cycle and counted; the other GPUs are still reported.
- A lifecycle error (driver gone, uninitialised, GPU lost): the cycle fails and NVML is shut down, to be
  initialised again next cycle. A GPU that is still lost right after that fresh initialisation is confirmed lost:
  it is skipped (and counted) until the next re-initialisation, so one dead GPU does not blind the node to the rest.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from . import catalogue as cat
from .devices import GpuDevice
from .health import ErrorLog, Health
from .nvml_errors import ErrorTiers, describe
from .snapshot import GpuReading, Snapshot, frozen

log = logging.getLogger(__name__)


class NvmlUnavailable(Exception):
    """NVML cannot start on this machine: no NVIDIA driver or no NVML library."""


def node_aggregates(gpus: tuple[GpuReading, ...]) -> dict[str, float]:
    """The per-node series scaling acts on, from the GPUs read in one collection."""
    node = {cat.NODE_GPU_COUNT.name: float(len(gpus)), cat.AGENT_HEARTBEAT.name: 1.0}
    utilization = [g.values[cat.GPU_UTILIZATION.name] for g in gpus if cat.GPU_UTILIZATION.name in g.values]
    if utilization:
        node[cat.NODE_GPU_UTILIZATION_SUM.name] = sum(utilization)
        node[cat.NODE_GPU_UTILIZATION.name] = sum(utilization) / len(utilization)
    memory = [g.values[cat.GPU_MEMORY_UTILIZATION.name] for g in gpus if cat.GPU_MEMORY_UTILIZATION.name in g.values]
    if memory:
        node[cat.NODE_MEMORY_UTILIZATION_MAX.name] = max(memory)
    return node


class Collector:
    """Owns the NVML session. Not thread-safe: one thread (the sampler's) calls it."""

    def __init__(self, nvml, health: Health, wall: Callable[[], float] = time.time,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._nvml = nvml
        self._tiers = ErrorTiers.of(nvml)
        self._health = health
        self._wall = wall
        self._clock = clock
        self._errors = ErrorLog(log)
        self._initialized = False
        self._fresh = False
        self._devices: list[GpuDevice | None] = []
        self._lost: set[int] = set()
        self._xid_totals: dict[str, int] = {}

    def open(self) -> None:
        """Initialise NVML now, so a machine without a driver fails at start with NvmlUnavailable."""
        try:
            self._init()
        except self._tiers.no_driver as exc:
            raise NvmlUnavailable(describe(exc)) from None
        except self._tiers.base as exc:  # anything else may pass: the sampler re-initialises each cycle
            self.reset()
            self._health.collection_failed("lifecycle", describe(exc), 0.0)

    def collect(self) -> Snapshot | None:
        """One cycle. Returns None when the cycle failed (counted in health), else the snapshot."""
        start, timestamp = self._clock(), self._wall()
        try:
            if not self._initialized:
                self._init()
            gpus, skipped = self._read_devices()
        except self._tiers.base as exc:  # lifecycle, or an error outside any one device (e.g. nvmlDeviceGetCount)
            self.reset()
            message = describe(exc)
            self._health.collection_failed("lifecycle", message, self._clock() - start)
            self._errors.failing("cycle", f"collection failed, NVML re-initialises next cycle: {message}")
            return None
        snapshot = Snapshot(timestamp=timestamp, monotonic=start, duration_s=self._clock() - start, gpus=gpus,
                            node=frozen(node_aggregates(gpus)), skipped=skipped)
        self._health.collection_succeeded(snapshot)
        self._errors.recovered("cycle", f"collection recovered: {len(gpus)} GPUs read")
        return snapshot

    def reset(self) -> None:
        """End the NVML session; the next cycle initialises a new one."""
        for device in self._devices:
            if device is not None:
                self._xid_totals[device.uuid] = device.xid_total
                device.close()
        self._devices, self._lost = [], set()
        if self._initialized:
            self._initialized = False
            try:
                self._nvml.nvmlShutdown()
            except self._tiers.base:
                pass  # the session is being abandoned because NVML failed; its shutdown may fail too

    close = reset

    def _init(self) -> None:
        nvml = self._nvml
        nvml.nvmlInit()
        self._initialized = True
        self._fresh = True
        self._devices = [None] * nvml.nvmlDeviceGetCount()
        self._health.nvml_inits += 1

    def _read_devices(self) -> tuple[tuple[GpuReading, ...], tuple[int, ...]]:
        tiers = self._tiers
        gpus: list[GpuReading] = []
        skipped: list[int] = []
        for index, device in enumerate(self._devices):
            if index in self._lost:
                skipped.append(index)
                continue
            try:
                if device is None:
                    device = self._discover(index)
                gpus.append(device.read())
            except tiers.gone as exc:
                if not self._fresh:
                    raise
                self._lost.add(index)
                skipped.append(index)
                self._health.collection_failed("device", describe(exc), 0.0)
                log.error("GPU %d is still %s after NVML re-initialised; skipping it until the next "
                          "re-initialisation", index, describe(exc))
            except tiers.lifecycle:
                raise
            except tiers.base as exc:
                skipped.append(index)
                self._health.collection_failed("device", describe(exc), 0.0)
                self._errors.failing(("gpu", index), f"GPU {index} skipped this cycle: {describe(exc)}")
                continue
            self._errors.recovered(("gpu", index), f"GPU {index} read again")
        self._fresh = False
        return tuple(gpus), tuple(skipped)

    def _discover(self, index: int) -> GpuDevice:
        device = GpuDevice(self._nvml, self._tiers, index)
        device.xid_total = self._xid_totals.get(device.uuid, 0)
        self._devices[index] = device
        return device
