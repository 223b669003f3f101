"""One collection: NVML in, an immutable Snapshot out, with NVML's errors handled by tier.

- A field a GPU does not offer: absent from the snapshot (handled inside ``GpuDevice``).
- A device that raises: skipped for this cycle and counted; the other GPUs are still reported.
- A lifecycle error (driver gone, uninitialised, GPU lost): the cycle fails and NVML is shut down, to be
  initialised again next cycle. A GPU that is still lost right after that fresh initialisation is confirmed lost:
  it is skipped (and counted) so one dead GPU does not blind the node to the rest, and NVML is initialised again
  every ``reprobe_interval`` seconds while one is lost, so a GPU that comes back (after a reset) is read again.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from . import catalogue as cat
from .devices import GpuDevice
from .health import ErrorLog, Health
from .nvml_errors import ErrorTiers, describe
from .snapshot import GpuReading, GpuState, Snapshot, frozen

log = logging.getLogger(__name__)


class NvmlUnavailable(Exception):
    """NVML cannot start on this machine: no NVIDIA driver or no NVML library."""


def scaling_utilization(gpu: GpuReading) -> float | None:
    """The GPU's utilization for the node's sum (catalogue.SCALING_UTILIZATION_SOURCES), or None if it has none."""
    value = gpu.values.get(_UTILIZATION)
    if value is not None:
        return value
    if gpu.migs and all(_MIG_SM in m.values for m in gpu.migs):
        weights = [m.sms or 1 for m in gpu.migs]  # without SM counts from NVML, instances weigh the same
        return sum(m.values[_MIG_SM] * w for m, w in zip(gpu.migs, weights)) / sum(weights)
    return gpu.values.get(_SM_ACTIVITY)


def node_aggregates(gpus: tuple[GpuReading, ...]) -> dict[str, float]:
    """The per-node series scaling acts on, from the GPUs read in one collection."""
    utilization = [u for u in map(scaling_utilization, gpus) if u is not None]
    node = {cat.NODE_GPU_COUNT.name: float(len(utilization)), cat.NODE_GPUS_READ.name: float(len(gpus)),
            cat.AGENT_HEARTBEAT.name: 1.0}
    if utilization:
        node[cat.NODE_GPU_UTILIZATION_SUM.name] = sum(utilization)
        node[cat.NODE_GPU_UTILIZATION.name] = sum(utilization) / len(utilization)
    memory = [g.values[cat.GPU_MEMORY_UTILIZATION.name] for g in gpus if cat.GPU_MEMORY_UTILIZATION.name in g.values]
    if memory:
        node[cat.NODE_MEMORY_UTILIZATION_MAX.name] = max(memory)
    return node


_UTILIZATION, _MIG_SM, _SM_ACTIVITY = (spec.name for spec in cat.SCALING_UTILIZATION_SOURCES)


class Collector:
    """Owns the NVML session. Not thread-safe: one thread (the sampler's) calls it."""

    def __init__(self, nvml, health: Health, wall: Callable[[], float] = time.time,
                 clock: Callable[[], float] = time.monotonic, reprobe_interval: float = 30.0) -> None:
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
        self._lost_since = 0.0
        self._reprobe_interval = reprobe_interval
        self._uuids: dict[int, str] = {}
        """UUID by index, as last seen: a lost GPU's state is still shown under its UUID."""
        self._xid_totals: dict[str, tuple[int, int]] = {}

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
        if self._lost and start - self._lost_since >= self._reprobe_interval:
            # A lost GPU is only found again by a new NVML session (after a reset it may be back on the bus).
            log.info("GPUs %s lost: initialising NVML again to look for them", sorted(self._lost))
            self.reset()
        try:
            if not self._initialized:
                self._init()
            gpus, skipped, states = self._read_devices()
        except self._tiers.base as exc:  # lifecycle, or an error outside any one device (e.g. nvmlDeviceGetCount)
            self.reset()
            message = describe(exc)
            self._health.collection_failed("lifecycle", message, self._clock() - start)
            self._errors.failing("cycle", f"collection failed, NVML re-initialises next cycle: {message}")
            return None
        snapshot = Snapshot(timestamp=timestamp, monotonic=start, duration_s=self._clock() - start, gpus=gpus,
                            node=frozen(node_aggregates(gpus)), skipped=skipped, states=states)
        self._health.collection_succeeded(snapshot)
        self._errors.recovered("cycle", f"collection recovered: {len(gpus)} GPUs read")
        return snapshot

    def reset(self) -> None:
        """End the NVML session; the next cycle initialises a new one."""
        for device in self._devices:
            if device is not None:
                self._xid_totals[device.uuid] = (device.xid_total, device.xid_last)
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
        self._health.versions = {"driver_version": self._version(nvml.nvmlSystemGetDriverVersion),
                                 "nvml_version": self._version(nvml.nvmlSystemGetNVMLVersion)}

    def _version(self, call) -> str:
        try:
            value = call()
        except self._tiers.absent:
            return ""
        return value.decode() if isinstance(value, bytes) else str(value)

    def _read_devices(self) -> tuple[tuple[GpuReading, ...], tuple[int, ...], tuple[GpuState, ...]]:
        tiers = self._tiers
        gpus: list[GpuReading] = []
        skipped: list[int] = []
        states: list[GpuState] = []
        for index, device in enumerate(self._devices):
            if index in self._lost:
                skipped.append(index)
                states.append(GpuState(index, self._uuids.get(index, ""), "lost"))
                continue
            try:
                if device is None:
                    device = self._discover(index)
                gpus.append(device.read())
            except tiers.gone as exc:
                if not self._fresh:
                    raise
                if not self._lost:
                    self._lost_since = self._clock()
                self._lost.add(index)
                skipped.append(index)
                states.append(GpuState(index, self._uuids.get(index, ""), "lost"))
                self._health.collection_failed("device", describe(exc), 0.0)
                self._errors.failing(("lost", index), f"GPU {index} is still {describe(exc)} after NVML "
                                     f"re-initialised; skipping it, looking again every {self._reprobe_interval:g} s")
                continue
            except tiers.lifecycle:
                raise
            except tiers.base as exc:
                skipped.append(index)
                states.append(GpuState(index, self._uuids.get(index, ""), "error"))
                self._health.collection_failed("device", describe(exc), 0.0)
                self._errors.failing(("gpu", index), f"GPU {index} skipped this cycle: {describe(exc)}")
                continue
            states.append(GpuState(index, device.uuid, "ok"))
            self._errors.recovered(("gpu", index), f"GPU {index} read again")
            self._errors.recovered(("lost", index), f"GPU {index} is back")
        self._fresh = False
        return tuple(gpus), tuple(skipped), tuple(states)

    def _discover(self, index: int) -> GpuDevice:
        device = GpuDevice(self._nvml, self._tiers, index)
        device.xid_total, device.xid_last = self._xid_totals.get(device.uuid, (0, 0))
        self._devices[index] = device
        self._uuids[index] = device.uuid
        return device
