"""`gpuscale plan` and `gpuscale diff` through the command line, on the repository's own program and stacks."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from plan_support import ROOT, diff_with_changed, gpuscale, project_copy


def resources(doc: dict, type_: str) -> list[dict]:
    return [r for r in doc["resources"] if r["type"] == type_]


def test_plan_prints_a_tree_and_counts_per_type(plans):
    text = plans["dev"]["stdout"]
    assert "+ pulumi:pulumi:Stack  gpuscale-dev" in text
    assert "gpuscale:index:GpuNodeGroup  l4-spot" in text
    assert "Resources by type:" in text
    node_groups = len(resources(plans["dev"]["doc"], "aws:eks/nodeGroup:NodeGroup"))
    assert f"aws:eks/nodeGroup:NodeGroup" in text and node_groups >= 2  # system group + GPU group
    total = len([r for r in plans["dev"]["doc"]["resources"] if r["parent"]])
    assert f"{total} to create" in text


def test_json_plan_holds_type_name_parent_inputs(plans):
    doc = plans["dev"]["doc"]
    urns = {r["urn"] for r in doc["resources"]}
    for r in doc["resources"]:
        assert set(r) >= {"type", "name", "parent", "inputs"}, r
        assert r["parent"] is None or r["parent"] in urns, f"{r['name']}: parent not in plan"
    (stack,) = [r for r in doc["resources"] if r["parent"] is None]
    assert stack["type"] == "pulumi:pulumi:Stack"


def test_managed_group_asg_carries_scale_from_zero_tags(plans):
    doc = plans["prod"]["doc"]
    tags = {(t["inputs"]["autoscalingGroupName"], t["inputs"]["tag"]["key"]): t["inputs"]["tag"]["value"]
            for t in resources(doc, "aws:autoscaling/tag:Tag")}
    gpu_counts = {v for (asg, key), v in tags.items()
                  if key == "k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu"}
    # prod has 1x L4, 4x A10G (g5.12xlarge) and 8x H100 (p5.48xlarge) groups: counts from EC2's data.
    assert {"1", "4", "8"} <= gpu_counts, tags
    assert any(k == "k8s.io/cluster-autoscaler/enabled" for _, k in tags)
    assert all(not asg.startswith("(known") for asg, _ in tags), "the node group's ASG name must be known"


def test_desired_capacity_is_left_to_the_autoscaler(plans):
    doc = plans["prod"]["doc"]
    for r in resources(doc, "aws:eks/nodeGroup:NodeGroup"):
        assert "scalingConfig.desiredSize" in r["options"].get("ignoreChanges", []), r["name"]
    for r in resources(doc, "aws:autoscaling/group:Group"):
        assert "desiredCapacity" in r["options"].get("ignoreChanges", []), r["name"]
        assert "desiredCapacity" not in r["inputs"], f"{r['name']} sets desiredCapacity"


def test_dev_shares_one_nat_gateway_and_prod_has_one_per_zone(plans):
    for stack, per_zone in (("dev", False), ("prod", True)):
        doc = plans[stack]["doc"]
        zones = len([r for r in resources(doc, "aws:ec2/subnet:Subnet") if "-private-" in r["name"]])
        nats = resources(doc, "aws:ec2/natGateway:NatGateway")
        assert len(nats) == (zones if per_zone else 1), stack
        assert len(resources(doc, "aws:ec2/eip:Eip")) == len(nats), stack
        private_routes = [r["inputs"]["routes"][0]["natGatewayId"]
                          for r in resources(doc, "aws:ec2/routeTable:RouteTable") if "-private-" in r["name"]]
        assert len(private_routes) == zones >= 2, stack
        assert len(set(private_routes)) == len(nats), f"{stack}: every private subnet routes out through a gateway"


def test_plans_are_deterministic_and_diff_equal(plans, tmp_path):
    again = tmp_path / "dev-again.json"
    proc = gpuscale("plan", "--stack", "dev", "--json", str(again))
    assert proc.returncode == 0
    # Byte for byte, text and JSON: the engine records registrations in thread-scheduling order, the plan must not.
    assert proc.stdout.replace(str(again), "PLAN") == plans["dev"]["stdout"].replace(str(plans["dev"]["path"]), "PLAN")
    assert again.read_bytes() == plans["dev"]["path"].read_bytes()
    proc = gpuscale("diff", str(plans["dev"]["path"]), str(again))
    assert proc.returncode == 0, proc.stdout
    assert "No differences." in proc.stdout


def test_diff_reports_added_removed_and_changed(plans, tmp_path):
    def grow(config):
        config["gpuscale:nodeGroups"][0]["maxSize"] = 4
        config["gpuscale:nodeGroups"].append({"name": "t4", "instanceTypes": ["g4dn.xlarge"], "minSize": 0,
                                              "maxSize": 1})
        config["gpuscale:policy"]["gpuHoursPerMonth"] = 6000  # the two groups' GPUs at their maxima, within budget

    proc = diff_with_changed(tmp_path, plans["dev"]["path"], "dev", grow)
    new = tmp_path / "new.json"
    assert proc.returncode == 1
    assert "scalingConfig.maxSize: 2 => 4" in proc.stdout
    assert "+ gpuscale:index:GpuNodeGroup  t4" in proc.stdout
    assert re.search(r"^[1-9]\d* to add, [1-9]\d* to change, 0 to replace, 0 to delete$", proc.stdout, re.M)
    back = gpuscale("diff", str(new), str(plans["dev"]["path"]))
    assert back.returncode == 1 and "- gpuscale:index:GpuNodeGroup  t4" in back.stdout


def test_invalid_config_exits_nonzero_with_the_message_and_no_traceback(tmp_path):
    project = project_copy(tmp_path, "dev", lambda c: c["gpuscale:nodeGroups"][0].update(minSize=5))  # max is 2
    proc = gpuscale("plan", "--stack", "dev", "--project-dir", str(project))
    assert proc.returncode == 2
    assert "gpuscale:nodeGroups[0].minSize (group \"l4-spot\"): 5 is not allowed; allowed: minSize <= maxSize (2)" \
        in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_bad_config_declares_no_resource(tmp_path):
    """Validation runs before the program declares anything (checked in-process through the engine)."""
    project = project_copy(tmp_path, "prod",
                           lambda c: c["gpuscale:autoScalingGroups"][0].update(onDemandPercentageAboveBase=50))
    code = (
        "from pathlib import Path; from gpuscale.plan.engine import run_plan, PlanConfigError\n"
        f"try:\n    run_plan(Path({str(project)!r}), 'prod')\n"
        "except PlanConfigError as e:\n    print(e.declared, e.error.key)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.stdout.split() == ["0", "gpuscale:autoScalingGroups[0].warmPool"], proc.stderr


def test_unknown_stack_and_bad_plan_files_are_clear_errors(tmp_path):
    proc = gpuscale("plan", "--stack", "staging")
    assert proc.returncode == 2 and "dev, prod" in proc.stderr and "Traceback" not in proc.stderr
    bogus = tmp_path / "bogus.json"
    bogus.write_text(json.dumps({"hello": 1}))
    proc = gpuscale("diff", str(bogus), str(bogus))
    assert proc.returncode == 2 and "not a gpuscale plan" in proc.stderr


def test_plan_runs_pre_apply_checks(plans):
    assert "Pre-apply checks:" in plans["prod"]["stdout"]
    checks = plans["prod"]["doc"]["checks"]
    assert any(c["check"] == "time-to-capacity" for c in checks), checks
    assert all(c["settings"] and c["severity"] in {"error", "warning", "info"} for c in checks)


def test_check_errors_fail_the_plan_naming_the_settings(tmp_path):
    # Valid on its own, but shorter than the image pull and model load the workload declares.
    project = project_copy(tmp_path, "dev",
                           lambda c: c["gpuscale:autoScalingGroups"][0].update(healthCheckGraceSeconds=60))
    proc = gpuscale("plan", "--stack", "dev", "--project-dir", str(project))
    assert proc.returncode == 3, proc.stderr
    assert "error: [cold-start]" in proc.stdout
    assert "gpuscale:autoScalingGroups[0].healthCheckGraceSeconds" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_a_misspelt_key_fails_the_program_itself(tmp_path):
    """`__main__.py` passes every gpuscale: key to validation, so `pulumi up` rejects a typo too."""
    project = project_copy(tmp_path, "dev", lambda c: c.update({"gpuscale:agnet": {"flushIntervalSeconds": 5}}))
    code = (f"from pathlib import Path; from gpuscale.plan.engine import run_plan, PlanConfigError\n"
            f"try:\n    run_plan(Path({str(project)!r}), 'dev')\n"
            "except PlanConfigError as e:\n    print(e.declared, e.error.key)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.stdout.split() == ["0", "gpuscale:agnet"], proc.stderr
