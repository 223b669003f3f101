"""A plan lists its resources in one order whatever order the engine recorded them in."""

from __future__ import annotations

import random
import re

from gpuscale.plan.model import Plan, PlannedResource, in_tree_order
from gpuscale.plan.render import render_tree


def resource(urn: str, type_: str, parent: str | None) -> PlannedResource:
    return PlannedResource(urn=urn, type=type_, name=urn.rsplit("::", 1)[1], parent=parent, custom=True, inputs={})


def test_tree_order_is_depth_first_with_siblings_by_type_then_name():
    stack = resource("s::stack", "pulumi:pulumi:Stack", None)
    net = resource("s::net", "gpuscale:index:Network", stack.urn)
    vpc = resource("s::vpc", "aws:ec2/vpc:Vpc", net.urn)
    subnet_b = resource("s::b", "aws:ec2/subnet:Subnet", net.urn)
    subnet_a = resource("s::a", "aws:ec2/subnet:Subnet", net.urn)
    bucket = resource("s::bucket", "aws:s3/bucket:Bucket", stack.urn)
    orphan = resource("s::orphan", "aws:iam/role:Role", "s::never-registered")
    expected = (stack, bucket, net, subnet_a, subnet_b, vpc, orphan)
    shuffled = list(expected)
    for seed in range(20):
        random.Random(seed).shuffle(shuffled)
        assert in_tree_order(shuffled) == expected


def test_text_plan_indents_by_parent_and_keeps_orphans():
    stack = resource("s::stack", "pulumi:pulumi:Stack", None)
    net = resource("s::net", "gpuscale:index:Network", stack.urn)
    vpc = resource("s::vpc", "aws:ec2/vpc:Vpc", net.urn)
    orphan = resource("s::orphan", "aws:iam/role:Role", "s::never-registered")
    text = render_tree(Plan("p", "s", (orphan, vpc, stack, net), {}))
    tree = [line for line in text.splitlines() if line.lstrip().startswith("+ ")]
    assert tree == ["+ pulumi:pulumi:Stack  stack", "    + gpuscale:index:Network  net",
                    "        + aws:ec2/vpc:Vpc  vpc", "+ aws:iam/role:Role  orphan"]


def test_shipped_plans_are_in_tree_order_and_lose_nothing(plans):
    for stack in ("dev", "prod"):
        recorded = Plan.from_json(plans[stack]["doc"]).resources
        shuffled = list(recorded)
        random.Random(stack).shuffle(shuffled)
        assert in_tree_order(shuffled) == recorded, stack
        assert recorded[0].type == "pulumi:pulumi:Stack" and recorded[0].parent is None
        # Every resource the text plan counts is in the JSON, once.
        counted = int(re.search(r"^(\d+) to create", plans[stack]["stdout"], re.M).group(1))
        assert len({r.urn for r in recorded[1:]}) == len(recorded) - 1 == counted, stack
