"""The pod autoscaler of a model service (`scaling:` of a `gpuscale:services` entry), one of:
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

Knative's bounds are the serving layer's (gpuscale/config/serving.py). KEDA's defaults are v2.17's (see
gpuscale/sim/keda.py), the HPA's Kubernetes 1.33's (gpuscale/sim/hpa.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from gpu_metrics_agent import catalogue

from .hpa_behavior import Behavior, ScalingPolicy, ScalingRules
from .reader import REQUIRED, ConfigError, Section
from .scaling import SQS_QUEUE_PATTERN
from .serving import (KNATIVE_PANIC_THRESHOLD_MAX, KNATIVE_PANIC_THRESHOLD_MIN, KNATIVE_PANIC_WINDOW_MAX,
                      KNATIVE_PANIC_WINDOW_MIN, KNATIVE_TARGET_MIN, KNATIVE_WINDOW_MAX, KNATIVE_WINDOW_MIN,
                      PROMETHEUS_URL_RULE, URL_PATTERN, KnativeAutoscalerConfig, KNATIVE_KEYS, ServingConfig)

SCALING_MODES = ("kpa", "hpa", "keda")
KPA_METRICS = ("concurrency", "rps")
WAKE_KINDS = ("sqs", "requests")
HPA_POLICY_KINDS = ("Pods", "Percent")
HPA_SELECT_POLICIES = ("Max", "Min", "Disabled")
METRIC_NAME_PATTERN = r"[A-Za-z_:][A-Za-z0-9_:]*"
PROMQL_PATTERN = r"\S(.*\S)?"
"""One line, not blank: KEDA's prometheus scaler sends the query as is (Prometheus parses it)."""

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


def declared_mode(s: Section) -> str | None:
    """The pod autoscaler a `scaling:` section declares: its preset's, or its one mode section's; None where it
    declares none or several (read_scaling refuses those). Read without marking keys, so that a service's other
    rules can follow its mode before the section itself is read."""
    name = s.data.get("preset")
    if isinstance(name, str) and name in PRESETS:
        return PRESETS[name].scaling.mode
    present = [m for m in SCALING_MODES if s.has(m)]
    return present[0] if len(present) == 1 else None


def read_scaling(s: Section, serving: ServingConfig, min_replicas: int, min_key: str) -> tuple[Scaling, str | None]:
    preset_name = s.str("preset", None, choices=tuple(PRESETS))
    preset = PRESETS[preset_name] if preset_name is not None else None
    present = [m for m in SCALING_MODES if s.has(m)]
    if preset is not None:
        others = [m for m in present if m != preset.scaling.mode]
        if others:
            raise s.fail(others[0], s.data[others[0]], f"only {preset.scaling.mode}: keys to override preset "
                                                       f"{preset_name}, a {preset.scaling.mode} preset")
    elif len(present) != 1:
        raise s.fail("preset" if not present else present[1], s.data.get(present[1]) if len(present) > 1
                     else REQUIRED, "one pod autoscaler per service: a preset (" + ", ".join(PRESETS)
                     + ") or exactly one of kpa, hpa, keda")
    mode = preset.scaling.mode if preset is not None else present[0]
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
            given = s.int("periodSeconds", min(ranges), min=1, max=3600)
            if given != min(ranges):
                raise s.fail("periodSeconds", given, f"{min(ranges)}, the query's own range (or leave it out): it "
                             "is the window the simulator averages the rate over")
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
