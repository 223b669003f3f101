"""Prometheus: ``/metrics`` from the latest snapshot plus the agent's own health, and ``/healthz``.

A scrape reads the sampler's latest snapshot (a reference, swapped atomically), so it never waits for a
collection. Readings are exposed in base units while the snapshot is fresh; once it is older than the health
limit they are left out rather than repeated, so a dashboard sees a gap, not stale numbers. The agent's health is
always exposed. Each agent has its own registry: prometheus_client's global one would be a module-level singleton.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from . import catalogue as cat
from .buffer import DatapointBuffer
from .dcgm import dcgm_families, render
from .health import DROP_REASONS, FAILURE_TIERS, LIFECYCLE_CALLS, PUBLISH_ERROR_REASONS, Health
from .imds import NodeIdentity
from .snapshot import GPU_STATES, Snapshot

log = logging.getLogger(__name__)

_LABELS = {scope: [cat.PROM_LABELS[d] for d in dims if d in cat.PROM_LABELS]
           for scope, dims in (("node", cat.NODE_DIMENSIONS), ("gpu", cat.GPU_DIMENSIONS),
                               ("mig", cat.MIG_DIMENSIONS))}
_AGENT = cat.PROM_PREFIX + "agent_"
POD_LABELS = ("pod", "namespace", "container")
"""Labels of the pod holding a GPU (from the kubelet's pod-resources API), as dcgm-exporter names them."""
Holders = Callable[[int, str], Sequence[tuple[str, str, str]]]
"""(GPU index, UUID) -> the (pod, namespace, container) holding that GPU; empty when none does."""
LISTEN_BACKLOG = 128
"""Connections the kernel queues while every handler thread is busy; socketserver's default of 5 makes the 6th of
a burst of concurrent scrapes wait for a TCP retransmission (a second or more)."""


@dataclass(frozen=True)
class NodeLabels:
    """What /metrics says about the node and the agent itself."""

    hostname: str
    version: str
    fake_gpus: int = 0
    identity: Callable[[], NodeIdentity] = NodeIdentity
    """The node's identity as far as known (resolved, else the overrides): read per scrape, never resolved here."""


def _family(kind: str, name: str, help_text: str, labels: list[str] | None = None) -> Metric:
    cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    return cls(name, help_text, labels=labels)


def _single(kind: str, name: str, help_text: str, value: float) -> Metric:
    family = _family(kind, name, help_text)
    family.add_metric([], value)
    return family


def _timestamp(name: str, help_text: str, when: float | None) -> Iterator[Metric]:
    """A seconds-since-the-epoch gauge, absent until the event it dates has happened once."""
    if when is not None:
        yield _single("gauge", name, help_text, when)


def _labelled(kind: str, name: str, help_text: str, label: str, values: dict[str, int]) -> Metric:
    family = _family(kind, name, help_text, [label])
    for key in sorted(values):
        family.add_metric([key], values[key])
    return family


class AgentCollector:
    """A prometheus_client custom collector over the sampler's latest snapshot and the agent's health."""

    def __init__(self, latest: Callable[[], Snapshot | None], health: Health, buffer: DatapointBuffer | None = None,
                 clock: Callable[[], float] = time.monotonic, lifecycle: bool = False, node: NodeLabels | None = None,
                 dcgm: bool = False, pods: Callable[[], Holders | None] | None = None) -> None:
        self._latest, self._health, self._buffer, self._clock = latest, health, buffer, clock
        self._lifecycle, self._node, self._dcgm, self._pods = lifecycle, node, dcgm, pods

    def collect(self) -> Iterator[Metric]:
        snapshot = self._latest()
        holders = self._pods() if self._pods else None
        if self._fresh(snapshot):
            yield from self._readings(snapshot, holders)
        if snapshot is not None:
            yield from self._gpu_states(snapshot)
        if self._node is not None:
            yield from self._node_info(self._node)
        yield from self._agent_health()
        if self._buffer is not None:
            yield from self._cloudwatch_health(self._buffer)
        if self._lifecycle:
            yield from self._lifecycle_health()
        if self._pods is not None:
            yield from self._pod_resources_health()

    def dcgm_text(self) -> str:
        """dcgm-exporter's series (``--dcgm-compat``) in its own text format, appended to the exposition; "" when
        off or while readings are stale."""
        snapshot = self._latest()
        if not self._dcgm or not self._fresh(snapshot):
            return ""
        return render(dcgm_families(snapshot, self._node.hostname if self._node else "",
                                    self._pods() if self._pods else None, self._health.versions))

    def _fresh(self, snapshot: Snapshot | None) -> bool:
        return snapshot is not None and self._clock() - snapshot.monotonic <= self._health.max_age_s

    @staticmethod
    def _readings(snapshot: Snapshot, holders: Holders | None) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        pod_labels = list(POD_LABELS) if holders is not None else []

        def add(values, labels: list[str], scope_extra: list[list[str]]) -> None:
            for name, value in values.items():
                spec = cat.BY_NAME[name]
                family = families.get(name)
                if family is None:
                    extra = pod_labels if spec.scope != "node" else []
                    family = families[name] = _family(spec.kind, spec.prom_full_name, spec.help,
                                                      _LABELS[spec.scope] + extra)
                for extra_values in scope_extra:
                    family.add_metric(labels + extra_values, value * spec.prom_scale)

        add(snapshot.node, [], [[]])
        for gpu in snapshot.gpus:
            gpu_labels = [str(gpu.index), gpu.uuid]
            # A GPU shared by several pods (time-slicing) is shown once for each, as dcgm-exporter does.
            pods = [[]] if holders is None else [list(h) for h in holders(gpu.index, gpu.uuid)] or [["", "", ""]]
            add(gpu.values, gpu_labels, pods)
            for mig in gpu.migs:
                add(mig.values, gpu_labels + [mig.instance], pods)
        for spec in cat.ALL_METRICS:  # catalogue order, so the exposition is stable
            if spec.name in families:
                yield families[spec.name]

    @staticmethod
    def _gpu_states(snapshot: Snapshot) -> Iterator[Metric]:
        family = _family("gauge", _AGENT + "gpu_state", "1 for the state each GPU NVML counts was in at the last "
                         "collection (ok, error: skipped this cycle, lost: off the bus until found again), else 0.",
                         ["gpu", "uuid", "state"])
        for gpu in snapshot.states:
            for state in GPU_STATES:
                family.add_metric([str(gpu.index), gpu.uuid, state], 1.0 if gpu.state == state else 0.0)
        yield family

    def _node_info(self, node: NodeLabels) -> Iterator[Metric]:
        versions = self._health.versions
        snapshot = self._latest()
        models = sorted({g.info.model for g in snapshot.gpus}) if snapshot is not None else []
        build = _family("gauge", _AGENT + "build_info", "Always 1: the agent's version, the NVIDIA driver's and "
                        "NVML's, and a GPU model on the node (one series per model).",
                        ["version", "driver_version", "nvml_version", "gpu_model", "fake_gpus"])
        for model in models or [""]:
            build.add_metric([node.version, versions.get("driver_version", ""), versions.get("nvml_version", ""),
                              model, str(node.fake_gpus)], 1.0)
        yield build
        identity = node.identity()
        info = _family("gauge", _AGENT + "node_info", "Always 1: the node the agent runs on, as far as it is known.",
                       ["hostname", "instance_id", "instance_type", "autoscaling_group"])
        info.add_metric([node.hostname, identity.instance_id or "", identity.instance_type or "",
                         identity.asg_name or ""], 1.0)
        yield info

    def _agent_health(self) -> Iterator[Metric]:
        h = self._health
        healthy, _reason = h.status()
        yield _single("gauge", _AGENT + "healthy", "1 while /healthz answers 200, else 0.", 1.0 if healthy else 0.0)
        # A collection hung in NVML has not failed yet, but its readings are stale: success means a fresh one.
        yield _single("gauge", _AGENT + "collection_success", "1 if the last collection succeeded and is no older "
                      "than the stale limit (--stale-intervals sample intervals), else 0.",
                      1.0 if h.last_ok and h.fresh() else 0.0)
        yield _labelled("gauge", _AGENT + "thread_up", "1 while the agent's thread for this role runs, 0 once it "
                        "died (then /healthz fails).", "thread",
                        {role: 0 if why else 1 for role, why in h.threads.items()})
        yield _single("gauge", _AGENT + "collection_duration_seconds", "Duration of the last collection, in seconds.",
                      h.last_duration_s)
        yield from _timestamp(_AGENT + "last_success_timestamp_seconds",
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
        yield _single("counter", cw + "early_flushes_total", "Flushes started before their time because the node's "
                      "utilization moved by --flush-on-change points.", h.cw_early_flushes)
        yield _labelled("counter", cw + "publish_errors_total",
                        "Failed PutMetricData calls (after botocore's retries) and identity look-ups, by reason.",
                        "reason", {reason: h.cw_errors[reason] for reason in PUBLISH_ERROR_REASONS})
        yield from _timestamp(cw + "last_success_timestamp_seconds",
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


    def _pod_resources_health(self) -> Iterator[Metric]:
        h = self._health
        pr = _AGENT + "pod_resources_"
        yield _single("counter", pr + "reads_total", "Successful List calls to the kubelet's pod-resources API.",
                      h.pr_reads)
        yield _single("counter", pr + "errors_total", "Failed List calls to the kubelet's pod-resources API.",
                      h.pr_errors)
        yield from _timestamp(pr + "last_success_timestamp_seconds",
                              "When the pod-resources API last answered, in seconds since the epoch.",
                              h.pr_last_success_wall)


def make_registry(collector: AgentCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


class MetricsServer:
    """``/metrics`` (Prometheus text format) and ``/healthz`` (200 healthy, 503 not, JSON body) on one port."""

    def __init__(self, registry: CollectorRegistry, health: Health, address: str = "::", port: int = 0,
                 extra: Callable[[], str] = str) -> None:
        handler = _handler(registry, health, extra)
        try:
            self._server = _server_class(address)((address, port), handler)
        except OSError as exc:
            if address != "::" or exc.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                raise
            # A kernel booted without IPv6: the default address falls back to IPv4 rather than failing the node.
            log.warning("IPv6 unavailable (%s); listening on 0.0.0.0 only", exc)
            self._server = _server_class("0.0.0.0")(("0.0.0.0", port), handler)
        # A short poll interval only shortens shutdown; requests are served as they come either way.
        self._thread = health.thread("http", lambda: self._server.serve_forever(poll_interval=0.1))

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() would wait forever for a server loop that never ran
            self._server.shutdown()
        self._server.server_close()


def _server_class(address: str) -> type[ThreadingHTTPServer]:
    """The HTTP server class for ``address``: IPv6 for an IPv6 address, and for ``::`` dual-stack (IPv4 clients
    arrive as ::ffff:a.b.c.d), since Prometheus may scrape the node over either."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET

    class Server(ThreadingHTTPServer):
        address_family = family
        daemon_threads = True
        request_queue_size = LISTEN_BACKLOG

        def server_bind(self) -> None:
            if family == socket.AF_INET6 and address == "::":
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            super().server_bind()

    return Server


def _handler(registry: CollectorRegistry, health: Health, extra: Callable[[], str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, CONTENT_TYPE_LATEST, generate_latest(registry) + extra().encode())
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
