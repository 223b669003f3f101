"""The serving layer's settings (`serving:` in `gpuscale:kubernetes`): KServe's default deployment mode, where pod
autoscalers read the agent's GPU metrics, and Knative Serving's cluster-wide autoscaler settings.

Knative's defaults are upstream's (knative/serving v1.18, config/core/configmaps/autoscaler.yaml) and its bounds
upstream's validation (pkg/autoscaler/config/config.go validate, pkg/apis/autoscaling/annotation_validation.go and
register.go).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .reader import REQUIRED, Section

SERVING_MODES = ("knative", "standard")
METRICS_SOURCES = ("cloudwatch", "prometheus")
URL_PATTERN = r"https?://[^\s/]+(/[^\s]*)?"
PROMETHEUS_URL_RULE = ("the Prometheus server's query URL, e.g. http://prometheus-server.monitoring.svc:80 or an "
                       "Amazon Managed Service for Prometheus workspace's endpoint")

# Bounds upstream validation enforces (knative/serving v1.18, pkg/apis/autoscaling/register.go).
KNATIVE_WINDOW_MIN, KNATIVE_WINDOW_MAX = 6, 3600
"""autoscaling.WindowMin / WindowMax: the stable window, and the most a scale-down delay or retention may be."""
KNATIVE_PANIC_WINDOW_MIN, KNATIVE_PANIC_WINDOW_MAX = 1.0, 100.0
KNATIVE_PANIC_THRESHOLD_MIN, KNATIVE_PANIC_THRESHOLD_MAX = 110.0, 1000.0
KNATIVE_TARGET_MIN = 0.01
"""autoscaling.TargetMin."""


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
