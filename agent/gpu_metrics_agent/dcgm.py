"""dcgm-exporter's series (``DCGM_FI_*``), mapped from the metric catalogue, for ``--dcgm-compat``.

Dashboards, KEDA triggers and prometheus-adapter rules written for dcgm-exporter query its names, units and labels.
Which catalogue series feeds which dcgm-exporter counter is written here once; everything about the counters
themselves (name, Prometheus type, help, unit) and the labels of a GPU series comes from
``data/dcgm_exporter_counters.json``, generated from dcgm-exporter's own files at a pinned release
(``agent/scripts/gen_dcgm_counters.py``), so a unit is never guessed here: a conversion is looked up from the
catalogue's base unit to the unit dcgm-exporter states.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Callable, Iterator, Mapping, Sequence

from prometheus_client.core import Metric
from prometheus_client.utils import floatToGoString

from . import catalogue as cat
from .snapshot import Snapshot

DATA_FILE = "dcgm_exporter_counters.json"

_CONVERSIONS: dict[tuple[str, str], float] = {
    # (catalogue base unit, the unit dcgm-exporter's help states) -> factor
    ("hertz", "MHz"): 1e-6, ("celsius", "C"): 1.0, ("watts", "W"): 1.0, ("joules", "mJ"): 1e3,
    ("bytes", "MiB"): 2.0**-20, ("ratio", "%"): 100.0, ("ratio", "ratio"): 1.0, ("code", None): 1.0,
    ("errors", None): 1.0,
}


@dataclass(frozen=True)
class DcgmMapping:
    counter: str
    """dcgm-exporter's counter (DCGM field) name."""
    source: cat.MetricSpec
    """The catalogue series it is read from; for a MIG instance, ``mig_source`` instead."""
    mig_source: cat.MetricSpec | None = None
    minus: cat.MetricSpec | None = None
    """Subtracted from ``source`` (free memory is total less used)."""


MAPPINGS: tuple[DcgmMapping, ...] = (
    DcgmMapping("DCGM_FI_DEV_GPU_UTIL", cat.GPU_UTILIZATION),
    DcgmMapping("DCGM_FI_DEV_MEM_COPY_UTIL", cat.GPU_MEMORY_CONTROLLER_UTILIZATION),
    DcgmMapping("DCGM_FI_DEV_FB_USED", cat.GPU_MEMORY_USED, cat.MIG_MEMORY_USED),
    DcgmMapping("DCGM_FI_DEV_FB_FREE", cat.GPU_MEMORY_TOTAL, cat.MIG_MEMORY_TOTAL, minus=cat.GPU_MEMORY_USED),
    DcgmMapping("DCGM_FI_DEV_POWER_USAGE", cat.GPU_POWER),
    DcgmMapping("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", cat.GPU_ENERGY),
    DcgmMapping("DCGM_FI_DEV_GPU_TEMP", cat.GPU_TEMPERATURE),
    DcgmMapping("DCGM_FI_DEV_SM_CLOCK", cat.GPU_SM_CLOCK),
    DcgmMapping("DCGM_FI_DEV_XID_ERRORS", cat.GPU_XID_LAST),
    DcgmMapping("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", cat.GPU_ECC_UNCORRECTED),
    DcgmMapping("DCGM_FI_PROF_SM_ACTIVE", cat.GPU_SM_ACTIVITY, cat.MIG_SM_ACTIVITY),
    DcgmMapping("DCGM_FI_PROF_SM_OCCUPANCY", cat.GPU_SM_OCCUPANCY),
    DcgmMapping("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", cat.GPU_TENSOR_ACTIVITY),
    DcgmMapping("DCGM_FI_PROF_DRAM_ACTIVE", cat.GPU_DRAM_BANDWIDTH),
)
"""Every dcgm-exporter counter NVML lets the agent give. The rest of dcgm-exporter's defaults (memory clock and
temperature, encoder/decoder, PCIe, NVLink, remapped rows, vGPU licence, graphics engine activity) need DCGM or
NVML calls the agent does not make, and are absent rather than invented."""


def base_unit(spec: cat.MetricSpec) -> str:
    """The catalogue's Prometheus base unit of ``spec``: the last word of its name (``_total`` aside)."""
    return spec.prom_name.removesuffix("_total").rsplit("_", 1)[-1]


@lru_cache(maxsize=1)
def upstream() -> dict:
    """The generated facts about dcgm-exporter (source, version, licence, counters, labels)."""
    return json.loads(resources.files(__package__).joinpath("data", DATA_FILE).read_text())


@dataclass(frozen=True)
class _Counter:
    mapping: DcgmMapping
    kind: str
    help: str
    factor: float


@lru_cache(maxsize=1)
def _counters() -> tuple[_Counter, ...]:
    known = {c["name"]: c for c in upstream()["counters"]}
    found = []
    for mapping in MAPPINGS:
        counter = known[mapping.counter]
        factor = _CONVERSIONS[(base_unit(mapping.source), counter["unit"])]
        found.append(_Counter(mapping, counter["type"], counter["help"], factor))
    return tuple(found)


def _labels() -> tuple[list[str], list[str], str, list[str]]:
    data = upstream()
    labels = data["gpu_labels"]
    # Counters of type "label" enabled by default are labels on every series (the driver version).
    info = [c["name"] for c in data["counters"] if c["type"] == "label" and c["default"]]
    return labels["always"], labels["mig"], labels["hostname"], info


def dcgm_families(snapshot: Snapshot, hostname: str, holders: Callable[[int, str], Sequence] | None,
                  versions: Mapping[str, str] | None = None) -> Iterator[Metric]:
    """dcgm-exporter's series for ``snapshot``, labelled as dcgm-exporter labels them.

    Samples are added one by one, not through prometheus_client's typed families: dcgm-exporter leaves labels out
    where it has no value (MIG labels on a whole GPU, pod labels on a GPU no pod holds), so the label sets of one
    series differ, and its counters carry no ``_total`` suffix, which is what the queries written for it name
    (see ``render``).
    """
    gpu_names, mig_names, host_name, info_names = _labels()
    versions = versions or {}
    info = {name: versions.get("driver_version", "") for name in info_names if name == "DCGM_FI_DRIVER_VERSION"}
    pod_names = list(upstream()["pod_labels"].values())
    for counter in _counters():
        mapping, scale = counter.mapping, counter.mapping.source.prom_scale * counter.factor
        family = Metric(mapping.counter, counter.help, counter.kind)
        for gpu in snapshot.gpus:
            labels = dict(zip(gpu_names, (str(gpu.index), gpu.uuid, gpu.info.pci_bus_id,
                                          f"nvidia{gpu.info.minor}" if gpu.info.minor else "", gpu.info.model)))
            if hostname:
                labels[host_name] = hostname
            labels.update(info)
            rows: list[tuple[dict, float]] = []
            value = _value(gpu.values, mapping.source, mapping.minus)
            if value is not None:
                rows.append((labels, value))
            if mapping.mig_source is not None:
                minus = cat.MIG_MEMORY_USED if mapping.minus is not None else None
                for mig in gpu.migs:
                    value = _value(mig.values, mapping.mig_source, minus)
                    if value is not None:
                        rows.append(({**labels, **dict(zip(mig_names, (mig.profile, mig.instance)))}, value))
            pods = holders(gpu.index, gpu.uuid) if holders is not None else ()
            for row_labels, value in rows:
                # A GPU shared by several pods (time-slicing) is shown once for each, as dcgm-exporter does.
                for pod in pods or [None]:
                    extra = dict(zip(pod_names, pod)) if pod else {}
                    family.add_sample(mapping.counter, {**row_labels, **extra}, value * scale)
        if family.samples:
            yield family


def _value(values: Mapping[str, float], source: cat.MetricSpec, minus: cat.MetricSpec | None) -> float | None:
    value = values.get(source.name)
    if value is None or minus is None:
        return value
    subtracted = values.get(minus.name)
    return None if subtracted is None else value - subtracted


def render(families: Iterator[Metric]) -> str:
    """The text exposition of ``families`` as dcgm-exporter writes it. prometheus_client's own writer names a
    counter's HELP and TYPE ``<name>_total``, which for a counter sampled without that suffix (all of
    dcgm-exporter's) would leave its samples untyped for Prometheus."""
    lines = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape(family.documentation, quote=False)}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for sample in family.samples:
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sample.labels.items())
            lines.append(f"{sample.name}{{{labels}}} {floatToGoString(sample.value)}")
    return "".join(line + "\n" for line in lines)


def _escape(text: str, quote: bool = True) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if quote else text
