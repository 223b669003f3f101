"""The metric catalogue is data; these are its naming rules and the names other packages import."""

from __future__ import annotations

import re

import botocore.session
import pytest

from gpu_metrics_agent import catalogue as cat
from gpu_metrics_agent.cloudwatch_batch import SeriesTable
from gpu_metrics_agent.collector import Collector
from gpu_metrics_agent.fake_nvml import FakeNvml
from gpu_metrics_agent.health import Health
from gpu_metrics_agent.config import DEFAULT_BUFFER_DATAPOINTS, datapoints_per_snapshot

_UNITS = botocore.session.get_session().get_service_model("cloudwatch").shape_for("StandardUnit").enum
_BASE_UNIT_SUFFIXES = ("_ratio", "_bytes", "_watts", "_joules_total", "_celsius", "_hertz", "_total", "_code")
"""Base units, and ``_code`` for an identifier that has none (an XID error's number)."""


@pytest.mark.parametrize("spec", cat.ALL_METRICS, ids=lambda s: s.name)
def test_naming_rules(spec):
    assert re.fullmatch(r"(Gpu|Mig|Node|Agent)[A-Z][A-Za-z]+", spec.name), "CloudWatch names are PascalCase"
    assert re.fullmatch(r"[a-z][a-z0-9_]*", spec.prom_name), "Prometheus names are snake_case"
    assert spec.cw_unit in _UNITS, "a CloudWatch StandardUnit"
    assert spec.help.endswith(".") and len(spec.help) > 20
    assert spec.kind in ("gauge", "counter")
    assert (spec.kind == "counter") == spec.prom_name.endswith("_total"), "counters, and only counters, end _total"
    if spec.cw_unit == "Percent":
        assert spec.prom_name.endswith("_ratio") and spec.prom_scale == 0.01, "percent is exposed as a 0-1 ratio"
    if spec.kind == "gauge" and spec.cw_unit in ("Bytes", "None"):
        assert spec.prom_name.endswith(_BASE_UNIT_SUFFIXES), "a measurement names its base unit"
    assert set(spec.dimensions) >= set(cat.NODE_DIMENSIONS)


def test_names_are_unique():
    assert len({m.name for m in cat.ALL_METRICS}) == len(cat.ALL_METRICS)
    assert len({m.prom_name for m in cat.ALL_METRICS}) == len(cat.ALL_METRICS)
    assert cat.BY_NAME == {m.name: m for m in cat.ALL_METRICS}


def test_the_names_the_scaling_policies_import_are_there():
    for name in ("NAMESPACE", "DIM_ASG", "DIM_INSTANCE_ID", "DIM_INSTANCE_TYPE", "DIM_GPU_INDEX", "DIM_GPU_UUID",
                 "NODE_GPU_UTILIZATION", "NODE_GPU_UTILIZATION_SUM", "NODE_GPU_COUNT", "NODE_MEMORY_UTILIZATION_MAX",
                 "AGENT_HEARTBEAT", "GPU_XID_ERRORS", "GPU_ECC_UNCORRECTED", "GPU_THERMAL_THROTTLE",
                 "GPU_POWER_THROTTLE", "GPU_UTILIZATION", "MetricSpec", "ALL_METRICS", "GROUP_DIMENSIONS",
                 "NODE_DIMENSIONS", "GPU_DIMENSIONS"):
        assert hasattr(cat, name), name
    assert cat.GROUP_DIMENSIONS == (cat.DIM_ASG,)
    assert all(m.group_rollup for m in cat.ALL_METRICS if m.scope == "node")


def test_prometheus_labels_cover_every_dimension_below_the_node():
    below_node = set(cat.MIG_DIMENSIONS) - set(cat.NODE_DIMENSIONS)
    assert set(cat.PROM_LABELS) == below_node
    assert all(re.fullmatch(r"[a-z_]+", label) for label in cat.PROM_LABELS.values())


def test_the_default_buffer_holds_an_hour_of_8_gpus_at_1_hz():
    collector = Collector(FakeNvml(8), Health(1.0, 5))
    collector.collect()  # GPM primes on the first collection; the second is a full one
    _keys, values = SeriesTable().flatten(collector.collect())
    assert len(values) == datapoints_per_snapshot(8)
    assert DEFAULT_BUFFER_DATAPOINTS >= 3600 * len(values)
