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
from .snapshot import GpuReading, MigReading, frozen

# GPM metric ids (pynvml.NVML_GPM_METRIC_*) and the catalogue series each one feeds, in query order.
_GPM_METRICS: tuple[tuple[str, str], ...] = (
    ("NVML_GPM_METRIC_SM_UTIL", cat.GPU_SM_ACTIVITY.name),
    ("NVML_GPM_METRIC_SM_OCCUPANCY", cat.GPU_SM_OCCUPANCY.name),
    ("NVML_GPM_METRIC_ANY_TENSOR_UTIL", cat.GPU_TENSOR_ACTIVITY.name),
    ("NVML_GPM_METRIC_DRAM_BW_UTIL", cat.GPU_DRAM_BANDWIDTH.name),
)
_XID = cat.GPU_XID_ERRORS.name
_MIG_USED, _MIG_TOTAL = cat.MIG_MEMORY_USED.name, cat.MIG_MEMORY_TOTAL.name
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
        self.xid_total = 0
        """XID critical errors seen; the collector carries it over NVML re-initialisations by UUID."""
        self.absent: list[str] = []
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

    def read(self) -> GpuReading:
        values: dict[str, float] = {}
        migs: list[MigReading] = []
        dropped = False
        for name, reader in self._readers:
            try:
                reader(values, migs)
            except self._tiers.absent:
                self.absent.append(name)
                dropped = True
        if dropped:
            self._readers = [(n, r) for n, r in self._readers if n not in self.absent]
        return GpuReading(self.index, self.uuid, frozen(values), tuple(migs), tuple(self.absent))

    def close(self) -> None:
        """Free what NVML allocated for this device. Errors are moot here: the session is ending anyway."""
        nvml = self._nvml
        try:
            if self._event_set is not None:
                nvml.nvmlEventSetFree(self._event_set)
            for sample in self._gpm_samples:
                nvml.nvmlGpmSampleFree(sample)
        except self._tiers.base:
            pass
        self._event_set, self._gpm_samples = None, []

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
            values[_XID] = float(self.xid_total)

        return read_xid

    def _gpm_reader(self) -> Reader | None:
        nvml, handle = self._nvml, self.handle
        if not nvml.nvmlGpmQueryDeviceSupport(handle).isSupportedDevice:
            return None
        samples = self._gpm_samples
        for _ in range(2):  # appended one at a time so that close() frees the first if the second fails
            samples.append(nvml.nvmlGpmSampleAlloc())
        # Two query structures, one for each order of the two samples, built once: a cycle only picks one, so
        # no ctypes field is written per cycle (pynvml's structures make every field access a Python call).
        queries = (self._gpm_query(older=samples[1], newer=samples[0]),
                   self._gpm_query(older=samples[0], newer=samples[1]))
        sample_get, metrics_get, success = nvml.nvmlGpmSampleGet, nvml.nvmlGpmMetricsGet, nvml.NVML_SUCCESS
        turn, primed = 0, False

        def read_gpm(values: dict, migs: list) -> None:
            # GPM metrics are rates between two samples. The previous cycle's sample is the older one, so the
            # agent never sleeps between them; the first cycle of a session only primes. The samples take turns.
            nonlocal turn, primed
            sample_get(handle, samples[turn])
            if primed:
                query, slots = queries[turn]
                metrics_get(query)
                for name, slot in slots:
                    if slot.nvmlReturn == success:
                        value = slot.value
                        if math.isfinite(value):
                            values[name] = value
            turn, primed = 1 - turn, True

        return read_gpm

    def _gpm_query(self, older, newer) -> tuple:
        nvml = self._nvml
        query_type = nvml.c_nvmlGpmMetricsGet_t
        query = query_type()
        query.version = nvml.NVML_GPM_METRICS_GET_VERSION
        query.numMetrics = len(_GPM_METRICS)
        query.sample1, query.sample2 = older, newer
        # The results are read through a plain ctypes view of the query's own memory: pynvml's structures run a
        # Python __getattribute__ on every field read (about 1 us each), eight reads a GPU a cycle.
        plain = _plain_structure(nvml.c_nvmlGpmMetric_t) * len(_GPM_METRICS)
        metrics = plain.from_buffer(query, query_type.metrics.offset)
        slots = []
        for i, (metric_id, name) in enumerate(_GPM_METRICS):
            metrics[i].metricId = getattr(nvml, metric_id)
            slots.append((name, metrics[i]))
        return query, tuple(slots)

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
                # Compute instances of one GPU instance share its memory: report each GPU instance once.
                if instance in seen:
                    continue
                seen.add(instance)
                memory = nvml.nvmlDeviceGetMemoryInfo(mig)
                migs.append(MigReading(str(instance), frozen({_MIG_USED: float(memory.used),
                                                              _MIG_TOTAL: float(memory.total)})))

        return read_mig
