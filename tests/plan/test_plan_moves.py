"""`gpuscale diff` across a move: resources that moved into a component with an alias to their old place are the
same resources (as the engine treats them), so moving the stack's wiring into GpuPlatform shows as one component
added, not as every resource deleted and created."""

from __future__ import annotations

import json
from dataclasses import replace

from gpuscale.plan.model import Plan
from gpuscale.plan.diff import diff_plans

PLATFORM = "gpuscale:index:GpuPlatform"


def _before_the_move(plan: Plan) -> Plan:
    """`plan` as the program that declared the platform's children at the stack's top would have planned it."""
    (platform,) = [r for r in plan.resources if r.type == PLATFORM]
    stack = platform.parent
    old = {r.urn: r.options["aliases"][0] for r in plan.resources if r.options.get("aliases")}

    def at_old_urns(value):
        return json.loads(_replace_all(json.dumps(value), old))

    resources = []
    for r in plan.resources:
        if r.type == PLATFORM:
            continue
        options = at_old_urns({k: v for k, v in r.options.items() if k != "aliases"})
        parent = stack if r.parent == platform.urn else old.get(r.parent or "", r.parent)
        resources.append(replace(r, urn=old.get(r.urn, r.urn), parent=parent, options=options))
    return replace(plan, resources=tuple(resources))


def _replace_all(text: str, mapping: dict[str, str]) -> str:
    for new, was in mapping.items():
        text = text.replace(json.dumps(new), json.dumps(was))
    return text


def test_each_child_of_the_platform_names_its_old_place(plans):
    plan = Plan.from_json(plans["dev"]["doc"])
    (platform,) = [r for r in plan.resources if r.type == PLATFORM]
    children = [r for r in plan.resources if r.parent == platform.urn]
    assert len(children) > 10
    for r in children:
        assert r.options["aliases"] == [f"urn:pulumi:dev::gpuscale::pulumi:pulumi:Stack${r.type}::{r.name}"], r.name


def test_moving_into_the_platform_is_one_component_added(plans):
    new = Plan.from_json(plans["dev"]["doc"])
    d = diff_plans(_before_the_move(new), new)
    assert [r.type for r in d.added] == [PLATFORM] and d.removed == [] and d.changed == [], \
        [(c.resource.name, c.changes) for c in d.changed][:3]


def test_without_the_aliases_the_move_would_recreate_every_child(plans):
    new = Plan.from_json(plans["dev"]["doc"])
    old = _before_the_move(new)
    unaliased = replace(new, resources=tuple(
        replace(r, options={k: v for k, v in r.options.items() if k != "aliases"}) for r in new.resources))
    d = diff_plans(old, unaliased)
    moved = sum(1 for r in new.resources if r.options.get("aliases"))
    assert len(d.removed) == moved and len(d.added) == moved + 1
