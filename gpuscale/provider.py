"""gpuscale's components for TypeScript, Go, C#, Java and YAML programs, through Pulumi's Python component provider
host (`pulumi.provider.experimental`).

`provider/` at the top of this repository is the plugin a consumer adds with `pulumi package add` (a local path or
`github.com/<owner>/<repo>/provider@<tag>`): its PulumiPlugin.yaml says the plugin is Python, its __main__.py calls
`main()` here (what `component_provider_host` does, with the analyzer below), and its requirements.txt installs this package into the plugin's environment. The host infers the
package schema from the components' type annotations and the docstrings under each Args field and output (the same
docstrings help() shows, components/_docs.py), generates the consumer's SDK from it, and constructs the Python
components when the consumer's program declares them.

`schema()` returns the schema the host publishes, without the Pulumi CLI, for the tests and for reading.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

PACKAGE = "gpuscale"
"""The Pulumi package name: type tokens are `gpuscale:index:<Component>`, as each component registers itself."""

COMPONENT_MODULES = (
    "network", "node_role", "eks_cluster", "existing_cluster", "gpu_node_group", "gpu_asg", "agent_bundle",
    "gpu_scaling_policies", "gpu_alarms", "gpu_alert_topic", "gpu_dashboard", "irsa_role", "cluster_autoscaler",
    "nvidia_device_plugin", "agent_image", "agent_daemonset", "signal_queue", "gpu_headroom",
    "vertical_pod_autoscaler",
    "local_model_cache",
    "cert_manager", "knative_serving", "kserve", "keda", "model_service", "model_bucket",
    "efs_model_cache",
)
"""Modules of gpuscale.components whose component the package exposes (one component per module): every one but
PYTHON_ONLY's. Their Args keep to what the host can describe: TypedDicts, no unions (ModelService's scaling is one
optional object per scaling mode), each nested Args type named once in the package."""


PYTHON_ONLY = ("platform",)
"""GpuPlatform takes the typed stack config (gpuscale.config.StackConfig, nested dataclasses with unions), which no
schema type describes: other languages compose the components it is made of."""


def components() -> list[type]:
    """The exposed component classes, in COMPONENT_MODULES order."""
    import pulumi

    found = []
    for name in COMPONENT_MODULES:
        module = importlib.import_module(f"gpuscale.components.{name}")
        own = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, pulumi.ComponentResource)
               and v.__module__ == module.__name__]
        if len(own) != 1:
            raise RuntimeError(f"gpuscale.components.{name} defines {len(own)} components; expected one")
        found.extend(own)
    return found


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return installed_version(PACKAGE)
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0.0.0"


def provider() -> Any:
    """The host's ComponentProvider for the components; its analysis of them is the schema it serves."""
    from pulumi.provider.experimental import component as host
    from pulumi.provider.experimental.analyzer import Analyzer

    class InheritedDocsAnalyzer(Analyzer):
        """The host's analyzer, also finding the docstrings of outputs a component inherits (EksCluster's and
        ExistingCluster's ClusterOutputs): the SDK's looks only in the component's own class body, and would publish
        those outputs undescribed."""

        def get_docstring(self, typ: type, name: str) -> str | None:
            for cls in getattr(typ, "__mro__", (typ,)):
                if cls.__module__.startswith("gpuscale."):
                    doc = super().get_docstring(cls, name)
                    if doc is not None:
                        return doc
            return None

    # ComponentProvider builds its analyzer from this module global; swapped only while ours are analysed.
    original = host.Analyzer
    host.Analyzer = InheritedDocsAnalyzer
    try:
        return host.ComponentProvider(components(), PACKAGE, version=version())
    finally:
        host.Analyzer = original


def schema() -> dict[str, Any]:
    """The package schema the component provider host publishes (what `pulumi package get-schema` prints)."""
    return json.loads(provider().schema)


def main() -> None:
    """Serve the components, as `component_provider_host` does: the engine passes its address in argv."""
    import sys

    from pulumi.provider import main as serve

    serve(provider(), sys.argv[1:])
