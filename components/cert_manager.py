"""CertManager: cert-manager from its chart, with its CRDs. KServe's chart asks it for its webhooks' serving
certificate (a Certificate and `cert-manager.io/inject-ca-from` on every webhook configuration), in both modes."""

from collections.abc import Mapping
from typing import Any

import pulumi
from typing_extensions import NotRequired, TypedDict

from ..config.args import validate_args
from ._docs import documented
from ._helm import pinned_release
from .kube_values import read_node_selector

NAMESPACE = "cert-manager"


class CertManagerArgs(TypedDict):
    node_selector: NotRequired[Mapping[str, str]]
    """Labels of the nodes its controller, webhook and CA injector run on (the system node group). Default none."""


def cert_manager_values(args: CertManagerArgs) -> dict[str, Any]:
    """The chart's values (every key exists in the pinned chart's values.yaml, or in a map it renders whole)."""
    selector = {"kubernetes.io/os": "linux", **dict(args.get("node_selector") or {})}
    return {
        # The chart installs and upgrades the CRDs with the release; `keep` leaves them (and every certificate)
        # in place if the release is ever uninstalled.
        "crds": {"enabled": True, "keep": True},
        "nodeSelector": selector,
        "webhook": {"nodeSelector": selector},
        "cainjector": {"nodeSelector": selector},
        "startupapicheck": {"nodeSelector": selector},
    }


@documented
class CertManager(pulumi.ComponentResource):
    """cert-manager in its own namespace. Pass the stack's Kubernetes provider in `opts.providers`."""

    release_name: pulumi.Output[str]
    """The cert-manager Helm release's name."""

    def __init__(self, name: str, args: CertManagerArgs, opts: pulumi.ResourceOptions | None = None):
        validate_args("CertManager", name, args, CertManagerArgs, read_node_selector)
        super().__init__("gpuscale:index:CertManager", name, None, opts)
        # helm.v3.Release: Helm owns the CRDs (crds.enabled) and the startup check hook, which waits for the webhook.
        release = pinned_release(self, name, "cert-manager", NAMESPACE, cert_manager_values(args), opts)
        self.release_name = release.name
        self.register_outputs({"release_name": self.release_name})
