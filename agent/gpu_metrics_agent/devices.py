"""One GPU: its NVML handle, the state its readings carry between cycles, and the read loop.

Each field has a reader (plain ones in ``fields``; XID events, GPM and MIG here, because they keep state). A reader
whose NVML call says the field is not offered (not supported, function missing, not permitted) is dropped for the
life of this NVML session, so an unsupported field costs one exception once, not one per cycle, and is absent
from every snapshot rather than zero. Any other NVMLError propagates to the collector, which decides between the
device and lifecycle tiers.
"""

from __future__ import annotations

import ctypes
import math

from . import catalogue as cat
from .fields import Reader, plain_readers
from .nvml_errors import ErrorTiers
from .snapshot import GpuInfo, GpuReading, MigReading, frozen

# GPM metric ids (pynvml.NVML_GPM_METRIC_*) and the catalogue series each one feeds, in query order.
_GPM_METRICS: tuple[tuple[str, str], ...] = (
    ("NVML_GPM_METRIC_SM_UTIL", cat.GPU_SM_ACTIVITY.name),
    ("NVML_GPM_METRIC_SM_OCCUPANCY", cat.GPU_SM_OCCUPANCY.name),
    ("NVML_GPM_METRIC_ANY_TENSOR_UTIL", cat.GPU_TENSOR_ACTIVITY.name),
    ("NVML_GPM_METRIC_DRAM_BW_UTIL", cat.GPU_DRAM_BANDWIDTH.name),
)
_XID, _XID_LAST = cat.GPU_XID_ERRORS.name, cat.GPU_XID_LAST.name
_MIG_USED, _MIG_TOTAL, _MIG_SM = cat.MIG_MEMORY_USED.name, cat.MIG_MEMORY_TOTAL.name, cat.MIG_SM_ACTIVITY.name
_NOT_APPLICABLE = ("mig",)
"""Readers that fail with "not supported" on a GPU that simply lacks the feature (MIG on a GPU that cannot
partition): such a GPU misses nothing, so these are not counted as absent fields."""
# Draining the event set is bounded so a storm of events cannot hold the sampler up.
_MAX_EVENTS_PER_CYCLE = 64


def _plain_structure(printable: type) -> type:
    """A ctypes.Structure with the same fields (so the same memory layout) as one of pynvml's structures."""
    return type("Plain" + printable.__name__, (ctypes.Structure,), {"_fields_": printable._fields_})


class GpuDevice:
    """A GPU discovered in the current NVML session. Built by the collector; ``read`` is called once a cycle."""

    def __init__(self, nvml, tiers: ErrorTiers, index: int) -> None:
        self._nvml = nvml
        self._tiers = tiers
        self.index = index
        self.handle = nvml.nvmlDeviceGetHandleByIndex(index)
        self.uuid: str = nvml.nvmlDeviceGetUUID(self.handle)
        self.info = GpuInfo(model=self._optional(nvml.nvmlDeviceGetName, self.handle),
                            pci_bus_id=self._optional(lambda h: _text(nvml.nvmlDeviceGetPciInfo(h).busId), self.handle),
                            minor=self._optional(lambda h: str(nvml.nvmlDeviceGetMinorNumber(h)), self.handle))
        self.xid_total = 0
        """XID critical errors seen; the collector carries it over NVML re-initialisations by UUID."""
        self.xid_last = 0
        """Code of the last XID critical error seen (0: none), carried over like ``xid_total``."""
        self.absent: list[str] = []
        self._gpm_supported = False
        self._mig_gpm: dict[int, _MigGpm] = {}
        self._event_set = None
        self._gpm_samples: list = []
        self._readers: list[tuple[str, Reader]] = plain_readers(nvml, tiers, self.handle)
        self._readers.append(("mig", self._mig_reader()))
        try:
            # Optional features need set-up; if that says "not offered", their reader is never added.
            for name, setup in (("xid", self._xid_reader), ("gpm", self._gpm_reader)):
                try:
                    reader = setup()
                except tiers.absent:
                    reader = None
                if reader is None:
                    self.absent.append(name)
                else:
                    self._readers.append((name, reader))
        except BaseException:
            self.close()  # the collector builds a new device next cycle; this one must not leak NVML objects
            raise

    def _optional(self, call, *args) -> str:
        try:
            return _text(call(*args))
        except self._tiers.absent:
            return ""

    def read(self) -> GpuReading:
        values: dict[str, float] = {}
        migs: list[MigReading] = []
        dropped: list[str] = []
        for name, reader in self._readers:
            try:
                reader(values, migs)
            except self._tiers.absent:
                dropped.append(name)
                if name not in _NOT_APPLICABLE:
                    self.absent.append(name)
        if dropped:
            self._readers = [(n, r) for n, r in self._readers if n not in dropped]
        return GpuReading(self.index, self.uuid, frozen(values), tuple(migs), tuple(self.absent), self.info)

    def close(self) -> None:
        """Free what NVML allocated for this device. Errors are moot here: the session is ending anyway."""
        nvml = self._nvml
        try:
            if self._event_set is not None:
                nvml.nvmlEventSetFree(self._event_set)
            for sample in self._gpm_samples + [s for mig in self._mig_gpm.values() for s in mig.samples]:
                nvml.nvmlGpmSampleFree(sample)
        except self._tiers.base:
            pass
        self._event_set, self._gpm_samples, self._mig_gpm = None, [], {}

    def _xid_reader(self) -> Reader:
        nvml = self._nvml
        event_set = nvml.nvmlEventSetCreate()
        try:
            nvml.nvmlDeviceRegisterEvents(self.handle, nvml.nvmlEventTypeXidCriticalError, event_set)
        except self._tiers.base:
            nvml.nvmlEventSetFree(event_set)
            raise
        self._event_set = event_set
        wait, xid_type, timeout = nvml.nvmlEventSetWait, nvml.nvmlEventTypeXidCriticalError, self._tiers.timeout

        def read_xid(values: dict, migs: list) -> None:
            for _ in range(_MAX_EVENTS_PER_CYCLE):
                try:
                    event = wait(event_set, 0)  # 0 ms: poll, never block the sampler
                except timeout:
                    break
                if event.eventType & xid_type:
                    self.xid_total += 1
                    self.xid_last = int(event.eventData)
            values[_XID] = float(self.xid_total)
            values[_XID_LAST] = float(self.xid_last)

        return read_xid

    def _gpm_reader(self) -> Reader | None:
        nvml, handle = self._nvml, self.handle
        if not nvml.nvmlGpmQueryDeviceSupport(handle).isSupportedDevice:
            return None
        self._gpm_supported = True
        pair = _GpmPair(nvml, self._gpm_samples, _GPM_METRICS, lambda sample: nvml.nvmlGpmSampleGet(handle, sample))

        def read_gpm(values: dict, migs: list) -> None:
            pair.read(values)

        return read_gpm

    def _mig_reader(self) -> Reader:
        nvml, handle, not_found = self._nvml, self.handle, self._tiers.not_found
        mig_mode, enabled = nvml.nvmlDeviceGetMigMode, nvml.NVML_DEVICE_MIG_ENABLE
        slots: int | None = None

        def read_mig(values: dict, migs: list) -> None:
            nonlocal slots
            if mig_mode(handle)[0] != enabled:
                return
            if slots is None:
                slots = nvml.nvmlDeviceGetMaxMigDeviceCount(handle)
            seen: set[int] = set()
            for slot in range(slots):
                try:
                    mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
                except not_found:  # an empty slot
                    continue
                instance = nvml.nvmlDeviceGetGpuInstanceId(mig)
                # Compute instances of one GPU instance share its memory and SMs: report each GPU instance once.
                if instance in seen:
                    continue
                seen.add(instance)
                memory = nvml.nvmlDeviceGetMemoryInfo(mig)
                mig_values = {_MIG_USED: float(memory.used), _MIG_TOTAL: float(memory.total)}
                state = self._mig_gpm.get(instance)
                if state is None:
                    state = self._mig_gpm[instance] = self._mig_state(mig, instance)
                if state.pair is not None:
                    try:
                        state.pair.read(mig_values)
                    except self._tiers.absent:  # this driver has no GPM per MIG instance: the parent's stands in
                        state.pair = None
                migs.append(MigReading(str(instance), frozen(mig_values), state.profile, state.sms))
            for gone in set(self._mig_gpm) - seen:  # an instance destroyed since: free its samples
                for sample in self._mig_gpm.pop(gone).samples:
                    nvml.nvmlGpmSampleFree(sample)

        return read_mig

    def _mig_state(self, mig, instance: int) -> "_MigGpm":
        nvml = self._nvml
        name = self._optional(nvml.nvmlDeviceGetName, mig)
        profile = name.rsplit(" MIG ", 1)[1] if " MIG " in name else ""
        try:
            sms = int(nvml.nvmlDeviceGetAttributes(mig).multiprocessorCount)
        except self._tiers.absent:
            sms = 0
        state = _MigGpm(profile, sms)
        if self._gpm_supported:
            handle = self.handle
            state.pair = _GpmPair(nvml, state.samples, ((_MIG_GPM_METRIC, _MIG_SM),),
                                  lambda sample: nvml.nvmlGpmMigSampleGet(handle, instance, sample))
        return state


_MIG_GPM_METRIC = "NVML_GPM_METRIC_SM_UTIL"


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _GpmPair:
    """Two GPM samples taking turns, and the metrics read between them: GPM metrics are rates between two samples.

    The previous cycle's sample is the older one, so the agent never sleeps between them; the first cycle only
    primes. ``samples`` is the owner's list, filled here one at a time so that the owner's close() frees the first
    if the second allocation fails.
    """

    def __init__(self, nvml, samples: list, metrics: tuple[tuple[str, str], ...], take) -> None:
        for _ in range(2):
            samples.append(nvml.nvmlGpmSampleAlloc())
        # Two query structures, one for each order of the two samples, built once: a cycle only picks one, so
        # no ctypes field is written per cycle (pynvml's structures make every field access a Python call).
        self._queries = (_gpm_query(nvml, metrics, older=samples[1], newer=samples[0]),
                         _gpm_query(nvml, metrics, older=samples[0], newer=samples[1]))
        self._samples, self._take = samples, take
        self._metrics_get, self._success = nvml.nvmlGpmMetricsGet, nvml.NVML_SUCCESS
        self._turn, self._primed = 0, False

    def read(self, values: dict) -> None:
        self._take(self._samples[self._turn])
        if self._primed:
            query, slots = self._queries[self._turn]
            self._metrics_get(query)
            success = self._success
            for name, slot in slots:
                if slot.nvmlReturn == success:
                    value = slot.value
                    if math.isfinite(value):
                        values[name] = value
        self._turn, self._primed = 1 - self._turn, True


def _gpm_query(nvml, metrics: tuple[tuple[str, str], ...], older, newer) -> tuple:
    query_type = nvml.c_nvmlGpmMetricsGet_t
    query = query_type()
    query.version = nvml.NVML_GPM_METRICS_GET_VERSION
    query.numMetrics = len(metrics)
    query.sample1, query.sample2 = older, newer
    # The results are read through a plain ctypes view of the query's own memory: pynvml's structures run a
    # Python __getattribute__ on every field read (about 1 us each), eight reads a GPU a cycle.
    plain = _plain_structure(nvml.c_nvmlGpmMetric_t) * len(metrics)
    view = plain.from_buffer(query, query_type.metrics.offset)
    slots = []
    for i, (metric_id, name) in enumerate(metrics):
        view[i].metricId = getattr(nvml, metric_id)
        slots.append((name, view[i]))
    return query, tuple(slots)


class _MigGpm:
    """Per MIG GPU instance: what NVML says of it once, and its GPM samples."""

    def __init__(self, profile: str, sms: int) -> None:
        self.profile, self.sms = profile, sms
        self.samples: list = []
        self.pair: _GpmPair | None = None
