"""Rules for values Kubernetes objects take, shared by the stack config and the components that use them.
Pure data, so the config reads them without importing Pulumi."""

from __future__ import annotations

import re
from typing import Any

QUANTITY_PATTERN = r"\d+(\.\d+)?(m|Ki|Mi|Gi)?"
"""A Kubernetes resource quantity as gpuscale writes them: "50m", "1", "64Mi"."""
_QUANTITY_UNITS = {None: 1.0, "m": 1e-3, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30}


def quantity_value(quantity: str) -> float:
    """The number a quantity of QUANTITY_PATTERN stands for, in base units (cores, bytes): "500m" -> 0.5,
    "16Gi" -> 17179869184.0, for comparing two quantities of the same resource."""
    match = re.fullmatch(QUANTITY_PATTERN, quantity)
    if match is None:
        raise ValueError(f"{quantity!r} is not a quantity of the form {QUANTITY_PATTERN}")
    return float(quantity[:len(quantity) - len(match.group(2) or "")]) * _QUANTITY_UNITS[match.group(2)]


DNS_LABEL_PATTERN = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
"""A DNS-1123 label (RFC 1123), as Kubernetes names namespaces and services."""
DNS_SUBDOMAIN_PATTERN = r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?"
"""A DNS-1123 subdomain, as Kubernetes names most objects (service accounts, config maps)."""
LABEL_NAME_PATTERN = r"([a-z0-9.-]+/)?[A-Za-z0-9][A-Za-z0-9_.-]{0,62}"
"""A Kubernetes label name: an optional DNS-subdomain prefix and a name of at most 63 characters."""

IMAGE_PATTERN = r"[a-z0-9][a-z0-9._/:-]*(@sha256:[0-9a-f]{64})?"


def is_pinned_image(reference: str) -> bool:
    """A container image reference with a tag or a digest: no implicit :latest, so every node runs the same image."""
    return bool(re.fullmatch(IMAGE_PATTERN, reference)) and (
        "@" in reference or ":" in reference.rsplit("/", 1)[-1])


KSERVE_STANDARD_PROGRESS_DEADLINE_SECONDS = 600
"""KServe v0.16 gives a Standard (RawDeployment) predictor's Deployment a fixed progressDeadlineSeconds of 600
(pkg/controller/v1beta1/inferenceservice/reconcilers/deployment/deployment_reconciler.go, setDefaultDeploymentSpec);
the InferenceService has no field to set it. Knative mode passes any deadline on as an annotation."""


def progress_deadline_refusal(serving_mode: str, seconds: int) -> str | None:
    """What a progress deadline of `seconds` may be in `serving_mode` (knative or standard) when `seconds` is not
    allowed there, else None: the one home of the rule, called by the stack config reader (naming
    progressDeadlineSeconds) and by ModelService (naming progress_deadline_seconds)."""
    if serving_mode == "standard" and seconds != KSERVE_STANDARD_PROGRESS_DEADLINE_SECONDS:
        return (f"{KSERVE_STANDARD_PROGRESS_DEADLINE_SECONDS} in standard mode (KServe v0.16 fixes a Standard "
                "predictor's Deployment deadline at 600 s; knative mode sets any)")
    return None


def read_node_selector(s: Any, name: str = "node_selector", default: Any = None, *, requires: str | None = None) -> Any:
    """A node selector (label names to values) of a component's Args, read through its Section `s`; `requires`: a
    label the selector must name (a GPU workload's GPU class)."""
    selector = s.str_map(name, {} if default is None else default, key_pattern=LABEL_NAME_PATTERN,
                         describe="Kubernetes label names to string values")
    if requires is not None and isinstance(selector, dict) and requires not in selector:
        s.report(name, selector, f"labels including {requires} (the node group's GPU class)")
    return selector
