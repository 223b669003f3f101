"""GpuScalingPolicies under the mock engine: what each child would send to AWS."""

from __future__ import annotations

import json
import re

import pytest
from scaling_harness import ASG, ASG_ARN, QUEUE, full_policies_args, run_program

from gpu_metrics_agent import catalogue as cat
from gpuscale.components.gpu_scaling_policies import GpuScalingPolicies

POLICY, ALARM = "aws:autoscaling/policy:Policy", "aws:cloudwatch/metricAlarm:MetricAlarm"


@pytest.fixture(scope="module")
def program():
    return run_program(lambda: GpuScalingPolicies("infer-scaling", full_policies_args()))


def group_dims() -> dict:
    return {cat.DIM_ASG: ASG}


def test_children_are_parented_to_the_component(program):
    component = program.component("gpuscale:index:GpuScalingPolicies")
    children = program.children(component)
    assert {r.name for r in children} == {r.name for r in program.resources if r.custom}, \
        "every resource of GpuScalingPolicies must have parent=self"
    assert sorted(r.name for r in program.of_type(POLICY)) == [
        "infer-scaling-burst", "infer-scaling-demand-target", "infer-scaling-gpu-target", "infer-scaling-idle",
        "infer-scaling-wake"]


def test_gpu_target_tracks_fleet_mean_per_gpu_utilization_over_the_group_rollup(program):
    tt = program.named("infer-scaling-gpu-target").inputs
    assert tt["policyType"] == "TargetTrackingScaling" and tt["autoscalingGroupName"] == ASG
    config = tt["targetTrackingConfiguration"]
    assert config["targetValue"] == 60 and config["disableScaleIn"] is False
    queries = config["customizedMetricSpecification"]["metrics"]
    util_sum, gpus, result = queries
    for query, spec in ((util_sum, cat.NODE_GPU_UTILIZATION_SUM), (gpus, cat.NODE_GPU_COUNT)):
        stat = query["metricStat"]
        assert stat["metric"] == {"namespace": cat.NAMESPACE, "metricName": spec.name,
                                  "dimensions": [{"name": cat.DIM_ASG, "value": ASG}]}, "group roll-up only"
        assert (stat["stat"], stat["period"], query["returnData"]) == ("Sum", 60, False)
    assert result == {"id": "fleet_util", "expression": "util_sum / gpus", "label": "Fleet mean GPU utilization (%)",
                      "returnData": True}


def test_demand_target_is_backlog_per_in_service_instance(program):
    config = program.named("infer-scaling-demand-target").inputs["targetTrackingConfiguration"]
    assert config["targetValue"] == 8
    backlog, in_service, result = config["customizedMetricSpecification"]["metrics"]
    assert backlog["metricStat"]["metric"] == {"namespace": "AWS/SQS",
                                               "metricName": "ApproximateNumberOfMessagesVisible",
                                               "dimensions": [{"name": "QueueName", "value": QUEUE}]}
    assert in_service["metricStat"]["metric"]["metricName"] == "GroupInServiceInstances"
    assert in_service["metricStat"]["stat"] == "Average"
    assert result["expression"] == "backlog / in_service" and result["returnData"] is True


def test_alb_demand_reads_requests_per_target_of_the_target_group():
    signal = {"kind": "alb", "load_balancer": "app/infer/0123456789abcdef",
              "target_group": "targetgroup/infer/fedcba9876543210"}
    program = run_program(lambda: GpuScalingPolicies("s", full_policies_args(
        demand={"signal": signal, "target_per_instance": 600.0}, scale_to_zero=None)))
    requests, result = program.named("s-demand-target").inputs["targetTrackingConfiguration"][
        "customizedMetricSpecification"]["metrics"]
    assert requests["metricStat"]["metric"] == {
        "namespace": "AWS/ApplicationELB", "metricName": "RequestCountPerTarget",
        "dimensions": [{"name": "LoadBalancer", "value": signal["load_balancer"]},
                       {"name": "TargetGroup", "value": signal["target_group"]}]}
    assert requests["metricStat"]["stat"] == "Sum" and result["expression"] == "requests"


def test_burst_steps_are_relative_to_the_alarm_threshold_and_wired_to_the_burst_policy(program):
    policy = program.named("infer-scaling-burst").inputs
    assert (policy["policyType"], policy["adjustmentType"], policy["minAdjustmentMagnitude"],
            policy["metricAggregationType"]) == ("StepScaling", "PercentChangeInCapacity", 1, "Average")
    steps = [(s.get("metricIntervalLowerBound"), s.get("metricIntervalUpperBound"), s["scalingAdjustment"])
             for s in policy["stepAdjustments"]]
    assert steps == [("0", "10", 25), ("10", "20", 50), ("20", None, 100)]
    alarm = program.named("infer-scaling-burst-alarm").inputs
    assert alarm["threshold"] == 70, "target 60 + first step's 10 points"
    assert (alarm["comparisonOperator"], alarm["evaluationPeriods"], alarm["treatMissingData"]) == \
        ("GreaterThanOrEqualToThreshold", 3, "missing")
    stats = [q["metric"] for q in alarm["metricQueries"] if "metric" in q]
    assert [(m["metricName"], m["stat"], m["period"], m["dimensions"]) for m in stats] == [
        (cat.NODE_GPU_UTILIZATION_SUM.name, "Sum", 10, group_dims()),
        (cat.NODE_GPU_COUNT.name, "Sum", 10, group_dims())]
    assert alarm["alarmActions"] == [program.arn("infer-scaling-burst")]


def test_idle_alarm_sets_zero_after_the_idle_window(program):
    policy = program.named("infer-scaling-idle").inputs
    assert (policy["adjustmentType"], policy["stepAdjustments"]) == (
        "ExactCapacity", [{"metricIntervalLowerBound": "0", "scalingAdjustment": 0}])
    alarm = program.named("infer-scaling-idle-alarm").inputs
    assert alarm["evaluationPeriods"] == 15 and alarm["threshold"] == 1
    assert alarm["treatMissingData"] == "notBreaching"
    *stats, result = alarm["metricQueries"]
    assert {(q["id"], q["metric"]["metricName"], q["metric"]["period"]) for q in stats} == {
        ("visible", "ApproximateNumberOfMessagesVisible", 60),
        ("in_flight", "ApproximateNumberOfMessagesNotVisible", 60),
        ("util_sum", cat.NODE_GPU_UTILIZATION_SUM.name, 60), ("gpus", cat.NODE_GPU_COUNT.name, 60)}
    assert result["expression"] == ("IF((FILL(visible, 0) + FILL(in_flight, 0)) == 0 AND "
                                    "FILL(util_sum, 0) <= 5 * FILL(gpus, 0), 1, 0)")
    assert alarm["alarmActions"] == [program.arn("infer-scaling-idle")]


def test_wake_sizes_a_group_at_zero_to_the_backlog(program):
    policy = program.named("infer-scaling-wake").inputs
    # Warm minimum 2 up to 4 at 8 messages per instance; the bounds are checked in tests/scaling/test_scaling_wake.py.
    assert (policy["adjustmentType"], [s["scalingAdjustment"] for s in policy["stepAdjustments"]]) == (
        "ExactCapacity", [2, 3, 4])
    alarm = program.named("infer-scaling-wake-alarm").inputs
    visible, desired, result = alarm["metricQueries"]
    assert visible["metric"]["dimensions"] == {"QueueName": QUEUE}
    assert (desired["metric"]["namespace"], desired["metric"]["metricName"]) == ("AWS/AutoScaling",
                                                                                 "GroupDesiredCapacity")
    assert result["expression"] == "IF(desired == 0, visible, 0)"
    assert (alarm["evaluationPeriods"], alarm["treatMissingData"]) == (1, "notBreaching")
    assert alarm["alarmActions"] == [program.arn("infer-scaling-wake")]


def test_drain_hook_and_instance_permissions_scoped_to_the_group(program):
    hook = program.named("infer-scaling-drain").inputs
    # A fixed name: the agent's environment file names the hook it completes (AgentSettings.environment()).
    assert hook == {"name": "gpuscale-drain", "autoscalingGroupName": ASG,
                    "lifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING", "heartbeatTimeout": 600,
                    "defaultResult": "CONTINUE"}
    policy = program.named("infer-scaling-instance-scaling").inputs
    statement, = json.loads(policy["policy"])["Statement"]
    assert policy["role"] == "infer-role" and statement["Resource"] == ASG_ARN
    assert sorted(statement["Action"]) == ["autoscaling:CompleteLifecycleAction",
                                           "autoscaling:RecordLifecycleActionHeartbeat",
                                           "autoscaling:SetInstanceProtection"]


def test_a_bare_target_makes_only_the_target_policy_and_the_drain_hook():
    program = run_program(lambda: GpuScalingPolicies("s", {"asg_name": ASG, "asg_arn": ASG_ARN,
                                                           "target": {"target_gpu_utilization": 70.0}}))
    assert sorted(r.name for r in program.resources if r.custom) == ["s-drain", "s-gpu-target"]
    assert program.named("s-drain").inputs["heartbeatTimeout"] == 300


@pytest.mark.parametrize("overrides, message", [
    ({"instance_role_name": None}, "scale_in_protection (GpuScalingPolicies \"s\"): True is not allowed; allowed: "
                                   "false without instance_role_name"),
    ({"scale_to_zero": {"idle_minutes": 5, "wake": {"kind": "alb", "load_balancer": "app/a/0123456789abcdef",
                                                    "target_group": "targetgroup/t/0123456789abcdef"}}},
     "scale_to_zero.wake.kind (GpuScalingPolicies \"s\"): 'alb' is not allowed"),
])
def test_impossible_arguments_are_refused_before_any_resource(overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        GpuScalingPolicies("s", full_policies_args(**overrides))


def test_scaling_config_fields_are_the_argument_names():
    """__main__ passes dataclasses.asdict(scaling config) straight in: every field must be an argument."""
    from dataclasses import fields

    from gpuscale.components import gpu_scaling_policies as p
    from gpuscale.config import scaling as c

    pairs = [(c.ScalingConfig, p.GpuScalingPoliciesArgs), (c.TargetTrackingConfig, p.TargetTrackingArgs),
             (c.DemandTargetConfig, p.DemandTargetArgs), (c.DemandSignalConfig, p.DemandSignalArgs),
             (c.BurstConfig, p.BurstArgs), (c.BurstStepConfig, p.BurstStepArgs),
             (c.ScaleToZeroConfig, p.ScaleToZeroArgs)]
    for config, args in pairs:
        missing = {f.name for f in fields(config)} - set(args.__annotations__)
        assert not missing, f"{config.__name__} fields without a {args.__name__} argument: {missing}"
