"""The agent assembled: collector and sampler, the CloudWatch publisher, the Prometheus endpoint, and (opt-in)
scale-in protection, drain and the pods holding each GPU."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import urllib.parse

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from .cloudwatch import CloudWatchPublisher, CloudWatchSettings
from .collector import Collector
from .config import AgentConfig, region_error, version
from .health import Health
from .imds import IdentityError, InstanceMetadata, NodeIdentity, resolve_identity
from .lifecycle import Lifecycle, LifecycleSettings, make_client as make_autoscaling_client
from .prometheus import AgentCollector, MetricsServer, NodeLabels, make_registry
from .sampler import Sampler

log = logging.getLogger(__name__)

_AWS_HOST_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")


class ConfigError(ValueError):
    """A setting the agent cannot run with, found at start before anything is sent; the message names it."""


def is_aws_endpoint(endpoint: str | None) -> bool:
    """True for AWS's own endpoint: the region's default (None), or a URL on an AWS host."""
    if endpoint is None:
        return True
    host = (urllib.parse.urlsplit(endpoint).hostname or "").lower()
    return host.endswith(_AWS_HOST_SUFFIXES)


def _region(config: AgentConfig) -> str | None:
    """The region override, from the option or the environment botocore would use; checked here, at start, so a
    mistyped one is refused before any thread runs rather than failing each call on the publisher's thread."""
    # botocore itself reads only AWS_DEFAULT_REGION; EKS and Lambda set AWS_REGION.
    for source, value in (("--region", config.region), ("AWS_REGION", os.environ.get("AWS_REGION")),
                          ("AWS_DEFAULT_REGION or the AWS config file", boto3.session.Session().region_name)):
        if value:
            error = region_error(value)
            if error:
                raise ConfigError(f"{source}: {error}")
            return value
    return None


def _publishes(config: AgentConfig) -> bool:
    if not config.cloudwatch:
        return False
    if config.fake_gpus and is_aws_endpoint(config.cloudwatch_endpoint):
        if not config.fake_gpus_publish:
            log.warning("CloudWatch publishing is off: --fake-gpus readings are simulated, and would be stored in "
                        "AWS CloudWatch under this node's real group name. Pass --fake-gpus-publish to send them "
                        "anyway, or --cloudwatch-endpoint for a test endpoint")
            return False
        log.warning("PUBLISHING SIMULATED GPU READINGS (--fake-gpus %d --fake-gpus-publish) TO AWS CLOUDWATCH, "
                    "namespace GpuScale/Agent: scaling policies and alarms on this group will act on them",
                    config.fake_gpus)
    return True


class Agent:
    def __init__(self, config: AgentConfig, nvml) -> None:
        """Raises ConfigError for settings that cannot work, OSError when the Prometheus port cannot be bound."""
        self.config = config
        self._unsent: int | None = None
        self._region = _region(config)
        self._identity_lock = threading.Lock()
        self._resolved: NodeIdentity | None = None
        self.health = Health(config.sample_interval, config.stale_intervals)
        self.collector = Collector(nvml, self.health, reprobe_interval=config.lost_gpu_reprobe_interval)
        self.cloudwatch: CloudWatchPublisher | None = None
        if _publishes(config):
            settings = CloudWatchSettings(
                flush_interval=config.flush_interval, flush_on_change=config.flush_on_change,
                buffer_datapoints=config.buffer_datapoints, endpoint=config.cloudwatch_endpoint,
                timeout=config.cloudwatch_timeout, retry_mode=config.cloudwatch_retry_mode,
                max_attempts=config.cloudwatch_max_attempts)
            self.cloudwatch = CloudWatchPublisher(settings, self.health, self._identity, rollup=self._publish_rollup)
        subscribers = [self.cloudwatch.offer] if self.cloudwatch else []
        self.sampler = Sampler(self.collector, self.health, config.sample_interval, subscribers)
        self.lifecycle: Lifecycle | None = None
        acts = config.scale_in_protection or config.drain
        if acts or self.cloudwatch:
            settings = LifecycleSettings(
                protection=config.scale_in_protection, drain=config.drain, watch_state=self.cloudwatch is not None,
                hook_name=config.drain_hook_name,
                busy_utilization=config.busy_utilization, busy_hold=config.busy_hold, idle_hold=config.idle_hold,
                drain_timeout=config.drain_timeout, poll_interval=config.lifecycle_poll_interval,
                tick=config.sample_interval, flush_timeout=config.shutdown_timeout,
                endpoint=config.autoscaling_endpoint)
            self.lifecycle = Lifecycle(settings, self.health, lambda: self.sampler.latest, self._identity,
                                       InstanceMetadata(config.imds_endpoint),
                                       self.cloudwatch.flush_now if self.cloudwatch else None)
        self.pod_resources = None
        if config.pod_resources_socket:
            from .pod_resources import PodResourcesWatcher  # grpcio only where the kubelet's socket is used
            self.pod_resources = PodResourcesWatcher(config.pod_resources_socket, config.pod_resources_interval,
                                                     self.health)
        self.server: MetricsServer | None = None
        if config.prometheus:
            node = NodeLabels(hostname=config.hostname or socket.gethostname(), version=version(),
                              fake_gpus=config.fake_gpus, identity=lambda: self._resolved or self._overrides())
            collector = AgentCollector(lambda: self.sampler.latest, self.health,
                                       self.cloudwatch.buffer if self.cloudwatch else None,
                                       lifecycle=acts, node=node, dcgm=config.dcgm_compat,
                                       pods=self.pod_resources.latest if self.pod_resources else None)
            self.server = MetricsServer(make_registry(collector), self.health, config.prometheus_address,
                                        config.prometheus_port, extra=collector.dcgm_text)

    def start(self) -> None:
        """Raises NvmlUnavailable when there is no NVIDIA driver, before any thread starts."""
        self.collector.open()
        if self.server:
            self.server.start()
            log.info("serving /metrics and /healthz on %s port %d", self.config.prometheus_address, self.server.port)
        if self.pod_resources:
            self.pod_resources.start()
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
        if self.pod_resources:
            self.pod_resources.stop()
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

    def _overrides(self) -> NodeIdentity:
        config = self.config
        return NodeIdentity(asg_name=config.asg_name, instance_id=config.instance_id,
                            instance_type=config.instance_type, region=self._region)

    def _identity(self) -> NodeIdentity:
        # Runs on the publisher's and the lifecycle thread, so a slow or absent instance metadata service or Auto
        # Scaling API never delays sampling. Resolved once for both: the group look-up is an API call.
        with self._identity_lock:
            if self._resolved is None:
                identity = resolve_identity(self._overrides(), InstanceMetadata(self.config.imds_endpoint),
                                            self._describe_group)
                error = region_error(identity.region)
                if error:
                    raise IdentityError(f"instance metadata's region {error}")
                self._resolved = identity
                log.info("node identity: %s", identity)
            return self._resolved

    def _describe_group(self, instance_id: str, region: str) -> str | None:
        # EKS nodes have no instance metadata tags: ask Auto Scaling which group holds this instance.
        client = make_autoscaling_client(NodeIdentity(region=region), self.config.autoscaling_endpoint)
        try:
            found = client.describe_auto_scaling_instances(InstanceIds=[instance_id])["AutoScalingInstances"]
        except (ClientError, BotoCoreError) as exc:
            raise IdentityError(f"DescribeAutoScalingInstances for {instance_id} failed ({exc}): the agent's role "
                                "needs autoscaling:DescribeAutoScalingInstances, or set --asg-name "
                                "(GPU_METRICS_AGENT_ASG_NAME)") from None
        return found[0]["AutoScalingGroupName"] if found else None
