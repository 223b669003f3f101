"""In-place vertical scaling of a model service (`verticalScaling:` in a `gpuscale:services` entry): its predictor
container's CPU and memory resized while it runs, without a restart, by a VerticalPodAutoscaler in
`InPlaceOrRecreate` mode bounded by a floor and a ceiling (the Sponge article: CPU and memory of an inference
server adjusted in place as its load changes, where the server is CPU-bound in pre/post-processing or
tokenization).

The rules live here once: the stack config reads a service's section with them, and ModelService reads its
`vertical_scaling` Args with the same functions (gpuscale.config.args). Facts they rest on:
- Kubernetes resizes a running container's `cpu` and `memory` only (KEP-1287, feature gate
  InPlacePodVerticalScaling: alpha in 1.27 and off by default, beta and on by default in 1.33, GA in 1.35). An
  extended resource such as `nvidia.com/gpu` is fixed for the life of a pod: a different GPU count is a new pod.
- The VPA's InPlaceOrRecreate mode needs a VPA release that has it (1.4 alpha behind a gate, 1.5 beta, GA since 1.6;
  the chart gpuscale pins runs components.charts.VPA_VERSION) and a cluster of 1.33 or later
  (vertical-pod-autoscaler/docs/installation.md).
- Only KServe's Standard mode: in Knative mode the predictor's Deployment is a revision's
  (`<name>-predictor-00001-deployment`, renamed by every new revision, knative/serving
  pkg/reconciler/revision/resources/names), and Knative's webhook does not accept a container `resizePolicy`
  (pkg/apis/serving/fieldmask.go ContainerMask keeps no such field).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..components.kube_values import QUANTITY_PATTERN, quantity_value
from .reader import REQUIRED, ConfigError, Section

VERTICAL_RESOURCES = ("cpu", "memory")
"""What a container can be resized in place (KEP-1287), and what a VerticalPodAutoscaler recommends."""
GPU_RESOURCE_NAMES = ("nvidia.com/gpu", "gpu", "gpus")
"""Names a config may use for the GPUs; refused with the reason rather than as an unknown resource."""
MEMORY_RESTART_POLICIES = ("NotRequired", "RestartContainer")
"""A container's resizePolicy restartPolicy values (core/v1 ContainerResizePolicy)."""
INPLACE_RESIZE_MIN_KUBERNETES = "1.33"
"""The first Kubernetes minor whose InPlacePodVerticalScaling gate is on by default (beta in 1.33; alpha from 1.27,
off unless a cluster's control plane and kubelets enable it, which EKS does not let a user do)."""
GPU_REFUSAL = ("cpu and/or memory: GPUs (nvidia.com/gpu) cannot be resized in place (Kubernetes resizes only a "
               "running container's cpu and memory; a different GPU count is a new pod: set gpus instead)")
KNATIVE_REFUSAL = ("verticalScaling only with KServe's standard serving mode (a service scaled by hpa or keda): in "
                   "knative mode (kpa) the predictor's "
                   "Deployment belongs to a revision and is renamed by each new one (a VerticalPodAutoscaler "
                   "aimed at it stops applying), and Knative refuses a container resizePolicy")


@dataclass(frozen=True)
class VerticalScalingConfig:
    """The floor and ceiling a VerticalPodAutoscaler keeps the predictor container within, and what it resizes."""

    min_cpu: str
    """The least CPU the VPA sets (a Kubernetes quantity), at most the service's cpu request."""
    max_cpu: str
    """The most CPU the VPA sets, at least the service's cpu request."""
    min_memory: str
    """The least memory the VPA sets (request and limit: the predictor's memory limit is its request)."""
    max_memory: str
    """The most memory the VPA sets, at least the service's memory request."""
    controlled_resources: tuple[str, ...]
    """Resources the VPA resizes: cpu and/or memory. Default both."""
    memory_restart_policy: str
    """The container's resizePolicy for memory: NotRequired (resized in the running process) or RestartContainer
    (the container restarts with the new size, for a server that sizes itself at start). CPU is always
    NotRequired: a CPU change is a cgroup quota change no process needs to see."""


def inplace_resize_refusal(kubernetes_version: str | None) -> str | None:
    """What the cluster's Kubernetes minor must be for in-place resize when `kubernetes_version` is not it, else
    None: one home of the rule, for the stack config (gpuscale:cluster.kubernetesVersion) and VerticalPodAutoscaler's
    Args."""
    want = tuple(int(p) for p in INPLACE_RESIZE_MIN_KUBERNETES.split("."))
    if kubernetes_version is not None and re.fullmatch(r"1\.\d+", kubernetes_version) and \
            tuple(int(p) for p in kubernetes_version.split(".")) >= want:
        return None
    return (f"{INPLACE_RESIZE_MIN_KUBERNETES} or later with a service's verticalScaling: in-place pod resize "
            "(InPlacePodVerticalScaling) is alpha and off by default before 1.33, and the VPA's InPlaceOrRecreate "
            "mode needs it")


def read_vertical_scaling(s: Section, cpu: Any, memory: Any, node_vcpus: int | None = None,
                          node_memory_mib: int | None = None) -> VerticalScalingConfig:
    """One service's in-place vertical scaling: bounds that bracket its own `cpu` and `memory` requests (and fit its
    node, when the node's vCPUs and memory are known), resources to resize (never GPUs), the memory resize
    policy."""
    rule = "a Kubernetes {} quantity such as {}"
    min_cpu = s.str("minCpu", cpu, pattern=QUANTITY_PATTERN, describe=rule.format("CPU", "500m or 4"))
    max_cpu = s.str("maxCpu", REQUIRED, pattern=QUANTITY_PATTERN, describe=rule.format("CPU", "500m or 4"))
    min_memory = s.str("minMemory", memory, pattern=QUANTITY_PATTERN, describe=rule.format("memory", "16Gi"))
    max_memory = s.str("maxMemory", REQUIRED, pattern=QUANTITY_PATTERN, describe=rule.format("memory", "32Gi"))
    resources = read_controlled_resources(s)
    policy = s.str("memoryRestartPolicy", "NotRequired", choices=MEMORY_RESTART_POLICIES)
    for low_key, low, high_key, high, request_key, request in (
            ("minCpu", min_cpu, "maxCpu", max_cpu, "cpu", cpu),
            ("minMemory", min_memory, "maxMemory", max_memory, "memory", memory)):
        if not all(isinstance(q, str) and re.fullmatch(QUANTITY_PATTERN, q) for q in (low, high, request)):
            continue  # a bad quantity was reported where it was read
        if quantity_value(low) > quantity_value(request):
            s.report(low_key, low, f"at most the service's {request_key} request ({request}): the VPA's floor "
                                   "must let the pod keep what it starts with")
        if quantity_value(high) < quantity_value(request):
            s.report(high_key, high, f"at least the service's {request_key} request ({request}): the VPA's "
                                     "ceiling must let the pod keep what it starts with")
    if node_vcpus is not None and isinstance(max_cpu, str) and re.fullmatch(QUANTITY_PATTERN, max_cpu) and \
            quantity_value(max_cpu) > node_vcpus:
        s.report("maxCpu", max_cpu, f"at most {node_vcpus}: the node group's instance type has {node_vcpus} vCPUs "
                                    "(a resize beyond the node's allocatable is infeasible)")
    if node_memory_mib is not None and isinstance(max_memory, str) and \
            re.fullmatch(QUANTITY_PATTERN, max_memory) and quantity_value(max_memory) > node_memory_mib * 2**20:
        s.report("maxMemory", max_memory, f"at most {node_memory_mib}Mi: the node group's instance type has "
                                          f"{node_memory_mib} MiB of memory")
    return VerticalScalingConfig(min_cpu, max_cpu, min_memory, max_memory, resources, policy)


def read_controlled_resources(s: Section) -> Any:
    """The resources to resize in place: cpu and/or memory; GPUs refused with the reason."""
    resources = s.str_list("controlledResources", VERTICAL_RESOURCES, min_items=1,
                           describe="resource names: cpu, memory")
    for i, name in enumerate(resources if isinstance(resources, tuple) else ()):
        if name in GPU_RESOURCE_NAMES:
            raise ConfigError(f"{s.key('controlledResources')}[{i}]", name, GPU_REFUSAL, s.where)
        if name not in VERTICAL_RESOURCES:
            raise ConfigError(f"{s.key('controlledResources')}[{i}]", name,
                              "one of cpu, memory (what Kubernetes resizes in place)", s.where)
    return resources


def read_service_vertical_scaling(s: Section | None, serving_mode: str, cpu: Any, memory: Any,
                                  node_vcpus: int | None = None,
                                  node_memory_mib: int | None = None) -> VerticalScalingConfig | None:
    """A `gpuscale:services` entry's `verticalScaling:` section: None when absent or `enabled: false`."""
    if s is None:
        return None
    if not s.bool("enabled", True):
        s.skip("minCpu", "maxCpu", "minMemory", "maxMemory", "controlledResources", "memoryRestartPolicy")
        s.finish()
        return None
    if serving_mode != "standard":
        raise ConfigError(s.path, dict(s.data), KNATIVE_REFUSAL, s.where)
    config = read_vertical_scaling(s, cpu, memory, node_vcpus, node_memory_mib)
    s.finish()
    return config


def check_vertical_scaling(services: Any, kubernetes_version: str | None, version_key: str) -> None:
    """Across sections: a stack whose services resize in place runs a Kubernetes minor that can
    (gpuscale:cluster.kubernetesVersion, required then for an existing cluster too)."""
    users = [service.name for service in services if service.vertical_scaling is not None]
    refusal = inplace_resize_refusal(kubernetes_version) if users else None
    if refusal is not None:
        raise ConfigError(version_key, REQUIRED if kubernetes_version is None else kubernetes_version,
                          f"{refusal} (services {', '.join(users)} set verticalScaling)")
