"""GpuDashboard: the body is valid per the Dashboard Body Structure reference and shows what the issue asks."""

from __future__ import annotations

import json

import pytest
from scaling_harness import ASG, REGION, full_policies_args, resolve, run_program

from gpu_metrics_agent import catalogue as cat
from gpuscale.components.fleet_metrics import ASG_NAMESPACE, GROUP_METRICS_USED
from gpuscale.components.gpu_asg import GROUP_METRICS
from gpuscale.components.gpu_dashboard import GpuDashboard
from gpuscale.components.gpu_scaling_policies import GpuScalingPolicies


@pytest.fixture(scope="module")
def program():
    def build():
        policies = GpuScalingPolicies("infer-scaling", full_policies_args())
        return policies, GpuDashboard("dash", {"dashboard_name": "gpuscale-test", "region": REGION, "groups": [
            {"asg_name": ASG, "target_gpu_utilization": 60.0, "warm_pool": True, "alarm_arns": policies.alarm_arns},
            {"asg_name": "batch-asg"}]})
    return run_program(build)


@pytest.fixture(scope="module")
def body(program) -> dict:
    inputs = program.named("dash-dashboard").inputs
    assert inputs["dashboardName"] == "gpuscale-test"
    return json.loads(inputs["dashboardBody"])


def metric_widgets(body: dict, asg: str) -> dict[str, dict]:
    return {w["properties"]["title"].removeprefix(f"{asg}: "): w["properties"] for w in body["widgets"]
            if w["type"] == "metric" and w["properties"]["title"].startswith(f"{asg}: ")}


def test_layout_follows_the_reference(body):
    for w in body["widgets"]:
        assert w["type"] in ("metric", "text", "alarm")
        assert 0 <= w["x"] and w["x"] + w["width"] <= 24 and w["height"] >= 1, w
        if w["type"] != "metric":
            continue
        props = w["properties"]
        assert props["region"] == REGION, "a metric widget must name its region"
        assert props["period"] >= 60 and props["period"] % 60 == 0, "widget periods are multiples of 60"
        for row in props["metrics"]:
            options = row[-1] if isinstance(row[-1], dict) else {}
            if "expression" in options:
                assert len(row) == 1 and options["id"][0].islower(), row
            else:
                namespace, name, *dims = row[:-1] if options else row
                assert len(dims) % 2 == 0, f"dimension names and values alternate: {row}"
                assert options.get("period", 60) % 60 == 0, row


def test_each_group_gets_the_six_graphs(body):
    for asg in (ASG, "batch-asg"):
        assert set(metric_widgets(body, asg)) == {
            "fleet GPU utilization vs target (%)", "GPU memory used (%)", "GPU power (W)", "capacity (instances)",
            "scaling activity (instances)", "utilization per GPU (%)"}


def test_utilization_is_the_policys_metric_with_the_target_drawn(body, program):
    graph = metric_widgets(body, ASG)["fleet GPU utilization vs target (%)"]
    assert graph["annotations"] == {"horizontal": [{"label": "target", "value": 60.0}]}
    expression = [r[0] for r in graph["metrics"] if "expression" in r[0]]
    assert expression == [{"expression": "util_sum / gpus", "id": "fleet_util",
                           "label": "Fleet mean GPU utilization (%)"}]
    policy = program.named("infer-scaling-gpu-target").inputs["targetTrackingConfiguration"]
    assert policy["customizedMetricSpecification"]["metrics"][-1]["expression"] == expression[0]["expression"]
    assert "annotations" not in metric_widgets(body, "batch-asg")["fleet GPU utilization vs target (%)"]


def test_capacity_shows_desired_in_service_and_warm(body):
    lines = {row[1] for row in metric_widgets(body, ASG)["capacity (instances)"]["metrics"]}
    assert lines == {"GroupDesiredCapacity", "GroupInServiceInstances", "GroupMaxSize", "WarmPoolWarmedCapacity"}
    no_pool = {row[1] for row in metric_widgets(body, "batch-asg")["capacity (instances)"]["metrics"]}
    assert "WarmPoolWarmedCapacity" not in no_pool


def test_per_gpu_graphs_search_the_agents_exact_dimension_set(body):
    per_gpu = metric_widgets(body, ASG)["utilization per GPU (%)"]["metrics"][0][0]["expression"]
    schema = "{" + ",".join((cat.NAMESPACE, *cat.GPU_DIMENSIONS)) + "}"
    assert per_gpu == f"SEARCH('{schema} MetricName=\"{cat.GPU_UTILIZATION.name}\" " \
                      f"{cat.DIM_ASG}=\"{ASG}\"', 'Average', 60)"
    power = metric_widgets(body, ASG)["GPU power (W)"]["metrics"]
    assert cat.GPU_POWER.name in power[0][0]["expression"] and power[1][0]["expression"] == "SUM(power)"


def test_alarm_row_lists_the_scaling_alarms(body, program):
    alarms = [w["properties"] for w in body["widgets"] if w["type"] == "alarm"]
    assert len(alarms) == 1, "only the group given alarms gets an alarm row"
    assert alarms[0]["alarms"] == resolve(program.result[0].alarm_arns)
    assert alarms[0]["alarms"] == [program.arn(f"infer-scaling-{n}-alarm") for n in ("burst", "idle", "wake")]


def test_group_metrics_on_the_dashboard_are_collected_by_the_group(body):
    used = {row[1] for w in body["widgets"] if w["type"] == "metric" for row in w["properties"]["metrics"]
            if isinstance(row[0], str) and row[0] == ASG_NAMESPACE}
    assert used <= set(GROUP_METRICS_USED) <= set(GROUP_METRICS)
