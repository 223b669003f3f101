"""Golden tests: readings in NVML's raw units (golden/readings.json: four kinds of GPU, written by hand since no GPU
was at hand to record from) replayed through the fake NVML, compared with the expected Prometheus exposition
(parsed by prometheus_client's own parser) and the expected PutMetricData payload.

After an intended change, regenerate with ``UPDATE_GOLDEN=1 pytest tests/agent/test_agent_golden.py`` and review
the diff of tests/agent/golden/.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import botocore.session
from botocore.validate import ParamValidator
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gpu_metrics_agent import catalogue as cat
from gpu_metrics_agent.cloudwatch import CloudWatchPublisher, CloudWatchSettings
from gpu_metrics_agent.collector import Collector
from gpu_metrics_agent.fake_nvml import FakeNvml
from gpu_metrics_agent.health import Health
from gpu_metrics_agent.imds import NodeIdentity
from gpu_metrics_agent.prometheus import AgentCollector, make_registry

GOLDEN = Path(__file__).parent / "golden"
WALL = 1_767_225_600.0  # 2026-01-01T00:00:00Z
IDENTITY = NodeIdentity("inference-p5", "i-0123456789abcdef0", "p5.48xlarge", "us-east-1")


def _clock() -> float:
    return 500.0  # frozen: collections take 0 s and every snapshot is fresh


def _replay():
    nvml = FakeNvml.from_recording(json.loads((GOLDEN / "readings.json").read_text()))
    nvml.inject_xid(0, 79)
    walls = iter([WALL, WALL + 1.0])
    health = Health(1.0, 5, clock=_clock)
    collector = Collector(nvml, health, wall=lambda: next(walls), clock=_clock)
    collector.collect()  # GPM rates need a previous sample
    return collector.collect(), health


def _check(name: str, actual) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(actual, indent=1, sort_keys=True) + "\n")
    assert actual == json.loads(path.read_text()), f"differs from {path}; see this module's docstring"


class _RecordingClient:
    """Stands in for boto3's client where only the payload matters; moto tests cover the real client."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def put_metric_data(self, **params) -> dict:
        self.calls.append(params)
        return {}


def test_prometheus_exposition():
    snapshot, health = _replay()
    text = generate_latest(make_registry(AgentCollector(lambda: snapshot, health, None, clock=_clock))).decode()
    families = [{"name": f.name, "type": f.type, "help": f.documentation,
                 "samples": [[s.name, s.labels, s.value] for s in f.samples]}
                for f in text_string_to_metric_families(text)]
    _check("exposition.json", families)


def test_put_metric_data_payload():
    snapshot, health = _replay()
    client = _RecordingClient()
    publisher = CloudWatchPublisher(CloudWatchSettings(), health, identity=lambda: IDENTITY,
                                    client_factory=lambda identity, settings: client, clock=_clock,
                                    wall=lambda: WALL + 2)
    publisher.offer(snapshot)
    assert publisher.flush() is True and len(publisher.buffer) == 0
    operation = botocore.session.get_session().get_service_model("cloudwatch").operation_model("PutMetricData")
    for call in client.calls:
        report = ParamValidator().validate(call, operation.input_shape)
        assert not report.has_errors(), report.generate_report()
    _check("put_metric_data.json", json.loads(json.dumps(client.calls, default=lambda t: t.isoformat())))
    datapoints = sum(sum(d.get("Counts", [1])) for call in client.calls for d in call["MetricData"])
    to_cloudwatch = [n for g in snapshot.gpus for n in list(g.values) + [n for m in g.migs for n in m.values]
                     if cat.BY_NAME[n].cloudwatch]
    assert health.cw_sent == datapoints == 2 * len(snapshot.node) + len(to_cloudwatch) + 4 * len(snapshot.gpus) - 1
