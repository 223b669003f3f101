"""The text plan a reviewer reads: the capacity, scaling and tags first, every value whole with --details, the
outputs at the end."""

from __future__ import annotations

import json
import re

from plan_support import ROOT, gpuscale

from gpuscale.config import load_stack_file
from gpuscale.plan.model import Plan
from gpuscale.plan.render import render_plan


def _summary(text: str) -> str:
    start = text.index("What changes capacity and cost")
    end = text.index("\n+ pulumi:pulumi:Stack")
    assert start < end, "the summary comes before the tree"
    return text[start:end]


def _row(summary: str, group: str) -> str:
    [row] = [line for line in summary.splitlines() if line.strip().startswith(group + " ")]
    return row


def test_prod_summary_shows_every_group_its_types_sizes_and_warm_pool(plans):
    summary = _summary(plans["prod"]["stdout"])
    config = load_stack_file(ROOT, "prod")
    for g in config.node_groups:
        row = _row(summary, f"{g.name}-ng")
        assert ", ".join(g.instance_types) in row and g.capacity_type in row and g.ami_type in row, row
        assert re.search(rf"\b{g.min_size} / \d+ / {g.max_size}\b", row), row
    for g in config.auto_scaling_groups:
        row = _row(summary, f"{g.name}-asg")
        assert ", ".join(g.instance_types) in row and f"{g.min_size} / - / {g.max_size}" in row, row
        if g.warm_pool is not None:
            assert f"{g.warm_pool.min_size} to {g.warm_pool.max_prepared_capacity} {g.warm_pool.pool_state}" in row
        else:
            assert row.rstrip().endswith("-"), row
        if g.on_demand_percentage_above_base < 100:
            assert f"{100 - g.on_demand_percentage_above_base}% Spot ({g.spot_allocation_strategy})" in row, row


def test_summary_shows_scaling_targets_and_steps(plans):
    summary = _summary(plans["prod"]["stdout"])
    doc = plans["prod"]["doc"]
    for r in doc["resources"]:
        if r["type"] != "aws:autoscaling/policy:Policy":
            continue
        [line] = [x for x in summary.splitlines() if x.strip().startswith(r["name"] + ":")]
        if r["inputs"]["policyType"] == "TargetTrackingScaling":
            tt = r["inputs"]["targetTrackingConfiguration"]
            assert line.endswith(f"at {tt['targetValue']}") or f"at {tt['targetValue']} (adds only" in line, line
        else:
            for step in r["inputs"]["stepAdjustments"]:
                assert f"{step['scalingAdjustment']}" in line, line
    assert "infer-l40s-scaling-burst: steps (capacity changed by)" in summary and "+25%" in summary


def test_summary_lists_tag_keys_with_values(plans):
    summary = _summary(plans["prod"]["stdout"])
    stack_tagged = sum(1 for r in plans["prod"]["doc"]["resources"]
                       if isinstance(r["inputs"].get("tags"), dict) and "gpuscale:stack" in r["inputs"]["tags"])
    asg_tagged = sum(1 for r in plans["prod"]["doc"]["resources"] if isinstance(r["inputs"].get("tags"), list)
                     and any(isinstance(t, dict) and t.get("key") == "gpuscale:stack"
                             for t in r["inputs"]["tags"]))
    assert f"  gpuscale:stack = prod ({stack_tagged + asg_tagged})" in summary
    assert "  gpuscale:group = prod/batch-spot (1), prod/infer-l40s (1)" in summary
    assert re.search(r"k8s\.io/cluster-autoscaler/node-template/resources/nvidia\.com/gpu = 1 \(2\), 4 \(1\), "
                     r"8 \(1\)", summary), "the GPU counts the autoscaler reads from the node groups' ASG tags"
    assert "more (--details shows all)" in summary, "a tag with many values is cut in the default view"


def test_outputs_section_shows_every_output_whole(plans):
    text = plans["prod"]["stdout"]
    outputs = text[text.index("\nOutputs:\n"):]
    doc = plans["prod"]["doc"]["outputs"]
    assert f"  clusterName: {doc['clusterName']}" in outputs
    arn = doc["autoScalingGroups"]["infer-l40s"]["asgArn"]
    assert len(arn) > 72 and f"  autoScalingGroups.infer-l40s.asgArn: {arn}" in outputs, "never cut"
    assert text.index("\nOutputs:\n") > text.index("to create:"), "after the tree"


def test_details_show_every_value_whole_and_policies_pretty_printed(plans, tmp_path):
    proc = gpuscale("plan", "--stack", "dev", "--details")
    assert proc.returncode == 0, proc.stderr
    tree = proc.stdout[proc.stdout.index("\n+ pulumi:pulumi:Stack"):proc.stdout.index("\nPre-apply checks:")]
    assert "…" not in tree and "more input(s)" not in tree, "nothing is cut with --details"
    policy = next(r for r in plans["dev"]["doc"]["resources"] if r["type"] == "aws:iam/rolePolicy:RolePolicy")
    line = next(x for x in tree.splitlines() if x.endswith(f"+ aws:iam/rolePolicy:RolePolicy  {policy['name']}"))
    # The document sits under its `policy: (JSON)` line, 10 columns past the resource's own `+`.
    indent = " " * (line.index("+") + 10)
    pretty = "\n".join(indent + x for x in json.dumps(json.loads(policy["inputs"]["policy"]), indent=2).splitlines())
    assert pretty in tree, "the IAM policy document pretty-printed under its key"
    text = render_plan(Plan.from_json(plans["dev"]["doc"]), details=True)
    assert "Name = " in text and "more (--details shows all)" not in text, "every tag value with --details"
