"""Prometheus: ``/metrics`` from the latest snapshot plus the agent's own health, and ``/healthz``.

A scrape reads the sampler's latest snapshot (a reference, swapped atomically), so it never waits for a
collection. Readings are exposed in base units while the snapshot is fresh; once it is older than the health
limit they are left out rather than repeated, so a dashboard sees a gap, not stale numbers. The agent's health is
always exposed. Each agent has its own registry: prometheus_client's global one would be a module-level singleton.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from . import catalogue as cat
from .buffer import DatapointBuffer
from .health import DROP_REASONS, FAILURE_TIERS, LIFECYCLE_CALLS, PUBLISH_ERROR_REASONS, Health
from .snapshot import Snapshot

log = logging.getLogger(__name__)

_LABELS = {scope: [cat.PROM_LABELS[d] for d in dims if d in cat.PROM_LABELS]
           for scope, dims in (("node", cat.NODE_DIMENSIONS), ("gpu", cat.GPU_DIMENSIONS),
                               ("mig", cat.MIG_DIMENSIONS))}
_AGENT = cat.PROM_PREFIX + "agent_"


def _family(kind: str, name: str, help_text: str, labels: list[str] | None = None) -> Metric:
    cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    return cls(name, help_text, labels=labels)


def _single(kind: str, name: str, help_text: str, value: float) -> Metric:
    family = _family(kind, name, help_text)
    family.add_metric([], value)
    return family


def _labelled(kind: str, name: str, help_text: str, label: str, values: dict[str, int]) -> Metric:
    family = _family(kind, name, help_text, [label])
    for key in sorted(values):
        family.add_metric([key], values[key])
    return family


class AgentCollector:
    """A prometheus_client custom collector over the sampler's latest snapshot and the agent's health."""

    def __init__(self, latest: Callable[[], Snapshot | None], health: Health, buffer: DatapointBuffer | None = None,
                 clock: Callable[[], float] = time.monotonic, lifecycle: bool = False) -> None:
        self._latest, self._health, self._buffer, self._clock = latest, health, buffer, clock
        self._lifecycle = lifecycle

    def collect(self) -> Iterator[Metric]:
        snapshot = self._latest()
        if snapshot is not None and self._clock() - snapshot.monotonic <= self._health.max_age_s:
            yield from self._readings(snapshot)
        yield from self._agent_health()
        if self._buffer is not None:
            yield from self._cloudwatch_health(self._buffer)
        if self._lifecycle:
            yield from self._lifecycle_health()

    @staticmethod
    def _readings(snapshot: Snapshot) -> Iterator[Metric]:
        families: dict[str, Metric] = {}

        def add(values, labels: list[str]) -> None:
            for name, value in values.items():
                spec = cat.BY_NAME[name]
                family = families.get(name)
                if family is None:
                    family = families[name] = _family(spec.kind, spec.prom_full_name, spec.help, _LABELS[spec.scope])
                family.add_metric(labels, value * spec.prom_scale)

        add(snapshot.node, [])
        for gpu in snapshot.gpus:
            gpu_labels = [str(gpu.index), gpu.uuid]
            add(gpu.values, gpu_labels)
            for mig in gpu.migs:
                add(mig.values, gpu_labels + [mig.instance])
        for spec in cat.ALL_METRICS:  # catalogue order, so the exposition is stable
            if spec.name in families:
                yield families[spec.name]

    def _agent_health(self) -> Iterator[Metric]:
        h = self._health
        yield _single("gauge", _AGENT + "collection_success", "1 if the last collection succeeded, else 0.",
                      1.0 if h.last_ok else 0.0)
        yield _single("gauge", _AGENT + "collection_duration_seconds", "Duration of the last collection, in seconds.",
                      h.last_duration_s)
        if h.last_success_wall is not None:
            yield _single("gauge", _AGENT + "last_success_timestamp_seconds",
                          "When the last successful collection started, in seconds since the epoch.",
                          h.last_success_wall)
        yield _single("counter", _AGENT + "collections_total", "Successful collections.", h.collections)
        yield _labelled("counter", _AGENT + "collection_failures_total",
                        "Collection failures by tier: a device skipped for a cycle, or a whole cycle (lifecycle).",
                        "tier", {tier: h.failures[tier] for tier in FAILURE_TIERS})
        yield _single("counter", _AGENT + "nvml_initializations_total", "NVML sessions started.", h.nvml_inits)
        yield _single("counter", _AGENT + "sample_overruns_total",
                      "Sample deadlines missed because a collection ran longer than the interval.", h.overruns)
        yield _single("gauge", _AGENT + "gpus_skipped", "GPUs without a reading in the last collection.",
                      h.gpus_skipped)
        yield _single("gauge", _AGENT + "absent_fields",
                      "Per-GPU fields absent because the GPU does not offer them, summed over GPUs.", h.absent_fields)

    def _cloudwatch_health(self, buffer: DatapointBuffer) -> Iterator[Metric]:
        h = self._health
        cw = _AGENT + "cloudwatch_"
        yield _single("gauge", cw + "buffered_datapoints", "Datapoints waiting to be sent to CloudWatch.", len(buffer))
        yield _single("gauge", cw + "buffer_capacity_datapoints", "Datapoints the buffer holds before dropping the "
                      "oldest.", buffer.capacity)
        dropped = {"overflow": buffer.dropped, **h.cw_given_up}
        yield _labelled("counter", cw + "dropped_datapoints_total",
                        "Datapoints given up: buffer full (oldest dropped), too old for CloudWatch, or refused.",
                        "reason", {reason: dropped[reason] for reason in DROP_REASONS})
        yield _single("counter", cw + "sent_datapoints_total", "Datapoints CloudWatch accepted.", h.cw_sent)
        yield _single("counter", cw + "requests_total", "Successful PutMetricData requests.", h.cw_requests)
        yield _labelled("counter", cw + "publish_errors_total",
                        "Failed PutMetricData calls (after botocore's retries) and identity look-ups, by reason.",
                        "reason", {reason: h.cw_errors[reason] for reason in PUBLISH_ERROR_REASONS})
        if h.cw_last_success_wall is not None:
            yield _single("gauge", cw + "last_success_timestamp_seconds",
                          "When CloudWatch last accepted a request, in seconds since the epoch.",
                          h.cw_last_success_wall)

    def _lifecycle_health(self) -> Iterator[Metric]:
        h = self._health
        if h.lc_protected is not None:
            yield _single("gauge", _AGENT + "scale_in_protected",
                          "1 while the agent has this instance protected from scale-in, 0 once it removed that.",
                          1.0 if h.lc_protected else 0.0)
        yield _single("counter", _AGENT + "scale_in_protection_changes_total",
                      "Scale-in protection set or removed (successful SetInstanceProtection calls).",
                      h.lc_protection_changes)
        yield _single("gauge", _AGENT + "draining", "1 while the instance is terminating and the agent waits for "
                      "idle GPUs before completing the lifecycle action.", 1.0 if h.lc_draining else 0.0)
        yield _single("counter", _AGENT + "lifecycle_actions_completed_total",
                      "Termination lifecycle actions the agent completed.", h.lc_actions_completed)
        yield _labelled("counter", _AGENT + "lifecycle_errors_total",
                        "Failed identity look-ups, instance metadata reads and Auto Scaling calls, by call.",
                        "call", {call: h.lc_errors[call] for call in LIFECYCLE_CALLS})


def make_registry(collector: AgentCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


class MetricsServer:
    """``/metrics`` (Prometheus text format) and ``/healthz`` (200 healthy, 503 not, JSON body) on one port."""

    def __init__(self, registry: CollectorRegistry, health: Health, address: str = "0.0.0.0", port: int = 0) -> None:
        handler = _handler(registry, health)
        self._server = ThreadingHTTPServer((address, port), handler)
        self._server.daemon_threads = True
        # A short poll interval only shortens shutdown; requests are served as they come either way.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="gpu-metrics-http", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() would wait forever for a server loop that never ran
            self._server.shutdown()
        self._server.server_close()


def _handler(registry: CollectorRegistry, health: Health) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            elif path == "/healthz":
                healthy, reason = health.status()
                body = json.dumps({"healthy": healthy, "reason": reason}).encode()
                self._reply(200 if healthy else 503, "application/json", body)
            else:
                self._reply(404, "text/plain; charset=utf-8", b"not found: try /metrics or /healthz\n")

        def _reply(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # scrapes every 15 s would flood the journal
            log.debug("http: " + format, *args)

    return Handler
