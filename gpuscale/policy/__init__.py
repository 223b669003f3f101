"""Policy as code: the rules (`rules.py`), run offline on a plan here and by CrossGuard through `pack.py`.

`evaluate` is what `gpuscale plan` runs; `pack_config` turns a stack's `gpuscale:policy` into the file that
`pulumi preview --policy-pack policy --policy-pack-config FILE` reads, so the pack judges with the same settings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..config.policy import (ADVISORY, DEFAULT_REQUIRED_TAGS, DISABLED, MANDATORY, AcceptedFinding,
                             PolicyConfig)
from .rules import RULES, Resource

STACK_SCOPE = "(stack)"
"""What a finding about the stack as a whole (the GPU budget) names instead of a resource."""


@dataclass(frozen=True)
class PolicyFinding:
    rule: str
    level: str
    """``mandatory`` or ``advisory``, from `gpuscale:policy.enforcement`."""
    resource: str
    """The resource's logical name, or `STACK_SCOPE`."""
    type: str
    message: str
    accepted: str | None = None
    """Why the stack accepts it (`gpuscale:policy.accept`), or None."""

    @property
    def blocking(self) -> bool:
        return self.level == MANDATORY and self.accepted is None

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "level": self.level, "resource": self.resource, "type": self.type,
                "message": self.message, "accepted": self.accepted}


def resources_of_plan(plan: Any) -> list[Resource]:
    """A plan's cloud resources as the rules see them (components hold no cloud object)."""
    return [Resource(r.type, r.name, r.urn, r.inputs, tuple(r.options.get("ignoreChanges", ())),
                     tuple(r.options.get("dependsOn", ()))) for r in plan.resources if r.custom]


def evaluate(resources: Sequence[Resource], settings: PolicyConfig) -> list[PolicyFinding]:
    """Every rule not disabled on every resource: the findings, mandatory first."""
    found = []
    for rule in RULES.values():
        level = settings.level(rule.name)
        if level == DISABLED:
            continue
        if rule.stack:
            hits: Iterable[tuple[Resource | None, str]] = rule.check(resources, settings)  # type: ignore[arg-type]
        else:
            hits = ((r, m) for r in resources for m in rule.check(r, settings))  # type: ignore[arg-type]
        for r, message in hits:
            name = r.name if r is not None else STACK_SCOPE
            found.append(PolicyFinding(rule.name, level, name, r.type if r is not None else "", message,
                                       settings.accepted_reason(rule.name, name)))
    return sorted(found, key=lambda f: (not f.blocking, f.accepted is not None, f.rule, f.resource))


def pack_config(settings: PolicyConfig) -> dict[str, Any]:
    """The `--policy-pack-config` document: each rule's enforcement level and the settings it reads."""
    doc: dict[str, Any] = {}
    for name in RULES:
        entry: dict[str, Any] = {
            "enforcementLevel": settings.level(name),
            "accept": [{"resource": a.resource, "reason": a.reason} for a in settings.accepted if a.rule == name],
            "requiredTags": list(settings.required_tags),
            "metricNamespaces": list(settings.metric_namespaces),
        }
        if settings.gpu_hours_per_month is not None:
            entry["gpuHoursPerMonth"] = settings.gpu_hours_per_month
        doc[name] = entry
    return doc


def settings_from_pack_config(rule: str, config: Any) -> PolicyConfig:
    """The inverse of `pack_config` for one rule: what the pack hands a rule from its config."""
    config = config or {}
    accepted = tuple(AcceptedFinding(rule, a["resource"], a["reason"]) for a in config.get("accept") or ())
    base = PolicyConfig()
    return PolicyConfig(
        enforcement={}, gpu_hours_per_month=config.get("gpuHoursPerMonth"),
        required_tags=tuple(config.get("requiredTags") or DEFAULT_REQUIRED_TAGS),
        metric_namespaces=tuple(config.get("metricNamespaces") or base.metric_namespaces), accepted=accepted)


CONFIG_SCHEMA = {
    "accept": {"type": "array", "items": {"type": "object", "properties": {
        "resource": {"type": "string"}, "reason": {"type": "string"}}, "required": ["resource", "reason"]}},
    "requiredTags": {"type": "array", "items": {"type": "string"}},
    "metricNamespaces": {"type": "array", "items": {"type": "string"}},
    "gpuHoursPerMonth": {"type": "integer", "minimum": 1},
}
"""The JSON schema of each rule's pack config properties (what `pack_config` writes)."""

__all__ = ["ADVISORY", "CONFIG_SCHEMA", "MANDATORY", "PolicyFinding", "RULES", "Resource", "evaluate",
           "pack_config", "resources_of_plan", "settings_from_pack_config"]
