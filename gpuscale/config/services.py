"""Model services (`gpuscale:services`): each one KServe InferenceService on a GPU node group of the stack, its model,
its pods, and its one pod autoscaler (gpuscale/config/pod_autoscalers.py), on the serving layer of
`gpuscale:kubernetes.serving` (gpuscale/config/serving.py). Each service runs in the KServe mode its pod autoscaler
needs, whatever the serving layer's default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..components.kube_values import IMAGE_PATTERN, QUANTITY_PATTERN, is_pinned_image, progress_deadline_refusal
from ..components.serving_runtimes import runtime_image
from .caches import ModelCacheConfig, read_model_cache
from .pod_autoscalers import SERVING_MODE_OF, Scaling, at_zero_behaviour, declared_mode, read_scaling
from .reader import REQUIRED, ConfigError, Section, guarded
from .serving import ServingConfig
from .vertical import VerticalScalingConfig, read_service_vertical_scaling
from .workload import CURRENCY_PATTERN, ColdStartConfig, WorkloadConfig, _read_service_time

if TYPE_CHECKING:
    from .groups import NodeGroupConfig

SERVICE_NAME_PATTERN = r"[a-z]([-a-z0-9]{0,45}[a-z0-9])?"
SERVICE_NAME_RULE = ("a DNS-1123 label of 1 to 47 lowercase letters, digits or hyphens, starting with a letter and "
                     "not ending with a hyphen (KServe names the predictor's revision <name>-predictor-00001, which "
                     "must stay within 63 characters)")
STORAGE_URI_PATTERN = r"(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?|pvc://[a-z0-9][-a-z0-9]{0,62}(/[^\s]*)?)"
MODEL_FORMAT_PATTERN = r"[a-z][a-z0-9-]{0,62}"


def knative_installed(serving: ServingConfig, services: Sequence[ServiceConfig]) -> bool:
    """Knative Serving (and its Kourier gateway) is installed when KServe's default mode is Knative or some service
    is scaled by the KPA; otherwise the stack has no Knative at all."""
    return serving.mode == "knative" or any(s.serving_mode == "knative" for s in services)


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
    declared = declared_mode(s.section("scaling"))
    mode = SERVING_MODE_OF[declared] if declared is not None else serving.mode
    gpus, cpu, memory, lo, hi, timeout, deadline = read_service_pods(s, mode)
    if gpus > group.gpu.gpu_count:
        raise s.fail("gpus", gpus, f"at most {group.gpu.gpu_count}: node group {group.name}'s "
                                   f"{group.gpu.instance_type} has {group.gpu.gpu_count} GPU(s)")
    scaling, preset = read_scaling(s.section("scaling"), serving, lo, s.key("minReplicas"))
    workload = _read_service_workload(s.section("workload"), group, gpus, timeout, deadline, at_zero_behaviour(scaling))
    model_cache = read_model_cache(s.optional_section("modelCache"), model.storage_uri, s.key("model") + ".storageUri",
                                   group.image_volume_throughput_mibps, group.network_gbps)
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
