"""The served workload of an Auto Scaling group (`workload:` in a `gpuscale:autoScalingGroups` entry).

Nothing here creates a resource: the simulator (`gpuscale simulate`) and the pre-apply checks read it to predict
how the group's scaling will behave under load — how many requests a replica serves at once and for how long, how
long a new instance takes to serve, what an instance-hour costs, and what clients see while capacity is zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .reader import REQUIRED, Section

if TYPE_CHECKING:
    from .groups import AutoScalingGroupConfig, NodeGroupConfig

UNSCHEDULABLE_GPU_POD_BUFFER_SECONDS = 30
"""cluster-autoscaler helps unschedulable pods requesting GPUs only once the oldest is this old
(core/static_autoscaler.go unschedulablePodWithGpuTimeBuffer, 1.33): it waits for more pods before buying GPU nodes."""

SERVICE_TIME_DISTRIBUTIONS = ("fixed", "exponential", "lognormal")
AT_ZERO_CAPACITY = ("queue", "refuse")
CURRENCY_PATTERN = r"[A-Z]{3}"


@dataclass(frozen=True)
class ServiceTimeConfig:
    mean_seconds: float
    """Mean time one request holds a replica's slot (prompt plus generation for an LLM)."""
    distribution: str
    """``fixed``, ``exponential`` or ``lognormal``."""
    cv: float
    """Coefficient of variation (standard deviation / mean) of the lognormal distribution."""


@dataclass(frozen=True)
class ColdStartConfig:
    node_provisioning_seconds: float
    """Launch request until the instance has booted and its agent runs (EC2 pending + OS boot)."""
    image_pull_seconds: float
    """Pulling and unpacking the serving container image on a fresh instance."""
    model_load_seconds: float
    """Server start until it answers its readiness check: weights into GPU memory, warm-up."""
    warm_pool_resume_seconds: float | None
    """A warm-pool instance starting from its pool state until it boots (its image is already on disk)."""
    device_plugin_ready_seconds: float | None = None
    """EKS node groups: node Ready until the NVIDIA device plugin has advertised its GPUs (None elsewhere)."""

    @property
    def cold_seconds(self) -> float:
        """A new instance, from launch request to serving."""
        return self.node_provisioning_seconds + (self.device_plugin_ready_seconds or 0) + self.image_pull_seconds \
            + self.model_load_seconds

    def gpu_ready_seconds(self, scan_interval_seconds: float) -> float:
        """A node group's cold start from a pod pending for a GPU until a new node advertises that GPU, at most:
        cluster-autoscaler helps GPU pods once the oldest is 30 s old, at its next scan; then node provisioning and
        the device plugin. Image pull and model load come after."""
        return UNSCHEDULABLE_GPU_POD_BUFFER_SECONDS + scan_interval_seconds + self.node_provisioning_seconds + \
            (self.device_plugin_ready_seconds or 0)

    @property
    def warm_seconds(self) -> float | None:
        """An instance from the warm pool, from launch request to serving; None without a resume figure."""
        if self.warm_pool_resume_seconds is None:
            return None
        return self.warm_pool_resume_seconds + self.model_load_seconds


@dataclass(frozen=True)
class WorkloadConfig:
    concurrency_per_replica: int
    """Requests one replica serves at once (the server's batch size / max concurrent sequences)."""
    gpus_per_replica: int
    replicas_per_instance: int
    """Derived: the fewest GPUs any of the group's instance types carries, divided by `gpus_per_replica`."""
    service_time: ServiceTimeConfig
    cold_start: ColdStartConfig
    price_per_instance_hour: float
    currency: str
    request_timeout_seconds: float
    """How long a client waits for its answer (queueing included) before giving up."""
    readiness_deadline_seconds: float | None
    """How long the platform waits for a new replica to become ready before it counts as failed, if any."""
    at_zero_capacity: str
    """``queue``: requests wait (a queue or a buffering gateway); ``refuse``: the front end answers 502."""
    client_retry_seconds: float
    """With ``refuse``: how long a client waits before retrying a refused request."""


DEVICE_PLUGIN_READY_SECONDS = 30.0
"""Estimate for node groups: after the node is Ready, the device plugin's DaemonSet pod is scheduled, pulls its
image and registers with the kubelet, whose next node status update (every 10 s, the kubelet's
nodeStatusUpdateFrequency default) publishes `nvidia.com/gpu` as allocatable."""


def read_workload(s: Section | None, group: AutoScalingGroupConfig | NodeGroupConfig,
                  node_group: bool = False) -> WorkloadConfig | None:
    """The `workload:` section of one group, or None when the group has none. `node_group`: an EKS node group,
    whose cold start has a device plugin step."""
    if s is None:
        return None
    concurrency = s.int("concurrencyPerReplica", min=1, max=4096)
    gpus_per_replica = s.int("gpusPerReplica", 1, min=1, max=16)
    fewest = min(g.gpu_count for g in group.gpus)
    if gpus_per_replica > fewest:
        smallest = next(g.instance_type for g in group.gpus if g.gpu_count == fewest)
        raise s.fail("gpusPerReplica", gpus_per_replica,
                     f"at most {fewest}: {smallest}, one of the group's instance types, has {fewest} GPU(s)")
    service = _read_service_time(s.section("serviceTime"))
    cold = _read_cold_start(s.section("coldStart"), has_warm_pool=group.warm_pool is not None, node_group=node_group)
    price = s.section("price")
    per_hour = price.float("perInstanceHour", min=0, max=1000, min_exclusive=True)
    currency = price.str("currency", "USD", pattern=CURRENCY_PATTERN, describe="an ISO 4217 code such as USD")
    price.finish()
    timeout = s.float("requestTimeoutSeconds", min=1, max=7 * 86400)
    deadline = s.float("readinessDeadlineSeconds", None, min=1, max=7200)
    at_zero = s.str("atZeroCapacity", "queue", choices=AT_ZERO_CAPACITY)
    retry = s.float("clientRetrySeconds", 10.0, min=1, max=3600)
    if at_zero == "queue" and s.has("clientRetrySeconds"):
        raise s.fail("clientRetrySeconds", s.data["clientRetrySeconds"],
                     "clientRetrySeconds only with atZeroCapacity: refuse (queued requests are not retried)")
    s.finish()
    return WorkloadConfig(concurrency, gpus_per_replica, fewest // gpus_per_replica, service, cold, per_hour, currency,
                          timeout, deadline, at_zero, retry)


def _read_service_time(s: Section) -> ServiceTimeConfig:
    # The simulator steps in whole seconds; a shorter mean would round every request up to a full second.
    mean = s.float("meanSeconds", REQUIRED, min=1, max=3600)
    distribution = s.str("distribution", "lognormal", choices=SERVICE_TIME_DISTRIBUTIONS)
    cv = s.float("cv", 0.5, min=0, max=3, min_exclusive=True)
    if distribution != "lognormal" and s.has("cv"):
        raise s.fail("cv", s.data["cv"], "cv only with distribution: lognormal (fixed has none, exponential's is 1)")
    s.finish()
    return ServiceTimeConfig(mean, distribution, cv)


def _read_cold_start(s: Section, has_warm_pool: bool, node_group: bool) -> ColdStartConfig:
    node = s.float("nodeProvisioningSeconds", min=0, max=3600)
    pull = s.float("imagePullSeconds", min=0, max=3600)
    load = s.float("modelLoadSeconds", min=0, max=3600)
    resume = s.float("warmPoolResumeSeconds", REQUIRED if has_warm_pool else None, min=0, max=3600)
    plugin = None
    if node_group:
        plugin = s.float("devicePluginReadySeconds", DEVICE_PLUGIN_READY_SECONDS, min=0, max=3600)
    elif s.has("devicePluginReadySeconds"):
        raise s.fail("devicePluginReadySeconds", s.data["devicePluginReadySeconds"],
                     "devicePluginReadySeconds only on gpuscale:nodeGroups entries (an Auto Scaling group's agent "
                     "needs no device plugin: nodeProvisioningSeconds covers its boot)")
    s.finish()
    return ColdStartConfig(node, pull, load, resume, plugin)
