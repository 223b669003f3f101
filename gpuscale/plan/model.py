"""The offline plan as data: every resource the program declared, in tree order, to and from JSON.

Nothing here runs a program or imports Pulumi: the diff, the rendering, the checks and the review read plans written
earlier (`gpuscale plan --json`) through this module alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

PLAN_FORMAT = 1
"""Version of the JSON plan layout; `gpuscale diff` refuses plans of another version."""

STACK_TYPE = "pulumi:pulumi:Stack"


@dataclass(frozen=True)
class PlannedResource:
    urn: str
    type: str
    name: str
    parent: str | None
    """URN of the parent resource; None for the stack itself."""
    custom: bool
    """True for a cloud resource, False for a component (a grouping with no cloud object)."""
    inputs: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"urn": self.urn, "type": self.type, "name": self.name, "parent": self.parent,
                "custom": self.custom, "inputs": self.inputs, "options": self.options}


@dataclass(frozen=True)
class Plan:
    project: str
    stack: str
    resources: tuple[PlannedResource, ...]
    """In tree order (`in_tree_order`), whatever order they are given in."""
    outputs: dict[str, Any]

    def __post_init__(self) -> None:
        object.__setattr__(self, "resources", in_tree_order(self.resources))

    def to_json(self) -> dict[str, Any]:
        return {"format": PLAN_FORMAT, "project": self.project, "stack": self.stack,
                "resources": [r.to_json() for r in self.resources], "outputs": self.outputs}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Plan:
        resources = tuple(PlannedResource(r["urn"], r["type"], r["name"], r.get("parent"), bool(r.get("custom")),
                                          r.get("inputs") or {}, r.get("options") or {})
                          for r in doc["resources"])
        return cls(doc["project"], doc["stack"], resources, doc.get("outputs") or {})

    def by_type(self, type_: str) -> list[PlannedResource]:
        return [r for r in self.resources if r.type == type_]

    def children(self, parent_urn: str | None) -> list[PlannedResource]:
        return [r for r in self.resources if r.parent == parent_urn]


def in_tree_order(resources: Iterable[PlannedResource]) -> tuple[PlannedResource, ...]:
    """Resources depth first from the stack, each one's children ordered by (type, name).

    The mock engine hands registrations to the monitor from a thread pool, so the order in which they are recorded
    changes from run to run; a plan must not, or a committed plan or its text would show changes that are none.
    Like `terraform plan`'s addresses, siblings sort by what they are and then by name. Resources whose parent
    was not recorded (none in a program that completed) follow the tree rather than vanish: grouped by that missing
    parent's URN, each group with its descendants ordered as above.
    """
    children: dict[str | None, list[PlannedResource]] = {}
    for r in resources:
        children.setdefault(r.parent, []).append(r)
    ordered: list[PlannedResource] = []

    def visit(parent: str | None) -> None:
        for r in sorted(children.pop(parent, []), key=lambda r: (r.type, r.name, r.urn)):
            ordered.append(r)
            visit(r.urn)

    visit(None)
    while children:  # orphans: their parents never registered
        visit(min(children, key=lambda urn: urn or ""))
    return tuple(ordered)
