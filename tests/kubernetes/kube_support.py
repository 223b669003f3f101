"""Checks for what the program declares on the Kubernetes side, without an API server: objects against the
Kubernetes OpenAPI schema of the stack's version (kubernetes-validate), Helm values against the pinned chart's
recorded value paths (components/upstream/*.json, from scripts/upstream_facts.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
from kubernetes_validate.utils import all_versions

from gpuscale.components.charts import upstream_facts
from gpuscale.plan.model import Plan, PlannedResource

UNKNOWN = "(known after apply)"


def schema_version(kubernetes_minor: str) -> str:
    """The newest schema kubernetes-validate ships for a minor ("1.33" -> "1.33.0")."""
    versions = [v for v in all_versions() if v.rsplit(".", 1)[0] == kubernetes_minor]
    assert versions, f"kubernetes-validate ships no schema for Kubernetes {kubernetes_minor}"
    return max(versions, key=lambda v: int(v.rsplit(".", 1)[1]))


def validate_object(obj: dict[str, Any], kubernetes_minor: str) -> None:
    """Raise kubernetes_validate's error if `obj` is not a valid object of its kind at that version (strict: unknown
    fields fail too). Values only known after apply are replaced by a placeholder of the same JSON type first."""
    kubernetes_validate.validate(_known(obj), schema_version(kubernetes_minor), strict=True)


def known(value: Any) -> Any:
    """`value` with every value only known after apply replaced by a string, the JSON type such inputs have."""
    return _known(value)


def _known(value: Any) -> Any:
    if value == UNKNOWN:
        return "unknown-after-apply"
    if isinstance(value, dict):
        return {k: _known(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_known(v) for v in value]
    return value


def subtree(plan: Plan, root: PlannedResource) -> list[PlannedResource]:
    """Every resource below `root` in a plan (its whole subtree)."""
    found, frontier = [], [root.urn]
    while frontier:
        kids = plan.children(frontier.pop())
        found += kids
        frontier += [k.urn for k in kids]
    return found


def value_paths(values: Any, prefix: str = "") -> Iterator[str]:
    """Every key path a values mapping sets ("a.b.c"); lists and scalars end a path."""
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from value_paths(value, path + ".")
        else:
            yield path


def unknown_chart_values(values: dict[str, Any], facts_name: str, chart: str | None = None) -> list[str]:
    """The value paths the chart does not have: neither in its values.yaml nor under a map it renders whole. `chart`
    names one chart of a facts file that records several (kserve: "kserve", "kserve-crd")."""
    facts = upstream_facts(facts_name)
    if chart is not None:
        facts = facts["charts"][chart]
    known, free = set(facts["valuePaths"]), facts["freeFormValues"]
    return [p for p in value_paths(values)
            if p not in known and not any(p.startswith(f + ".") for f in free)]


def project_with_stack_lines(project: Path, root: Path, stack: str, marker: str, added: str) -> Path:
    """A copy of the project at `root` in `project` (every entry linked but the stacks) whose stack file has `added`
    after `marker`: the program itself, planned offline with one setting more."""
    for entry in root.iterdir():
        if entry.name not in ("stacks", ".git"):
            (project / entry.name).symlink_to(entry)
    (project / "stacks").mkdir()
    text = (root / "stacks" / f"Pulumi.{stack}.yaml").read_text()
    assert marker in text, f"{marker!r} is not in the {stack} stack file"
    (project / "stacks" / f"Pulumi.{stack}.yaml").write_text(text.replace(marker, marker + added))
    return project
