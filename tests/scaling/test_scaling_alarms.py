"""GpuAlarms and GpuAlertTopic under the mock engine."""

from __future__ import annotations

import pytest
from scaling_harness import ASG, QUEUE, full_policies_args, run_program

from gpu_metrics_agent import catalogue as cat
from gpuscale.components.fleet_metrics import ASG_NAMESPACE
from gpuscale.components.gpu_alarms import GpuAlarms
from gpuscale.components.gpu_alert_topic import GpuAlertTopic
from gpuscale.components.gpu_asg import GROUP_METRICS
from gpuscale.components.gpu_scaling_policies import GpuScalingPolicies

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


@pytest.fixture(scope="module")
def program():
    def build():
        topic = GpuAlertTopic("alerts", {"topic_name": "gpu-alerts", "email": "oncall@example.com"})
        return GpuAlarms("infer-alarms", {
            "asg_name": ASG, "target_gpu_utilization": 60.0, "blind_after_seconds": 900,
            "sample_interval_seconds": 0.5, "throttle_minutes": 12, "throttled_fraction": 0.25,
            "alarm_topic_arn": topic.topic_arn})
    return run_program(build)


def stats(alarm: dict) -> dict[str, dict]:
    return {q["id"]: q["metric"] for q in alarm["metricQueries"] if "metric" in q}


def result(alarm: dict) -> dict:
    returned = [q for q in alarm["metricQueries"] if q["returnData"]]
    assert len(returned) == 1, "exactly one query is the alarm's result"
    return returned[0]


def test_heartbeat_alarm_counts_silent_instances_and_treats_missing_data_as_breaching(program):
    alarm = program.named("infer-alarms-agent-blind").inputs
    beats = stats(alarm)["beats"]
    assert (beats["namespace"], beats["metricName"], beats["dimensions"], beats["stat"], beats["period"]) == \
        (cat.NAMESPACE, cat.AGENT_HEARTBEAT.name, {cat.DIM_ASG: ASG}, "Sum", 60)
    assert stats(alarm)["in_service"]["metricName"] == "GroupInServiceInstances"
    assert result(alarm)["expression"] == "IF(in_service > 0, in_service - FILL(beats, 0) / 120, 0)", \
        "60 s / 0.5 s samples per node; zero while nothing is in service"
    assert (alarm["treatMissingData"], alarm["threshold"], alarm["evaluationPeriods"]) == ("breaching", 0.5, 15)


@pytest.mark.parametrize("name, spec", [("xid-errors", cat.GPU_XID_ERRORS),
                                        ("ecc-uncorrected", cat.GPU_ECC_UNCORRECTED)])
def test_error_counters_alarm_on_any_gpu_of_the_group(program, name, spec):
    alarm = program.named(f"infer-alarms-{name}").inputs
    metric = result(alarm)["metric"]
    assert spec.group_rollup
    assert (metric["metricName"], metric["dimensions"], metric["stat"]) == (spec.name, {cat.DIM_ASG: ASG}, "Maximum")
    assert (alarm["threshold"], alarm["evaluationPeriods"], alarm["treatMissingData"]) == (1, 1, "notBreaching")


@pytest.mark.parametrize("name, spec", [("thermal-throttle", cat.GPU_THERMAL_THROTTLE),
                                        ("power-throttle", cat.GPU_POWER_THROTTLE)])
def test_sustained_throttling(program, name, spec):
    alarm = program.named(f"infer-alarms-{name}").inputs
    metric = result(alarm)["metric"]
    assert (metric["metricName"], metric["stat"], metric["period"]) == (spec.name, "Average", 60)
    assert (alarm["threshold"], alarm["evaluationPeriods"]) == (0.25, 12)


def test_at_max_capacity_compares_desired_with_max_size_and_utilization_with_target(program):
    alarm = program.named("infer-alarms-at-max-capacity").inputs
    assert {m["metricName"] for m in stats(alarm).values()} >= {"GroupDesiredCapacity", "GroupMaxSize"}
    assert result(alarm)["expression"] == "IF(desired >= max_size AND fleet_util > 60, 1, 0)"


def test_at_max_capacity_uses_the_demand_target_when_there_is_one():
    demand = full_policies_args()["demand"]
    program = run_program(lambda: GpuAlarms("a", {"asg_name": ASG, "target_gpu_utilization": 60.0,
                                                  "demand": demand}))
    alarm = program.named("a-at-max-capacity").inputs
    assert stats(alarm)["backlog"]["dimensions"] == {"QueueName": QUEUE}
    assert result(alarm)["expression"] == "IF(desired >= max_size AND per_instance > 8, 1, 0)"


def test_notifications_go_to_the_topic_on_alarm_and_recovery(program):
    topic = program.arn("alerts-topic")
    for alarm in program.of_type(ALARM):
        assert alarm.inputs["alarmActions"] == [topic] and alarm.inputs["okActions"] == [topic], alarm.name
    subscription = program.named("alerts-email").inputs
    assert (subscription["protocol"], subscription["endpoint"], subscription["topic"]) == (
        "email", "oncall@example.com", topic)
    assert program.named("alerts-topic").inputs["name"] == "gpu-alerts"


def test_without_topic_or_target_alarms_exist_but_notify_nobody():
    program = run_program(lambda: GpuAlarms("a", {"asg_name": ASG}))
    names = sorted(r.name for r in program.of_type(ALARM))
    assert names == ["a-agent-blind", "a-ecc-uncorrected", "a-power-throttle", "a-thermal-throttle", "a-xid-errors"]
    assert all(r.inputs["alarmActions"] == [] for r in program.of_type(ALARM))


def test_group_metrics_read_are_ones_the_group_collects():
    """The wake, heartbeat and at-max alarms need AWS/AutoScaling metrics: GpuAutoScalingGroup must enable them."""
    def build():
        GpuScalingPolicies("s", full_policies_args())
        GpuAlarms("a", {"asg_name": ASG, "target_gpu_utilization": 60.0})
    program = run_program(build)
    read = {q["metric"]["metricName"] for r in program.of_type(ALARM) for q in r.inputs["metricQueries"]
            if "metric" in q and q["metric"]["namespace"] == ASG_NAMESPACE}
    read |= {q["metricStat"]["metric"]["metricName"] for r in program.of_type("aws:autoscaling/policy:Policy")
             for q in (r.inputs.get("targetTrackingConfiguration") or {}).get("customizedMetricSpecification",
                                                                               {}).get("metrics", [])
             if "metricStat" in q and q["metricStat"]["metric"]["namespace"] == ASG_NAMESPACE}
    assert read == {"GroupDesiredCapacity", "GroupInServiceInstances", "GroupMaxSize"}
    assert read <= set(GROUP_METRICS)
