"""Builders for a model service's pod autoscaling, as the pinned versions accept it: Knative's KPA annotations, and
KEDA's ScaledObject with its TriggerAuthentication (which also carries the `hpa` mode: KEDA creates the HPA and is
its external-metrics adapter). Plain dicts behind typed arguments; tests check them against the CRD facts and the
annotation and scaler-metadata keys recorded in components/upstream/*.json. Pure: no Pulumi resources."""

from collections.abc import Sequence
from typing import Any

import pulumi
from typing_extensions import NotRequired, TypedDict

from gpu_metrics_agent import catalogue

KPA_CLASS = "kpa.autoscaling.knative.dev"
"""autoscaling.KPA (knative/serving pkg/apis/autoscaling/register.go)."""
KNATIVE = "autoscaling.knative.dev/"
PROGRESS_DEADLINE = "serving.knative.dev/progress-deadline"
"""serving.ProgressDeadlineAnnotationKey: a revision not ready by then fails (its Deployment's deadline)."""
KEDA_API_VERSION = "keda.sh/v1alpha1"


class PolicyArgs(TypedDict):
    kind: str
    """``Pods`` or ``Percent``."""
    value: int
    """Pods or percent per period."""
    period_seconds: int
    """The policy's period in seconds (1-1800)."""


class RulesArgs(TypedDict):
    stabilization_window_seconds: int | None
    """None: the API's default (0 up, the controller's 300 s down)."""
    policies: Sequence[PolicyArgs] | None
    """None: the API's default policies."""
    select_policy: str | None
    """``Max``, ``Min`` or ``Disabled``; None: Max."""


class BehaviorArgs(TypedDict):
    """autoscaling/v2 HorizontalPodAutoscalerBehavior; field names as gpuscale.sim.hpa.Behavior (one shape)."""

    scale_up: RulesArgs
    """Rules when the recommendation rises."""
    scale_down: RulesArgs
    """Rules when the recommendation falls."""


class KpaArgs(TypedDict):
    """Knative's pod autoscaler; field names as gpuscale.config.pod_autoscalers.KpaScaling. None keeps the cluster-wide
    value (config-autoscaler)."""

    metric: str
    """``concurrency`` or ``rps``."""
    target: float | None
    """Concurrency or requests per second per pod (autoscaling.knative.dev/target); None keeps Knative's default."""
    target_utilization_percentage: float | None
    """Share of the target aimed at (autoscaling.knative.dev/target-utilization-percentage); None keeps the default."""
    window_seconds: int | None
    """The stable window (autoscaling.knative.dev/window); None keeps the cluster's."""
    panic_window_percentage: float | None
    """The panic window as a percentage of the stable window; None keeps the cluster's."""
    panic_threshold_percentage: float | None
    """Load over capacity that enters panic mode, percent; None keeps the cluster's."""
    initial_scale: int | None
    """Pods a new revision starts with (autoscaling.knative.dev/initial-scale); None keeps 1."""
    scale_to_zero_retention_seconds: int | None
    """How long the last pod stays after traffic stops; None keeps 0 (no extra retention)."""
    activation_scale: int | None
    """Pods started when waking from zero (autoscaling.knative.dev/activation-scale); None keeps 1."""
    scale_down_delay_seconds: int | None
    """How long a lower recommendation must hold before scaling down; None keeps 0."""


class GpuTriggerArgs(TypedDict):
    metric: str
    """The agent's GPU utilisation series as the metrics source names it (NodeGpuUtilization in CloudWatch,
    gpuscale_gpu_utilization_ratio in Prometheus)."""
    target: float
    """Percent GPU utilisation the service aims at (averaged over its pods)."""
    period_seconds: int
    """The window the series is averaged over when read: CloudWatch's statistic period (metricStatPeriod, over the
    last two periods: metricCollectionTime; KEDA's defaults of 300 s each would answer five minutes late), or the
    PromQL avg_over_time range."""


class WakeArgs(TypedDict):
    kind: str
    """``sqs`` (a queue's visible and in-flight messages) or ``requests`` (the gateway's request rate, from
    Prometheus)."""
    per_replica: float
    """Messages (sqs) or requests per second (requests) one replica takes."""
    activation: float
    """The service leaves zero once the signal is above this."""
    queue_url: NotRequired[pulumi.Input[str]]
    """sqs: the queue's URL. Default none (required with kind sqs)."""
    query: NotRequired[str]
    """requests: the PromQL giving the service's request rate at the gateway. Default: the Istio ingress gateway's
    counter towards the service's predictor (gateway_requests_query)."""
    period_seconds: NotRequired[int]
    """requests: the default query's rate() range, seconds. Default 60."""
    prometheus_url: NotRequired[str]
    """requests: the Prometheus server holding the gateway's counter. Default: the metrics source's
    prometheus_url (one of the two is required)."""


class KedaScalingArgs(TypedDict):
    """KEDA's triggers and timing; field names as gpuscale.config.pod_autoscalers.KedaScaling."""

    gpu_utilization: GpuTriggerArgs | None
    """1 -> N on the service's own GPU utilisation; None: the wake signal alone sizes the service."""
    wake: WakeArgs | None
    """0 -> 1 (and sizing) on a demand signal that exists at zero; None: the service never goes to zero."""
    polling_interval_seconds: int
    """How often KEDA reads its triggers (pollingInterval), seconds."""
    cooldown_period_seconds: int
    """Seconds after the last active trigger before KEDA scales to zero (cooldownPeriod)."""
    behavior: BehaviorArgs | None
    """The HPA's behavior KEDA creates; None: the API's defaults."""


class MetricsSource(TypedDict):
    kind: str
    """``cloudwatch`` (the agent's series, by the node group's Auto Scaling group) or ``prometheus``."""
    region: str
    """AWS region of the CloudWatch series and the SQS queue."""
    asg_name: pulumi.Input[str]
    """The service's node group's Auto Scaling group: the dimension the agent's group series carry."""
    prometheus_url: NotRequired[str]
    """prometheus: the server's query URL. Default none (required with source prometheus)."""


def refuse(name: str, value: object, allowed: str) -> ValueError:
    return ValueError(f"{name}: {value!r} is not allowed; allowed: {allowed}")


def _number(value: float) -> str:
    """A decimal as Go's strconv.ParseFloat and Kubernetes quantities read it, without a trailing .0."""
    return f"{value:g}" if abs(value) < 1e6 else str(int(value))


def kpa_annotations(kpa: KpaArgs, progress_deadline_seconds: int) -> dict[str, str]:
    """The revision's annotations (KServe copies the InferenceService's annotations onto its Knative revision
    template): `autoscaling.knative.dev/*` where the service sets a value, and the progress deadline. min-scale and
    max-scale come from the predictor's minReplicas/maxReplicas (KServe writes them)."""
    values: dict[str, str | None] = {
        "class": KPA_CLASS,
        "metric": kpa["metric"],
        "target": _number(kpa["target"]) if kpa["target"] is not None else None,
        "target-utilization-percentage": _opt(kpa["target_utilization_percentage"]),
        "window": _duration(kpa["window_seconds"]),
        "panic-window-percentage": _opt(kpa["panic_window_percentage"]),
        "panic-threshold-percentage": _opt(kpa["panic_threshold_percentage"]),
        "initial-scale": _opt(kpa["initial_scale"]),
        "scale-to-zero-pod-retention-period": _duration(kpa["scale_to_zero_retention_seconds"]),
        "activation-scale": _opt(kpa["activation_scale"]),
        "scale-down-delay": _duration(kpa["scale_down_delay_seconds"]),
    }
    out = {KNATIVE + key: value for key, value in values.items() if value is not None}
    out[PROGRESS_DEADLINE] = f"{progress_deadline_seconds}s"
    return out


def _opt(value: float | int | None) -> str | None:
    return None if value is None else _number(value)


def _duration(seconds: int | None) -> str | None:
    return None if seconds is None else f"{seconds}s"


def hpa_behavior(behavior: BehaviorArgs) -> dict[str, Any]:
    """autoscaling/v2 behavior, as `advanced.horizontalPodAutoscalerConfig.behavior` of a ScaledObject."""
    def rules(r: RulesArgs) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if r["stabilization_window_seconds"] is not None:
            out["stabilizationWindowSeconds"] = r["stabilization_window_seconds"]
        if r["select_policy"] is not None:
            out["selectPolicy"] = r["select_policy"]
        if r["policies"]:
            out["policies"] = [{"type": p["kind"], "value": p["value"], "periodSeconds": p["period_seconds"]}
                               for p in r["policies"]]
        return out
    both = {"scaleUp": rules(behavior["scale_up"]), "scaleDown": rules(behavior["scale_down"])}
    return {direction: r for direction, r in both.items() if r}  # a direction left at the API's defaults: absent


def gpu_trigger(gpu: GpuTriggerArgs, source: MetricsSource, namespace: str, service: str,
                auth: dict[str, str] | None) -> dict[str, Any]:
    """1 -> N on GPU utilisation. `Value`, not `AverageValue`: the series is already an average over GPUs, so the
    HPA's usage ratio is value / target times the current replicas (AverageValue would divide it by them again)."""
    if source["kind"] == "cloudwatch":
        spec = next((m for m in catalogue.ALL_METRICS if m.name == gpu["metric"] and m.cloudwatch and m.group_rollup),
                    None)
        if spec is None:
            raise refuse("gpu_utilization.metric", gpu["metric"], "a series the agent publishes to CloudWatch rolled "
                                                                  "up to the node group, e.g. NodeGpuUtilization")
        return {"type": "aws-cloudwatch", "name": "gpu-utilization", "metricType": "Value",
                "authenticationRef": auth, "metadata": {
                    "namespace": catalogue.NAMESPACE, "metricName": spec.name,
                    # The agent's group series: the node group's Auto Scaling group is its only dimension.
                    "dimensionName": catalogue.DIM_ASG, "dimensionValue": source["asg_name"],
                    "metricStat": "Average", "metricStatPeriod": str(gpu["period_seconds"]),
                    "metricCollectionTime": str(2 * gpu["period_seconds"]),
                    "targetMetricValue": _number(gpu["target"]), "minMetricValue": "0",
                    "awsRegion": source["region"]}}
    spec = next((m for m in catalogue.ALL_METRICS if m.prom_full_name == gpu["metric"]), None)
    if spec is None or spec.scope == "node":
        raise refuse("gpu_utilization.metric", gpu["metric"], "a per-GPU series of the agent (labelled with the pod "
                                                              "holding the GPU), e.g. "
                                                              f"{catalogue.GPU_UTILIZATION.prom_full_name}")
    # The service's own pods: KServe names a Standard predictor's pods <service>-predictor-<hash>.
    selector = f'namespace="{namespace}",pod=~"{service}-predictor-.+"'
    return {"type": "prometheus", "name": "gpu-utilization", "metricType": "Value", "metadata": {
        "serverAddress": source["prometheus_url"],
        "query": f"avg(avg_over_time({spec.prom_full_name}{{{selector}}}[{gpu['period_seconds']}s]))",
        # Prometheus holds the agent's ratios (0-1); the target is in percent.
        "threshold": _number(gpu["target"] * spec.prom_scale)}}


GATEWAY_INGRESS_CLASS = "istio"
"""The ingress class KServe v0.16 gives a Standard-mode InferenceService's Ingress: its chart's
kserve.controller.gateway.ingressGateway.className (charts/kserve-resources/values.yaml; config/configmap/
inferenceservice.yaml's ingressClassName), with Gateway API off (enableGatewayApi: false). The Ingress routes to the
predictor's Service, <name>-predictor (reconcilers/ingress/kube_ingress_reconciler.go, PredictorServiceName)."""


def gateway_requests_query(namespace: str, service: str, period_seconds: int) -> str:
    """The service's requests per second as the Istio ingress gateway counts them: istio_requests_total (Istio's
    standard metrics), reported by the gateway (reporter="source": a gateway reports as the client side), towards
    the predictor's Service. Counted at zero too: the gateway answers 503 with no endpoint, and counts the request."""
    selector = (f'reporter="source",destination_service_namespace="{namespace}",'
                f'destination_service_name="{service}-predictor"')
    return f"sum(rate(istio_requests_total{{{selector}}}[{period_seconds}s]))"


def wake_trigger(wake: WakeArgs, source: MetricsSource, auth: dict[str, str] | None, namespace: str = "",
                 service: str = "") -> dict[str, Any]:
    """0 -> 1 on demand that exists at zero; also sizes the service (`AverageValue`: so many per replica)."""
    if wake["kind"] == "sqs":
        per, activation = wake["per_replica"], wake["activation"]
        # queueLength and activationQueueLength are integers (int64) in the scaler.
        for name, value in (("wake.per_replica", per), ("wake.activation", activation)):
            if value != int(value):
                raise refuse(name, value, "a whole number of messages (the aws-sqs-queue scaler reads an integer)")
        if "queue_url" not in wake:
            raise refuse("wake.queue_url", None, "the SQS queue's URL with kind sqs")
        return {"type": "aws-sqs-queue", "name": "queue", "metricType": "AverageValue", "authenticationRef": auth,
                "metadata": {"queueURL": wake["queue_url"], "queueLength": str(int(per)),
                             "activationQueueLength": str(int(activation)), "awsRegion": source["region"],
                             # Messages being worked on count: a pod busy with them is still needed.
                             "scaleOnInFlight": "true"}}
    if wake["kind"] == "requests":
        server = wake.get("prometheus_url") or source.get("prometheus_url")
        if not server:
            raise refuse("wake.prometheus_url", None, "the Prometheus server holding the gateway's request counter, "
                                                      "here or as metrics.prometheus_url")
        query = wake.get("query")
        if query is None:
            query = gateway_requests_query(namespace, service, wake.get("period_seconds", 60))
        elif not isinstance(query, str) or not query.strip():
            raise refuse("wake.query", query, "a PromQL query of the service's request rate at the gateway")
        return {"type": "prometheus", "name": "requests", "metricType": "AverageValue", "metadata": {
            "serverAddress": server, "query": query,
            "threshold": _number(wake["per_replica"]), "activationThreshold": _number(wake["activation"])}}
    raise refuse("wake.kind", wake["kind"], "sqs or requests")


def reads_aws(keda: KedaScalingArgs, source: MetricsSource) -> bool:
    """A trigger reads AWS (CloudWatch or SQS): the ScaledObject needs the TriggerAuthentication."""
    return bool((keda["gpu_utilization"] and source["kind"] == "cloudwatch")
                or (keda["wake"] and keda["wake"]["kind"] == "sqs"))


def trigger_authentication_spec() -> dict[str, Any]:
    """AWS credentials for the scalers: the KEDA operator's own IRSA role (podIdentity `aws`, identityOwner `keda`;
    the deprecated `aws-eks` provider is not used)."""
    return {"podIdentity": {"provider": "aws", "identityOwner": "keda"}}


def scaled_object_spec(keda: KedaScalingArgs, source: MetricsSource, namespace: str, service: str, deployment: str,
                       min_replicas: int, max_replicas: int, auth_name: str | None) -> dict[str, Any]:
    """The ScaledObject's spec on the predictor's Deployment (keda.sh/v1alpha1; checked against the pinned CRD)."""
    if keda["gpu_utilization"] is None and keda["wake"] is None:
        raise refuse("keda", keda, "at least one trigger: gpu_utilization or wake")
    if min_replicas == 0 and keda["wake"] is None:
        raise refuse("min_replicas", 0, "at least 1 without a wake trigger: at zero there is no GPU to measure")
    auth = {"name": auth_name, "kind": "TriggerAuthentication"} if auth_name else None
    triggers = []
    if keda["gpu_utilization"] is not None:
        triggers.append(gpu_trigger(keda["gpu_utilization"], source, namespace, service, auth))
    if keda["wake"] is not None:
        triggers.append(wake_trigger(keda["wake"], source, auth, namespace, service))
    for t in triggers:  # only the AWS scalers take the authentication
        if t.get("authenticationRef") is None:
            t.pop("authenticationRef", None)
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
        "minReplicaCount": min_replicas, "maxReplicaCount": max_replicas,
        "pollingInterval": keda["polling_interval_seconds"], "cooldownPeriod": keda["cooldown_period_seconds"],
        "triggers": triggers,
    }
    if keda["behavior"] is not None:
        spec["advanced"] = {"horizontalPodAutoscalerConfig": {"behavior": hpa_behavior(keda["behavior"])}}
    return spec
