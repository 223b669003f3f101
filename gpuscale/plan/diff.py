"""Differences between two plans: resources added, removed, updated in place and replaced, property by property.

A change replaces a resource when it touches an input the provider cannot update in place: for pulumi-aws (bridged
from terraform-provider-aws) the properties the Terraform schema marks ForceNew / RequiresReplace, recorded as facts
in `gpuscale/data/provider_replacements.json` by `scripts/provider_facts.py`; for pulumi-kubernetes (a native
provider) an object's name and namespace and its kind's immutable fields, recorded the same way; and any input the
program itself marks `replaceOnChanges`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from .model import PLAN_FORMAT, Plan, PlannedResource
from .render import flatten, short


REPLACEMENT_FACTS = Path(__file__).parent.parent / "data" / "provider_replacements.json"


@dataclass(frozen=True)
class ResourceChange:
    resource: PlannedResource
    changes: list[tuple[str, Any, Any]] = field(default_factory=list)
    """(property path, old value, new value); a missing side is the string "(absent)"."""
    replaced_by: list[str] = field(default_factory=list)
    """Why the change replaces the resource, one reason per changed trigger ("inputs.instanceTypes[0]: ForceNew in
    terraform-provider-aws aws_eks_node_group"); empty for an update in place."""

    @property
    def replaces(self) -> bool:
        return bool(self.replaced_by)


@dataclass(frozen=True)
class PlanDiff:
    added: list[PlannedResource]
    removed: list[PlannedResource]
    changed: list[ResourceChange]

    @property
    def equal(self) -> bool:
        return not (self.added or self.removed or self.changed)

    @property
    def replaced(self) -> list[ResourceChange]:
        return [c for c in self.changed if c.replaces]

    @property
    def updated(self) -> list[ResourceChange]:
        return [c for c in self.changed if not c.replaces]

    def summary(self) -> str:
        return (f"{len(self.added)} to add, {len(self.updated)} to change, {len(self.replaced)} to replace, "
                f"{len(self.removed)} to delete")


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
    # A resource that moved (into a component) with an alias to its old URN is the same resource, as the engine
    # treats it: matched through the alias, and every URN the old plan names (parent, dependsOn, provider) read
    # through the moves, so a move alone is no change.
    moved = {alias: urn for urn, r in new_by_urn.items() if urn not in old_by_urn
             for alias in r.options.get("aliases", ()) if alias in old_by_urn}
    old_by_urn = {moved.get(urn, urn): r for urn, r in old_by_urn.items()}
    added = [r for urn, r in new_by_urn.items() if urn not in old_by_urn]
    removed = [r for urn, r in old_by_urn.items() if urn not in new_by_urn]
    changed = []
    for urn, after in new_by_urn.items():
        before = old_by_urn.get(urn)
        if before is None:
            continue
        before_view = _comparable(before, moved)
        if urn in moved.values():  # its new parent is the move itself, which the alias covers
            before_view["parent"] = after.parent
        props = _leaf_changes(before_view, _comparable(after, moved))
        if props:
            changed.append(ResourceChange(after, props, replacement_reasons(after, [p for p, _, _ in props])))
    return PlanDiff(added, removed, changed)


@lru_cache(maxsize=1)
def replacement_facts() -> dict[str, Any]:
    """The provider's replacement triggers per resource type, with their source (see the module's docstring)."""
    return json.loads(REPLACEMENT_FACTS.read_text())


def _segments(path: str) -> tuple[str, ...]:
    """A property path's names without indices, lower case (`instanceTypes[0]` -> `instancetypes`); a quoted key
    (Pulumi's `annotations["a.b/c"]`) split at its dots as the plan's flattened paths are (`annotations.a.b/c`)."""
    path = re.sub(r'\["([^"]*)"\]', r".\1", path)
    return tuple(n for n in (re.sub(r"\[\d+\]", "", s).lower() for s in path.split(".")) if n)


def _quoted(path: str) -> bool:
    """Whether a trigger ends in a quoted key (`labels["app"]`): the plan's flattened paths split keys at their dots,
    so such a trigger names exactly one leaf, never what lies "under" it (`labels.app.kubernetes.io/name` is another
    key)."""
    return path.rstrip().endswith('"]')


def _plural(name: str) -> str:
    """English plural, as the Pulumi bridge names a Terraform list block (`tag` -> `tags`, `policy` -> `policies`)."""
    if name.endswith("y") and name[-2:-1] not in "aeiou":
        return name[:-1] + "ies"
    return name + ("es" if name.endswith(("s", "x", "ch", "sh")) else "s")


def _triggered(changed: tuple[str, ...], trigger: tuple[str, ...], exact: bool = False) -> bool:
    """Whether a changed path lies at or under a trigger, each name as written or in the plural the bridge gives
    list blocks; `exact`: the changed path is the trigger itself (a quoted key)."""
    if exact:
        return changed == trigger
    return len(changed) >= len(trigger) and all(c in (t, _plural(t)) for c, t in zip(changed, trigger))


PROGRAM_TRIGGER = "replaceOnChanges in the program"


def replacement_reasons(resource: PlannedResource, paths: list[str]) -> list[str]:
    """The changed `paths` ("inputs.instanceTypes[0]") that make the provider, or the program's own
    `replaceOnChanges`, replace `resource`, each with where that rule comes from."""
    facts = replacement_facts()
    entry = facts["resources"].get(resource.type)
    if entry is not None:
        why = f"ForceNew in terraform-provider-aws {entry['terraform']}"
    else:
        entry = facts.get("kubernetes", {}).get("resources", {}).get(resource.type)
        why = f"replaced on change by pulumi-kubernetes {facts['kubernetes']['ref']}" if entry else ""
    triggers = [(_segments(t), why, False) for t in (entry or {}).get("replacedOnChange", [])]
    triggers += [(_segments(t), PROGRAM_TRIGGER, _quoted(t)) for t in resource.options.get("replaceOnChanges", [])]
    reasons = []
    for path in paths:
        if not path.startswith("inputs."):
            continue
        changed = _segments(path[len("inputs."):])
        why = next((w for t, w, exact in triggers if _triggered(changed, t, exact)), None)
        if why is not None:
            reasons.append(f"{path}: {why}")
    return reasons


def _comparable(r: PlannedResource, moved: dict[str, str]) -> dict[str, Any]:
    """What a plan says of a resource that the engine compares: its old URNs read as their new ones (`moved`),
    aliases left out (they say where it was, not what it is)."""
    options = {k: v for k, v in r.options.items() if k != "aliases"}
    if "dependsOn" in options:
        options["dependsOn"] = sorted(moved.get(u, u) for u in options["dependsOn"])
    if "provider" in options:
        options["provider"] = moved.get(options["provider"], options["provider"])
    return {"inputs": r.inputs, "options": options, "parent": moved.get(r.parent or "", r.parent)}


def _leaf_changes(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    old, new = dict(flatten(before)), dict(flatten(after))
    return [(k, old.get(k, ABSENT), new.get(k, ABSENT)) for k in sorted(old.keys() | new.keys())
            if old.get(k, ABSENT) != new.get(k, ABSENT)]


def render_diff(d: PlanDiff) -> str:
    if d.equal:
        return "No differences."
    lines = change_lines(d, 40)
    lines += ["", d.summary()]
    if d.replaced:
        lines.append(replacement_source())
    return "\n".join(lines)


def replacement_source() -> str:
    """Where the replacement marks come from, for a footnote under a diff that has some."""
    facts = replacement_facts()
    kube = facts.get("kubernetes")
    also = f", and pulumi-kubernetes's own at {kube['ref']} ({kube['commit'][:12]})" if kube else ""
    return (f"(replacements: the provider's ForceNew properties from {facts['source']} at {facts['version']}, "
            f"commit {facts['commit'][:12]}{also}; the real `pulumi preview` is the final word)")


def change_lines(d: PlanDiff, width: int) -> list[str]:
    """The diff as `+` added, `+-` replaced (with the trigger and its source), `~` updated in place, `-` deleted,
    each changed resource followed by its changed properties: the text of `gpuscale diff` and of the review."""
    lines = [f"+ {r.type}  {r.name}" for r in d.added]
    for sign, changes in (("+-", d.replaced), ("~", d.updated)):
        for c in changes:
            lines.append(f"{sign} {c.resource.type}  {c.resource.name}" + _replace_mark(c))
            lines += [f"      {path}: {short(a, width)} => {short(b, width)}" for path, a, b in c.changes]
            lines += [f"      replaced because {why}" for why in c.replaced_by]
    lines += [f"- {r.type}  {r.name}" for r in d.removed]
    return lines


def _replace_mark(c: ResourceChange) -> str:
    """How a replacement goes: the engine creates the new resource before it deletes the old one, unless the two
    cannot exist at once, which leaves a moment without either: the program marks it `deleteBeforeReplace`, or it is
    a Kubernetes object whose fixed name stays (pulumi-kubernetes's Diff then deletes first itself)."""
    if not c.replaces:
        return ""
    return "  (replace, delete first)" if _deleted_first(c) else "  (replace)"


def _deleted_first(c: ResourceChange) -> bool:
    r = c.resource
    if r.options.get("deleteBeforeReplace"):
        return True
    # pulumi-kubernetes deletes first only for a replacement its own Diff finds; one the program's replaceOnChanges
    # alone asks for is created first (and, under the same name, collides with the old object).
    if all(why.endswith(PROGRAM_TRIGGER) for why in c.replaced_by):
        return False
    metadata = r.inputs.get("metadata")
    named = metadata.get("name") if isinstance(metadata, dict) else None
    renamed = any(path in ("inputs.metadata.name", "inputs.metadata.namespace") for path, _, _ in c.changes)
    return (r.type.startswith("kubernetes:") and not r.type.startswith("kubernetes:helm.sh/")
            and isinstance(named, str) and not renamed)
