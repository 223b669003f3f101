"""KnativeServing: Knative Serving installed by the Knative Operator (its chart), with Kourier as the ingress and the
cluster-wide autoscaler settings (config-autoscaler) from the stack config, for KServe's Knative mode."""

from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired, TypedDict

from ..config.args import validate_args
from ..config.reader import Section
from ..config.serving import KNATIVE_KEYS, read_knative_autoscaler
from ._docs import documented
from ._options import depends_on_of
from .charts import CHARTS, KNATIVE_SERVING_VERSION

OPERATOR_NAMESPACE = "knative-operator"
NAMESPACE = "knative-serving"
"""Where the operator installs Serving (the KnativeServing resource's namespace, upstream's default)."""
KOURIER_INGRESS_CLASS = "kourier.ingress.networking.knative.dev"
"""config-network `ingress-class` for Kourier (net-kourier's ingress class, as Knative's install docs set it)."""
POD_SPEC_FEATURES = ("kubernetes.podspec-nodeselector", "kubernetes.podspec-tolerations")
"""config-features flags (disabled upstream) a revision needs for a pod spec with a node selector and tolerations:
without them Knative's webhook refuses every InferenceService that targets a GPU node group."""
DEFAULT_MAX_REVISION_TIMEOUT_SECONDS = 600
"""config-defaults max-revision-timeout-seconds upstream: a revision's request timeout may not exceed it."""


class KnativeAutoscalerArgs(TypedDict):
    """config-autoscaler, cluster-wide; field names are the stack config's (gpuscale/config/serving.py)."""

    stable_window_seconds: int
    """stable-window: the window the autoscaler averages over, 6-3600 s."""
    panic_window_percentage: float
    """panic-window-percentage: the panic window as a share of the stable window, 1-100."""
    panic_threshold_percentage: float
    """panic-threshold-percentage: demand over capacity (in %) that starts panic mode, 110-1000."""
    max_scale_up_rate: float
    """max-scale-up-rate: at most this times the ready pods after one decision (> 1)."""
    max_scale_down_rate: float
    """max-scale-down-rate: at least ready pods / this after one decision (> 1)."""
    scale_to_zero_grace_period_seconds: int
    """scale-to-zero-grace-period: how long the last pod stays after it is marked inactive (> 0)."""
    target_utilization_percentage: float
    """container-concurrency-target-percentage: the share of a pod's concurrency the autoscaler aims at (0-100]."""
    target_burst_capacity: float
    """target-burst-capacity: spare requests before the activator leaves the path; -1 keeps it always in."""
    enable_scale_to_zero: bool
    """enable-scale-to-zero."""
    allow_zero_initial_scale: bool
    """allow-zero-initial-scale: a revision may start with no pod."""


class KnativeServingArgs(TypedDict):
    autoscaler: KnativeAutoscalerArgs
    """The cluster-wide autoscaler settings."""
    max_revision_timeout_seconds: NotRequired[int]
    """config-defaults max-revision-timeout-seconds: the longest request timeout a service may set. Default 600
    (upstream's); raise it to the longest requestTimeoutSeconds of the stack's Knative services."""


def _seconds(value: int) -> str:
    return f"{value}s"


def _number(value: float) -> str:
    return f"{float(value):.10g}" if value != int(value) else f"{float(value):.1f}"


def check_args(s: Section) -> None:
    """The rules of KnativeServingArgs: the stack config's `serving.knative` bounds (Knative's own validation,
    pkg/autoscaler/config/config.go), read by the same function."""
    a = s.section("autoscaler")
    a.require(*(a.name(key) for key in KNATIVE_KEYS))
    read_knative_autoscaler(a)
    s.int("max_revision_timeout_seconds", DEFAULT_MAX_REVISION_TIMEOUT_SECONDS, min=1, max=86400)


def autoscaler_config(a: KnativeAutoscalerArgs) -> dict[str, str]:
    """config-autoscaler's keys (every one a key of upstream's ConfigMap at the pinned release), all written out so
    the plan shows the settings the cluster runs with."""
    return {
        "stable-window": _seconds(a["stable_window_seconds"]),
        "panic-window-percentage": _number(a["panic_window_percentage"]),
        "panic-threshold-percentage": _number(a["panic_threshold_percentage"]),
        "max-scale-up-rate": _number(a["max_scale_up_rate"]),
        "max-scale-down-rate": _number(a["max_scale_down_rate"]),
        "scale-to-zero-grace-period": _seconds(a["scale_to_zero_grace_period_seconds"]),
        "container-concurrency-target-percentage": _number(a["target_utilization_percentage"]),
        "target-burst-capacity": _number(a["target_burst_capacity"]),
        "enable-scale-to-zero": str(a["enable_scale_to_zero"]).lower(),
        "allow-zero-initial-scale": str(a["allow_zero_initial_scale"]).lower(),
    }


def knative_serving_spec(args: KnativeServingArgs) -> dict[str, Any]:
    """The KnativeServing resource's spec (operator.knative.dev/v1beta1; checked against the pinned CRD in tests)."""
    timeout = args.get("max_revision_timeout_seconds", DEFAULT_MAX_REVISION_TIMEOUT_SECONDS)
    return {
        "version": KNATIVE_SERVING_VERSION,
        # Kourier: Envoy with a small controller, no service mesh. The activator, not the ingress, holds requests
        # while a revision wakes from zero, so nothing heavier is needed in front of it. Its gateway Service is
        # a LoadBalancer upstream, which on EKS opens an internet-facing load balancer nobody planned: ClusterIP
        # here; expose it through the platform's own ingress or load balancer controller.
        "ingress": {"kourier": {"enabled": True, "service-type": "ClusterIP"}},
        "config": {
            "network": {"ingress-class": KOURIER_INGRESS_CLASS},
            "autoscaler": autoscaler_config(args["autoscaler"]),
            "features": {flag: "enabled" for flag in POD_SPEC_FEATURES},
            # Requests that wait out a cold start need a timeout past upstream's 600 s ceiling.
            "defaults": {"max-revision-timeout-seconds": str(max(timeout, DEFAULT_MAX_REVISION_TIMEOUT_SECONDS))},
        },
    }


@documented
class KnativeServing(pulumi.ComponentResource):
    """The Knative Operator (chart) and one KnativeServing resource: Serving at KNATIVE_SERVING_VERSION with Kourier,
    the autoscaler settings, and the pod-spec features KServe's GPU predictors need. Pass the stack's Kubernetes
    provider in `opts.providers`."""

    namespace: pulumi.Output[str]
    """The namespace Knative Serving runs in (knative-serving)."""

    def __init__(self, name: str, args: KnativeServingArgs, opts: pulumi.ResourceOptions | None = None):
        validate_args("KnativeServing", name, args, KnativeServingArgs, check_args)
        super().__init__("gpuscale:index:KnativeServing", name, None, opts)
        chart = CHARTS["knative-operator"]
        # helm.v3.Release: Helm owns the operator's CRDs and upgrades; the operator then owns Serving's objects.
        operator = k8s.helm.v3.Release(
            f"{name}-operator", name="knative-operator", chart=chart.name, version=chart.version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=chart.repo), namespace=OPERATOR_NAMESPACE,
            create_namespace=True, atomic=True, timeout=600,
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on_of(opts)))
        namespace = k8s.core.v1.Namespace(f"{name}-ns", metadata={"name": NAMESPACE},
                                          opts=pulumi.ResourceOptions(parent=self))
        # After the release: its CRD must exist before a KnativeServing can be created.
        k8s.apiextensions.CustomResource(
            f"{name}-serving", api_version="operator.knative.dev/v1beta1", kind="KnativeServing",
            metadata={"name": NAMESPACE, "namespace": NAMESPACE}, spec=knative_serving_spec(args),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[operator, namespace]))
        self.namespace = namespace.metadata.name
        self.register_outputs({"namespace": self.namespace})
