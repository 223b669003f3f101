"""Every Helm chart the stack installs, pinned in one place, and the upstream facts recorded at those pins.

`components/upstream/*.json` holds facts derived from the upstream repositories at these versions (value key
paths, flag defaults, release tags) by `scripts/upstream_facts.py`; change a pin here, then rerun that script.
Pure data: the stack config reads it without importing Pulumi.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class Chart:
    repo: str
    """The Helm repository's URL; an `oci://` registry path for charts published as OCI artifacts."""
    name: str
    version: str

    @property
    def oci(self) -> bool:
        """Published to an OCI registry: Helm takes `oci://<registry path>/<name>` as the chart, no repository."""
        return self.repo.startswith("oci://")


CHARTS = {
    "cluster-autoscaler": Chart("https://kubernetes.github.io/autoscaler", "cluster-autoscaler", "9.59.0"),
    "nvidia-device-plugin": Chart("https://nvidia.github.io/k8s-device-plugin", "nvidia-device-plugin", "0.20.0"),
    # The serving layer (issue 14). KServe v0.16.0: built against Kubernetes 1.33's API (k8s.io/api v0.33) and the
    # first release whose deployment modes are named Knative and Standard; its CRDs (InferenceService, serving
    # runtimes, LocalModelCache / LocalModelNodeGroup for the model cache) ship as a chart of their own.
    "kserve-crd": Chart("oci://ghcr.io/kserve/charts", "kserve-crd", "v0.16.0"),
    "kserve": Chart("oci://ghcr.io/kserve/charts", "kserve", "v0.16.0"),
    # Knative Serving through its operator: the chart installs the operator, a KnativeServing resource the
    # serving release (KNATIVE_SERVING_VERSION) with Kourier and the cluster-wide autoscaler settings. The index
    # names each release v<version> (hack/find_helm_chart_releases_and_create_helm_index.sh).
    "knative-operator": Chart("https://knative.github.io/operator", "knative-operator", "v1.18.3"),
    # KServe's webhooks get their serving certificates from cert-manager (its chart's Certificate and
    # cert-manager.io/inject-ca-from), in both modes; v1.17 is what KServe v0.16 is tested with (kserve-deps.env).
    "cert-manager": Chart("https://charts.jetstack.io", "cert-manager", "v1.17.4"),
    "keda": Chart("https://kedacore.github.io/charts", "keda", "2.17.2"),
    # In-place vertical scaling of model services (issue 15): the VPA's own chart, released from kubernetes/autoscaler
    # (vertical-pod-autoscaler/charts, tag vertical-pod-autoscaler-chart-<version>) to the same index as
    # cluster-autoscaler's. 0.11.0 runs VPA 1.7.1 (VPA_VERSION), where InPlaceOrRecreate is GA with no feature gate.
    "vertical-pod-autoscaler": Chart("https://kubernetes.github.io/autoscaler", "vertical-pod-autoscaler", "0.11.0"),
}

KNATIVE_SERVING_VERSION = "1.18.2"
"""The Knative Serving release the KnativeServing resource asks the operator for (spec.version; the operator at
CHARTS["knative-operator"] bundles 1.15-1.18). Same minor as the simulator's KPA model (gpuscale/sim/knative.py)."""
KEDA_VERSION = "v2.17.2"
"""KEDA's release at CHARTS["keda"] (its appVersion): the ScaledObject and TriggerAuthentication CRDs and the scalers'
metadata keys are recorded at this tag. Same minor as the simulator's model (gpuscale/sim/keda.py)."""

VPA_VERSION = "1.7.1"
"""The VerticalPodAutoscaler release at CHARTS["vertical-pod-autoscaler"] (its appVersion; tag
vertical-pod-autoscaler/v1.7.1): its feature gates are recorded at this tag (upstream/vertical_pod_autoscaler.json).
InPlaceOrRecreate was alpha behind a gate in 1.4, beta on by default in 1.5, GA in 1.6 and its gate is gone in 1.7
(vertical-pod-autoscaler/docs/features.md), so the chart needs no flag for it."""

PROMETHEUS_OPERATOR_VERSION = "v0.93.0"
"""The prometheus-operator release whose ServiceMonitor CRD (monitoring.coreos.com/v1) the agent's ServiceMonitor is
checked against (recorded in upstream/prometheus_operator.json). Not installed by gpuscale: the cluster's own
operator must serve monitoring.coreos.com/v1, which every release since v0.18 does."""

DOCKER_BUILD_PROVIDER_VERSION = "0.0.22"
"""The pulumi-docker-build release (pyproject's lower bound) whose `Image` schema (argument names, nested types,
enums: upstream/docker_build.json) the tests check the planned image build against."""

DEVICE_PLUGIN_MIG_STRATEGIES = ("none", "single", "mixed")
"""The device plugin's `migStrategy` values (its README, "Configuration Option Details")."""
TIME_SLICING_MAX_REPLICAS = 64
"""A bound of ours: more pods than this on one GPU is a misconfiguration, not a use case."""
SLICING_WITH_MIXED_MIG = "1 with migStrategy: mixed (time-slicing needs none or single)"
"""What time-slicing allows with mixed MIG: the plugin's time-slicing applies per advertised resource name; with
mixed MIG each profile is its own resource, which the shared-access config cannot name generically."""


def slicing_conflicts(mig_strategy: str, time_slicing_replicas: int) -> bool:
    """Time-slicing asked for together with mixed MIG, which the device plugin cannot do."""
    return time_slicing_replicas > 1 and mig_strategy == "mixed"

AUTOSCALER_MINORS = tuple(f"1.{m}" for m in range(28, 40))
"""Kubernetes minors the stack config accepts (gpuscale:cluster.kubernetesVersion)."""


@cache
def upstream_facts(name: str) -> dict[str, Any]:
    """The recorded facts of one upstream project: "cluster_autoscaler", "nvidia_device_plugin",
    "prometheus_operator", "docker_build", "kserve", "knative_serving", "knative_operator", "keda", "keda_chart",
    "cert_manager" or "vertical_pod_autoscaler"."""
    return json.loads((resources.files(__package__) / "upstream" / f"{name}.json").read_text())


class NoAutoscalerRelease(ValueError):
    """A Kubernetes minor for which cluster-autoscaler has no release (at the pinned chart's facts)."""

    def __init__(self, kubernetes_version: str):
        tags = upstream_facts("cluster_autoscaler")["imageTags"]
        self.allowed = f"a Kubernetes minor with a cluster-autoscaler release: {', '.join(tags)}"
        super().__init__(f"kubernetes_version: {kubernetes_version!r} is not allowed; allowed: {self.allowed}")


def autoscaler_image_tag(kubernetes_version: str) -> str:
    """The cluster-autoscaler release for a cluster's Kubernetes minor: upstream supports each autoscaler minor
    only against the same Kubernetes minor, so it is derived, never chosen. NoAutoscalerRelease for a minor
    without one."""
    tags = upstream_facts("cluster_autoscaler")["imageTags"]
    if kubernetes_version not in tags:
        raise NoAutoscalerRelease(kubernetes_version)
    return tags[kubernetes_version]
