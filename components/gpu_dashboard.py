"""GpuDashboard: one CloudWatch dashboard for a stack's GPU Auto Scaling groups."""

import json
from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_aws as aws
from typing_extensions import NotRequired, TypedDict

from gpu_metrics_agent.catalogue import (DIM_ASG, GPU_DIMENSIONS, GPU_POWER, GPU_UTILIZATION, NAMESPACE,
                                         NODE_MEMORY_UTILIZATION_MAX, MetricSpec)

from gpuscale.config.args import validate_args
from gpuscale.config.reader import Section
from gpuscale.config.scaling import SCALING_ARGS_ALIASES, read_target_utilization
from gpuscale.config.cluster import read_region

from ._docs import documented
from .fleet_metrics import (ASG_NAMESPACE, AWS_PERIOD, GROUP_DESIRED, GROUP_IN_SERVICE, GROUP_MAX, GROUP_PENDING,
                            GROUP_TERMINATING, WARM_POOL_WARMED, fleet_gpu_utilization, for_dashboard)

WIDTH, HEIGHT, COLUMNS = 8, 6, 3
"""Graphs are 8 of the dashboard's 24 grid units wide: three per row."""


class DashboardGroupArgs(TypedDict):
    asg_name: pulumi.Input[str]
    """Name of the Auto Scaling group (GpuAutoScalingGroup.asg_name). It must collect group metrics."""
    target_gpu_utilization: NotRequired[float | None]
    """Drawn as a line on the utilization graph. Default none."""
    warm_pool: NotRequired[bool]
    """The group has a warm pool: its warmed capacity is graphed. Default False."""
    alarm_arns: NotRequired[pulumi.Input[Sequence[str]]]
    """Alarms shown with their state under the group's graphs (scaling and health alarms). Default none."""


class GpuDashboardArgs(TypedDict):
    dashboard_name: pulumi.Input[str]
    """Name of the dashboard: letters, digits, "-" and "_"."""
    region: pulumi.Input[str]
    """Region of the groups' metrics (a dashboard widget must name one)."""
    groups: Sequence[DashboardGroupArgs]
    """The groups to show, one band of graphs each."""


DASHBOARD_NAME_PATTERN = r"[A-Za-z0-9_-]{1,255}"
"""PutDashboard's DashboardName: up to 255 letters, digits, "-" and "_"."""


def check_args(s: Section) -> None:
    """The rules of GpuDashboardArgs: a name CloudWatch accepts, a region the SDK knows, each group's target as the
    stack config's scaling target."""
    s.input("dashboard_name", read=lambda name, default: s.str(
        name, default, pattern=DASHBOARD_NAME_PATTERN, describe="1 to 255 letters, digits, - and _"))
    s.input("region", read=lambda name, default: read_region(s, name))
    for group in s.sections("groups", min_items=1):
        group.input("asg_name")
        read_target_utilization(group, None)
        group.bool("warm_pool", False)
        group.input("alarm_arns", [])
        group.finish()


@documented
class GpuDashboard(pulumi.ComponentResource):
    """Fleet GPU utilization vs target, memory, power, capacity (desired, in service, warm), scaling activity,
    per-GPU utilization, and the groups' alarms."""

    dashboard_name: pulumi.Output[str]
    """Name of the CloudWatch dashboard."""

    def __init__(self, name: str, args: GpuDashboardArgs, opts: pulumi.ResourceOptions | None = None):
        validate_args("GpuDashboard", name, args, GpuDashboardArgs, check_args, SCALING_ARGS_ALIASES)
        super().__init__("gpuscale:index:GpuDashboard", name, None, opts)
        groups = list(args["groups"])
        resolved = pulumi.Output.all(args["region"], *[pulumi.Output.all(g["asg_name"], g.get("alarm_arns", []))
                                                       for g in groups])
        body = resolved.apply(lambda v: dashboard_body(v[0], [
            (asg, list(arns), g.get("target_gpu_utilization"), g.get("warm_pool", False))
            for g, (asg, arns) in zip(groups, v[1:])]))
        dashboard = aws.cloudwatch.Dashboard(f"{name}-dashboard", dashboard_name=args["dashboard_name"],
                                             dashboard_body=body, opts=pulumi.ResourceOptions(parent=self))
        self.dashboard_name = dashboard.dashboard_name
        self.register_outputs({"dashboard_name": self.dashboard_name})


def dashboard_body(region: str, groups: Sequence[tuple[str, list[str], float | None, bool]]) -> str:
    """The DashboardBody JSON: per group a title, six graphs in two rows, and an alarm status row."""
    widgets: list[dict[str, Any]] = []
    y = 0
    for asg, alarm_arns, target, warm_pool in groups:
        widgets.append({"type": "text", "x": 0, "y": y, "width": 24, "height": 1,
                        "properties": {"markdown": f"## GPU group {asg}"}})
        y += 1
        graphs = [_utilization(asg, target), _memory(asg), _power(asg), _capacity(asg, warm_pool),
                  _activity(asg), _per_gpu(asg)]
        for i, (title, metrics, extra) in enumerate(graphs):
            widgets.append({"type": "metric", "x": (i % COLUMNS) * WIDTH, "y": y + (i // COLUMNS) * HEIGHT,
                            "width": WIDTH, "height": HEIGHT,
                            "properties": {"title": f"{asg}: {title}", "region": region, "view": "timeSeries",
                                           "period": AWS_PERIOD, "metrics": metrics, **extra}})
        y += HEIGHT * ((len(graphs) + COLUMNS - 1) // COLUMNS)
        if alarm_arns:
            widgets.append({"type": "alarm", "x": 0, "y": y, "width": 24, "height": 3,
                            "properties": {"title": f"{asg}: alarms", "alarms": alarm_arns,
                                           "sortBy": "stateUpdatedTimestamp"}})
            y += 3
    return json.dumps({"widgets": widgets})


_Graph = tuple[str, list[list[Any]], dict[str, Any]]


def _utilization(asg: str, target: float | None) -> _Graph:
    extra: dict[str, Any] = {"yAxis": {"left": {"min": 0, "max": 100}}}
    if target is not None:
        extra["annotations"] = {"horizontal": [{"label": "target", "value": target}]}
    return "fleet GPU utilization vs target (%)", for_dashboard(fleet_gpu_utilization(asg, AWS_PERIOD)), extra


def _memory(asg: str) -> _Graph:
    name = NODE_MEMORY_UTILIZATION_MAX.name
    return "GPU memory used (%)", [
        [NAMESPACE, name, DIM_ASG, asg, {"stat": "Maximum", "label": "fullest GPU in the group"}],
        [NAMESPACE, name, DIM_ASG, asg, {"stat": "Average", "label": "mean of each node's fullest GPU"}],
    ], {"yAxis": {"left": {"min": 0, "max": 100}}}


def _power(asg: str) -> _Graph:
    return "GPU power (W)", [
        [{"expression": _per_gpu_search(GPU_POWER, asg), "id": "power", "visible": False}],
        [{"expression": "SUM(power)", "id": "total_power", "label": "all GPUs of the group"}],
    ], {"yAxis": {"left": {"min": 0}}}


def _capacity(asg: str, warm_pool: bool) -> _Graph:
    shown = [(GROUP_DESIRED, "desired"), (GROUP_IN_SERVICE, "in service"), (GROUP_MAX, "maximum")]
    if warm_pool:
        shown.append((WARM_POOL_WARMED, "warm (stopped, ready)"))
    return "capacity (instances)", [[ASG_NAMESPACE, metric, DIM_ASG, asg, {"stat": "Maximum", "label": label}]
                                    for metric, label in shown], {"yAxis": {"left": {"min": 0}}}


def _activity(asg: str) -> _Graph:
    return "scaling activity (instances)", [
        [ASG_NAMESPACE, GROUP_PENDING, DIM_ASG, asg, {"stat": "Maximum", "label": "launching"}],
        [ASG_NAMESPACE, GROUP_TERMINATING, DIM_ASG, asg, {"stat": "Maximum", "label": "terminating (draining)"}],
    ], {"yAxis": {"left": {"min": 0}}}


def _per_gpu(asg: str) -> _Graph:
    return "utilization per GPU (%)", [[{"expression": _per_gpu_search(GPU_UTILIZATION, asg), "id": "per_gpu"}]], \
        {"yAxis": {"left": {"min": 0, "max": 100}}}


def _per_gpu_search(spec: MetricSpec, asg: str) -> str:
    """A search over the agent's per-GPU series of one group (the exact dimension set the agent publishes)."""
    schema = ",".join((NAMESPACE, *GPU_DIMENSIONS))
    return f"SEARCH('{{{schema}}} MetricName=\"{spec.name}\" {DIM_ASG}=\"{asg}\"', 'Average', {AWS_PERIOD})"
