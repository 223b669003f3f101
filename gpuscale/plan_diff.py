"""Differences between two plans: resources added, removed and changed, property by property."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .plan import PLAN_FORMAT, Plan, PlannedResource
from .plan_render import flatten, short


@dataclass(frozen=True)
class ResourceChange:
    resource: PlannedResource
    changes: list[tuple[str, Any, Any]] = field(default_factory=list)
    """(property path, old value, new value); a missing side is the string "(absent)"."""


@dataclass(frozen=True)
class PlanDiff:
    added: list[PlannedResource]
    removed: list[PlannedResource]
    changed: list[ResourceChange]

    @property
    def equal(self) -> bool:
        return not (self.added or self.removed or self.changed)


ABSENT = "(absent)"


class PlanFormatError(ValueError):
    pass


def load_plan(doc: Any, source: str) -> Plan:
    if not isinstance(doc, dict) or "resources" not in doc:
        raise PlanFormatError(f"{source}: not a gpuscale plan (write one with `gpuscale plan --json PATH`)")
    if doc.get("format") != PLAN_FORMAT:
        raise PlanFormatError(f"{source}: plan format {doc.get('format')!r}; this gpuscale reads format {PLAN_FORMAT}")
    return Plan.from_json(doc)


def diff_plans(old: Plan, new: Plan) -> PlanDiff:
    old_by_urn = {r.urn: r for r in old.resources}
    new_by_urn = {r.urn: r for r in new.resources}
    added = [r for urn, r in new_by_urn.items() if urn not in old_by_urn]
    removed = [r for urn, r in old_by_urn.items() if urn not in new_by_urn]
    changed = []
    for urn, after in new_by_urn.items():
        before = old_by_urn.get(urn)
        if before is None:
            continue
        props = _leaf_changes(_comparable(before), _comparable(after))
        if props:
            changed.append(ResourceChange(after, props))
    return PlanDiff(added, removed, changed)


def _comparable(r: PlannedResource) -> dict[str, Any]:
    return {"inputs": r.inputs, "options": r.options, "parent": r.parent}


def _leaf_changes(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    old, new = dict(flatten(before)), dict(flatten(after))
    return [(k, old.get(k, ABSENT), new.get(k, ABSENT)) for k in sorted(old.keys() | new.keys())
            if old.get(k, ABSENT) != new.get(k, ABSENT)]


def render_diff(d: PlanDiff) -> str:
    if d.equal:
        return "No differences."
    lines = []
    lines += [f"+ {r.type}  {r.name}" for r in d.added]
    lines += [f"- {r.type}  {r.name}" for r in d.removed]
    for c in d.changed:
        lines.append(f"~ {c.resource.type}  {c.resource.name}")
        lines += [f"      {path}: {short(a, 40)} => {short(b, 40)}" for path, a, b in c.changes]
    lines.append(f"{len(d.added)} added, {len(d.removed)} removed, {len(d.changed)} changed")
    return "\n".join(lines)
