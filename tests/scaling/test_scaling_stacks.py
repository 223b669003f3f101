"""The offline plan of both stacks (`gpuscale plan --json`) holds the scaling policies, alarms and dashboard that
each stack's `scaling:` and `alerts` sections ask for."""

from __future__ import annotations

import json

import pytest
from scaling_harness import ROOT
from scaling_replay import ALARM, DASHBOARD, HOOK, POLICY, TOPIC

from gpu_metrics_agent import catalogue as cat
from gpuscale.config import load_stack_file
from gpuscale.config.wake import wake_steps
from gpuscale.plan.engine import plan_in_subprocess
from gpuscale.plan.model import Plan


@pytest.fixture(scope="module", params=["dev", "prod"])
def stack(request) -> tuple[str, Plan]:
    return request.param, plan_in_subprocess(ROOT, request.param)


def named(plan: Plan, name: str) -> dict:
    found = [r for r in plan.resources if r.name == name]
    assert len(found) == 1, f"{name}: {len(found)} in the plan"
    return found[0].inputs


def test_every_scaled_group_gets_its_policies_and_alarms(stack):
    name, plan = stack
    config = load_stack_file(ROOT, name)
    for group in config.auto_scaling_groups:
        s, prefix = group.scaling, f"{group.name}-scaling"
        health = {r.name.removeprefix(f"{group.name}-alarms-") for r in plan.by_type(ALARM)
                  if r.name.startswith(f"{group.name}-alarms-")}
        assert health == {"agent-blind", "xid-errors", "ecc-uncorrected", "thermal-throttle", "power-throttle"} | \
            ({"at-max-capacity"} if s else set())
        if s is None:
            continue
        target = named(plan, f"{prefix}-gpu-target")["targetTrackingConfiguration"]
        assert target["targetValue"] == s.target.target_gpu_utilization
        assert named(plan, f"{prefix}-drain")["heartbeatTimeout"] == s.drain_timeout_seconds
        policies = {r.name for r in plan.by_type(POLICY) if r.name.startswith(prefix)}
        wanted = {f"{prefix}-gpu-target"} | ({f"{prefix}-demand-target"} if s.demand else set()) | \
            ({f"{prefix}-burst"} if s.burst else set()) | \
            ({f"{prefix}-idle", f"{prefix}-wake"} if s.scale_to_zero else set())
        assert policies == wanted
        if s.burst:
            burst = named(plan, f"{prefix}-burst-alarm")
            assert {q["metric"]["period"] for q in burst["metricQueries"] if "metric" in q} == {s.burst.period_seconds}
            assert burst["threshold"] == s.target.target_gpu_utilization + s.burst.steps[0].lower_bound_above_target
        if s.scale_to_zero:
            idle = named(plan, f"{prefix}-idle-alarm")
            assert idle["evaluationPeriods"] == s.scale_to_zero.idle_minutes
            wake = named(plan, f"{prefix}-wake-alarm")
            queue = {q["metric"]["dimensions"].get("QueueName") for q in wake["metricQueries"] if "metric" in q}
            assert s.scale_to_zero.wake.queue_name in queue
            z = s.scale_to_zero
            sizes = [step.capacity for step in wake_steps(z.warm_minimum, z.wake_messages_per_instance, z.wake_maximum)]
            assert [a["scalingAdjustment"] for a in named(plan, f"{prefix}-wake")["stepAdjustments"]] == sizes
            assert sizes[-1] == (group.max_size if z.wake_messages_per_instance else z.warm_minimum)
    assert len(plan.by_type(HOOK)) == sum(g.scaling is not None for g in config.auto_scaling_groups)


def test_alarms_notify_the_alerts_topic_only_where_configured(stack):
    name, plan = stack
    topics = plan.by_type(TOPIC)
    health = [r for r in plan.by_type(ALARM) if "-alarms-" in r.name]
    if load_stack_file(ROOT, name).alerts.sns_topic_name:
        assert [t.inputs["name"] for t in topics] == ["gpuscale-prod-alerts"]
        assert all(len(r.inputs["alarmActions"]) == 1 for r in health)
    else:
        assert topics == [] and all(r.inputs["alarmActions"] == [] for r in health)


def test_one_dashboard_per_stack_shows_every_group(stack):
    name, plan = stack
    dashboard, = plan.by_type(DASHBOARD)
    assert dashboard.inputs["dashboardName"] == f"gpuscale-{name}"
    body = json.loads(dashboard.inputs["dashboardBody"])
    shown = {w["properties"]["markdown"].removeprefix("## GPU group ") for w in body["widgets"] if w["type"] == "text"}
    alarmed = {r.inputs["metricQueries"][0]["metric"]["dimensions"]["AutoScalingGroupName"]
               for r in plan.by_type(ALARM) if r.name.endswith("-alarms-xid-errors")}
    assert shown == alarmed and len(shown) == len(load_stack_file(ROOT, name).auto_scaling_groups)
    assert cat.NODE_GPU_UTILIZATION_SUM.name in dashboard.inputs["dashboardBody"]
