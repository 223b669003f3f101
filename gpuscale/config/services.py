"""Model services (`gpuscale:services`) and the serving layer they run on (`serving:` in `gpuscale:kubernetes`).

A service is one KServe InferenceService on a GPU node group of the stack, scaled by one pod autoscaler:
- `kpa`: Knative's pod autoscaler (serving mode `knative`): concurrency or requests per second per pod, scale to
  zero through the activator, which holds requests while a pod starts instead of failing them.
- `hpa`: a HorizontalPodAutoscaler on a GPU metric the agent publishes (serving mode `standard`); never at zero.
- `keda`: a KEDA ScaledObject (serving mode `standard`): 1 -> N on the service's GPU utilisation and/or a demand
  signal, 0 -> 1 on a demand signal that exists while the service is at zero (an SQS queue's length, or the request
  count at the gateway).

The named presets (`coreweave-kpa`, `hf-like`, `hpa-example`, `keda-queue`) are values of the same dataclasses an
explicit mode produces, defined once here (PRESETS): the components build their objects from them and the simulator
(gpuscale/sim/serving.py) builds its autoscaler models from them, so what `gpuscale simulate --service` predicts is
what `pulumi up` deploys. A service may name a preset and override any of its keys in the section of the preset's
mode (`scaling: {preset: keda-queue, keda: {wake: {queueName: jobs}}}`).

Knative's defaults are upstream's (knative/serving v1.18, config/core/configmaps/autoscaler.yaml) and its bounds
upstream's validation (pkg/autoscaler/config/config.go validate, pkg/apis/autoscaling/annotation_validation.go and
register.go). KEDA's are v2.17's (see gpuscale/sim/keda.py), the HPA's Kubernetes 1.33's (gpuscale/sim/hpa.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from gpu_metrics_agent import catalogue

from ..components.kube_values import IMAGE_PATTERN, QUANTITY_PATTERN, is_pinned_image, progress_deadline_refusal
from ..components.serving_runtimes import runtime_image
from .caches import ModelCacheConfig, read_model_cache
from .hpa_behavior import Behavior, ScalingPolicy, ScalingRules
from .reader import REQUIRED, ConfigError, Section, guarded
from .scaling import SQS_QUEUE_PATTERN
from .vertical import VerticalScalingConfig, read_service_vertical_scaling
from .workload import CURRENCY_PATTERN, ColdStartConfig, WorkloadConfig, _read_service_time

if TYPE_CHECKING:
    from .stack import NodeGroupConfig

SERVING_MODES = ("knative", "standard")
METRICS_SOURCES = ("cloudwatch", "prometheus")
SCALING_MODES = ("kpa", "hpa", "keda")
KPA_METRICS = ("concurrency", "rps")
WAKE_KINDS = ("sqs", "requests")
HPA_POLICY_KINDS = ("Pods", "Percent")
HPA_SELECT_POLICIES = ("Max", "Min", "Disabled")

SERVICE_NAME_PATTERN = r"[a-z]([-a-z0-9]{0,45}[a-z0-9])?"
SERVICE_NAME_RULE = ("a DNS-1123 label of 1 to 47 lowercase letters, digits or hyphens, starting with a letter and "
                     "not ending with a hyphen (KServe names the predictor's revision <name>-predictor-00001, which "
                     "must stay within 63 characters)")
STORAGE_URI_PATTERN = r"(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?|pvc://[a-z0-9][-a-z0-9]{0,62}(/[^\s]*)?)"
MODEL_FORMAT_PATTERN = r"[a-z][a-z0-9-]{0,62}"
METRIC_NAME_PATTERN = r"[A-Za-z_:][A-Za-z0-9_:]*"
URL_PATTERN = r"https?://[^\s/]+(/[^\s]*)?"
PROMQL_PATTERN = r"\S(.*\S)?"
"""One line, not blank: KEDA's prometheus scaler sends the query as is (Prometheus parses it)."""
PROMETHEUS_URL_RULE = ("the Prometheus server's query URL, e.g. http://prometheus-server.monitoring.svc:80 or an "
                       "Amazon Managed Service for Prometheus workspace's endpoint")

# Bounds upstream validation enforces (knative/serving v1.18, pkg/apis/autoscaling/register.go).
KNATIVE_WINDOW_MIN, KNATIVE_WINDOW_MAX = 6, 3600
"""autoscaling.WindowMin / WindowMax: the stable window, and the most a scale-down delay or retention may be."""
KNATIVE_PANIC_WINDOW_MIN, KNATIVE_PANIC_WINDOW_MAX = 1.0, 100.0
KNATIVE_PANIC_THRESHOLD_MIN, KNATIVE_PANIC_THRESHOLD_MAX = 110.0, 1000.0
KNATIVE_TARGET_MIN = 0.01
"""autoscaling.TargetMin."""

HPA_SYNC_PERIOD_SECONDS = 15
"""kube-controller-manager's --horizontal-pod-autoscaler-sync-period default; EKS does not let it be changed."""
KEDA_POLLING_INTERVAL_SECONDS = 30
KEDA_COOLDOWN_PERIOD_SECONDS = 300
"""KEDA v2.17 ScaledObject defaults (withtriggers_types.go, scale_executor.go)."""

GPU_TRIGGER_METRIC_TYPE = "Value"
"""How a GPU trigger's target is compared: the agent's GPU utilisation is a mean over GPUs, and an AverageValue
target on a mean (KEDA's default metricType) divides it by the replicas again, so the service would never grow past
ceil(mean / target) replicas. `Value` multiplies the ratio by the ready pods, as a per-pod metric would."""
CLOUDWATCH_QUERY_PERIODS = "1, 5, 10, 30 or a multiple of 60"
"""Periods GetMetricData accepts on high-resolution metrics (the agent publishes with StorageResolution 1)."""

DEFAULT_GPU_METRIC = {"cloudwatch": catalogue.NODE_GPU_UTILIZATION.name,
                      "prometheus": catalogue.GPU_UTILIZATION.prom_full_name}
"""The agent's GPU utilisation for pod scaling, by source: in CloudWatch the node mean rolled up to the node group's
Auto Scaling group (the only dimension a query can name without knowing instances); in Prometheus each GPU's reading,
labelled with the pod holding it (so a query selects the service's own pods)."""


# --- the serving layer (gpuscale:kubernetes.serving) -------------------------------------------------------------
@dataclass(frozen=True)
class KnativeAutoscalerConfig:
    """Knative's cluster-wide `config-autoscaler` keys, upstream's defaults (v1.18). Per-service annotations
    (KpaScaling) override those that have an annotation; the rates and the grace period have none."""

    stable_window_seconds: int = 60
    """stable-window, [6 s, 1 h]."""
    panic_window_percentage: float = 10.0
    """panic-window-percentage of the stable window, [1, 100]."""
    panic_threshold_percentage: float = 200.0
    """panic-threshold-percentage, [110, 1000]."""
    max_scale_up_rate: float = 1000.0
    """max-scale-up-rate, > 1: at most this times the ready pods per decision."""
    max_scale_down_rate: float = 2.0
    """max-scale-down-rate, > 1: at least ready pods / this after a decision."""
    scale_to_zero_grace_period_seconds: int = 30
    """scale-to-zero-grace-period, > 0: after the last pod is marked inactive, how long until it goes."""
    target_utilization_percentage: float = 70.0
    """container-concurrency-target-percentage, (1, 100]: of containerConcurrency the autoscaler aims at."""
    target_burst_capacity: float = 211.0
    """target-burst-capacity: >= 0, or -1 to keep the activator always in the request path."""
    enable_scale_to_zero: bool = True
    allow_zero_initial_scale: bool = False
    """allow-zero-initial-scale: a revision may start with no pod (initial-scale 0)."""


KNATIVE_KEYS = {
    # config key -> (field, kind, low, high, low exclusive)
    "stableWindowSeconds": ("stable_window_seconds", int, KNATIVE_WINDOW_MIN, KNATIVE_WINDOW_MAX, False),
    "panicWindowPercentage": ("panic_window_percentage", float, KNATIVE_PANIC_WINDOW_MIN, KNATIVE_PANIC_WINDOW_MAX,
                              False),
    "panicThresholdPercentage": ("panic_threshold_percentage", float, KNATIVE_PANIC_THRESHOLD_MIN,
                                 KNATIVE_PANIC_THRESHOLD_MAX, False),
    "maxScaleUpRate": ("max_scale_up_rate", float, 1.0, 1e6, True),
    "maxScaleDownRate": ("max_scale_down_rate", float, 1.0, 1e6, True),
    "scaleToZeroGracePeriodSeconds": ("scale_to_zero_grace_period_seconds", int, 0, 86400, True),
    # Above 1: config.go reads a value of at most 1.0 as a fraction (1 would mean 100 %).
    "targetUtilizationPercentage": ("target_utilization_percentage", float, 1.0, 100.0, True),
    "targetBurstCapacity": ("target_burst_capacity", float, -1.0, 1e6, False),
    "enableScaleToZero": ("enable_scale_to_zero", bool, None, None, False),
    "allowZeroInitialScale": ("allow_zero_initial_scale", bool, None, None, False),
}
"""The `serving.knative` keys, the config-autoscaler field each sets, and upstream's bounds."""


@dataclass(frozen=True)
class ServingConfig:
    mode: str
    """``knative``: KServe on Knative Serving (KPA, the activator, scale to zero that queues); ``standard``: KServe's
    raw Deployments scaled by an HPA or KEDA (with cert-manager for KServe's webhooks). KServe's default
    deploymentMode: each service runs in the mode of its own pod autoscaler (its InferenceService's
    `serving.kserve.io/deploymentMode` annotation: `kpa` in Knative mode, `hpa` and `keda` in Standard mode), so one
    stack may hold both (knative_installed)."""
    metrics_source: str
    """Where pod autoscalers read the agent's GPU metrics: ``cloudwatch`` (the agent's series, read by KEDA's
    aws-cloudwatch scaler: no extra infrastructure) or ``prometheus`` (a Prometheus server scraping the agent)."""
    prometheus_url: str | None
    """With ``prometheus``: the server's query URL (in-cluster, or Amazon Managed Service for Prometheus)."""
    knative: KnativeAutoscalerConfig
    """Knative Serving's cluster-wide autoscaler settings (upstream's defaults where not set)."""
    knative_given: tuple[str, tuple[tuple[str, Any], ...]] | None = None
    """The `knative` section's config key and entries when the stack sets one (read_services refuses it where no
    Knative Serving is installed); None: not set."""


def read_serving(s: Section | None) -> ServingConfig | None:
    """The `serving:` section of `gpuscale:kubernetes`; None when absent (no serving layer is installed)."""
    if s is None:
        return None
    mode = s.str("mode", choices=SERVING_MODES)
    source = s.str("metricsSource", "cloudwatch", choices=METRICS_SOURCES)
    url_rule = PROMETHEUS_URL_RULE
    url = s.str("prometheusUrl", None, pattern=URL_PATTERN, describe=url_rule)
    if source == "prometheus" and url is None:
        raise s.fail("prometheusUrl", REQUIRED, f"{url_rule}, with metricsSource: prometheus")
    if source == "cloudwatch" and url is not None:
        raise s.fail("prometheusUrl", url, "prometheusUrl only with metricsSource: prometheus")
    k = s.optional_section("knative")
    knative = read_knative_autoscaler(k) if k is not None else KnativeAutoscalerConfig()
    s.finish()
    given = (s.key("knative"), tuple(k.data.items())) if k is not None else None
    return ServingConfig(mode, source, url, knative, knative_given=given)


def read_knative_autoscaler(s: Section) -> KnativeAutoscalerConfig:
    """Knative's cluster-wide autoscaler settings (`serving.knative`, KnativeServingArgs' `autoscaler`), each within
    upstream's bounds (KNATIVE_KEYS)."""
    values = {}
    for key, (name, kind, lo, hi, lo_exclusive) in KNATIVE_KEYS.items():
        if kind is bool:
            value = s.bool(key, None) if s.has(key) else None
        elif kind is int:
            value = s.int(key, None, min=lo if not lo_exclusive else lo + 1, max=hi)
        else:
            value = s.float(key, None, min=lo, max=hi, min_exclusive=lo_exclusive)
        if value is not None:
            values[name] = value
    s.finish()
    return KnativeAutoscalerConfig(**values)


# --- a service's scaling --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KpaScaling:
    """Knative's pod autoscaler for one service: the revision's `autoscaling.knative.dev/*` annotations. None keeps
    the cluster-wide value (KnativeAutoscalerConfig)."""

    metric: str = "concurrency"
    """``concurrency`` (requests in flight per pod) or ``rps`` (requests per second per pod)."""
    target: float | None = None
    """Per pod; None: with concurrency, the service's containerConcurrency (concurrencyPerReplica) times the target
    utilisation. Required with rps."""
    target_utilization_percentage: float | None = None
    window_seconds: int | None = None
    """The stable window (annotation `window`)."""
    panic_window_percentage: float | None = None
    panic_threshold_percentage: float | None = None
    initial_scale: int | None = None
    scale_to_zero_retention_seconds: int | None = None
    """scale-to-zero-pod-retention-period: the last pod stays this long after traffic stops, at most 1 h."""
    activation_scale: int | None = None
    """The pods a revision scales to when it leaves zero."""
    scale_down_delay_seconds: int | None = None

    mode = "kpa"


@dataclass(frozen=True)
class HpaScaling:
    """A HorizontalPodAutoscaler on one of the agent's GPU metrics, averaged over the service's pods."""

    metric: str | None = None
    """The agent's metric as the metrics source names it; None: DEFAULT_GPU_METRIC of the source."""
    target: float = 75.0
    """Percent GPU utilisation per pod."""
    behavior: Behavior | None = None
    """spec.behavior (stabilisation windows and policies); None: the API's defaults."""
    period_seconds: int = 60
    """The window the metric is averaged over when read (see GpuTrigger.period_seconds)."""

    mode = "hpa"


@dataclass(frozen=True)
class GpuTrigger:
    metric: str | None = None
    """As HpaScaling.metric."""
    target: float = 75.0
    """Percent mean GPU utilisation over the service's GPUs. The metric is a mean, so the target is a `Value`
    (GPU_TRIGGER_METRIC_TYPE): the HPA proposes ceil(ready pods x mean / target)."""
    period_seconds: int = 60
    """The window the query averages the metric over: KEDA aws-cloudwatch's metricStatPeriod (its own default, 300,
    would average five minutes), or a PromQL avg_over_time range."""


GATEWAY_SCRAPE_INTERVAL_SECONDS = 15
"""How often a Prometheus scrapes Istio's gateways and proxies, as Istio's own Prometheus Operator sample configures it
(samples/addons/extras/prometheus-operator.yaml: PodMonitor envoy-stats-monitor, `interval: 15s`; its addon
prometheus.yaml scrapes every 15 s too). Prometheus's own default would be 1 minute."""
MAX_SCRAPE_INTERVAL_SECONDS = 300
"""A bound of ours: a gateway scraped less often than every 5 minutes cannot drive a pod autoscaler."""


@dataclass(frozen=True)
class WakeTrigger:
    """A demand signal that exists while the service is at zero: it activates the service (0 -> 1), and KEDA feeds
    it to the HPA it creates as well (1 -> N), at its per-replica target."""

    kind: str
    """``sqs``: the visible and in-flight messages of an SQS queue the service consumes (requests queue while the
    service is at zero); ``requests``: the request rate at the gateway, from Prometheus (requests at zero get an
    error from the gateway, 502/503 with no endpoint, and clients retry)."""
    queue_name: str | None = None
    per_replica: float | None = None
    """sqs: messages per replica; requests: requests per second per replica. None: what one replica serves
    (concurrencyPerReplica messages; concurrencyPerReplica / mean service time requests per second)."""
    activation: float = 0.0
    """The service leaves zero while the signal is strictly above this (activationQueueLength /
    activationThreshold)."""
    period_seconds: int = 60
    """requests: the rate()'s range in the PromQL query (sqs is read live from the queue)."""
    query: str | None = None
    """requests: the PromQL giving the service's request rate at the gateway; None: the Istio ingress gateway's
    istio_requests_total towards the service's predictor (components.pod_autoscaling.gateway_requests_query)."""
    prometheus_url: str | None = None
    """requests: the Prometheus server holding the gateway's counter; None: the serving section's prometheusUrl."""
    scrape_interval_seconds: int = GATEWAY_SCRAPE_INTERVAL_SECONDS
    """requests: how often that server scrapes the gateway's counter. A burst is in the rate only after the next
    scrape, so the simulator sees the rate this late; the rate()'s range must hold two scrapes."""


@dataclass(frozen=True)
class KedaScaling:
    gpu_utilization: GpuTrigger | None = None
    wake: WakeTrigger | None = None
    polling_interval_seconds: int = KEDA_POLLING_INTERVAL_SECONDS
    cooldown_period_seconds: int = KEDA_COOLDOWN_PERIOD_SECONDS
    """After the last active poll, how long until the service goes back to zero."""
    behavior: Behavior | None = None
    """advanced.horizontalPodAutoscalerConfig.behavior of the HPA KEDA creates; None: the API's defaults."""

    mode = "keda"


Scaling = KpaScaling | HpaScaling | KedaScaling
MODE_OF = {"kpa": KpaScaling, "hpa": HpaScaling, "keda": KedaScaling}
SERVING_MODE_OF = {"kpa": "knative", "hpa": "standard", "keda": "standard"}
"""KServe's Knative mode scales with the KPA (its HPA class reads only CPU and memory; KEDA cannot scale a Knative
revision's Deployment, which Knative owns); the Standard mode's Deployments are scaled by an HPA or KEDA."""


def knative_installed(serving: ServingConfig, services: Sequence[ServiceConfig]) -> bool:
    """Knative Serving (and its Kourier gateway) is installed when KServe's default mode is Knative or some service
    is scaled by the KPA; otherwise the stack has no Knative at all."""
    return serving.mode == "knative" or any(s.serving_mode == "knative" for s in services)


def _declared_serving_mode(scaling: Section, default: str) -> str:
    """The serving mode a service's `scaling:` section asks for (its preset's or its one pod autoscaler's), read
    ahead of the section itself so that the pods' rules can follow it; `default` where the section names none
    (_read_scaling then refuses it)."""
    preset = PRESETS.get(scaling.data.get("preset")) if isinstance(scaling.data.get("preset"), str) else None
    if preset is not None:
        return SERVING_MODE_OF[preset.scaling.mode]
    present = [m for m in SCALING_MODES if scaling.has(m)]
    return SERVING_MODE_OF[present[0]] if len(present) == 1 else default


@dataclass(frozen=True)
class ScalingPreset:
    name: str
    source: str
    scaling: Scaling
    min_replicas: int | None = None
    """The preset's own floor of replicas (None: the service's minReplicas)."""
    knative: tuple[tuple[str, Any], ...] = ()
    """Cluster-wide config-autoscaler values the preset needs ((config key, value)): Knative has no per-service
    annotation for them, so the stack's `serving.knative` must hold them."""

    @property
    def knative_config(self) -> KnativeAutoscalerConfig:
        """The cluster-wide settings the preset runs under (upstream's defaults for the rest)."""
        return replace(KnativeAutoscalerConfig(), **{KNATIVE_KEYS[k][0]: v for k, v in self.knative})


PRESETS: dict[str, ScalingPreset] = {p.name: p for p in (
    # The GPU cloud's published KPA settings for its inference service: stable window 180 s, panic at 200 % over a
    # 30 s window (a sixth of the stable window), target 90 %, up at most 1.5x and down at most 1.01x per decision,
    # scale to zero after 30 minutes. Its 15 s tick is not a Knative setting (multiscaler.go ticks every 2 s).
    ScalingPreset("coreweave-kpa", "Knative KPA with a GPU cloud's values: stable 180 s, panic 200 % over 30 s, "
                                   "target 90 %, up 1.5x, down 1.01x, zero after 30 min",
                  KpaScaling(target_utilization_percentage=90.0, window_seconds=180,
                             panic_window_percentage=100 * 30 / 180, panic_threshold_percentage=200.0),
                  knative=(("maxScaleUpRate", 1.5), ("maxScaleDownRate", 1.01),
                           ("scaleToZeroGracePeriodSeconds", 1800))),
    # A hosted endpoint platform as KServe Standard + KEDA can run it: scale up on 80 % accelerator utilisation once
    # it has held for 3 minutes, down after 5, zero after 15 minutes without requests, woken by a request, which
    # gets an error while the replica starts (no activator holds it).
    ScalingPreset("hf-like", "hosted endpoints: up on 80 % GPU held 3 min, down after 5, zero after 15 min "
                             "without requests, an error while waking",
                  KedaScaling(gpu_utilization=GpuTrigger(target=80.0), wake=WakeTrigger("requests"),
                              cooldown_period_seconds=900,
                              behavior=Behavior(scale_up=ScalingRules(180), scale_down=ScalingRules(300)))),
    # The HPA manifest of the LLM autoscaling article: 75 % GPU utilisation, up by max(50 %, 2 pods) per 30 s after
    # a 60 s window, down 1 pod per 60 s after 300 s; Kubernetes' default minReplicas of 1 (the article keeps 2).
    ScalingPreset("hpa-example", "HPA at 75 % GPU utilization, up max(50 %, 2 pods)/30 s, down 1 pod/60 s after "
                                 "300 s, min 1 pod",
                  HpaScaling(target=75.0, behavior=Behavior(
                      scale_up=ScalingRules(60, (ScalingPolicy("Percent", 50, 30), ScalingPolicy("Pods", 2, 30)),
                                            "Max"),
                      scale_down=ScalingRules(300, (ScalingPolicy("Pods", 1, 60),), "Max"))),
                  min_replicas=1),
    # KEDA's defaults on the request queue: one replica per concurrencyPerReplica messages (visible and in
    # flight), active above 0 messages, polled every 30 s, back to zero 300 s after the last message; the HPA it
    # creates has no behavior.
    ScalingPreset("keda-queue", "KEDA on the request queue: 1 pod per concurrency's worth of messages, poll 30 s, "
                                "zero after 300 s cooldown",
                  KedaScaling(wake=WakeTrigger("sqs"))),
)}


# --- a service ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ContainerConfig:
    image: str
    args: tuple[str, ...]
    port: int


@dataclass(frozen=True)
class ModelConfig:
    storage_uri: str | None
    """s3://bucket/prefix (the storage initializer downloads it with the service's pod role) or pvc://claim/path."""
    format: str | None
    """A KServe model format (the runtime is picked by it), e.g. huggingface; None with a custom container."""
    runtime: str | None
    """A serving runtime by name; None: KServe picks one that supports the format."""
    container: ContainerConfig | None

    @property
    def from_s3(self) -> bool:
        return self.storage_uri is not None and self.storage_uri.startswith("s3://")

    @property
    def image(self) -> str | None:
        """The serving image: the custom container's, or the image of the KServe runtime serving the format (the
        pinned chart's, components/serving_runtimes.py); None where the facts cannot say which runtime serves it."""
        if self.container is not None:
            return self.container.image
        return runtime_image(self.format, self.runtime) if self.format is not None else None


@dataclass(frozen=True)
class ServiceConfig:
    name: str
    node_group: str
    model: ModelConfig
    gpus: int
    """GPUs per pod (nvidia.com/gpu)."""
    cpu: str
    memory: str
    min_replicas: int
    max_replicas: int
    request_timeout_seconds: int
    progress_deadline_seconds: int
    scaling: Scaling
    preset: str | None
    """The preset the scaling started from, if any (its values, overridden by the service's own keys)."""
    workload: WorkloadConfig
    """What the service serves and how long each stage of a cold start takes, for the simulator and the checks.
    Node provisioning, the device plugin and the price come from the node group's workload unless set here."""
    model_cache: ModelCacheConfig | None = None
    """`modelCache:`: the model kept on the GPU nodes' disk (gpuscale/config/caches.py); None: loaded from its
    storageUri on every cold start."""
    vertical_scaling: VerticalScalingConfig | None = None
    """In-place resize of the predictor's CPU and memory by a VerticalPodAutoscaler (gpuscale.config.vertical);
    None: the requests stay as set."""

    @property
    def serving_mode(self) -> str:
        return SERVING_MODE_OF[self.scaling.mode]

    @property
    def concurrency(self) -> int:
        """containerConcurrency: requests one pod serves at once."""
        return self.workload.concurrency_per_replica


def at_zero_behaviour(scaling: Scaling) -> str:
    """What a request meets while the service has no ready pod: ``queue`` (Knative's activator holds it, or it waits
    on the SQS queue the service consumes) or ``refuse`` (the gateway has no endpoint and answers 502/503; the client
    retries)."""
    if isinstance(scaling, KpaScaling):
        return "queue"
    if isinstance(scaling, KedaScaling) and scaling.wake is not None and scaling.wake.kind == "sqs":
        return "queue"
    return "refuse"


def scales_to_zero_on_gpu_only(scaling: Scaling) -> bool:
    """A pod autoscaler whose only trigger is a GPU metric: at zero there is no GPU to measure, so it never wakes."""
    if isinstance(scaling, HpaScaling):
        return True
    return isinstance(scaling, KedaScaling) and scaling.wake is None


def gpu_metric(metric: str | None, source: str) -> str:
    """The metric a GPU trigger reads: as configured, or the agent's default GPU utilisation for the source."""
    return metric if metric is not None else DEFAULT_GPU_METRIC[source]


def agent_metric(name: str, source: str) -> catalogue.MetricSpec | None:
    """The agent's catalogue entry a pod autoscaler can read by `name` from `source`, or None when the agent does
    not publish it there. CloudWatch: a series published to CloudWatch and rolled up to the node group (a query
    names only the Auto Scaling group); Prometheus: the series' full name (values in base units: ratios)."""
    for spec in catalogue.ALL_METRICS:
        if source == "cloudwatch" and spec.name == name and spec.cloudwatch and spec.group_rollup:
            return spec
        if source == "prometheus" and spec.prom_full_name == name:
            return spec
    return None


def read_services(top: Section, node_groups: tuple[NodeGroupConfig, ...],
                  serving: ServingConfig | None, serving_key: str) -> tuple[ServiceConfig, ...]:
    """`gpuscale:services`: every entry validated against the stack's node groups and serving layer."""
    entries = top.sections("services", default=[])
    if entries and serving is None:
        raise ConfigError(serving_key, REQUIRED, "a serving section (mode: knative or standard) when "
                                                 "gpuscale:services lists services: it installs what serves them")
    services = []
    seen: dict[str, str] = {}
    for s in entries:
        service = guarded(_read_service, s, node_groups, serving)  # one service's mistake does not hide the next's
        if service is None:
            continue
        if service.name in seen:
            raise s.fail("name", service.name, f"a service name used once ({seen[service.name]} has it already)")
        seen[service.name] = s.key("name")
        services.append(service)
    # Only when every entry was read: a kpa service refused for another mistake would make this a second error.
    if serving is not None and serving.knative_given is not None and len(services) == len(entries) \
            and not knative_installed(serving, services):
        key, given = serving.knative_given
        raise ConfigError(key, dict(given), "a knative section only where Knative Serving is "
                          "installed: mode knative, or a service scaled by kpa (this stack installs no Knative "
                          "autoscaler to configure)")
    return tuple(services)


def _read_service(s: Section, node_groups: tuple[NodeGroupConfig, ...], serving: ServingConfig) -> ServiceConfig:
    name = s.str("name", pattern=SERVICE_NAME_PATTERN, describe=SERVICE_NAME_RULE)
    groups = {g.name: g for g in node_groups}
    group_name = s.str("nodeGroup", choices=tuple(groups)) if groups else s.str("nodeGroup")
    if group_name not in groups:
        raise s.fail("nodeGroup", group_name, "a node group of gpuscale:nodeGroups (services run on EKS); this "
                                              "stack has none")
    group = groups[group_name]
    model = read_model(s.section("model"))
    # The service's own mode (its pod autoscaler's), not the stack's default, decides what its pods may be.
    mode = _declared_serving_mode(s.section("scaling"), serving.mode)
    gpus, cpu, memory, lo, hi, timeout, deadline = read_service_pods(s, mode)
    if gpus > group.gpu.gpu_count:
        raise s.fail("gpus", gpus, f"at most {group.gpu.gpu_count}: node group {group.name}'s "
                                   f"{group.gpu.instance_type} has {group.gpu.gpu_count} GPU(s)")
    scaling, preset = _read_scaling(s.section("scaling"), serving, lo, s.key("minReplicas"))
    workload = _read_service_workload(s.section("workload"), group, gpus, timeout, deadline, at_zero_behaviour(scaling))
    model_cache = read_model_cache(s.optional_section("modelCache"), model.storage_uri, s.key("model") + ".storageUri",
                                   group.image_volume_throughput_mibps)
    vertical = read_service_vertical_scaling(s.optional_section("verticalScaling"), mode, cpu, memory,
                                             group.gpu.vcpus, group.gpu.memory_mib)
    s.finish()
    return ServiceConfig(name, group.name, model, gpus, cpu, memory, lo, hi, timeout, deadline, scaling, preset,
                         workload, model_cache=model_cache, vertical_scaling=vertical)


def read_service_pods(s: Section, serving_mode: str) -> tuple[int, str, str, int, int, int, int]:
    """A service's pods: GPUs, CPU and memory, replica bounds, request timeout and progress deadline (the rules of a
    `gpuscale:services` entry and of ModelServiceArgs)."""
    gpus = s.int("gpus", 1, min=1, max=16)
    cpu = s.str("cpu", "1", pattern=QUANTITY_PATTERN, describe="a Kubernetes CPU quantity such as 500m or 4")
    memory = s.str("memory", "8Gi", pattern=QUANTITY_PATTERN, describe="a Kubernetes memory quantity such as 16Gi")
    lo = s.int("minReplicas", 0, min=0, max=1000)
    hi = s.int("maxReplicas", min=1, max=1000)
    if lo > hi:
        raise s.fail("minReplicas", lo, f"{s.name('minReplicas')} <= {s.name('maxReplicas')} ({hi})")
    timeout = s.int("requestTimeoutSeconds", 600, min=1, max=86400)
    deadline = s.int("progressDeadlineSeconds", 600, min=1, max=86400)
    deadline_rule = progress_deadline_refusal(serving_mode, deadline)
    if deadline_rule is not None:
        raise s.fail("progressDeadlineSeconds", deadline, deadline_rule)
    return gpus, cpu, memory, lo, hi, timeout, deadline


def read_model(s: Section) -> ModelConfig:
    uri = s.str("storageUri", None, pattern=STORAGE_URI_PATTERN,
                describe="s3://bucket/prefix or pvc://claim/path")
    fmt = s.str("format", None, pattern=MODEL_FORMAT_PATTERN, describe="a KServe model format such as huggingface")
    runtime = s.str("runtime", None, pattern=MODEL_FORMAT_PATTERN, describe="a KServe serving runtime's name")
    c = s.optional_section("container")
    container = None
    if c is not None:
        image = c.str("image", pattern=IMAGE_PATTERN, describe="a container image reference with a tag or digest")
        if not is_pinned_image(image):
            raise c.fail("image", image, "an image reference with a tag or digest (no implicit :latest, so every "
                                         "replica serves the same build)")
        args = c.str_list("args", (), unique=False)
        port = c.int("port", 8080, min=1, max=65535)
        c.finish()
        container = ContainerConfig(image, args, port)
    if (fmt is None) == (container is None):
        raise s.fail("format", fmt, "exactly one of format (a KServe runtime serves the model) and container (your "
                                    "own image)")
    if fmt is not None and uri is None:
        raise s.fail("storageUri", REQUIRED, "where the runtime loads the model from: s3://bucket/prefix or "
                                             "pvc://claim/path")
    if runtime is not None and fmt is None:
        raise s.fail("runtime", runtime, "runtime only with format (a custom container is its own runtime)")
    s.finish()
    return ModelConfig(uri, fmt, runtime, container)


def _read_scaling(s: Section, serving: ServingConfig, min_replicas: int, min_key: str) -> tuple[Scaling, str | None]:
    preset_name = s.str("preset", None, choices=tuple(PRESETS))
    preset = PRESETS[preset_name] if preset_name is not None else None
    present = [m for m in SCALING_MODES if s.has(m)]
    if preset is not None:
        others = [m for m in present if m != preset.scaling.mode]
        if others:
            raise s.fail(others[0], s.data[others[0]], f"only {preset.scaling.mode}: keys to override preset "
                                                       f"{preset_name}, a {preset.scaling.mode} preset")
        mode = preset.scaling.mode
    else:
        if len(present) != 1:
            raise s.fail("preset" if not present else present[1], s.data.get(present[1]) if len(present) > 1
                         else REQUIRED, "one pod autoscaler per service: a preset (" + ", ".join(PRESETS)
                         + ") or exactly one of kpa, hpa, keda")
        mode = present[0]
    base = preset.scaling if preset is not None else MODE_OF[mode]()
    section = s.section(mode, Section({}, s.key(mode)))
    reader = {"kpa": _read_kpa, "hpa": _read_hpa, "keda": _read_keda}[mode]
    scaling = reader(section, base, serving)
    s.finish()
    if preset is not None:
        for key, value in preset.knative:
            have = getattr(serving.knative, KNATIVE_KEYS[key][0])
            if have != value:
                raise ConfigError(f"gpuscale:kubernetes.serving.knative.{key}", have,
                                  f"{value}: preset {preset_name} needs it cluster-wide (Knative has no per-service "
                                  "annotation for it)")
        if preset.min_replicas is not None and min_replicas < preset.min_replicas:
            raise ConfigError(min_key, min_replicas, f">= {preset.min_replicas} with preset {preset_name}")
    if min_replicas == 0 and scales_to_zero_on_gpu_only(scaling):
        raise ConfigError(min_key, 0, "at least 1 with a pod autoscaler whose only trigger is a GPU metric: at zero "
                                      "there is no GPU to measure and the service never wakes (add a keda.wake "
                                      "demand signal to scale to zero)")
    return scaling, preset_name


def _read_kpa(s: Section, base: KpaScaling, serving: ServingConfig) -> KpaScaling:
    metric = s.str("metric", base.metric, choices=KPA_METRICS)
    target = s.float("target", base.target, min=KNATIVE_TARGET_MIN)
    if metric == "rps" and target is None:
        raise s.fail("target", REQUIRED, "requests per second per pod with metric: rps")
    util = s.float("targetUtilizationPercentage", base.target_utilization_percentage, min=1, max=100)
    window = s.int("windowSeconds", base.window_seconds, min=KNATIVE_WINDOW_MIN, max=KNATIVE_WINDOW_MAX)
    panic_window = s.float("panicWindowPercentage", base.panic_window_percentage, min=KNATIVE_PANIC_WINDOW_MIN,
                           max=KNATIVE_PANIC_WINDOW_MAX)
    panic_threshold = s.float("panicThresholdPercentage", base.panic_threshold_percentage,
                              min=KNATIVE_PANIC_THRESHOLD_MIN, max=KNATIVE_PANIC_THRESHOLD_MAX)
    initial = s.int("initialScale", base.initial_scale, min=0, max=1000)
    if initial == 0 and not serving.knative.allow_zero_initial_scale:
        raise s.fail("initialScale", 0, "at least 1, or 0 with gpuscale:kubernetes.serving.knative."
                                        "allowZeroInitialScale: true")
    retention = s.int("scaleToZeroRetentionSeconds", base.scale_to_zero_retention_seconds, min=0,
                      max=KNATIVE_WINDOW_MAX)
    activation = s.int("activationScale", base.activation_scale, min=1, max=1000)
    delay = s.int("scaleDownDelaySeconds", base.scale_down_delay_seconds, min=0, max=KNATIVE_WINDOW_MAX)
    s.finish()
    return KpaScaling(metric, target, util, window, panic_window, panic_threshold, initial, retention, activation,
                      delay)


def _read_hpa(s: Section, base: HpaScaling, serving: ServingConfig) -> HpaScaling:
    metric = s.str("metric", base.metric, pattern=METRIC_NAME_PATTERN,
                   describe="a metric name as the metrics source names it, e.g. NodeGpuUtilization")
    target = s.float("target", base.target, min=0, max=100, min_exclusive=True)
    behavior = _read_behavior(s.optional_section("behavior"), base.behavior)
    period = _read_period(s, base.period_seconds, serving)
    s.finish()
    return HpaScaling(metric, target, behavior, period)


def _read_keda(s: Section, base: KedaScaling, serving: ServingConfig) -> KedaScaling:
    g = s.optional_section("gpuUtilization")
    gpu = base.gpu_utilization
    if g is not None:
        start = gpu or GpuTrigger()
        gpu = GpuTrigger(g.str("metric", start.metric, pattern=METRIC_NAME_PATTERN,
                               describe="a metric name as the metrics source names it, e.g. NodeGpuUtilization"),
                         g.float("target", start.target, min=0, max=100, min_exclusive=True),
                         _read_period(g, start.period_seconds, serving))
        g.finish()
    w = s.optional_section("wake")
    wake = base.wake
    if w is not None:
        wake = _read_wake(w, wake, serving)
    elif wake is not None and wake.kind == "sqs" and wake.queue_name is None:
        raise s.fail("wake", REQUIRED, "wake.queueName: the SQS queue the service consumes (the preset names no "
                                       "queue)")
    elif wake is not None and wake.kind == "requests" and serving.prometheus_url is None:
        raise _requests_need_prometheus(s.key("wake"), wake.kind)
    if gpu is None and wake is None:
        raise s.fail("gpuUtilization", REQUIRED, "at least one trigger: gpuUtilization (1 -> N on the service's GPU "
                                                 "utilisation) or wake (a demand signal)")
    polling = s.int("pollingIntervalSeconds", base.polling_interval_seconds, min=1, max=3600)
    cooldown = s.int("cooldownPeriodSeconds", base.cooldown_period_seconds, min=0, max=86400)
    behavior = _read_behavior(s.optional_section("behavior"), base.behavior)
    s.finish()
    return KedaScaling(gpu, wake, polling, cooldown, behavior)


def _requests_need_prometheus(key: str, kind: str) -> ConfigError:
    return ConfigError(f"{key}.kind", kind, "sqs, or requests with a Prometheus server: the wake's own "
                                            f"{key}.prometheusUrl or gpuscale:kubernetes.serving.prometheusUrl "
                                            "(metricsSource: prometheus); the gateway's request count is read from "
                                            "Prometheus")


def _read_wake(s: Section, base: WakeTrigger | None, serving: ServingConfig) -> WakeTrigger:
    kind = s.str("kind", base.kind if base is not None else REQUIRED, choices=WAKE_KINDS)
    same = base if base is not None and base.kind == kind else None
    query, server = _read_gateway(s, kind, same)
    # A server given but refused was reported already: no second error for the same mistake.
    if kind == "requests" and server is None and serving.prometheus_url is None and not s.has("prometheusUrl"):
        raise _requests_need_prometheus(s.path, kind)
    queue = None
    if kind == "sqs":
        queue = s.str("queueName", same.queue_name if same is not None and same.queue_name else REQUIRED,
                      pattern=SQS_QUEUE_PATTERN, describe="an SQS queue name: 1 to 80 letters, digits, hyphens or "
                                                          "underscores (.fifo at the end for a FIFO queue)")
    elif s.has("queueName"):
        raise s.fail("queueName", s.data["queueName"], "queueName only with kind: sqs")
    per = s.float("perReplica", same.per_replica if same is not None else None, min=0, max=1e6, min_exclusive=True)
    activation = s.float("activation", same.activation if same is not None else 0.0, min=0, max=1e6)
    period = same.period_seconds if same is not None else WakeTrigger.period_seconds
    scrape = same.scrape_interval_seconds if same is not None else WakeTrigger.scrape_interval_seconds
    if kind == "requests":
        scrape = s.int("scrapeIntervalSeconds", scrape, min=1, max=MAX_SCRAPE_INTERVAL_SECONDS)
        ranges = promql_ranges(query) if query is not None else []
        if ranges:
            # The query names its own range: that is the window (the simulator's too), checked as the default's.
            if s.has("periodSeconds") and s.data["periodSeconds"] != min(ranges):
                raise s.fail("periodSeconds", s.data["periodSeconds"], f"{min(ranges)}, the query's own range (or "
                             "leave it out): it is the window the simulator averages the rate over")
            period, key = min(ranges), "query"
        else:  # the default query's range; or a query without one (a recording rule): the window as configured
            period, key = _read_period(s, period, serving), "periodSeconds"
        refusal = rate_range_refusal(period, scrape) if query is None or ranges else None
        if refusal is not None:
            raise s.fail(key, s.data.get(key, period), refusal)
    else:
        for key, why in (("periodSeconds", "KEDA reads an SQS queue's length live"),
                         ("scrapeIntervalSeconds", "no Prometheus reads an SQS queue")):
            if s.has(key):
                raise s.fail(key, s.data[key], f"{key} only with kind: requests ({why})")
    s.finish()
    return WakeTrigger(kind, queue, per, activation, period, query, server, scrape)


PROMQL_RULE = "a PromQL expression giving the service's requests per second at the gateway"
_PROMQL_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_PROMQL_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def promql_ranges(query: str) -> list[int]:
    """The range selectors' durations in a PromQL query, in whole seconds (`rate(x[5m])` -> [300]; a subquery's
    `[30m:1m]` gives its range, 1800); none for a query without one."""
    found = []
    for selector in re.findall(r"\[\s*([0-9a-z]+)\s*(?::[^\]]*)?\]", query):
        parts = _PROMQL_DURATION.findall(selector)
        if parts and "".join(n + u for n, u in parts) == selector:
            found.append(int(sum(int(n) * _PROMQL_SECONDS[u] for n, u in parts)))
    return found


def _read_gateway(s: Section, kind: str, same: WakeTrigger | None) -> tuple[str | None, str | None]:
    """A requests wake's PromQL query and Prometheus server (both optional: the defaults are the Istio gateway's
    counter and the serving section's server); refused with kind sqs."""
    if kind != "requests":
        for key in ("query", "prometheusUrl"):
            if s.has(key):
                raise s.fail(key, s.data[key], f"{key} only with kind: requests (KEDA reads an SQS queue from AWS)")
        return None, None
    query = s.str("query", same.query if same else None, pattern=PROMQL_PATTERN, describe=PROMQL_RULE)
    server = s.str("prometheusUrl", same.prometheus_url if same else None, pattern=URL_PATTERN,
                   describe=PROMETHEUS_URL_RULE)
    return query, server


def rate_range_refusal(range_seconds: int, scrape_interval_seconds: int) -> str | None:
    """What a rate()'s range may be for a counter scraped every `scrape_interval_seconds`, when `range_seconds` is
    not allowed, else None. rate() needs two samples inside its range: a shorter range returns nothing at some or
    all evaluations, and KEDA's prometheus scaler reads no result as 0 (ignoreNullValues defaults to true), so the
    service never wakes and the HPA sees no load."""
    if range_seconds < 2 * scrape_interval_seconds:
        return (f"at least {2 * scrape_interval_seconds} s: two scrapes of the gateway's counter "
                f"(scrapeIntervalSeconds {scrape_interval_seconds}) in every rate() range")
    return None


def _read_period(s: Section, default: int, serving: ServingConfig) -> int:
    period = s.int("periodSeconds", default, min=1, max=3600)
    if serving.metrics_source == "cloudwatch" and not (period in (1, 5, 10, 30) or period % 60 == 0):
        raise s.fail("periodSeconds", period, f"{CLOUDWATCH_QUERY_PERIODS} (CloudWatch's periods for "
                                              "high-resolution metrics)")
    return period


def _read_behavior(s: Section | None, base: Behavior | None) -> Behavior | None:
    if s is None:
        return base
    start = base or Behavior()
    up = _read_rules(s.optional_section("scaleUp"), start.scale_up)
    down = _read_rules(s.optional_section("scaleDown"), start.scale_down)
    s.finish()
    return Behavior(up, down)


def _read_rules(s: Section | None, base: ScalingRules) -> ScalingRules:
    if s is None:
        return base
    window = s.int("stabilizationWindowSeconds", base.stabilization_window_seconds, min=0, max=3600)
    select = s.str("selectPolicy", base.select_policy, choices=HPA_SELECT_POLICIES)
    policies = base.policies
    items = s.sections("policies", None, min_items=1)
    if items is not None:
        policies = tuple(_read_policy(p) for p in items)
    s.finish()
    return ScalingRules(window, policies, select)


def _read_policy(s: Section) -> ScalingPolicy:
    kind = s.str("type", choices=HPA_POLICY_KINDS)
    # autoscaling/v2 validation: value > 0, periodSeconds in (0, 1800].
    value = s.int("value", min=1, max=100000)
    period = s.int("periodSeconds", min=1, max=1800)
    s.finish()
    return ScalingPolicy(kind, value, period)


def _read_service_workload(s: Section, group: NodeGroupConfig, gpus: int, timeout: int, deadline: int,
                           at_zero: str) -> WorkloadConfig:
    """The service's `workload:`: its own service time, concurrency, image pull and model load; node provisioning,
    the device plugin and the price from the node group's `workload:` unless set here."""
    concurrency = s.int("concurrencyPerReplica", min=1, max=4096)
    service_time = _read_service_time(s.section("serviceTime"))
    inherited = group.workload
    c = s.section("coldStart")

    def from_group(key: str, name: str, fallback: Any = REQUIRED) -> Any:
        value = getattr(inherited.cold_start, name) if inherited is not None else fallback
        return c.float(key, value, min=0, max=3600)
    node = from_group("nodeProvisioningSeconds", "node_provisioning_seconds")
    plugin = from_group("devicePluginReadySeconds", "device_plugin_ready_seconds", 30.0)
    pull = c.float("imagePullSeconds", min=0, max=3600)
    load = c.float("modelLoadSeconds", min=0, max=3600)
    c.finish()
    cold = ColdStartConfig(node, pull, load, None, plugin)
    p = s.optional_section("price")
    if p is None and inherited is None:
        raise s.fail("price", REQUIRED, f"the node's price (perInstanceHour, currency), here or in node group "
                                        f"{group.name}'s workload section")
    per_hour = inherited.price_per_instance_hour if inherited is not None else None
    currency = inherited.currency if inherited is not None else "USD"
    if p is not None:
        per_hour = p.float("perInstanceHour", per_hour if per_hour is not None else REQUIRED, min=0, max=1000,
                           min_exclusive=True)
        currency = p.str("currency", currency, pattern=CURRENCY_PATTERN, describe="an ISO 4217 code such as USD")
        p.finish()
    retry = s.float("clientRetrySeconds", 10.0, min=1, max=3600)
    if at_zero == "queue" and s.has("clientRetrySeconds"):
        raise s.fail("clientRetrySeconds", s.data["clientRetrySeconds"],
                     "clientRetrySeconds only where requests are refused at zero (a keda service without an SQS "
                     "wake); queued requests are not retried")
    s.finish()
    return WorkloadConfig(concurrency, gpus, group.gpu.gpu_count // gpus, service_time, cold, per_hour, currency,
                          float(timeout), float(deadline), at_zero, retry)

