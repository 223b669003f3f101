"""What an EC2 instance type carries: GPU count, model and memory, from EC2's own instance type descriptions.

GPU counts are never typed by hand. During `pulumi up` they come from the `aws.ec2.getInstanceType` invoke (EC2's
DescribeInstanceTypes); offline (the plan's mock engine, the config reader, the simulator) they come from
`gpuscale/data/instance_types.json`: the same API's answers, recorded (source, version and date in the file), cut to
the fields gpuscale reads. `scripts/refresh_instance_types.py` regenerates it.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

INSTANCE_TYPE_FILE = Path(__file__).parent / "data" / "instance_types.json"

RECORD_FIELDS: dict[str, Any] = {
    "InstanceType": True,
    "CurrentGeneration": True,
    "BareMetal": True,
    "Hypervisor": True,
    "HibernationSupported": True,
    "VCpuInfo": {"DefaultVCpus": True, "DefaultCores": True, "DefaultThreadsPerCore": True},
    "MemoryInfo": True,
    "ProcessorInfo": {"SupportedArchitectures": True},
    "GpuInfo": True,
    "NetworkInfo": {"NetworkPerformance": True},
}
"""The parts of a DescribeInstanceTypes record the data file keeps (True: the whole value): what InstanceTypeInfo and
the mocks' getInstanceType answer read, and no more, so the file stays small and its diffs say what changed."""


@dataclass(frozen=True)
class InstanceTypeInfo:
    instance_type: str
    gpu_count: int
    """GPUs per instance; 0 for an instance type without GPUs."""
    gpu_name: str
    """GPU model as EC2 names it (``L4``, ``A10G``, ``H100``); empty without GPUs."""
    gpu_manufacturer: str
    gpu_memory_mib: int
    """Memory of one GPU, in MiB."""
    vcpus: int
    memory_mib: int
    architectures: tuple[str, ...]
    """CPU architectures as EC2 names them: ``x86_64``, ``arm64``."""
    hibernation_supported: bool
    """Whether an on-demand instance of the type can hibernate (a warm pool's ``Hibernated`` state needs it)."""
    network_gbps: float | None = None
    """The instance's network bandwidth in Gbit/s as EC2 states it (`NetworkPerformance`: "Up to 10 Gigabit" -> 10,
    the burst figure; "100 Gigabit" -> 100); None where EC2 gives only a word ("High") or nothing."""


class InstanceTypeCatalog(Protocol):
    def describe(self, instance_type: str) -> InstanceTypeInfo | None:
        """The instance type's description, or None when EC2 has no such instance type."""


def from_describe_record(record: dict[str, Any]) -> InstanceTypeInfo:
    """An InstanceTypeInfo from one DescribeInstanceTypes record (PascalCase, as EC2 answers)."""
    gpus = (record.get("GpuInfo") or {}).get("Gpus") or []
    first = gpus[0] if gpus else {}
    return InstanceTypeInfo(
        instance_type=record["InstanceType"],
        gpu_count=sum(int(g.get("Count", 0)) for g in gpus),
        gpu_name=first.get("Name", ""),
        gpu_manufacturer=first.get("Manufacturer", ""),
        gpu_memory_mib=int((first.get("MemoryInfo") or {}).get("SizeInMiB", 0)),
        vcpus=int(record["VCpuInfo"]["DefaultVCpus"]),
        memory_mib=int(record["MemoryInfo"]["SizeInMiB"]),
        architectures=tuple(record["ProcessorInfo"]["SupportedArchitectures"]),
        hibernation_supported=bool(record.get("HibernationSupported", False)),
        network_gbps=network_gbps((record.get("NetworkInfo") or {}).get("NetworkPerformance")),
    )


def network_gbps(performance: str | None) -> float | None:
    """Gbit/s of EC2's `NetworkPerformance` ("Up to 12.5 Gigabit", "4x 100 Gigabit"); None for a word or none."""
    match = re.fullmatch(r"(?:Up to )?(?:(\d+)x )?(\d+(?:\.\d+)?) Gigabit", (performance or "").strip())
    if match is None:
        return None
    return float(match.group(2)) * int(match.group(1) or 1)


def trim_record(record: dict[str, Any], fields: dict[str, Any] = RECORD_FIELDS) -> dict[str, Any]:
    """The RECORD_FIELDS of a DescribeInstanceTypes record (fields EC2 leaves out stay out)."""
    kept = {}
    for key, sub in fields.items():
        if key in record:
            kept[key] = record[key] if sub is True else trim_record(record[key], sub)
    return kept


class RecordedInstanceTypes:
    """DescribeInstanceTypes records from the package's data file (loaded once, on first use)."""

    def describe(self, instance_type: str) -> InstanceTypeInfo | None:
        record = _recorded().get(instance_type)
        return from_describe_record(record) if record else None

    def names(self) -> list[str]:
        """Every instance type EC2 describes, sorted."""
        return sorted(_recorded())

    def record(self, instance_type: str) -> dict[str, Any] | None:
        """The raw DescribeInstanceTypes record, for mocks that answer like EC2."""
        return _recorded().get(instance_type)


def recorded_source() -> dict[str, str]:
    """Where the data file's records come from: source, version, dates, licence (the file's `source` object)."""
    return dict(_data_file()["source"])


@functools.cache
def _data_file() -> dict[str, Any]:
    return json.loads(INSTANCE_TYPE_FILE.read_text())


def _recorded() -> dict[str, dict[str, Any]]:
    return _data_file()["instanceTypes"]


class PulumiInstanceTypes:
    """Looks instance types up through the `aws.ec2.getInstanceType` invoke, in the running Pulumi program."""

    def __init__(self, opts: Any = None):
        self._opts = opts  # pulumi.InvokeOptions, e.g. with an explicit provider
        self._cache: dict[str, InstanceTypeInfo | None] = {}

    def describe(self, instance_type: str) -> InstanceTypeInfo | None:
        if instance_type not in self._cache:
            self._cache[instance_type] = self._lookup(instance_type)
        return self._cache[instance_type]

    def _lookup(self, instance_type: str) -> InstanceTypeInfo | None:
        import pulumi
        import pulumi_aws as aws

        try:
            result = aws.ec2.get_instance_type(instance_type=instance_type, opts=self._opts)
        except Exception as exc:  # the provider answers an unknown type with an invoke error
            if "InvalidInstanceType" in str(exc) or "not found" in str(exc).lower():
                return None
            raise
        gpus = result.gpuses or []
        pulumi.log.debug(f"instance type {instance_type}: {len(gpus)} GPU kinds")
        return InstanceTypeInfo(
            instance_type=instance_type,
            gpu_count=sum(g.count for g in gpus),
            gpu_name=gpus[0].name if gpus else "",
            gpu_manufacturer=gpus[0].manufacturer if gpus else "",
            gpu_memory_mib=gpus[0].memory_size if gpus else 0,
            vcpus=result.default_vcpus,
            memory_mib=result.memory_size,
            architectures=tuple(result.supported_architectures or ()),
            hibernation_supported=bool(result.hibernation_supported),
            network_gbps=network_gbps(result.network_performance),
        )
