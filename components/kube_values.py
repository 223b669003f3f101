"""Rules for values Kubernetes objects take, shared by the stack config and the components that use them.
Pure data, so the config reads them without importing Pulumi."""

from __future__ import annotations

import re

QUANTITY_PATTERN = r"\d+(\.\d+)?(m|Ki|Mi|Gi)?"
"""A Kubernetes resource quantity as gpuscale writes them: "50m", "1", "64Mi"."""
DNS_LABEL_PATTERN = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
"""A DNS-1123 label (RFC 1123), as Kubernetes names namespaces and services."""
DNS_SUBDOMAIN_PATTERN = r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?"
"""A DNS-1123 subdomain, as Kubernetes names most objects (service accounts, config maps)."""
IMAGE_PATTERN = r"[a-z0-9][a-z0-9._/:-]*(@sha256:[0-9a-f]{64})?"


def is_pinned_image(reference: str) -> bool:
    """A container image reference with a tag or a digest: no implicit :latest, so every node runs the same image."""
    return bool(re.fullmatch(IMAGE_PATTERN, reference)) and (
        "@" in reference or ":" in reference.rsplit("/", 1)[-1])
