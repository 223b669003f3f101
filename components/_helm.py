"""The Helm release every add-on component declares: a chart pinned in components/charts.py, from its repository,
in its own namespace, atomic (a failed install or upgrade rolls back instead of leaving half an add-on)."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ._options import depends_on_of
from .charts import CHARTS


def pinned_release(component: pulumi.ComponentResource, name: str, chart_key: str, namespace: str,
                   values: dict[str, Any], opts: pulumi.ResourceOptions | None) -> k8s.helm.v3.Release:
    """`component`'s release `<name>-chart` of CHARTS[chart_key] (named as the chart), after what the component
    itself depends on (`opts.depends_on`)."""
    chart = CHARTS[chart_key]
    return k8s.helm.v3.Release(
        f"{name}-chart", name=chart.name, chart=chart.name, version=chart.version,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=chart.repo), namespace=namespace,
        create_namespace=True, values=values, atomic=True, timeout=600,
        opts=pulumi.ResourceOptions(parent=component, depends_on=depends_on_of(opts)))
