"""The plan-level pre-apply check (two autoscalers on one group) on plans from the real engine, not hand-built ones."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpuscale.plan.checks import run_checks
from gpuscale.config import load_stack_file
from gpuscale.plan.model import Plan

ROOT = Path(__file__).resolve().parents[2]

# The stack config refuses `scaling` on a node group, so the conflict is declared by a program of its own: a GPU
# node group (named like dev's, so the finding maps to its config entry) with a scaling policy and a lifecycle hook
# on its EKS-made ASG, a self-managed group carrying cluster-autoscaler tags with a policy on its auto-name, and a
# plain group whose policy is fine.
PROGRAM = '''
import pulumi_aws as aws
from gpuscale.components.gpu_node_group import GpuNodeGroup

ng = GpuNodeGroup("l4-spot", {"cluster_name": "c", "node_role_arn": "arn:aws:iam::123456789012:role/n",
                              "subnet_ids": ["subnet-1"], "instance_types": ["g6.xlarge"], "gpu_count": 1,
                              "gpu_name": "L4", "min_size": 0, "max_size": 2})


def policy(name, asg):
    aws.autoscaling.Policy(name, autoscaling_group_name=asg, adjustment_type="ChangeInCapacity",
                           scaling_adjustment=1)


policy("ng-step", ng.asg_name)
aws.autoscaling.LifecycleHook("ng-hook", autoscaling_group_name=ng.asg_name, default_result="CONTINUE",
                              heartbeat_timeout=300, lifecycle_transition="autoscaling:EC2_INSTANCE_TERMINATING")
ca = aws.autoscaling.Group("ca-asg", min_size=0, max_size=1, availability_zones=["us-west-2a"],
                           tags=[aws.autoscaling.GroupTagArgs(key="k8s.io/cluster-autoscaler/enabled", value="true",
                                                              propagate_at_launch=False)])
policy("ca-step", ca.name)
own = aws.autoscaling.Group("own-asg", min_size=0, max_size=1, availability_zones=["us-west-2a"])
policy("own-step", own.name)
'''


def plan(project: Path, stack: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / f"{stack}.json"
    proc = subprocess.run([sys.executable, "-m", "gpuscale", "plan", "--stack", stack, "--project-dir", str(project),
                           "--json", str(out)], capture_output=True, text=True, timeout=300)
    return proc, json.loads(out.read_text()) if out.exists() else {}


def two_autoscalers(doc: dict) -> list[dict]:
    # The shipped stacks share no queue between groups, so every such finding here comes from the plan.
    return [c for c in doc["checks"] if c["check"] == "two-autoscalers"]


@pytest.fixture(scope="module")
def conflicted(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict]:
    """PROGRAM planned once with dev's stack config."""
    tmp_path = tmp_path_factory.mktemp("conflict")
    project = tmp_path / "project"
    shutil.copytree(ROOT / "stacks", project / "stacks")
    shutil.copy(ROOT / "Pulumi.yaml", project)
    (project / "__main__.py").write_text(PROGRAM)
    return plan(project, "dev", tmp_path)


def test_policy_and_hook_on_cluster_autoscaler_groups_fail_the_plan(conflicted):
    proc, doc = conflicted
    assert proc.returncode == 3, proc.stderr
    found = {(c["severity"], c["settings"][0]): c for c in two_autoscalers(doc)}
    assert set(found) == {("error", "resource ng-step"), ("warning", "resource ng-hook"),
                          ("error", "resource ca-step")}, found
    step = found["error", "resource ng-step"]
    assert step["settings"][1] == "gpuscale:nodeGroups[0]"  # the GpuNodeGroup is dev's l4-spot
    assert step["group"] == "l4-spot", "the finding names the group, not only its index"
    assert "scaling policy ng-step acts on Auto Scaling group eks-l4-spot-ng-" in step["message"]
    assert found["error", "resource ca-step"]["settings"][1] == "resource ca-asg"
    assert "group" not in found["error", "resource ca-step"], "a group the config does not know has no name"
    assert "error: [two-autoscalers] group l4-spot: scaling policy ng-step" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_managed_node_group_asg_is_caught_without_tags_or_a_known_name(conflicted):
    """Without the cluster-autoscaler Tags, the EKS-made name still gives the group away; in a real preview, where
    the name is unknown, the policy's dependency on the node group does."""
    _, doc = conflicted
    config = load_stack_file(ROOT, "dev")
    untagged = {**doc, "resources": [r for r in doc["resources"] if r["type"] != "aws:autoscaling/tag:Tag"]}
    unknown = copy.deepcopy(untagged)
    for r in unknown["resources"]:
        if r["name"] == "ng-step":
            r["inputs"]["autoscalingGroupName"] = "(known after apply)"
    for variant in (untagged, unknown):
        found = [f for f in run_checks(config, Plan.from_json(variant)) if f.check == "two-autoscalers"]
        assert {f.settings for f in found} >= {("resource ng-step", "gpuscale:nodeGroups[0]")}, found


def test_shipped_stacks_have_no_two_autoscalers_finding(tmp_path):
    for stack in ("dev", "prod"):
        proc, doc = plan(ROOT, stack, tmp_path)
        assert proc.returncode == 0, proc.stderr
        policies = [r for r in doc["resources"] if r["type"] == "aws:autoscaling/policy:Policy"]
        assert policies, f"{stack}: no scaling policies to check"
        assert not two_autoscalers(doc), two_autoscalers(doc)
