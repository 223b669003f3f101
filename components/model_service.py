"""ModelService: one model served by KServe on a GPU node group: its InferenceService (runtime or own container, GPU
requests, the node group's GPU class and taint, replicas, timeouts), a service account with an IAM role for the
storage initializer's S3 reads, and its pod autoscaling (Knative's KPA annotations, or a KEDA ScaledObject)."""

import re
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired, TypedDict

from ..config.args import validate_args, with_absent_nones
from ..config.reader import REQUIRED, Section
from ..config.groups import NAME_PATTERN as NODE_GROUP_NAME_PATTERN
from ..config.groups import NAME_RULE as NODE_GROUP_NAME_RULE
from ..config.pod_autoscalers import SCALING_MODES, SERVING_MODE_OF
from ..config.services import SERVICE_NAME_PATTERN, SERVICE_NAME_RULE, read_model, read_service_pods
from ..config.serving import SERVING_MODES
from ..config.vertical import KNATIVE_REFUSAL, read_vertical_scaling
from ._docs import documented
from ._options import depends_on_of
from .irsa_role import IrsaRole
from .kserve import DEPLOYMENT_MODES
from .kube_values import DNS_LABEL_PATTERN, read_node_selector
from .labels import GPU_CLASS_LABEL, GPU_RESOURCE, GPU_TAINT_VALUE
from .pod_autoscaling import (BehaviorArgs, KedaScalingArgs, KpaArgs, MetricsSource, kpa_annotations, reads_aws,
                              scaled_object_spec, trigger_authentication_spec)
from .vertical_pod_autoscaler import VerticalScalingArgs, resize_policy, vertical_pod_autoscaler_spec

DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
DEPLOYMENT_MODE_PATH = f'metadata.annotations["{DEPLOYMENT_MODE}"]'
"""The annotation as a Pulumi property path (its key holds dots, so it is quoted)."""
AUTOSCALER_CLASS = "serving.kserve.io/autoscalerClass"
NODE_GROUP = "serving.kserve.io/nodegroup"
"""KServe's NodeGroupAnnotationKey (pkg/constants at v0.16.0): which LocalModelNodeGroup's copy of a cached model the
predictor mounts (setLocalModelLabel)."""
S3_REGION = "serving.kserve.io/s3-region"
"""Read by KServe's credential builder from a service account with an IRSA role (s3.BuildServiceAccountEnvs)."""
IRSA_ROLE_ARN = "eks.amazonaws.com/role-arn"
CONTAINER_NAME = "kserve-container"
"""The predictor container KServe's storage initializer and runtimes expect."""
S3_URI = re.compile(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/.*)?")


class ModelContainerArgs(TypedDict):
    image: str
    """The image, with a tag or digest."""
    args: Sequence[str]
    """Its arguments (the image's entrypoint is kept)."""
    port: int
    """The port it serves HTTP on."""


class ModelArgs(TypedDict):
    storage_uri: str | None
    """s3://bucket/prefix (downloaded by KServe's storage initializer with the service's role) or pvc://claim/path;
    None only with a container that carries its model."""
    format: str | None
    """A model format a KServe runtime serves (e.g. huggingface); None with a container."""
    runtime: str | None
    """A ClusterServingRuntime by name; None: KServe picks one that serves the format."""
    container: ModelContainerArgs | None
    """A custom container serving the model instead of a KServe runtime; None uses the runtime."""


class HpaArgs(TypedDict):
    """An HPA on the agent's GPU metric; field names as gpuscale.config.pod_autoscalers.HpaScaling."""

    metric: str
    """The agent's GPU metric the HPA (through KEDA) scales on, e.g. gpu_utilization."""
    target: float
    """Percent GPU utilisation per pod."""
    behavior: BehaviorArgs | None
    """The HPA's scale-up and scale-down behavior; None keeps Kubernetes' defaults."""
    period_seconds: int
    """The window the metric is averaged over when read (GpuTriggerArgs.period_seconds)."""


class ModelServiceArgs(TypedDict):
    name: str
    """The InferenceService's name (a DNS-1123 label of at most 47 characters)."""
    namespace: str
    """Namespace of the service (kserve.SERVICES_NAMESPACE; pass the KServe component in `opts.depends_on`)."""
    serving_mode: str
    """``knative`` or ``standard``: the KServe deployment mode the stack installs."""
    model: ModelArgs
    """Where the model comes from and what serves it."""
    gpus: int
    """GPUs per pod (nvidia.com/gpu), at least 1."""
    cpu: str
    """CPU request, a Kubernetes quantity."""
    memory: str
    """Memory request and limit, a Kubernetes quantity."""
    min_replicas: int
    """0 scales to zero (needs a KPA, or a KEDA wake trigger)."""
    max_replicas: int
    """Most pods the autoscaler may run, at least min_replicas."""
    request_timeout_seconds: int
    """How long one request may take (the predictor's `timeout`; Knative's revision timeout)."""
    progress_deadline_seconds: int
    """How long a new pod may take to become ready before its rollout fails."""
    concurrency: int
    """Requests one pod serves at once (Knative's containerConcurrency)."""
    node_selector: Mapping[str, str]
    """Labels of the node group's nodes, at least the GPU class (gpuscale.io/gpu-class)."""
    scaling_mode: str
    """``kpa`` (Knative mode), ``hpa`` or ``keda`` (Standard mode): which of kpa, hpa and keda holds the pod
    autoscaler's settings (exactly that one is given)."""
    kpa: NotRequired[KpaArgs]
    """scaling_mode kpa: Knative's pod autoscaler. Given only with kpa. Default none."""
    hpa: NotRequired[HpaArgs]
    """scaling_mode hpa: an HPA on the agent's GPU metric. Given only with hpa. Default none."""
    keda: NotRequired[KedaScalingArgs]
    """scaling_mode keda: KEDA's triggers and timing. Given only with keda. Default none."""
    metrics: MetricsSource
    """Where GPU triggers read the agent's series (hpa, keda)."""
    oidc_provider_arn: pulumi.Input[str]
    """The cluster's IAM OIDC provider, trusted by the service's role (S3 models)."""
    oidc_issuer_url: pulumi.Input[str]
    """The cluster's OIDC issuer URL, the condition of the service role's trust policy."""
    tags: NotRequired[dict[str, str]]
    """Tags on the IAM role. Default none."""
    local_model_node_group: NotRequired[str]
    """The LocalModelNodeGroup of the service's own nodes (the `serving.kserve.io/nodegroup` annotation): KServe mounts
    a cached copy of the model only if a LocalModelCache of its storageUri lists this group. Set it on every service of
    a stack with a local model cache: without it KServe mounts the copy on the cache's *first* group, whose nodes the
    service may not run on. Default none."""
    vertical_scaling: NotRequired[VerticalScalingArgs | None]
    """Resize the predictor container's CPU and memory in place (a VerticalPodAutoscaler in InPlaceOrRecreate mode,
    standard mode only; the VerticalPodAutoscaler component must be installed). Default None: requests stay as set."""


def check_args(s: Section) -> None:
    """The rules of ModelServiceArgs: a `gpuscale:services` entry's (the same reading functions), before anything
    is declared."""
    s.str("name", pattern=SERVICE_NAME_PATTERN, describe=SERVICE_NAME_RULE)
    s.str("namespace", pattern=DNS_LABEL_PATTERN, describe="a Kubernetes namespace name")
    mode = s.str("serving_mode", choices=SERVING_MODES)
    allowed = tuple(m for m in SCALING_MODES if SERVING_MODE_OF[m] == mode)
    scaling_mode = s.str("scaling_mode", choices=allowed)
    read_model(s.section("model"))
    _, cpu, memory, lo, _, _, _ = read_service_pods(s, mode)
    if lo == 0 and scaling_mode == "hpa":
        s.report("min_replicas", 0, "at least 1 with hpa: at zero there is no GPU to measure")
    s.int("concurrency", min=1, max=100_000)
    read_node_selector(s, default=REQUIRED, requires=GPU_CLASS_LABEL)
    # One settings object per mode rather than a union (Pulumi's component host, which serves ModelService to other
    # languages, has no union types): exactly the scaling mode's is given. Its values are checked as the
    # ScaledObject or the annotations are built, before any child.
    for settings in SCALING_MODES:
        if settings == scaling_mode:
            s.input(settings)
        elif s.has(settings):
            s.report(settings, s.raw(settings), f"only {scaling_mode}'s settings with scaling_mode {scaling_mode} "
                                        f"({', '.join(SCALING_MODES)}: one object each)")
    s.input("metrics")
    s.input("oidc_provider_arn")
    s.input("oidc_issuer_url")
    s.input("tags", {})
    s.str("local_model_node_group", None, pattern=NODE_GROUP_NAME_PATTERN, describe=NODE_GROUP_NAME_RULE)
    vertical = s.optional_section("verticalScaling")
    if vertical is not None and mode != "standard":
        s.report("vertical_scaling", dict(vertical.data), KNATIVE_REFUSAL)
    elif vertical is not None:
        read_vertical_scaling(vertical, cpu, memory)
        vertical.finish()


def keda_args(args: ModelServiceArgs) -> KedaScalingArgs | None:
    """The ScaledObject's settings: keda as given; hpa as a ScaledObject with only the GPU trigger (KEDA creates the
    HPA with that behavior and serves its external metric); None for kpa."""
    if args["scaling_mode"] == "keda":
        return args["keda"]
    if args["scaling_mode"] == "hpa":
        hpa = args["hpa"]
        return {"gpu_utilization": {"metric": hpa["metric"], "target": hpa["target"],
                                    "period_seconds": hpa["period_seconds"]}, "wake": None,
                # Never at zero (min >= 1): polling and cooldown only govern 0 <-> 1, so KEDA's defaults stand.
                "polling_interval_seconds": 30, "cooldown_period_seconds": 300, "behavior": hpa["behavior"]}
    return None


def s3_statements(storage_uri: str) -> list[dict[str, Any]]:
    """Read the model's objects, and list only under its prefix (the storage initializer lists, then downloads)."""
    match = S3_URI.fullmatch(storage_uri)
    assert match is not None
    bucket, prefix = match.group(1), (match.group(2) or "/").strip("/")
    objects = f"arn:aws:s3:::{bucket}/{prefix}/*" if prefix else f"arn:aws:s3:::{bucket}/*"
    listing: dict[str, Any] = {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": f"arn:aws:s3:::{bucket}"}
    if prefix:
        listing["Condition"] = {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}}
    return [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": objects}, listing]


def predictor_resources(args: ModelServiceArgs) -> dict[str, Any]:
    gpus = str(args["gpus"])
    # GPUs: request = limit (an extended resource cannot be overcommitted). Memory limited at the request, so a
    # leaking server is restarted instead of pushing a neighbour out; CPU unlimited, to use what the node has spare.
    return {"requests": {"cpu": args["cpu"], "memory": args["memory"], GPU_RESOURCE: gpus},
            "limits": {"memory": args["memory"], GPU_RESOURCE: gpus}}


def inference_service(args: ModelServiceArgs, service_account: pulumi.Input[str]) -> dict[str, Any]:
    """The InferenceService's metadata annotations and spec (serving.kserve.io/v1beta1; checked against the pinned
    CRD in tests)."""
    knative = args["serving_mode"] == "knative"
    annotations = {DEPLOYMENT_MODE: DEPLOYMENT_MODES[args["serving_mode"]]}
    if knative:
        annotations.update(kpa_annotations(args["kpa"], args["progress_deadline_seconds"]))
    else:
        # KEDA's ScaledObject (and the HPA it creates) owns the replicas: KServe creates no HPA of its own.
        annotations[AUTOSCALER_CLASS] = "external"
    if args.get("local_model_node_group"):
        annotations[NODE_GROUP] = args["local_model_node_group"]  # type: ignore[assignment]
    m = args["model"]
    predictor: dict[str, Any] = {
        "minReplicas": args["min_replicas"], "maxReplicas": args["max_replicas"],
        "timeout": args["request_timeout_seconds"], "serviceAccountName": service_account,
        "nodeSelector": dict(args["node_selector"]),
        # Exactly the taint the GPU node groups carry.
        "tolerations": [{"key": GPU_RESOURCE, "operator": "Equal", "value": GPU_TAINT_VALUE, "effect": "NoSchedule"}],
    }
    if knative:
        predictor["containerConcurrency"] = args["concurrency"]
    if m["container"] is None:
        model: dict[str, Any] = {"modelFormat": {"name": m["format"]}, "storageUri": m["storage_uri"],
                                 "resources": predictor_resources(args)}
        if args.get("vertical_scaling"):
            model["resizePolicy"] = resize_policy(args["vertical_scaling"])  # type: ignore[arg-type]
        if m["runtime"] is not None:
            model["runtime"] = m["runtime"]
        predictor["model"] = model
    else:
        c = m["container"]
        container: dict[str, Any] = {"name": CONTAINER_NAME, "image": c["image"], "args": list(c["args"]),
                                     "ports": [{"containerPort": c["port"], "protocol": "TCP"}],
                                     "resources": predictor_resources(args)}
        if args.get("vertical_scaling"):
            container["resizePolicy"] = resize_policy(args["vertical_scaling"])  # type: ignore[arg-type]
        if m["storage_uri"] is not None:
            # KServe's storage initializer downloads STORAGE_URI into /mnt/models for a custom container too.
            container["env"] = [{"name": "STORAGE_URI", "value": m["storage_uri"]}]
        predictor["containers"] = [container]
    return {"annotations": annotations, "spec": {"predictor": predictor}}


@documented
class ModelService(pulumi.ComponentResource):
    """An InferenceService with its service account (and IRSA role for an S3 model) and, in Standard mode, a KEDA
    ScaledObject (with a TriggerAuthentication when a trigger reads AWS). Pass the stack's Kubernetes provider in
    `opts.providers`, and the serving platform (KServe, KEDA) in `opts.depends_on`."""

    inference_service_name: pulumi.Output[str]
    """The InferenceService's name."""
    role_arn: pulumi.Output[str] | None
    """The service account's IAM role (S3 models), None for volume or container models."""

    def __init__(self, name: str, args: ModelServiceArgs, opts: pulumi.ResourceOptions | None = None):
        # Other languages may leave out what Python writes as None (the host publishes it as optional).
        args = with_absent_nones(args, ModelServiceArgs)
        validate_args("ModelService", name, args, ModelServiceArgs, check_args)
        super().__init__("gpuscale:index:ModelService", name, None, opts)
        keda = keda_args(args)
        namespace, service = args["namespace"], args["name"]
        deployment = f"{service}-predictor"  # KServe's predictor name (constants.PredictorServiceName)
        auth_name = f"{service}-aws" if keda is not None and reads_aws(keda, args["metrics"]) else None
        # Built (and so checked) before any child is declared.
        scaler = scaled_object_spec(keda, args["metrics"], namespace, service, deployment, args["min_replicas"],
                                    args["max_replicas"], auth_name) if keda is not None else None
        after = depends_on_of(opts)
        uri = args["model"]["storage_uri"]
        account_name = f"{service}-predictor"
        role = IrsaRole(f"{name}-irsa", {
            "oidc_provider_arn": args["oidc_provider_arn"], "oidc_issuer_url": args["oidc_issuer_url"],
            "namespace": namespace, "service_account": account_name,
            "statements": s3_statements(uri), "description": f"model service {service}: read its model from S3",
            "tags": args.get("tags")}, opts=pulumi.ResourceOptions(parent=self)) \
            if uri is not None and uri.startswith("s3://") else None
        account_annotations: dict[str, pulumi.Input[str]] = {}
        if role is not None:
            account_annotations = {IRSA_ROLE_ARN: role.role_arn, S3_REGION: args["metrics"]["region"]}
        account = k8s.core.v1.ServiceAccount(f"{name}-sa", metadata={
            "name": account_name, "namespace": namespace, "annotations": account_annotations},
            # The model server calls no Kubernetes API; the IRSA webhook still projects its AWS token.
            automount_service_account_token=False, opts=pulumi.ResourceOptions(parent=self, depends_on=after))
        body = inference_service(args, account.metadata.name)
        isvc = k8s.apiextensions.CustomResource(
            f"{name}-isvc", api_version="serving.kserve.io/v1beta1", kind="InferenceService",
            metadata={"name": service, "namespace": namespace, "annotations": body["annotations"]},
            spec=body["spec"], opts=pulumi.ResourceOptions(
                parent=self, depends_on=[*after, account],
                # KServe's webhook refuses a new deploymentMode once the status records one
                # (validateDeploymentMode, pkg/apis/serving/v1beta1/inference_service_validation.go at v0.16.0): a
                # service moved between kpa and hpa/keda is a new InferenceService, the old one gone first (its
                # name is fixed). The service serves nothing in between.
                replace_on_changes=[DEPLOYMENT_MODE_PATH], delete_before_replace=True))
        if scaler is not None:
            if auth_name is not None:
                k8s.apiextensions.CustomResource(
                    f"{name}-auth", api_version="keda.sh/v1alpha1", kind="TriggerAuthentication",
                    metadata={"name": auth_name, "namespace": namespace}, spec=trigger_authentication_spec(),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=after))
            k8s.apiextensions.CustomResource(
                f"{name}-scaler", api_version="keda.sh/v1alpha1", kind="ScaledObject",
                metadata={"name": service, "namespace": namespace}, spec=scaler,
                # After the InferenceService: its Deployment is what the ScaledObject scales.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*after, isvc]))
        vertical = args.get("vertical_scaling")
        if vertical:
            k8s.apiextensions.CustomResource(
                f"{name}-vpa", api_version="autoscaling.k8s.io/v1", kind="VerticalPodAutoscaler",
                metadata={"name": service, "namespace": namespace},
                spec=vertical_pod_autoscaler_spec(deployment, CONTAINER_NAME, vertical),
                # After the InferenceService, whose Deployment it resizes (pass the VerticalPodAutoscaler component
                # in opts.depends_on: its CRD must exist first).
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*after, isvc]))
        self.inference_service_name = isvc.metadata["name"]
        self.role_arn = role.role_arn if role else None
        self.register_outputs({"inference_service_name": self.inference_service_name})
