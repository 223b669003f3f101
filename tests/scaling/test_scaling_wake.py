"""The queue-sized wake: its ExactCapacity steps give ceil(backlog / per instance) between the warm minimum and the
group's maximum, follow AWS's step adjustment rules, and act only while the group is at zero."""

from __future__ import annotations

import math
import re

import pytest
from scaling_harness import ASG, QUEUE, full_policies_args, run_program

from gpuscale.components.gpu_scaling_policies import GpuScalingPolicies
from gpuscale.config.wake import MAX_STEP_ADJUSTMENTS, WAKE_THRESHOLD, wake_capacity, wake_steps


def assert_aws_rules(steps) -> None:
    """PutScalingPolicy's StepAdjustment rules: contiguous half-open ranges from the threshold, one open end."""
    assert 1 <= len(steps) <= MAX_STEP_ADJUSTMENTS
    assert steps[0].messages_from == WAKE_THRESHOLD, "no step below the threshold: no null lower bound needed"
    for a, b in zip(steps, steps[1:]):
        assert a.messages_below == b.messages_from, f"gap or overlap between {a} and {b}"
        assert a.messages_from < a.messages_below, f"{a}: the upper bound must be greater than the lower"
        assert a.capacity < b.capacity
    assert steps[-1].messages_below is None and all(s.messages_below is not None for s in steps[:-1])


@pytest.mark.parametrize("warm, per_instance, maximum", [
    (1, 4, 2), (1, 16, 2), (1, 32, 12), (1, 8, 16), (2, 8, 4), (3, 2.5, 20), (1, 0.5, 10), (1, 0.29, 19),
    (4, 1, 4), (1, 1, 20),
])
def test_each_backlog_gets_ceil_backlog_over_per_instance_within_the_bounds(warm, per_instance, maximum):
    steps = wake_steps(warm, per_instance, maximum)
    assert_aws_rules(steps)
    for messages in range(1, int(maximum * per_instance) + 50):
        wanted = min(maximum, max(warm, math.ceil(messages / per_instance - 1e-9)))
        assert wake_capacity(steps, messages) == wanted, f"{messages} messages"
    assert wake_capacity(steps, 0) is None and wake_capacity(steps, 0.5) is None, "below the alarm threshold"


@pytest.mark.parametrize("warm, per_instance, maximum", [(1, 4, 100), (5, 2, 64), (1, 0.25, 500), (1, 3, 21)])
def test_more_capacities_than_a_policy_holds_round_up_to_evenly_spaced_ones(warm, per_instance, maximum):
    steps = wake_steps(warm, per_instance, maximum)
    assert_aws_rules(steps)
    assert len(steps) == MAX_STEP_ADJUSTMENTS and steps[-1].capacity == maximum
    widest = max(b.capacity - a.capacity for a, b in zip(steps, steps[1:]))
    for messages in range(1, int(maximum * per_instance) + 50):
        wanted = min(maximum, max(warm, math.ceil(messages / per_instance - 1e-9)))
        got = wake_capacity(steps, messages)
        assert wanted <= got <= wanted + widest, f"{messages} messages: {got} instances for {wanted} needed"


def test_without_a_size_every_wake_sets_the_warm_minimum():
    for steps in (wake_steps(2, None, 10), wake_steps(3, 8, 3)):
        assert len(steps) == 1 and steps[0].messages_below is None
        assert wake_capacity(steps, 1) == wake_capacity(steps, 10_000) == steps[0].capacity


@pytest.fixture(scope="module")
def program():
    return run_program(lambda: GpuScalingPolicies("s", full_policies_args()))


def test_wake_policy_steps_are_relative_to_the_alarm_threshold(program):
    zero = full_policies_args()["scale_to_zero"]
    policy = program.named("s-wake").inputs
    assert (policy["adjustmentType"], policy["metricAggregationType"]) == ("ExactCapacity", "Maximum")
    steps = [(s.get("metricIntervalLowerBound"), s.get("metricIntervalUpperBound"), s["scalingAdjustment"])
             for s in policy["stepAdjustments"]]
    # warm 2, 8 per instance, max 4: 1-16 messages -> 2, 17-24 -> 3, 25+ -> 4; threshold 1.
    assert (zero["warm_minimum"], zero["wake_messages_per_instance"], zero["wake_maximum"]) == (2, 8.0, 4)
    assert steps == [("0", "16", 2), ("16", "24", 3), ("24", None, 4)]
    alarm = program.named("s-wake-alarm").inputs
    assert alarm["threshold"] == WAKE_THRESHOLD and alarm["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert "ceil(messages / 8), 2 to 4," in alarm["alarmDescription"]


def test_wake_alarm_reads_the_backlog_only_at_zero(program):
    visible, desired, result = program.named("s-wake-alarm").inputs["metricQueries"]
    assert (visible["id"], visible["metric"]["metricName"], visible["metric"]["dimensions"]) == (
        "visible", "ApproximateNumberOfMessagesVisible", {"QueueName": QUEUE})
    assert (visible["metric"]["stat"], visible["metric"]["period"]) == ("Maximum", 60)
    assert (desired["id"], desired["metric"]["metricName"], desired["metric"]["dimensions"]) == (
        "desired", "GroupDesiredCapacity", {"AutoScalingGroupName": ASG})
    assert result["expression"] == "IF(desired == 0, visible, 0)" and result["returnData"] is True


def test_an_unsized_wake_is_one_step_to_the_warm_minimum():
    args = full_policies_args()
    args["scale_to_zero"] = {**args["scale_to_zero"], "wake_messages_per_instance": None}
    policy = run_program(lambda: GpuScalingPolicies("s", args)).named("s-wake").inputs
    assert policy["stepAdjustments"] == [{"metricIntervalLowerBound": "0", "scalingAdjustment": 2}]


@pytest.mark.parametrize("zero, message", [
    ({"wake_maximum": None}, "scale_to_zero.wake_maximum (GpuScalingPolicies \"s\"): None is not allowed"),
    ({"wake_maximum": 1}, "scale_to_zero.wake_maximum (GpuScalingPolicies \"s\"): 1 is not allowed"),
    ({"wake_messages_per_instance": 0},
     "scale_to_zero.wake_messages_per_instance (GpuScalingPolicies \"s\"): 0.0 is not allowed"),
])
def test_a_sized_wake_needs_a_positive_size_and_a_maximum(zero, message):
    args = full_policies_args()
    args["scale_to_zero"] = {**args["scale_to_zero"], **zero}
    with pytest.raises(ValueError, match=re.escape(message)):
        GpuScalingPolicies("s", args)
