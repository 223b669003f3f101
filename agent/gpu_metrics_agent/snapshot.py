"""The immutable result of one collection, which every publisher reads.

Values are keyed by the catalogue's CloudWatch metric name and held in the CloudWatch unit (``MetricSpec.cw_unit``);
a field the GPU does not offer has no key at all. Mappings are read-only views, so a publisher on another thread can
never change what the others see.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Mapping

def frozen(values: dict[str, float]) -> Mapping[str, float]:
    """A read-only view of ``values``; the caller hands the dict over and keeps no reference."""
    return MappingProxyType(values)


@dataclass(frozen=True)
class MigReading:
    """One MIG GPU instance of a GPU."""

    instance: str
    """The GPU instance id, as NVML numbers it on its parent GPU."""
    values: Mapping[str, float]
    profile: str = ""
    """The instance's profile as NVML names it, e.g. ``1g.10gb`` ("" when NVML does not say)."""
    sms: int = 0
    """Streaming multiprocessors of the instance (0 when NVML does not say): its weight in the GPU's utilization."""


@dataclass(frozen=True)
class GpuInfo:
    """What does not change while a GPU is attached: read once when it is discovered ("" where NVML does not say)."""

    model: str = ""
    pci_bus_id: str = ""
    minor: str = ""
    """The device's minor number: /dev/nvidia<minor>."""


GPU_STATES = ("ok", "error", "lost")
"""A GPU in a collection: read; skipped because it raised an error this cycle; lost (off the bus, reset needed)."""


@dataclass(frozen=True)
class GpuState:
    index: int
    uuid: str
    """"" for a GPU lost before the agent ever read its UUID."""
    state: str


@dataclass(frozen=True)
class GpuReading:
    """One GPU, read without error in this collection."""

    index: int
    uuid: str
    values: Mapping[str, float]
    migs: tuple[MigReading, ...] = ()
    absent: tuple[str, ...] = ()
    """NVML fields this GPU does not offer (not supported, or not permitted), by the agent's field name."""
    info: GpuInfo = GpuInfo()


@dataclass(frozen=True)
class Snapshot:
    """One successful collection."""

    timestamp: float
    """Wall-clock time the collection started, in seconds since the epoch: the datapoints' timestamp."""
    monotonic: float
    """Monotonic time the collection started, for ages and deadlines."""
    duration_s: float
    """How long the collection took."""
    gpus: tuple[GpuReading, ...]
    node: Mapping[str, float]
    """Node aggregates, keyed like GPU values."""
    skipped: tuple[int, ...] = ()
    """Indexes of GPUs that raised an error this cycle (or are known lost) and so have no reading."""
    states: tuple[GpuState, ...] = ()
    """Every GPU NVML counts, read or not, and its state."""

    def to_dict(self) -> dict:
        """A JSON-ready form, for ``--once``."""
        return {
            "timestamp": datetime.fromtimestamp(self.timestamp, timezone.utc).isoformat(),
            "duration_s": round(self.duration_s, 6),
            "node": dict(self.node),
            "gpus": [
                {"index": g.index, "uuid": g.uuid, "values": dict(g.values), "absent": list(g.absent),
                 "model": g.info.model, "pci_bus_id": g.info.pci_bus_id,
                 "mig": [{"instance": m.instance, "profile": m.profile, "values": dict(m.values)} for m in g.migs]}
                for g in self.gpus
            ],
            "skipped_gpus": list(self.skipped),
            "gpu_states": [{"index": s.index, "uuid": s.uuid, "state": s.state} for s in self.states],
        }
