"""A plan lists its resources in one order whatever order the engine recorded them in."""

from __future__ import annotations

import json
import random

from gpuscale.plan import Plan, PlannedResource, in_tree_order


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


def test_shipped_plans_are_in_tree_order_and_lose_nothing(plans):
    for stack in ("dev", "prod"):
        recorded = Plan.from_json(plans[stack]["doc"]).resources
        shuffled = list(recorded)
        random.Random(stack).shuffle(shuffled)
        assert in_tree_order(shuffled) == recorded, stack
        assert len({r.urn for r in recorded}) == len(recorded) == len(plans[stack]["doc"]["resources"])
        assert recorded[0].type == "pulumi:pulumi:Stack"
        assert json.loads(plans[stack]["path"].read_text())["resources"][0]["parent"] is None
