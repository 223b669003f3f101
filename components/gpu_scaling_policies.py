"""GpuScalingPolicies: scale a self-managed GPU Auto Scaling group on the agent's GPU metrics and on demand."""

import json
from dataclasses import dataclass
from collections.abc import Mapping, Sequence

import pulumi
import pulumi_aws as aws
from typing_extensions import NotRequired, TypedDict

from gpu_metrics_agent.catalogue import NODE_GPU_COUNT, NODE_GPU_UTILIZATION_SUM
from gpuscale.config.args import validate_args
from gpuscale.config.reader import Section
from gpuscale.config.scaling import MAX_WAKE_CAPACITY, SCALING_ARGS_ALIASES, read_scaling_settings
from gpuscale.config.wake import WAKE_THRESHOLD, wake_steps

from ._docs import documented
from .agent_user_data import DRAIN_HOOK
from .fleet_metrics import (AWS_PERIOD, GROUP_DESIRED, SQS_IN_FLIGHT, SQS_VISIBLE, Expr, Query, agent_group_stat,
                            demand_per_instance, fleet_gpu_utilization, for_target_tracking, group_stat, queue_stat,
                            threshold_alarm)


class TargetTrackingArgs(TypedDict):
    target_gpu_utilization: float
    """Fleet mean per-GPU utilization to hold, in percent (0, 100]."""
    disable_scale_in: NotRequired[bool]
    """Only add capacity; removal is left to the idle policy or to people. Default False."""
    period_seconds: NotRequired[int]
    """Period of the tracked metric: 10, 30 or 60 (below 60 it is a high-resolution policy). Default 60."""


class DemandSignalArgs(TypedDict):
    kind: str
    """"sqs": a queue's visible messages; "alb": requests per target of a load balancer's target group."""
    queue_name: NotRequired[str | None]
    """SQS: the queue's name. Default none (required when kind is "sqs")."""
    load_balancer: NotRequired[str | None]
    """ALB: final portion of the load balancer's ARN, app/<name>/<id>. Default none (required when kind is "alb")."""
    target_group: NotRequired[str | None]
    """ALB: final portion of the target group's ARN, targetgroup/<name>/<id>. Default none (required when kind is
    "alb")."""


class DemandTargetArgs(TypedDict):
    signal: DemandSignalArgs
    """Where the demand is measured."""
    target_per_instance: float
    """Queue messages per in-service instance, or requests per target per minute, to hold."""
    disable_scale_in: NotRequired[bool]
    """Only add capacity on demand; scale-in is then left to the GPU target. Default: the GPU target's setting."""


class BurstStepArgs(TypedDict):
    lower_bound_above_target: float
    """Percent points of fleet utilization above the target where this step starts."""
    adjustment_percent: int
    """Capacity to add, in percent of the current capacity; at least one instance."""


class BurstArgs(TypedDict):
    steps: Sequence[BurstStepArgs]
    """Steps from the smallest overshoot to the largest; the first one's bound is the alarm's threshold."""
    period_seconds: NotRequired[int]
    """Alarm period: 10, 20, 30 or a multiple of 60, and no shorter than the agent's flush interval. Default 10."""
    evaluation_periods: NotRequired[int]
    """Consecutive breaching periods before the burst fires. Default 3."""


class ScaleToZeroArgs(TypedDict):
    idle_minutes: int
    """Minutes with an empty queue and idle GPUs before the group goes to zero."""
    wake: DemandSignalArgs
    """The demand that wakes the group; must be "sqs" (a load balancer reports nothing with zero targets)."""
    warm_minimum: NotRequired[int]
    """Least capacity the wake policy sets when demand arrives at zero instances. Default 1."""
    idle_gpu_utilization: NotRequired[float]
    """Fleet utilization (percent) at or below which GPUs count as idle. Default 5."""
    wake_messages_per_instance: NotRequired[float | None]
    """Size the wake to the backlog: ceil(visible messages / this) instances, from warm_minimum up to wake_maximum
    (ExactCapacity steps on the queue's visible messages). Default none: every wake sets warm_minimum."""
    wake_maximum: NotRequired[int | None]
    """Most capacity a wake sets, normally the group's max size; required with wake_messages_per_instance. Default
    none."""


class GpuScalingPoliciesArgs(TypedDict):
    asg_name: pulumi.Input[str]
    """Name of the Auto Scaling group (GpuAutoScalingGroup.asg_name). It must collect group metrics."""
    asg_arn: pulumi.Input[str]
    """Its ARN: the instances' lifecycle permissions are scoped to it."""
    target: TargetTrackingArgs
    """Target tracking on the fleet's mean per-GPU utilization."""
    demand: NotRequired[DemandTargetArgs | None]
    """A second target on demand per instance, for latency-sensitive fleets. Default none."""
    burst: NotRequired[BurstArgs | None]
    """Step scaling on high-resolution alarms for spikes. Default none."""
    scale_to_zero: NotRequired[ScaleToZeroArgs | None]
    """Go to zero when idle, wake on demand. The group's min_size must be 0. Default none."""
    scale_in_protection: NotRequired[bool]
    """Let instances protect themselves from scale-in while busy (SetInstanceProtection on this group only).
    Needs instance_role_name. Default False."""
    drain_timeout_seconds: NotRequired[int]
    """Seconds an instance picked for termination may drain before it is terminated anyway (30 to 7200).
    Default 300."""
    instance_role_name: NotRequired[pulumi.Input[str] | None]
    """Role of the group's instances; when given, it may complete the drain hook itself. Default none."""
    instance_warmup_seconds: NotRequired[int | None]
    """Overrides the group's default instance warmup for these policies. Default: the group's."""
    tags: NotRequired[pulumi.Input[Mapping[str, str]]]
    """Tags on the policies' alarms (cost allocation). Default none."""


_PolicyAlarm = tuple[aws.autoscaling.Policy, aws.cloudwatch.MetricAlarm]


@dataclass(frozen=True)
class _AnyGroup:
    """The group as far as the policies know it: they are not told its sizes (the stack config checks them)."""

    min_size: int = 0
    max_size: int = MAX_WAKE_CAPACITY


def check_args(s: Section) -> None:
    """The rules of GpuScalingPoliciesArgs: the stack config's scaling rules (ranges, periods AWS accepts, steps
    in order, policies that would fight, a wake only from a queue), before any resource is declared."""
    for key in ("asg_name", "asg_arn"):
        s.input(key)
    role = s.input("instance_role_name", None)
    s.int("instance_warmup_seconds", None, min=0, max=3600)
    s.input("tags", {})
    settings = read_scaling_settings(s, _AnyGroup(), None, demand_signal="signal")
    if settings.scale_in_protection and role is None:
        s.report("scale_in_protection", True, "false without instance_role_name: the instances protect themselves "
                                              "while busy, so their role must be allowed to call SetInstanceProtection")


@documented
class GpuScalingPolicies(pulumi.ComponentResource):
    """Target tracking, burst, scale-to-zero and wake policies, their alarms, and a drain lifecycle hook."""

    target_policy_arn: pulumi.Output[str]
    """ARN of the target tracking policy on per-GPU utilization."""
    demand_policy_arn: pulumi.Output[str] | None = None
    """ARN of the demand target tracking policy; None without `demand`."""
    burst_policy_arn: pulumi.Output[str] | None = None
    """ARN of the burst step policy; None without `burst`."""
    burst_alarm_arn: pulumi.Output[str] | None = None
    """ARN of the burst policy's high-resolution alarm; None without `burst`."""
    idle_policy_arn: pulumi.Output[str] | None = None
    """ARN of the policy that goes to zero when idle; None without `scale_to_zero`."""
    idle_alarm_arn: pulumi.Output[str] | None = None
    """ARN of the idle alarm; None without `scale_to_zero`."""
    wake_policy_arn: pulumi.Output[str] | None = None
    """ARN of the policy that wakes the group from zero; None without `scale_to_zero`."""
    wake_alarm_arn: pulumi.Output[str] | None = None
    """ARN of the wake alarm; None without `scale_to_zero`."""
    lifecycle_hook_name: pulumi.Output[str]
    """Name of the termination lifecycle hook instances drain in."""
    alarm_arns: pulumi.Output[list[str]]
    """The alarms that drive the step policies (burst, idle, wake), for dashboards."""

    def __init__(self, name: str, args: GpuScalingPoliciesArgs, opts: pulumi.ResourceOptions | None = None):
        validate_args("GpuScalingPolicies", name, args, GpuScalingPoliciesArgs, check_args, SCALING_ARGS_ALIASES)
        super().__init__("gpuscale:index:GpuScalingPolicies", name, None, opts)
        self._name, self._asg = name, args["asg_name"]
        self._tags = args.get("tags")
        self._warmup = args.get("instance_warmup_seconds")
        target = args["target"]
        utilization = target["target_gpu_utilization"]

        gpu_target = self._target_tracking(
            "gpu-target", utilization, target.get("disable_scale_in", False),
            fleet_gpu_utilization(self._asg, target.get("period_seconds", AWS_PERIOD)))
        outputs: dict[str, pulumi.Output] = {"target_policy_arn": gpu_target.arn}
        alarms: list[aws.cloudwatch.MetricAlarm] = []

        demand = args.get("demand")
        if demand:
            # With two target tracking policies AWS scales out when either asks, and in only when every one whose
            # scale-in is enabled agrees.
            outputs["demand_policy_arn"] = self._target_tracking(
                "demand-target", demand["target_per_instance"],
                demand.get("disable_scale_in", target.get("disable_scale_in", False)),
                demand_per_instance(demand["signal"], self._asg)).arn

        burst = args.get("burst")
        if burst:
            policy, alarm = self._burst(burst, utilization)
            outputs.update(burst_policy_arn=policy.arn, burst_alarm_arn=alarm.arn)
            alarms.append(alarm)

        zero = args.get("scale_to_zero")
        if zero:
            idle, wake = self._scale_to_zero(zero)
            outputs.update(idle_policy_arn=idle[0].arn, idle_alarm_arn=idle[1].arn, wake_policy_arn=wake[0].arn,
                           wake_alarm_arn=wake[1].arn)
            alarms += [idle[1], wake[1]]

        drain = args.get("drain_timeout_seconds", 300)
        # CONTINUE: after the drain timeout the instance terminates anyway; a stuck drainer must not pin capacity.
        hook = aws.autoscaling.LifecycleHook(
            f"{name}-drain", name=DRAIN_HOOK, autoscaling_group_name=self._asg,
            lifecycle_transition="autoscaling:EC2_INSTANCE_TERMINATING", heartbeat_timeout=drain,
            default_result="CONTINUE", opts=pulumi.ResourceOptions(parent=self))
        role = args.get("instance_role_name")
        if role is not None:
            self._instance_permissions(role, args["asg_arn"], args.get("scale_in_protection", False))

        for key, value in outputs.items():
            setattr(self, key, value)
        self.lifecycle_hook_name = hook.name
        self.alarm_arns = pulumi.Output.all(*[a.arn for a in alarms]).apply(list)
        self.register_outputs({**outputs, "lifecycle_hook_name": self.lifecycle_hook_name,
                               "alarm_arns": self.alarm_arns})

    def _target_tracking(self, suffix: str, value: float, disable_scale_in: bool,
                         queries: list[Query]) -> aws.autoscaling.Policy:
        return aws.autoscaling.Policy(
            f"{self._name}-{suffix}", autoscaling_group_name=self._asg, policy_type="TargetTrackingScaling",
            estimated_instance_warmup=self._warmup,
            target_tracking_configuration=aws.autoscaling.PolicyTargetTrackingConfigurationArgs(
                target_value=value, disable_scale_in=disable_scale_in,
                customized_metric_specification=aws.autoscaling.
                PolicyTargetTrackingConfigurationCustomizedMetricSpecificationArgs(
                    metrics=for_target_tracking(queries))),
            opts=pulumi.ResourceOptions(parent=self))

    def _burst(self, burst: BurstArgs, utilization: float) -> _PolicyAlarm:
        steps = list(burst["steps"])
        first = steps[0]["lower_bound_above_target"]
        # Step bounds are relative to the alarm's threshold (target + first bound); the last step is open-ended.
        uppers = [s["lower_bound_above_target"] - first for s in steps[1:]] + [None]
        adjustments = [aws.autoscaling.PolicyStepAdjustmentArgs(
            scaling_adjustment=step["adjustment_percent"],
            metric_interval_lower_bound=_bound(step["lower_bound_above_target"] - first),
            metric_interval_upper_bound=_bound(upper)) for step, upper in zip(steps, uppers)]
        policy = aws.autoscaling.Policy(
            f"{self._name}-burst", autoscaling_group_name=self._asg, policy_type="StepScaling",
            adjustment_type="PercentChangeInCapacity",
            # 25 % of one instance rounds to nothing; a burst always adds at least one.
            min_adjustment_magnitude=1, metric_aggregation_type="Average",
            estimated_instance_warmup=self._warmup, step_adjustments=adjustments,
            opts=pulumi.ResourceOptions(parent=self))
        alarm = self._alarm(
            "burst-alarm", fleet_gpu_utilization(self._asg, burst.get("period_seconds", 10)),
            threshold=utilization + first, periods=burst.get("evaluation_periods", 3), policy=policy,
            # missing: a late flush leaves the newest period empty; the alarm keeps its state instead of flapping.
            treat_missing_data="missing",
            description=f"Fleet GPU utilization at least {first:g} points above the {utilization:g} % target: "
                        f"add capacity in steps.")
        return policy, alarm

    def _scale_to_zero(self, zero: ScaleToZeroArgs) -> tuple[_PolicyAlarm, _PolicyAlarm]:
        wake = zero["wake"]
        queue, idle_util = wake["queue_name"], zero.get("idle_gpu_utilization", 5.0)
        idle_queries: list[Query] = [
            queue_stat("visible", SQS_VISIBLE, queue), queue_stat("in_flight", SQS_IN_FLIGHT, queue),
            agent_group_stat("util_sum", NODE_GPU_UTILIZATION_SUM, self._asg, "Sum", AWS_PERIOD),
            agent_group_stat("gpus", NODE_GPU_COUNT, self._asg, "Sum", AWS_PERIOD),
            # Idle: nothing queued, nothing in flight, and mean GPU utilization at or below the idle level
            # (util_sum <= level x gpus avoids dividing by zero GPUs; FILL counts a silent series as zero).
            Expr("idle", f"IF((FILL(visible, 0) + FILL(in_flight, 0)) == 0 AND "
                         f"FILL(util_sum, 0) <= {idle_util:g} * FILL(gpus, 0), 1, 0)",
                 "1 while the queue is empty and the GPUs idle")]
        idle_policy = self._exact_capacity("idle", [(0, None, 0)])
        idle_alarm = self._alarm(
            "idle-alarm", idle_queries, threshold=1, periods=zero["idle_minutes"], policy=idle_policy,
            # No data at all (queue and agents silent) proves nothing: do not remove capacity on it.
            treat_missing_data="notBreaching",
            description=f"Queue {queue} empty and GPUs idle for {zero['idle_minutes']} minutes: scale to zero.")
        warm, per_instance = zero.get("warm_minimum", 1), zero.get("wake_messages_per_instance")
        steps = wake_steps(warm, per_instance, zero.get("wake_maximum"))
        wake_queries: list[Query] = [
            queue_stat("visible", SQS_VISIBLE, queue), group_stat("desired", GROUP_DESIRED, self._asg),
            # The backlog, but only at zero: ExactCapacity on a running group would set it to the step's size, up
            # or down, whatever the other policies decided.
            Expr("wake", "IF(desired == 0, visible, 0)", "Visible messages while the group is at zero")]
        # Step bounds are relative to the alarm's threshold.
        wake_policy = self._exact_capacity("wake", [
            (step.messages_from - WAKE_THRESHOLD,
             None if step.messages_below is None else step.messages_below - WAKE_THRESHOLD, step.capacity)
            for step in steps])
        size = f"{warm}" if len(steps) == 1 else \
            f"ceil(messages / {per_instance:g}), {steps[0].capacity} to {steps[-1].capacity},"
        wake_alarm = self._alarm(
            "wake-alarm", wake_queries, threshold=WAKE_THRESHOLD, periods=1, policy=wake_policy,
            # Without the group's desired capacity we cannot tell "at zero" from "running": do not act.
            treat_missing_data="notBreaching",
            description=f"Messages on {queue} while the group is at zero: start {size} instance(s).")
        return (idle_policy, idle_alarm), (wake_policy, wake_alarm)

    def _exact_capacity(self, suffix: str,
                        steps: Sequence[tuple[float, float | None, int]]) -> aws.autoscaling.Policy:
        """A policy that sets the capacity of the step the alarm's value falls in: (lower bound, upper bound,
        capacity), bounds relative to the alarm's threshold, none below it, the last one open-ended."""
        return aws.autoscaling.Policy(
            f"{self._name}-{suffix}", autoscaling_group_name=self._asg, policy_type="StepScaling",
            adjustment_type="ExactCapacity",
            # One datapoint per evaluation; if there were more, size to the largest backlog among them.
            metric_aggregation_type="Maximum",
            step_adjustments=[aws.autoscaling.PolicyStepAdjustmentArgs(
                scaling_adjustment=capacity, metric_interval_lower_bound=_bound(lower),
                metric_interval_upper_bound=_bound(upper)) for lower, upper, capacity in steps],
            opts=pulumi.ResourceOptions(parent=self))

    def _alarm(self, suffix: str, queries: list[Query], *, threshold: float, periods: int,
               policy: aws.autoscaling.Policy, treat_missing_data: str, description: str) -> aws.cloudwatch.MetricAlarm:
        return threshold_alarm(f"{self._name}-{suffix}", queries, threshold=threshold, periods=periods,
                               treat_missing_data=treat_missing_data, description=description, actions=[policy.arn],
                               notify_ok=False, parent=self, tags=self._tags)

    def _instance_permissions(self, role: pulumi.Input[str], asg_arn: pulumi.Input[str], protection: bool) -> None:
        actions = ["autoscaling:CompleteLifecycleAction", "autoscaling:RecordLifecycleActionHeartbeat"]
        if protection:
            actions.append("autoscaling:SetInstanceProtection")
        policy = pulumi.Output.from_input(asg_arn).apply(lambda arn: json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Sid": "DrainAndProtectSelf", "Effect": "Allow", "Action": actions, "Resource": arn}]}))
        aws.iam.RolePolicy(f"{self._name}-instance-scaling", role=role, policy=policy,
                           opts=pulumi.ResourceOptions(parent=self))


def _bound(value: float | None) -> str | None:
    """Step bounds are strings in the provider (an empty bound means infinity)."""
    return None if value is None else f"{value:g}"
