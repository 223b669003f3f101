"""The metric queries that scaling policies, alarms and the dashboard share: defined once, rendered per API.

A query list is a sequence of `Stat` (one metric, one statistic, one period) and `Expr` (metric math over the ids of
earlier entries); its last entry is the result. Target tracking, PutMetricAlarm and dashboard widgets each spell
the same thing differently, so `for_target_tracking`, `for_alarm` and `for_dashboard` render one definition three
ways and a policy, its alarm and its graph can never disagree about what they measure.

Agent metric names and dimensions come from the agent's catalogue; the AWS metrics below are AWS's own names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import pulumi
import pulumi_aws as aws

from gpu_metrics_agent.catalogue import DIM_ASG, NAMESPACE, NODE_GPU_COUNT, NODE_GPU_UTILIZATION_SUM, MetricSpec

ASG_NAMESPACE = "AWS/AutoScaling"
GROUP_DESIRED = "GroupDesiredCapacity"
GROUP_IN_SERVICE = "GroupInServiceInstances"
GROUP_MAX = "GroupMaxSize"
GROUP_PENDING = "GroupPendingInstances"
GROUP_TERMINATING = "GroupTerminatingInstances"
WARM_POOL_WARMED = "WarmPoolWarmedCapacity"
GROUP_METRICS_USED = (GROUP_DESIRED, GROUP_IN_SERVICE, GROUP_MAX, GROUP_PENDING, GROUP_TERMINATING, WARM_POOL_WARMED)
"""Group metrics the policies, alarms and dashboard read: the group must collect them (enabled_metrics)."""

SQS_NAMESPACE = "AWS/SQS"
SQS_VISIBLE = "ApproximateNumberOfMessagesVisible"
SQS_IN_FLIGHT = "ApproximateNumberOfMessagesNotVisible"
ALB_NAMESPACE = "AWS/ApplicationELB"
ALB_REQUESTS_PER_TARGET = "RequestCountPerTarget"
AWS_PERIOD = 60
"""AWS publishes SQS, load balancer and group metrics once a minute."""


@dataclass(frozen=True)
class Stat:
    id: str
    namespace: str
    metric_name: str
    dimensions: Mapping[str, pulumi.Input[str]]
    stat: str
    period: int


@dataclass(frozen=True)
class Expr:
    id: str
    expression: str
    label: str


Query = Union[Stat, Expr]


def agent_group_stat(id: str, spec: MetricSpec, asg_name: pulumi.Input[str], stat: str, period: int) -> Stat:
    """One of the agent's series in its group roll-up (published again with only the group's name)."""
    if not spec.group_rollup:
        raise ValueError(f"{spec.name} has no group roll-up in the agent's catalogue; query it per node instead")
    return Stat(id, NAMESPACE, spec.name, {DIM_ASG: asg_name}, stat, period)


def group_stat(id: str, metric: str, asg_name: pulumi.Input[str], stat: str = "Maximum") -> Stat:
    return Stat(id, ASG_NAMESPACE, metric, {DIM_ASG: asg_name}, stat, AWS_PERIOD)


def queue_stat(id: str, metric: str, queue_name: str, stat: str = "Maximum") -> Stat:
    return Stat(id, SQS_NAMESPACE, metric, {"QueueName": queue_name}, stat, AWS_PERIOD)


def fleet_gpu_utilization(asg_name: pulumi.Input[str], period: int) -> list[Query]:
    """Mean per-GPU utilization across the group: every GPU-sample counts once, whatever GPUs each node has."""
    return [agent_group_stat("util_sum", NODE_GPU_UTILIZATION_SUM, asg_name, "Sum", period),
            agent_group_stat("gpus", NODE_GPU_COUNT, asg_name, "Sum", period),
            Expr("fleet_util", "util_sum / gpus", "Fleet mean GPU utilization (%)")]


def demand_per_instance(signal: Mapping[str, Any], asg_name: pulumi.Input[str]) -> list[Query]:
    """Demand per serving instance: queue backlog per in-service instance (AWS's documented SQS metric math), or
    the load balancer's own requests per target (its Sum is already the per-target average)."""
    if signal["kind"] == "sqs":
        return [queue_stat("backlog", SQS_VISIBLE, signal["queue_name"], "Sum"),
                group_stat("in_service", GROUP_IN_SERVICE, asg_name, "Average"),
                Expr("per_instance", "backlog / in_service", "Queue messages per in-service instance")]
    dims = {"LoadBalancer": signal["load_balancer"], "TargetGroup": signal["target_group"]}
    return [Stat("requests", ALB_NAMESPACE, ALB_REQUESTS_PER_TARGET, dims, "Sum", AWS_PERIOD),
            Expr("per_instance", "requests", "Requests per target per minute")]


def _flags(queries: Sequence[Query]) -> list[tuple[Query, bool]]:
    return [(q, i == len(queries) - 1) for i, q in enumerate(queries)]


# The provider's names for target tracking's metric data query, nested four deep.
_TtQuery = aws.autoscaling.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationMetricArgs
_TtStat = aws.autoscaling.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationMetricMetricStatArgs
_TtMetric = aws.autoscaling.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationMetricMetricStatMetricArgs
_TtDimension = \
    aws.autoscaling.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationMetricMetricStatMetricDimensionArgs


def for_target_tracking(queries: Sequence[Query]) -> list[_TtQuery]:
    out = []
    for q, result in _flags(queries):
        if isinstance(q, Expr):
            out.append(_TtQuery(id=q.id, expression=q.expression, label=q.label, return_data=result))
            continue
        metric = _TtMetric(namespace=q.namespace, metric_name=q.metric_name,
                           dimensions=[_TtDimension(name=k, value=v) for k, v in q.dimensions.items()])
        out.append(_TtQuery(id=q.id, return_data=result, metric_stat=_TtStat(metric=metric, stat=q.stat,
                                                                             period=q.period)))
    return out


def for_alarm(queries: Sequence[Query]) -> list[aws.cloudwatch.MetricAlarmMetricQueryArgs]:
    out = []
    for q, result in _flags(queries):
        if isinstance(q, Expr):
            out.append(aws.cloudwatch.MetricAlarmMetricQueryArgs(id=q.id, expression=q.expression, label=q.label,
                                                                 return_data=result))
            continue
        out.append(aws.cloudwatch.MetricAlarmMetricQueryArgs(id=q.id, return_data=result, metric=(
            aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(namespace=q.namespace, metric_name=q.metric_name,
                                                            dimensions=dict(q.dimensions), stat=q.stat,
                                                            period=q.period))))
    return out


def for_dashboard(queries: Sequence[Query], label: str | None = None) -> list[list[Any]]:
    """Dashboard `metrics` rows (dimension values must be plain strings: render inside an apply). Inputs of the
    result are hidden, so the graph shows the same single line the policy or alarm acts on."""
    rows: list[list[Any]] = []
    for q, result in _flags(queries):
        shown = {"visible": False} if not result else {}
        if isinstance(q, Expr):
            rows.append([{"expression": q.expression, "id": q.id, "label": label or q.label, **shown}])
        else:
            dims = [part for k, v in q.dimensions.items() for part in (k, v)]
            rows.append([q.namespace, q.metric_name, *dims, {"id": q.id, "stat": q.stat, "period": q.period,
                                                             **shown}])
    return rows


def threshold_alarm(name: str, queries: Sequence[Query], *, threshold: float, periods: int, treat_missing_data: str,
                    description: str, actions: Sequence[pulumi.Input[str]], notify_ok: bool,
                    parent: pulumi.Resource,
                    tags: pulumi.Input[Mapping[str, str]] | None = None) -> aws.cloudwatch.MetricAlarm:
    """An alarm on the result of `queries`: ALARM when it is >= threshold in `periods` consecutive periods."""
    return aws.cloudwatch.MetricAlarm(
        name, comparison_operator="GreaterThanOrEqualToThreshold", threshold=threshold, evaluation_periods=periods,
        metric_queries=for_alarm(queries), treat_missing_data=treat_missing_data, alarm_actions=list(actions),
        ok_actions=list(actions) if notify_ok else [], alarm_description=description, tags=tags,
        opts=pulumi.ResourceOptions(parent=parent))
