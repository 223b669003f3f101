"""Values the provider passes through unchecked (enums, periods, ids, ranges), checked against the API reference.

The reference is botocore's service models: the same documentation AWS publishes for PutScalingPolicy,
PutLifecycleHook and PutMetricAlarm, shipped with boto3. Each check first finds the rule's sentence in the reference,
so a reworded or changed rule fails here instead of silently passing.
"""

from __future__ import annotations

import re

import botocore.session
import pytest
from scaling_harness import ASG, full_policies_args, run_program
from scaling_replay import ALARM, HOOK, POLICY

from gpuscale.components.gpu_alarms import GpuAlarms
from gpuscale.components.gpu_scaling_policies import GpuScalingPolicies
from gpuscale.config.scaling import TARGET_TRACKING_PERIODS, is_alarm_period, max_evaluation_periods
from gpuscale.config.wake import MAX_STEP_ADJUSTMENTS

SESSION = botocore.session.get_session()


def reference(service: str, shape: str, member: str) -> str:
    doc = SESSION.get_service_model(service).shape_for(shape).members[member].documentation
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", doc))


def shape_reference(service: str, shape: str) -> str:
    doc = SESSION.get_service_model(service).shape_for(shape).documentation
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", doc))


def enum(service: str, shape: str, member: str) -> list[str]:
    return SESSION.get_service_model(service).shape_for(shape).members[member].enum


def listed(value: str, text: str) -> bool:
    return re.search(rf"(?<![\w:]){re.escape(value)}(?![\w])", text) is not None


@pytest.fixture(scope="module")
def program():
    def build():
        GpuScalingPolicies("s", full_policies_args())
        GpuAlarms("a", {"asg_name": ASG, "target_gpu_utilization": 60.0, "demand": full_policies_args()["demand"]})
        GpuAlarms("b", {"asg_name": ASG, "target_gpu_utilization": 60.0})
    return run_program(build)


def test_policy_enums_are_the_documented_values(program):
    policies = [r.inputs for r in program.of_type(POLICY)]
    fields = {"policyType": "PolicyType", "adjustmentType": "AdjustmentType",
              "metricAggregationType": "MetricAggregationType"}
    for field, member in fields.items():
        text = reference("autoscaling", "PutScalingPolicyType", member)
        values = {p[field] for p in policies if field in p}
        assert values and all(listed(v, text) for v in values), f"{member}: {values} not in: {text}"


def test_target_tracking_periods_are_accepted_ones(program):
    text = reference("autoscaling", "TargetTrackingMetricStat", "Period")
    assert "Accepted values are 10, 30, and 60" in text and TARGET_TRACKING_PERIODS == (10, 30, 60)
    for p in program.of_type(POLICY):
        spec = p.inputs.get("targetTrackingConfiguration", {}).get("customizedMetricSpecification")
        for q in spec["metrics"] if spec else []:
            assert "metricStat" not in q or q["metricStat"]["period"] in TARGET_TRACKING_PERIODS, p.name


def test_step_adjustments_follow_the_documented_rules(program):
    text = reference("autoscaling", "StepAdjustment", "ScalingAdjustment")
    assert "For exact capacity, you must specify a non-negative value" in text
    rules = shape_reference("autoscaling", "StepAdjustment")
    for rule in ("The ranges of your step adjustments can't overlap or have a gap",
                 "At most, one step adjustment can have a null lower bound. If one step adjustment has a negative "
                 "lower bound, then there must be a step adjustment with a null lower bound",
                 "At most, one step adjustment can have a null upper bound",
                 "The upper and lower bound can't be null in the same step adjustment"):
        assert rule in rules, f"rule reworded or gone: {rule}"
    lower = reference("autoscaling", "StepAdjustment", "MetricIntervalLowerBound")
    assert "difference between the alarm threshold and the CloudWatch metric" in lower, "bounds are relative"
    assert "the lower bound is inclusive" in lower
    assert "the upper bound is exclusive" in reference("autoscaling", "StepAdjustment", "MetricIntervalUpperBound")
    stepped = [p for p in program.of_type(POLICY) if p.inputs["policyType"] == "StepScaling"]
    assert len(stepped) == 3
    for p in stepped:
        steps = p.inputs["stepAdjustments"]
        # "Step adjustments per step scaling policy: 20" (EC2 Auto Scaling quotas; not in the API model).
        assert len(steps) <= MAX_STEP_ADJUSTMENTS == 20, p.name
        if p.inputs.get("adjustmentType") == "ExactCapacity":
            assert all(s["scalingAdjustment"] >= 0 for s in steps), p.name
        lower = [float(s["metricIntervalLowerBound"]) for s in steps]
        upper = [float(s["metricIntervalUpperBound"]) for s in steps if "metricIntervalUpperBound" in s]
        # No gaps, no overlaps, no null or negative lower bound, one open-ended step at the top.
        assert len(lower) == len(steps) and min(lower) >= 0, p.name
        assert upper == lower[1:] and len(upper) == len(steps) - 1, p.name
        assert all(lo < hi for lo, hi in zip(lower, upper)), f"{p.name}: upper bound not above the lower"
    assert len(program.named("s-wake").inputs["stepAdjustments"]) > 1, "the sized wake is among them"


def test_lifecycle_hook_values(program):
    hook, = program.of_type(HOOK)
    transition = reference("autoscaling", "PutLifecycleHookType", "LifecycleTransition")
    result = reference("autoscaling", "PutLifecycleHookType", "DefaultResult")
    timeout = reference("autoscaling", "PutLifecycleHookType", "HeartbeatTimeout")
    assert listed(hook.inputs["lifecycleTransition"], transition)
    assert listed(hook.inputs["defaultResult"], result)
    assert "The range is from 30 to 7200 seconds" in timeout and 30 <= hook.inputs["heartbeatTimeout"] <= 7200


def test_alarm_values(program):
    alarms = program.of_type(ALARM)
    assert len(alarms) >= 10
    missing = reference("cloudwatch", "PutMetricAlarmInput", "TreatMissingData")
    period_rule = reference("cloudwatch", "PutMetricAlarmInput", "Period")
    assert "Valid values are 10, 20, 30, and any multiple of 60" in period_rule
    assert "the total evaluation period can't be longer than one day (86,400 seconds)" in period_rule
    id_rule = reference("cloudwatch", "MetricDataQuery", "Id")
    assert "The first character must be a lowercase letter" in id_rule
    statistics = enum("cloudwatch", "PutMetricAlarmInput", "Statistic")
    for alarm in alarms:
        a = alarm.inputs
        assert a["comparisonOperator"] in enum("cloudwatch", "PutMetricAlarmInput", "ComparisonOperator")
        assert listed(a["treatMissingData"], missing), alarm.name
        queries = a["metricQueries"]
        assert sum(q["returnData"] for q in queries) == 1, f"{alarm.name}: one result"
        assert all(re.fullmatch(r"[a-z][A-Za-z0-9_]*", q["id"]) for q in queries), alarm.name
        ids = [q["id"] for q in queries]
        assert len(set(ids)) == len(ids), alarm.name
        for q in queries:
            if "metric" in q:
                metric = q["metric"]
                assert metric["stat"] in statistics, alarm.name
                assert is_alarm_period(metric["period"]), alarm.name
                assert a["evaluationPeriods"] <= max_evaluation_periods(metric["period"]), alarm.name
            else:
                used = set(re.findall(r"\b[a-z][A-Za-z0-9_]*\b", q["expression"])) - {"m"}
                assert used <= set(ids), f"{alarm.name}: {q['expression']} uses {used - set(ids)}"


@pytest.mark.parametrize("period, allowed", [(10, True), (20, True), (30, True), (60, True), (120, True),
                                             (15, False), (90, False), (5, False)])
def test_alarm_period_rule(period, allowed):
    assert is_alarm_period(period) is allowed


def test_evaluation_limit_is_one_day_below_an_hour_and_seven_days_above():
    assert (max_evaluation_periods(10), max_evaluation_periods(60), max_evaluation_periods(3600)) == (8640, 1440, 168)
