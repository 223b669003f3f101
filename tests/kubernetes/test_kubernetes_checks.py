"""Pre-apply checks of the Kubernetes side, on the shipped stacks' real plans and on plans with one thing broken."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

from gpuscale.plan.checks import run_checks
from gpuscale.config import load_stack_config, load_stack_file, read_stack_values, stack_file_path
from gpuscale.instance_types import RecordedInstanceTypes
from gpuscale.plan.model import Plan

ROOT = Path(__file__).resolve().parents[2]


def findings(config, plan, check):
    return [f for f in run_checks(config, plan) if f.check == check]


def test_shipped_stacks_have_no_kubernetes_findings(stack_plans):
    for stack, plan in stack_plans.items():
        config = load_stack_file(ROOT, stack)
        assert findings(config, plan, "autoscaler-discovery") == [], stack
        assert [f for f in findings(config, plan, "node-provision-time") if f.severity == "error"] == [], stack


def test_a_node_group_without_its_discovery_tag_is_an_error(stack_plans):
    config, plan = load_stack_file(ROOT, "prod"), stack_plans["prod"]
    dropped = [r for r in plan.resources if r.type == "aws:autoscaling/tag:Tag" and r.name == "l4-spot-ca-cluster"]
    assert dropped, "prod's l4-spot group is tagged with its cluster"
    broken = replace(plan, resources=tuple(r for r in plan.resources if r not in dropped))
    [finding] = findings(config, broken, "autoscaler-discovery")
    assert finding.severity == "error"
    assert finding.settings == ("gpuscale:nodeGroups[1]", "gpuscale:kubernetes.clusterAutoscaler")
    assert "k8s.io/cluster-autoscaler/gpuscale-prod" in finding.message and "l4-spot" in finding.message


def test_an_autoscaler_looking_for_other_tags_is_an_error(stack_plans):
    config, plan = load_stack_file(ROOT, "dev"), stack_plans["dev"]
    resources = []
    for r in plan.resources:
        if r.name == "cluster-autoscaler-chart":
            inputs = copy.deepcopy(r.inputs)
            inputs["values"]["autoDiscovery"]["tags"] = ["k8s.io/cluster-autoscaler/enabled"]
            r = replace(r, inputs=inputs)
        resources.append(r)
    [finding] = findings(config, replace(plan, resources=tuple(resources)), "autoscaler-discovery")
    assert "k8s.io/cluster-autoscaler/gpuscale-dev" in finding.message


def test_no_autoscaler_in_the_plan_while_enabled_is_an_error(stack_plans):
    config, plan = load_stack_file(ROOT, "dev"), stack_plans["dev"]
    without = Plan(plan.project, plan.stack, tuple(r for r in plan.resources
                                                   if r.type != "kubernetes:helm.sh/v3:Release"), plan.outputs)
    [finding] = findings(config, without, "autoscaler-discovery")
    assert finding.settings == ("gpuscale:kubernetes.clusterAutoscaler.enabled",)


def _dev_with(ca: dict, cold_start: dict):
    values = copy.deepcopy(read_stack_values(stack_file_path(ROOT, "dev")))
    values["gpuscale:kubernetes"] = {**values["gpuscale:kubernetes"], "clusterAutoscaler": ca}
    values["gpuscale:nodeGroups"][0]["workload"] = {
        "concurrencyPerReplica": 4, "serviceTime": {"meanSeconds": 60}, "coldStart": cold_start,
        "price": {"perInstanceHour": 0.8048}, "requestTimeoutSeconds": 1800}
    return load_stack_config(values, "dev", RecordedInstanceTypes())


def test_max_node_provision_time_shorter_than_a_nodes_provisioning_is_an_error():
    config = _dev_with({"maxNodeProvisionSeconds": 120},
                       {"nodeProvisioningSeconds": 180, "imagePullSeconds": 90, "modelLoadSeconds": 75})
    [finding] = findings(config, None, "node-provision-time")
    assert finding.severity == "error"
    assert finding.settings == ("gpuscale:kubernetes.clusterAutoscaler.maxNodeProvisionSeconds",
                                "gpuscale:nodeGroups[0].workload.coldStart.nodeProvisioningSeconds")
    assert "l4-spot" in finding.message and "120 s" in finding.message


def test_only_registration_counts_against_max_node_provision_time():
    # Upstream's max-node-provision-time ends when the node registers; the device plugin, image pull and model load
    # come after. 180 s of provisioning fits in 200 s although the whole cold start is far longer.
    config = _dev_with({"maxNodeProvisionSeconds": 200},
                       {"nodeProvisioningSeconds": 180, "devicePluginReadySeconds": 600, "imagePullSeconds": 900,
                        "modelLoadSeconds": 900})
    assert findings(config, None, "node-provision-time") == []


def test_gpus_advertised_later_than_the_fixed_startup_limit_is_an_error():
    config = _dev_with({}, {"nodeProvisioningSeconds": 120, "devicePluginReadySeconds": 1000,
                            "imagePullSeconds": 90, "modelLoadSeconds": 75})
    [finding] = findings(config, None, "node-provision-time")
    assert finding.settings == ("gpuscale:nodeGroups[0].workload.coldStart.devicePluginReadySeconds",)
    assert "900 s" in finding.message and "1000 s" in finding.message


def test_two_autoscalers_on_a_node_group_are_still_found_with_the_real_autoscaler_installed(stack_plans):
    """The shipped dev plan (cluster-autoscaler release, tagged node group) plus a scaling policy someone adds on the
    node group's Auto Scaling group: the two would overwrite each other's desired capacity."""
    from gpuscale.plan.model import PlannedResource

    config, plan = load_stack_file(ROOT, "dev"), stack_plans["dev"]
    assert any(r.type == "kubernetes:helm.sh/v3:Release" and r.inputs["chart"] == "cluster-autoscaler"
               for r in plan.resources)
    asg = plan.outputs["nodeGroups"]["l4-spot"]["asgName"]
    stack = next(r for r in plan.resources if r.parent is None)
    policy = PlannedResource(f"{stack.urn}::aws:autoscaling/policy:Policy::extra", "aws:autoscaling/policy:Policy",
                             "extra", stack.urn, True, {"autoscalingGroupName": asg})
    [finding] = findings(config, replace(plan, resources=plan.resources + (policy,)), "two-autoscalers")
    assert finding.severity == "error" and finding.settings == ("resource extra", "gpuscale:nodeGroups[0]")
