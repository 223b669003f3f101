"""GpuAlarms: health and capacity alarms for one GPU Auto Scaling group, from the agent's metrics."""

import math
from collections.abc import Mapping

import pulumi
import pulumi_aws as aws
from typing_extensions import NotRequired, TypedDict

from gpu_metrics_agent.catalogue import (AGENT_HEARTBEAT, GPU_ECC_UNCORRECTED, GPU_POWER_THROTTLE,
                                         GPU_THERMAL_THROTTLE, GPU_XID_ERRORS, MetricSpec)

from gpuscale.config.args import validate_args
from gpuscale.config.reader import Section
from gpuscale.config.scaling import (SCALING_ARGS_ALIASES, read_demand_target, read_target_utilization,
                                     read_throttle_alarm)
from gpuscale.config.agent import read_sample_interval
from gpuscale.config.groups import read_health_check_grace

from ._docs import documented
from .fleet_metrics import (AWS_PERIOD, GROUP_DESIRED, GROUP_IN_SERVICE, GROUP_MAX, Expr, Query, agent_group_stat,
                            demand_per_instance, fleet_gpu_utilization, group_stat, threshold_alarm)
from .gpu_scaling_policies import DemandTargetArgs

AT_MAX_MINUTES = 5
"""Minutes at max capacity with demand above target before alarming: longer than a scaling round, so a group
that merely touches its ceiling while catching up stays quiet."""


class GpuAlarmsArgs(TypedDict):
    asg_name: pulumi.Input[str]
    """Name of the Auto Scaling group (GpuAutoScalingGroup.asg_name). It must collect group metrics."""
    target_gpu_utilization: NotRequired[float | None]
    """The group's utilization target. With it, an alarm fires while the group is at its maximum and still above
    target. Default none (no such alarm)."""
    demand: NotRequired[DemandTargetArgs | None]
    """The group's demand target: "above target" then means demand per instance above it. Default none."""
    blind_after_seconds: NotRequired[int]
    """How long instances may be in service without agent heartbeats (boot, driver, agent start) before the
    heartbeat alarm fires: the group's health-check grace. Default 600."""
    sample_interval_seconds: NotRequired[float]
    """The agent's sampling interval: each node sends one heartbeat per sample. Default 1."""
    throttle_minutes: NotRequired[int]
    """Minutes of throttling before the thermal and power alarms fire. Default 10."""
    throttled_fraction: NotRequired[float]
    """Share of the group's GPU-samples throttled in each of those minutes, (0, 1]. Default 0.5."""
    alarm_topic_arn: NotRequired[pulumi.Input[str] | None]
    """SNS topic notified when an alarm fires and when it recovers. Default none."""
    tags: NotRequired[pulumi.Input[Mapping[str, str]]]
    """Tags on every alarm (cost allocation). Default none."""


def check_args(s: Section) -> None:
    """The rules of GpuAlarmsArgs: the stack config's rules for the values they come from (the group's target and
    demand, its health-check grace, the agent's sample interval, `gpuscale:alerts`)."""
    s.input("asg_name")
    read_target_utilization(s, None)
    read_demand_target(s.optional_section("demand"), "signal")
    read_health_check_grace(s, "blindAfterSeconds")
    read_sample_interval(s)
    read_throttle_alarm(s)
    s.input("alarm_topic_arn", None)
    s.input("tags", {})


@documented
class GpuAlarms(pulumi.ComponentResource):
    """Agent heartbeat missing, XID and uncorrected ECC errors, sustained throttling, and at max capacity."""

    alarm_arns: pulumi.Output[list[str]]
    """ARNs of the alarms, for dashboards."""

    def __init__(self, name: str, args: GpuAlarmsArgs, opts: pulumi.ResourceOptions | None = None):
        validate_args("GpuAlarms", name, args, GpuAlarmsArgs, check_args, SCALING_ARGS_ALIASES)
        super().__init__("gpuscale:index:GpuAlarms", name, None, opts)
        self._name, asg = name, args["asg_name"]
        topic = args.get("alarm_topic_arn")
        self._actions = [topic] if topic is not None else []
        self._tags = args.get("tags")

        beats_per_node = AWS_PERIOD / args.get("sample_interval_seconds", 1.0)
        blind_periods = max(1, math.ceil(args.get("blind_after_seconds", 600) / AWS_PERIOD))
        alarms = [self._alarm(
            "agent-blind",
            [agent_group_stat("beats", AGENT_HEARTBEAT, asg, "Sum", AWS_PERIOD),
             group_stat("in_service", GROUP_IN_SERVICE, asg, "Average"),
             # Nodes in service minus nodes heard from (one heartbeat per node per sample). Zero when nothing is
             # in service, so a group scaled to zero is not blind; with no heartbeat at all it is the whole
             # in-service count, or no value (breaching) where FILL has no timestamps to fill.
             Expr("blind", f"IF(in_service > 0, in_service - FILL(beats, 0) / {beats_per_node:g}, 0)",
                  "In-service instances without agent heartbeats")],
            threshold=0.5, periods=blind_periods,
            # Breaching: if even the group's metrics are missing, nobody can tell whether the fleet is blind.
            treat_missing_data="breaching",
            description="GPU metrics agent silent on in-service instances: scaling on GPU metrics is blind.")]
        for suffix, spec, what in (("xid-errors", GPU_XID_ERRORS, "XID errors"),
                                   ("ecc-uncorrected", GPU_ECC_UNCORRECTED, "uncorrected ECC errors")):
            # Counters since the agent or driver started: any GPU above zero stays in ALARM until its node is
            # replaced, which is what such a GPU needs.
            alarms.append(self._alarm(
                suffix, [agent_group_stat("errors", spec, asg, "Maximum", AWS_PERIOD)], threshold=1, periods=1,
                treat_missing_data="notBreaching",
                description=f"A GPU in the group reported {what}: drain and replace its instance."))
        minutes, fraction = args.get("throttle_minutes", 10), args.get("throttled_fraction", 0.5)
        for suffix, spec, what in (("thermal-throttle", GPU_THERMAL_THROTTLE, "temperature"),
                                   ("power-throttle", GPU_POWER_THROTTLE, "the power cap or power brake")):
            alarms.append(self._throttle_alarm(suffix, spec, asg, minutes, fraction, what))
        target = args.get("target_gpu_utilization")
        if target is not None:
            alarms.append(self._at_max_alarm(asg, target, args.get("demand")))

        self.alarm_arns = pulumi.Output.all(*[a.arn for a in alarms]).apply(list)
        self.register_outputs({"alarm_arns": self.alarm_arns})

    def _throttle_alarm(self, suffix: str, spec: MetricSpec, asg: pulumi.Input[str], minutes: int, fraction: float,
                        what: str) -> aws.cloudwatch.MetricAlarm:
        # The roll-up's Average of a 0/1 series is the share of GPU-samples throttled across the group.
        return self._alarm(
            suffix, [agent_group_stat("throttled", spec, asg, "Average", AWS_PERIOD)], threshold=fraction,
            periods=minutes, treat_missing_data="notBreaching",
            description=f"{fraction:.0%} or more of the group's GPU time held down by {what} for {minutes} minutes.")

    def _at_max_alarm(self, asg: pulumi.Input[str], target: float,
                      demand: DemandTargetArgs | None) -> aws.cloudwatch.MetricAlarm:
        if demand:
            pressure, threshold = demand_per_instance(demand["signal"], asg), demand["target_per_instance"]
        else:
            pressure, threshold = fleet_gpu_utilization(asg, AWS_PERIOD), target
        queries: list[Query] = [*pressure, group_stat("desired", GROUP_DESIRED, asg),
                                group_stat("max_size", GROUP_MAX, asg),
                                Expr("at_max", f"IF(desired >= max_size AND {pressure[-1].id} > {threshold:g}, 1, 0)",
                                     "1 while at max capacity and above target")]
        return self._alarm(
            "at-max-capacity", queries, threshold=1, periods=AT_MAX_MINUTES, treat_missing_data="notBreaching",
            description=f"The group is at its maximum size and {pressure[-1].id} is still above {threshold:g}: raise "
                        "maxSize or expect queueing.")

    def _alarm(self, suffix: str, queries: list[Query], *, threshold: float, periods: int, treat_missing_data: str,
               description: str) -> aws.cloudwatch.MetricAlarm:
        return threshold_alarm(f"{self._name}-{suffix}", queries, threshold=threshold, periods=periods,
                               treat_missing_data=treat_missing_data, description=description, actions=self._actions,
                               notify_ok=True, parent=self, tags=self._tags)
