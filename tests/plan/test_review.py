"""`gpuscale review`: the report the review workflow posts, from two checkouts of the project."""

from __future__ import annotations

import shutil

from plan_support import gpuscale, project_copy

from gpuscale.prices import PriceBook


def _base_and_head(tmp_path, mutate):
    base = project_copy(tmp_path / "base", "prod", lambda config: None)
    head = project_copy(tmp_path / "head", "prod", mutate)
    for stack in ("dev",):  # review prod only: keeps the test to two plans per side
        (base / "stacks" / f"Pulumi.{stack}.yaml").unlink()
        (head / "stacks" / f"Pulumi.{stack}.yaml").unlink()
    return base, head


def test_review_reports_changes_policy_and_cost(tmp_path):
    def grow(config):
        config["gpuscale:autoScalingGroups"][0]["maxSize"] = 14

    base, head = _base_and_head(tmp_path, grow)
    out = tmp_path / "review.md"
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    proc = gpuscale("review", "--base", str(base), "--project-dir", str(head), "--markdown", str(out),
                    "--summary", str(summary))
    assert proc.returncode == 0, proc.stderr
    report = out.read_text()
    assert report.startswith("<!-- gpuscale-review -->"), "the workflow's comment is found by this marker"
    assert "### Stack `prod`" in report and "0 to add, 1 to change, 0 to replace, 0 to delete" in report
    assert "~ aws:autoscaling/group:Group  infer-l40s-asg" in report and "inputs.maxSize: 12 => 14" in report
    assert "**Policy**: 0 mandatory, 0 advisory, 0 accepted" in report
    book = PriceBook.from_file()
    two_more = 2 * (book.instance("us-east-1", "g6e.xlarge").usd * 730 + 300 * book.fixed("us-east-1",
                                                                                          "gp3GiBMonth").usd)
    assert "Monthly cost (USD):" in report and f"at max {two_more:+,.0f}" in report
    assert summary.read_text() == "earlier step\n" + report, "appended, as the markdown file holds it"


def test_review_blocks_on_a_mandatory_finding_and_shows_a_new_stack(tmp_path):
    def unaccept(config):  # prod's API opened to the internet, with no accepted finding
        config["gpuscale:cluster"]["apiEndpoint"] = {"publicAccess": True}

    base, head = _base_and_head(tmp_path, unaccept)
    shutil.copy(head / "stacks" / "Pulumi.prod.yaml", head / "stacks" / "Pulumi.staging.yaml")
    proc = gpuscale("review", "--base", str(base), "--project-dir", str(head), "--stack", "staging")
    assert proc.returncode == 1
    assert "blocked by mandatory findings" in proc.stdout
    assert "| mandatory ❌ | `eks-api-not-public` |" in proc.stdout
    assert "A new stack: it has no file at the base." in proc.stdout
    assert "Monthly cost in us-east-1" in proc.stdout


def test_review_of_an_unknown_stack_is_an_input_error(tmp_path):
    base, head = _base_and_head(tmp_path, lambda config: None)
    proc = gpuscale("review", "--base", str(base), "--project-dir", str(head), "--stack", "nope")
    assert proc.returncode == 2 and "--stack" in proc.stderr and "prod" in proc.stderr


def test_review_shows_replaced_resources_from_the_providers_facts(plans):
    import copy

    from gpuscale.plan.model import Plan
    from gpuscale.plan.diff import diff_plans, replacement_facts
    from gpuscale.plan.review import _resources

    base = plans["dev"]["doc"]
    head = copy.deepcopy(base)
    for r in head["resources"]:
        if r["type"] == "aws:eks/nodeGroup:NodeGroup" and r["name"] == "l4-spot-ng":
            r["inputs"]["amiType"] = "BOTTLEROCKET_x86_64_NVIDIA"
        if r["type"] == "aws:autoscaling/group:Group":
            r["inputs"]["maxSize"] = 1
    text = "\n".join(_resources(diff_plans(Plan.from_json(base), Plan.from_json(head))))
    assert "**Resources**: 0 to add, 1 to change, 1 to replace, 0 to delete" in text
    assert "+- aws:eks/nodeGroup:NodeGroup  l4-spot-ng  (replace)" in text
    assert "replaced because inputs.amiType: ForceNew in terraform-provider-aws aws_eks_node_group" in text
    assert "~ aws:autoscaling/group:Group  infer-asg" in text
    assert replacement_facts()["commit"][:12] in text, "the source of the replacement rules is named"
