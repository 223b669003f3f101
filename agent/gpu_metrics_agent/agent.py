"""The agent assembled: collector and sampler, the CloudWatch publisher, the Prometheus endpoint, and (opt-in)
scale-in protection and drain."""

from __future__ import annotations

import logging
import os
import time

import boto3

from .cloudwatch import CloudWatchPublisher, CloudWatchSettings
from .collector import Collector
from .config import AgentConfig
from .health import Health
from .imds import InstanceMetadata, NodeIdentity, resolve_identity
from .lifecycle import Lifecycle, LifecycleSettings
from .prometheus import AgentCollector, MetricsServer, make_registry
from .sampler import Sampler

log = logging.getLogger(__name__)


class Agent:
    def __init__(self, config: AgentConfig, nvml) -> None:
        self.config = config
        self._unsent: int | None = None
        self.health = Health(config.sample_interval, config.stale_intervals)
        self.collector = Collector(nvml, self.health)
        self.cloudwatch: CloudWatchPublisher | None = None
        if config.cloudwatch:
            settings = CloudWatchSettings(
                flush_interval=config.flush_interval, buffer_datapoints=config.buffer_datapoints,
                endpoint=config.cloudwatch_endpoint, timeout=config.cloudwatch_timeout,
                retry_mode=config.cloudwatch_retry_mode, max_attempts=config.cloudwatch_max_attempts)
            self.cloudwatch = CloudWatchPublisher(settings, self.health, self._identity, rollup=self._publish_rollup)
        subscribers = [self.cloudwatch.offer] if self.cloudwatch else []
        self.sampler = Sampler(self.collector, self.health, config.sample_interval, subscribers)
        self.lifecycle: Lifecycle | None = None
        acts = config.scale_in_protection or config.drain
        if acts or config.cloudwatch:
            settings = LifecycleSettings(
                protection=config.scale_in_protection, drain=config.drain, watch_state=config.cloudwatch,
                hook_name=config.drain_hook_name,
                busy_utilization=config.busy_utilization, busy_hold=config.busy_hold, idle_hold=config.idle_hold,
                drain_timeout=config.drain_timeout, poll_interval=config.lifecycle_poll_interval,
                tick=config.sample_interval, flush_timeout=config.shutdown_timeout,
                endpoint=config.autoscaling_endpoint)
            self.lifecycle = Lifecycle(settings, self.health, lambda: self.sampler.latest, self._identity,
                                       InstanceMetadata(config.imds_endpoint),
                                       self.cloudwatch.flush_now if self.cloudwatch else None)
        self.server: MetricsServer | None = None
        if config.prometheus:
            collector = AgentCollector(lambda: self.sampler.latest, self.health,
                                       self.cloudwatch.buffer if self.cloudwatch else None,
                                       lifecycle=acts)
            self.server = MetricsServer(make_registry(collector), self.health, config.prometheus_address,
                                        config.prometheus_port)

    def start(self) -> None:
        """Raises NvmlUnavailable when there is no NVIDIA driver, before any thread starts."""
        self.collector.open()
        if self.server:
            self.server.start()
            log.info("serving /metrics and /healthz on %s:%d", self.config.prometheus_address, self.server.port)
        if self.cloudwatch:
            self.cloudwatch.start()
        if self.lifecycle:  # before the sampler: its first read decides whether the first samples are rolled up
            self.lifecycle.start()
        self.sampler.start()

    def stop(self) -> int:
        """Stop sampling, flush CloudWatch within the shutdown timeout; returns datapoints left unsent."""
        if self._unsent is not None:
            return self._unsent
        deadline = time.monotonic() + self.config.shutdown_timeout
        if self.lifecycle:  # a call in flight is left to finish on its daemon thread; the flush matters more
            self.lifecycle.stop(timeout=min(1.0, self.config.shutdown_timeout))
        self.sampler.stop(timeout=max(0.0, deadline - time.monotonic()))
        unsent = 0
        if self.cloudwatch:
            unsent = self.cloudwatch.stop(timeout=max(0.0, deadline - time.monotonic()))
        if self.server:
            self.server.stop()
        self._unsent = unsent
        return unsent

    def _publish_rollup(self) -> bool:
        # A warm-pool instance (Warmed:Running, or booting before it is stopped) has idle GPUs that would pull the
        # group's SUM(NodeGpuUtilizationSum)/SUM(NodeGpuCount) down; its own series are still published.
        # Unknown state (no instance metadata, not in a group) publishes as usual.
        return self.lifecycle is None or not self.lifecycle.warmed

    def _identity(self) -> NodeIdentity:
        # Runs on the publisher thread, so a slow or absent instance metadata service never delays sampling.
        config = self.config
        overrides = NodeIdentity(asg_name=config.asg_name, instance_id=config.instance_id,
                                 instance_type=config.instance_type,
                                 # botocore itself reads only AWS_DEFAULT_REGION; EKS and Lambda set AWS_REGION.
                                 region=config.region or os.environ.get("AWS_REGION")
                                 or boto3.session.Session().region_name)
        return resolve_identity(overrides, InstanceMetadata(config.imds_endpoint))
