"""KServe: its CRDs and controller from KServe's charts, in Knative or Standard deployment mode, and the namespace
the model services run in."""

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired, TypedDict

from ..config.args import validate_args
from ..config.caches import LOCAL_MODEL_HOST_PATH
from ..config.reader import REQUIRED, Section
from ..config.serving import SERVING_MODES
from ._docs import documented
from ._options import depends_on_of
from .charts import CHARTS, Chart
from .kube_values import read_node_selector
from .labels import GPU_CLASS_LABEL, GPU_RESOURCE, GPU_TAINT_VALUE
from .pod_autoscaling import GATEWAY_INGRESS_CLASS

NAMESPACE = "kserve"
SERVICES_NAMESPACE = "gpuscale-serving"
"""Where the model services (InferenceServices, their service accounts and scalers) live: not KServe's own
namespace, whose controller and webhooks KServe excludes from injection."""
DEPLOYMENT_MODES = {"knative": "Knative", "standard": "Standard"}
"""The stack config's serving mode -> KServe's deploymentMode (pkg/constants, v0.16 names)."""


class KServeArgs(TypedDict):
    mode: str
    """KServe's default deploymentMode, for InferenceServices that name none: ``knative`` (predictors are Knative
    services: KPA, activator, scale to zero that queues) or ``standard`` (plain Deployments, scaled by an HPA or
    KEDA). Each ModelService names its own (its serving_mode), so one cluster may run both."""
    knative: NotRequired[bool]
    """Knative Serving (with Kourier) is installed for some services although the default mode is standard: KServe
    then writes no Istio VirtualService for them (Kourier routes Knative services). Default false; implied by mode
    knative."""
    node_selector: NotRequired[Mapping[str, str]]
    """Labels of the nodes KServe's controller runs on (the system node group). Default none."""
    local_model_nodes: NotRequired[Sequence[Mapping[str, str]]]
    """Node selectors of the GPU node groups that keep a local model cache (LocalModelCache): turns on the chart's
    local model controller and runs its node agent on those nodes. Default none: the cache is off."""
    ingress: NotRequired[bool]
    """Standard mode: give each InferenceService an Ingress of KServe's default class (istio, the platform team's
    Istio ingress gateway), so that a gateway counts its requests (a `requests` wake). Default false: no Ingress."""


def check_args(s: Section) -> None:
    """The rules of KServeArgs: the stack config's serving mode, and a node selector."""
    s.str("mode", choices=SERVING_MODES)
    read_node_selector(s)
    for entry in s.sections("local_model_nodes", []):
        # Each a GPU node group's selector (with its GPU class), as the LocalModelNodeGroup's.
        read_node_selector(Section({"node_selector": entry.data}, entry.path, where=entry.where),
                           default=REQUIRED, requires=GPU_CLASS_LABEL)
    s.bool("ingress", False)
    s.bool("knative", False)


def kserve_values(args: KServeArgs) -> dict[str, Any]:
    """The controller chart's values (every key exists in the pinned chart's values.yaml, or a map it renders
    whole)."""
    gateway: dict[str, Any] = {
        # Knative services route through Kourier, not Istio: no VirtualService for the top-level host.
        "disableIstioVirtualHost": args["mode"] == "knative" or args.get("knative", False),
        # Standard-mode services: no Ingress object (no ingress controller is installed; clients reach the
        # predictor's Service in the cluster, or through an ingress the platform team adds), unless a service is
        # woken by the gateway's request count: then an Ingress of the class the default wake query counts (istio,
        # spelled out rather than left to the chart's default) routes through the platform's Istio ingress gateway.
        # Only Standard InferenceServices read this key (kube_ingress_reconciler.go, httproute_reconciler.go at
        # v0.16.0); Knative ones are routed by Knative whatever it says.
        "disableIngressCreation": not args.get("ingress", False),
    }
    if args.get("ingress", False):
        gateway["ingressGateway"] = {"className": GATEWAY_INGRESS_CLASS, "enableGatewayApi": False}
    return {"kserve": {"controller": {
        "deploymentMode": DEPLOYMENT_MODES[args["mode"]],
        "gateway": gateway,
        "nodeSelector": dict(args.get("node_selector") or {}),
    }, **local_model_values(args)}}


def local_model_values(args: KServeArgs) -> dict[str, Any]:
    """`kserve.localmodel` when a GPU node group keeps a local model cache (none otherwise: the chart's default,
    off)."""
    nodes = args.get("local_model_nodes") or []
    return {"localmodel": agent_values(nodes)} if nodes else {}


def selector_term(node_selector: Mapping[str, str]) -> dict[str, Any]:
    """A node selector as a node affinity term (every label must match)."""
    return {"matchExpressions": [{"key": k, "operator": "In", "values": [v]} for k, v in sorted(node_selector.items())]}


def agent_values(node_selectors: Sequence[Mapping[str, str]]) -> dict[str, Any]:
    """The KServe chart's `kserve.localmodel` values: controller and node agent on, the agent on the cache node
    groups' nodes only (one affinity term per group: any may match) and tolerating their GPU taint."""
    return {"enabled": True, "agent": {
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [selector_term(s) for s in node_selectors]}}},
        "tolerations": [{"key": GPU_RESOURCE, "operator": "Equal", "value": GPU_TAINT_VALUE, "effect": "NoSchedule"}],
        "hostPath": LOCAL_MODEL_HOST_PATH}}


def _release(name: str, chart: Chart, values: dict[str, Any], opts: pulumi.ResourceOptions) -> k8s.helm.v3.Release:
    # KServe publishes its charts to an OCI registry: the chart is the full oci:// reference, no repository.
    return k8s.helm.v3.Release(name, name=chart.name, chart=f"{chart.repo}/{chart.name}", version=chart.version,
                               namespace=NAMESPACE, create_namespace=True, values=values, atomic=True, timeout=600,
                               opts=opts)


@documented
class KServe(pulumi.ComponentResource):
    """KServe's CRDs (InferenceService, serving runtimes, the local model cache), its controller with the built-in
    ClusterServingRuntimes, and the services' namespace. Needs cert-manager (its webhooks' certificates) and, in
    Knative mode, Knative Serving: pass both in `opts.depends_on`, and the stack's Kubernetes provider in
    `opts.providers`."""

    services_namespace: pulumi.Output[str]
    """The namespace model services are declared in."""
    release_name: pulumi.Output[str]
    """The KServe controller's Helm release name."""

    def __init__(self, name: str, args: KServeArgs, opts: pulumi.ResourceOptions | None = None):
        validate_args("KServe", name, args, KServeArgs, check_args)
        super().__init__("gpuscale:index:KServe", name, None, opts)
        after = depends_on_of(opts)
        # helm.v3.Release for both: Helm owns the CRDs' upgrades, and the controller release's certificate and
        # webhook configurations as one unit. The CRDs are their own release so that deleting the controller never
        # deletes every InferenceService with them.
        crds = _release(f"{name}-crd", CHARTS["kserve-crd"], {}, pulumi.ResourceOptions(parent=self))
        release = _release(f"{name}-controller", CHARTS["kserve"], kserve_values(args),
                           pulumi.ResourceOptions(parent=self, depends_on=[crds, *after]))
        namespace = k8s.core.v1.Namespace(f"{name}-services-ns", metadata={
            "name": SERVICES_NAMESPACE, "labels": {"app.kubernetes.io/part-of": "gpuscale"}},
            opts=pulumi.ResourceOptions(parent=self))
        self.services_namespace = namespace.metadata.name
        self.release_name = release.name
        self.register_outputs({"services_namespace": self.services_namespace, "release_name": self.release_name})
