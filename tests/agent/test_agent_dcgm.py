"""dcgm-exporter compatibility (--dcgm-compat): names, types, units and labels as dcgm-exporter's own files at the
pinned release say (the generated data file), values converted from the catalogue's units."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pynvml
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gpu_metrics_agent import catalogue as cat
from gpu_metrics_agent.collector import Collector
from gpu_metrics_agent.dcgm import MAPPINGS, base_unit, upstream
from gpu_metrics_agent.fake_nvml import FakeGpu, FakeMig, FakeNvml
from gpu_metrics_agent.health import Health
from gpu_metrics_agent.prometheus import AgentCollector, NodeLabels, make_registry

ASKED_FOR = ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_POWER_USAGE",
             "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_XID_ERRORS")
SCRIPT = Path(__file__).resolve().parents[2] / "agent" / "scripts" / "gen_dcgm_counters.py"


def test_the_data_file_says_where_it_comes_from_and_holds_the_counters_dashboards_query():
    data = upstream()
    assert data["source"] == "https://github.com/NVIDIA/dcgm-exporter" and data["licence"] == "Apache-2.0"
    assert data["version"] == "4.5.3-4.8.2" and data["generated_by"] == "agent/scripts/gen_dcgm_counters.py"
    defaults = {c["name"]: c for c in data["counters"] if c["default"]}
    for name in ASKED_FOR:
        assert name in defaults, f"{name} is among dcgm-exporter's default counters"
    assert data["gpu_labels"]["always"] == ["gpu", "UUID", "pci_bus_id", "device", "modelName"]
    assert data["gpu_labels"]["mig"] == ["GPU_I_PROFILE", "GPU_I_ID"] and data["gpu_labels"]["hostname"] == "Hostname"


def test_every_mapping_names_a_dcgm_counter_of_a_unit_the_catalogue_converts_to():
    known = {c["name"]: c for c in upstream()["counters"]}
    assert {m.counter for m in MAPPINGS} >= set(ASKED_FOR)
    for mapping in MAPPINGS:
        counter = known[mapping.counter]  # a renamed or dropped counter fails here
        assert counter["type"] in ("gauge", "counter")
        assert (counter["type"] == "counter") == (mapping.source.kind == "counter"), mapping.counter
        if mapping.mig_source is not None:
            assert base_unit(mapping.mig_source) == base_unit(mapping.source)


def test_the_generator_reads_dcgm_exporters_file_formats(tmp_path):
    # Lines in the formats of the pinned files (not copies of them): the parser is what must keep up with them.
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/default-counters.csv").write_text(
        "# Format\n# DCGM FIELD, Prometheus metric type, help message\n"
        "DCGM_FI_DEV_SM_CLOCK,  gauge, SM clock frequency (in MHz).\n"
        "# DCGM_FI_PROF_SM_ACTIVE,          gauge, The ratio of cycles an SM has at least 1 warp assigned.\n"
        "DCGM_FI_DRIVER_VERSION,        label, Driver Version\n")
    render = tmp_path / "internal/pkg/rendermetrics"
    render.mkdir(parents=True)
    (render / "render_metrics.go").write_text(
        '{{ $counter.FieldName }}{gpu="{{ $metric.GPU }}",{{ $metric.UUID }}="{{ $metric.GPUUUID }}",'
        'device="{{ $metric.GPUDevice }}"{{if $metric.MigProfile}},GPU_I_PROFILE="{{ $metric.MigProfile }}",'
        'GPU_I_ID="{{ $metric.GPUInstanceID }}"{{end}}{{if $metric.Hostname }},Hostname="{{ $metric.Hostname }}"'
        '{{end}}\n')
    (tmp_path / "internal/pkg/transformation").mkdir(parents=True)
    (tmp_path / "internal/pkg/transformation/const.go").write_text(
        'const (\n\tpodAttribute       = "pod"\n\tnamespaceAttribute = "namespace"\n\tcontainerAttribute = "container"\n)\n')
    spec = importlib.util.spec_from_file_location("gen_dcgm_counters", SCRIPT)
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    out = tmp_path / "out.json"
    assert generator.main([str(tmp_path), "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["counters"] == [
        {"name": "DCGM_FI_DEV_SM_CLOCK", "type": "gauge", "help": "SM clock frequency (in MHz).", "unit": "MHz",
         "default": True},
        {"name": "DCGM_FI_PROF_SM_ACTIVE", "type": "gauge", "unit": "ratio", "default": False,
         "help": "The ratio of cycles an SM has at least 1 warp assigned."},
        {"name": "DCGM_FI_DRIVER_VERSION", "type": "label", "help": "Driver Version", "unit": None, "default": True}]
    assert data["gpu_labels"] == {"always": ["gpu", "UUID", "device"], "mig": ["GPU_I_PROFILE", "GPU_I_ID"],
                                  "hostname": "Hostname"}
    assert data["pod_labels"] == {"pod": "pod", "namespace": "namespace", "container": "container"}


def _text(nvml, holders=None) -> str:
    health = Health(1.0, 5)
    collector = Collector(nvml, health)
    collector.collect()
    snapshot = collector.collect()
    node = NodeLabels(hostname="ip-10-0-1-23", version="0.1.0")
    collector = AgentCollector(lambda: snapshot, health, node=node, dcgm=True,
                               pods=None if holders is None else lambda: holders, clock=lambda: snapshot.monotonic)
    return generate_latest(make_registry(collector)).decode() + collector.dcgm_text()  # as /metrics serves it


def _exposition(nvml, holders=None) -> dict:
    return {f.name: f for f in text_string_to_metric_families(_text(nvml, holders)) if f.name.startswith("DCGM_")}


def test_series_carry_dcgm_exporters_units_and_labels():
    gpu = FakeGpu(uuid="GPU-a", utilization_gpu=87, memory_total=80 * 2**30, memory_used=20 * 2**30,
                  power_mw=512_345, energy_mj=7_200_000, temperature_c=61, sm_clock_mhz=1755,
                  gpm={pynvml.NVML_GPM_METRIC_SM_UTIL: 40.0})
    families = _exposition(FakeNvml([gpu]))
    known = {c["name"]: c for c in upstream()["counters"]}
    for name, family in families.items():
        assert family.type == known[name]["type"] and family.documentation == known[name]["help"], name
    def value(name):
        sample, = families[name].samples
        return sample.value
    assert value("DCGM_FI_DEV_GPU_UTIL") == 87.0
    assert value("DCGM_FI_DEV_FB_USED") == 20 * 1024 and value("DCGM_FI_DEV_FB_FREE") == 60 * 1024
    assert value("DCGM_FI_DEV_POWER_USAGE") == pytest.approx(512.345)
    assert value("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION") == 7_200_000
    assert value("DCGM_FI_DEV_GPU_TEMP") == 61 and value("DCGM_FI_DEV_SM_CLOCK") == 1755
    assert value("DCGM_FI_PROF_SM_ACTIVE") == pytest.approx(0.40)
    assert value("DCGM_FI_DEV_XID_ERRORS") == 0
    labels = families["DCGM_FI_DEV_GPU_UTIL"].samples[0].labels
    assert labels == {"gpu": "0", "UUID": "GPU-a", "pci_bus_id": "00000000:10:00.0", "device": "nvidia0",
                      "modelName": "NVIDIA H100 80GB HBM3", "Hostname": "ip-10-0-1-23",
                      "DCGM_FI_DRIVER_VERSION": "550.90.07-fake"}
    # Counters as dcgm-exporter writes them, without _total (which prometheus_client's parser would add back).
    text = _text(FakeNvml([gpu]))
    assert "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter\nDCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{" in text


def test_the_last_xid_and_mig_instances_as_dcgm_exporter_shows_them():
    gpu = FakeGpu(uuid="GPU-mig", mig=[FakeMig(3, 0, 20 * 2**30, 5 * 2**30, profile="2g.20gb")])
    nvml = FakeNvml([gpu])
    nvml.inject_xid(0, 79)
    families = _exposition(nvml)
    xid, = families["DCGM_FI_DEV_XID_ERRORS"].samples
    assert xid.value == 79
    whole, used = families["DCGM_FI_DEV_FB_USED"].samples
    assert "GPU_I_ID" not in whole.labels, "the GPU as a whole, and each MIG instance apart"
    assert used.value == 5 * 1024 and used.labels["GPU_I_PROFILE"] == "2g.20gb" and used.labels["GPU_I_ID"] == "3"
    assert "DCGM_FI_DEV_GPU_UTIL" not in families, "no whole-GPU utilization under MIG: absent, not 0"


def test_pod_labels_on_dcgm_series_too():
    families = _exposition(FakeNvml(2), holders=lambda index, uuid: [("web-0", "prod", "server")] if index else [])
    by_gpu = {s.labels["gpu"]: s.labels for s in families["DCGM_FI_DEV_GPU_UTIL"].samples}
    assert (by_gpu["1"]["pod"], by_gpu["1"]["namespace"], by_gpu["1"]["container"]) == ("web-0", "prod", "server")
    assert "pod" not in by_gpu["0"], "no pod holds GPU 0: dcgm-exporter leaves the labels out"
