"""The `scaling:` section and `gpuscale:alerts`: presets load, and every bad value names its key."""

from __future__ import annotations

import copy
import re

import pytest
from scaling_harness import ROOT

from gpuscale.config import ConfigError, Section, load_stack_config, load_stack_file
from gpuscale.config.scaling import (Interval, check_no_fights, reject_scaling_on_node_group, scaling_triggers)
from gpuscale.instance_types import RecordedInstanceTypes

CATALOG = RecordedInstanceTypes()
GROUP = "gpuscale:autoScalingGroups[0]"
SCALING = f"{GROUP}.scaling"


def base(scaling: dict | None = None, min_size: int = 0, flush: float = 10) -> dict:
    group = {"name": "infer", "instanceTypes": ["g6e.xlarge"], "minSize": min_size, "maxSize": 4}
    if scaling is not None:
        group["scaling"] = scaling
    return {"aws:region": "us-west-2",
            "gpuscale:cluster": {"mode": "create", "name": "c1"},
            "gpuscale:agent": {"flushIntervalSeconds": flush},
            "gpuscale:autoScalingGroups": [group]}


def load(values: dict):
    return load_stack_config(values, "test", CATALOG)


FULL = {"target": {"gpuUtilization": 60},
        "demand": {"kind": "sqs", "queueName": "jobs", "targetPerInstance": 8},
        "burst": {"steps": [{"lowerBoundAboveTarget": 10, "adjustmentPercent": 25},
                            {"lowerBoundAboveTarget": 20, "adjustmentPercent": 50}]},
        "scaleToZero": {"idleMinutes": 15, "warmMinimum": 2},
        "scaleInProtection": True, "drainTimeoutSeconds": 600}


def with_(path: str, value, scaling: dict = FULL) -> dict:
    """FULL with one key (dotted, list indexes as numbers) set to `value`, or removed when value is ...."""
    doc = copy.deepcopy(scaling)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node = doc
    for p in parents:
        node = node[p]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return doc


def test_full_section_loads_with_defaults():
    s = load(base(FULL)).auto_scaling_groups[0].scaling
    assert (s.target.target_gpu_utilization, s.target.period_seconds, s.target.disable_scale_in) == (60, 60, False)
    assert (s.burst.period_seconds, s.burst.evaluation_periods) == (10, 3)
    assert s.scale_to_zero.wake == s.demand.signal, "the demand's queue wakes the group when no wake is given"
    assert (s.scale_to_zero.idle_gpu_utilization, s.drain_timeout_seconds) == (5.0, 600)


def test_presets_dev_cheap_scale_to_zero_prod_latency_safe():
    dev = {g.name: g for g in load_stack_file(ROOT, "dev").auto_scaling_groups}
    prod = load_stack_file(ROOT, "prod")
    infer = dev["infer"].scaling
    assert infer.scale_to_zero.wake.kind == "sqs" and infer.burst is None and dev["infer"].min_size == 0
    assert infer.scale_to_zero.idle_minutes <= 5, "dev: aggressive scale to zero"
    groups = {g.name: g for g in prod.auto_scaling_groups}
    latency = groups["infer-l40s"]
    # Latency-safe: never cold (a floor of two, no scale to zero), capacity added from stopped warm-pool instances,
    # high-resolution target tracking and burst alarms, demand that adds capacity but never holds it.
    assert latency.min_size >= 2 and latency.scaling.scale_to_zero is None
    pool = latency.warm_pool
    assert pool is not None and pool.pool_state == "Stopped" and pool.min_size >= 1
    assert latency.scaling.target.period_seconds < 60 and latency.scaling.burst.period_seconds == 10
    assert latency.scaling.demand is not None and latency.scaling.demand.disable_scale_in
    assert latency.scaling.scale_in_protection
    batch = groups["batch-spot"].scaling
    assert batch.demand.disable_scale_in and not batch.target.disable_scale_in
    assert batch.scale_to_zero.wake_messages_per_instance == batch.demand.target_per_instance
    assert prod.alerts.sns_topic_name == "gpuscale-prod-alerts"


def test_wake_size_defaults_to_the_demand_target_on_the_same_queue():
    s = load(base(FULL)).auto_scaling_groups[0].scaling
    assert (s.scale_to_zero.wake_messages_per_instance, s.scale_to_zero.wake_maximum) == (8, 4)
    other_queue = with_("scaleToZero.wake", {"kind": "sqs", "queueName": "other"})
    assert load(base(other_queue)).auto_scaling_groups[0].scaling.scale_to_zero.wake_messages_per_instance is None
    own = load(base(with_("scaleToZero.wakeMessagesPerInstance", 2.5))).auto_scaling_groups[0].scaling
    assert own.scale_to_zero.wake_messages_per_instance == 2.5


def test_demand_scale_in_follows_the_gpu_target_unless_set():
    s = load(base(FULL)).auto_scaling_groups[0].scaling
    assert s.demand.disable_scale_in is False
    off = with_("target.disableScaleIn", True)
    assert load(base(off)).auto_scaling_groups[0].scaling.demand.disable_scale_in is True
    own = load(base(with_("demand.disableScaleIn", True))).auto_scaling_groups[0].scaling
    assert own.demand.disable_scale_in and not own.target.disable_scale_in
    assert [t for t in scaling_triggers(own) if t.policy.endswith("demand.targetPerInstance") and t.direction < 0] \
        == [], "a demand target that never scales in removes nothing"


BAD = [
    # (scaling section, flushIntervalSeconds, key reported, words of what is allowed)
    (with_("target.gpuUtilization", 0), 10, "target.gpuUtilization", "(0, 100]"),
    (with_("target.gpuUtilization", 100.5), 10, "target.gpuUtilization", "(0, 100]"),
    (with_("target", ...), 10, "target", "a value is required"),
    (with_("target.periodSeconds", 20), 10, "target.periodSeconds", "10, 30 or 60"),
    (with_("target.periodSeconds", 10), 30, "target.periodSeconds", "flushIntervalSeconds (30 s)"),
    (with_("target.disableScaleIn", "yes"), 10, "target.disableScaleIn", "true or false"),
    (with_("burst.periodSeconds", 15), 10, "burst.periodSeconds", "10, 20, 30 or a multiple of 60"),
    (with_("burst.periodSeconds", 90), 10, "burst.periodSeconds", "multiple of 60"),
    (with_("burst.periodSeconds", 10), 20, "burst.periodSeconds", "flushIntervalSeconds (20 s)"),
    (with_("burst.evaluationPeriods", 8641), 10, "burst.evaluationPeriods", "[1, 8640]"),
    (with_("burst.steps", []), 10, "burst.steps", "at least 1"),
    (with_("burst.steps.1.lowerBoundAboveTarget", 10), 10, "burst.steps[1].lowerBoundAboveTarget",
     "above the previous step's"),
    (with_("burst.steps.1.lowerBoundAboveTarget", 40), 10, "burst.steps[1].lowerBoundAboveTarget", "below 40"),
    (with_("burst.steps.0.adjustmentPercent", 0), 10, "burst.steps[0].adjustmentPercent", "[1, 1000]"),
    (with_("burst.steps.0.lowerBoundAboveTarget", -5), 10, "burst.steps[0].lowerBoundAboveTarget", ">= 0"),
    (with_("demand.kind", "kafka"), 10, "demand.kind", "one of sqs, alb"),
    (with_("demand.queueName", ...), 10, "demand.queueName", "a value is required"),
    (with_("demand.queueName", "bad name!"), 10, "demand.queueName", "an SQS queue name"),
    (with_("demand.loadBalancer", "app/x/0123456789abcdef"), 10, "demand.loadBalancer", "only with kind: alb"),
    (with_("demand", {"kind": "alb", "loadBalancer": "my-alb", "targetGroup": "targetgroup/t/0123456789abcdef",
                      "targetPerInstance": 5}), 10, "demand.loadBalancer", "app/<name>/<16 hex digits>"),
    (with_("demand.targetPerInstance", 0), 10, "demand.targetPerInstance", "> 0"),
    (with_("demand", ...), 10, "scaleToZero.wake", "GPU metrics are empty at zero instances"),
    (with_("scaleToZero.wake", {"kind": "alb", "loadBalancer": "app/x/0123456789abcdef",
                                "targetGroup": "targetgroup/t/0123456789abcdef"}), 10, "scaleToZero.wake.kind",
     "RequestCount only for requests it could route"),
    (with_("scaleToZero.warmMinimum", 5), 10, "scaleToZero.warmMinimum", "[1, 4]"),
    (with_("scaleToZero.idleMinutes", 1441), 10, "scaleToZero.idleMinutes", "[1, 1440]"),
    (with_("scaleToZero.idleGpuUtilization", 61), 10, "scaleToZero.idleGpuUtilization",
     "target.gpuUtilization adds capacity"),
    (with_("scaleToZero.wakeMessagesPerInstance", 0), 10, "scaleToZero.wakeMessagesPerInstance", "> 0"),
    (with_("scaleToZero.wakeMessagesPerInstance", "eight"), 10, "scaleToZero.wakeMessagesPerInstance", "a number"),
    (with_("demand.disableScaleIn", "no"), 10, "demand.disableScaleIn", "true or false"),
    (with_("drainTimeoutSeconds", 10), 10, "drainTimeoutSeconds", "[30, 7200]"),
    (with_("scaleInProtection", 1), 10, "scaleInProtection", "true or false"),
    (with_("cooldown", 300), 10, "cooldown", "known keys here are"),
    (with_("burst.steps.0.extra", 1), 10, "burst.steps[0].extra", "known keys here are"),
]


@pytest.mark.parametrize("scaling, flush, key, allowed", BAD, ids=[f"{b[2]}-{i}" for i, b in enumerate(BAD)])
def test_bad_scaling_value_names_its_key(scaling, flush, key, allowed):
    with pytest.raises(ConfigError) as caught:
        load(base(scaling, flush=flush))
    assert caught.value.key == f"{SCALING}.{key}", str(caught.value)
    assert allowed in caught.value.allowed, str(caught.value)


def test_burst_and_idle_fight_at_the_burst_threshold():
    # Target 50 with scale-in off; the burst starts at 50 and idle reaches 50: both act at exactly 50 %.
    scaling = {"target": {"gpuUtilization": 50, "disableScaleIn": True},
               "burst": {"steps": [{"lowerBoundAboveTarget": 0, "adjustmentPercent": 10}]},
               "scaleToZero": {"idleMinutes": 5, "idleGpuUtilization": 50,
                               "wake": {"kind": "sqs", "queueName": "q"}}}
    with pytest.raises(ConfigError) as caught:
        load(base(scaling))
    assert caught.value.key == f"{SCALING}.scaleToZero.idleGpuUtilization"
    assert "burst.steps[0].lowerBoundAboveTarget adds capacity" in str(caught.value)
    assert "[50, 100]" in str(caught.value) and "[0, 50]" in str(caught.value)


def test_scale_to_zero_needs_min_size_zero():
    with pytest.raises(ConfigError) as caught:
        load(base(FULL, min_size=1))
    assert caught.value.key == f"{SCALING}.scaleToZero" and "minSize 1" in caught.value.allowed


def test_fixed_size_group_has_no_scaling():
    assert load(base(None)).auto_scaling_groups[0].scaling is None


def test_node_groups_refuse_scaling_and_say_why():
    values = base(None)
    values["gpuscale:nodeGroups"] = [{"name": "l4", "instanceTypes": ["g6.xlarge"], "minSize": 0, "maxSize": 2,
                                      "scaling": {"target": {"gpuUtilization": 60}}}]
    with pytest.raises(ConfigError) as caught:
        load(values)
    assert caught.value.key == "gpuscale:nodeGroups[0].scaling"
    with pytest.raises(ConfigError, match="cluster-autoscaler owns the size of EKS managed node groups"):
        reject_scaling_on_node_group(Section(values["gpuscale:nodeGroups"][0], "gpuscale:nodeGroups[0]"))


@pytest.mark.parametrize("alerts, key, allowed", [
    ({"snsTopicName": "on call"}, "snsTopicName", "SNS topic name"),
    ({"email": "nobody"}, "email", "an email address"),
    ({"throttleMinutes": 0}, "throttleMinutes", "[1, 1440]"),
    ({"throttledFraction": 0}, "throttledFraction", "(0, 1]"),
    ({"pager": "x"}, "pager", "known keys here are"),
])
def test_bad_alerts_name_their_key(alerts, key, allowed):
    values = base(None)
    values["gpuscale:alerts"] = alerts
    with pytest.raises(ConfigError) as caught:
        load(values)
    assert caught.value.key == f"gpuscale:alerts.{key}" and allowed in caught.value.allowed


def test_triggers_describe_each_policy_for_the_simulator():
    s = load(base(FULL)).auto_scaling_groups[0].scaling
    by_key = {(t.policy.removeprefix("scaling."), t.direction): t for t in scaling_triggers(s)}
    assert str(by_key[("target.gpuUtilization", 1)].interval) == "(60, 100]"
    assert str(by_key[("target.gpuUtilization", -1)].interval) == "[0, 60)"
    assert str(by_key[("burst.steps[0].lowerBoundAboveTarget", 1)].interval) == "[70, 100]"
    assert str(by_key[("scaleToZero.wake", 1)].interval) == "[1, inf]"
    assert by_key[("scaleToZero.wake", 1)].metric == by_key[("scaleToZero.idleMinutes", -1)].metric
    check_no_fights(scaling_triggers(s))  # the full preset itself is consistent


@pytest.mark.parametrize("a, b, overlap", [
    (Interval(60, 100, closed_low=False), Interval(0, 60), False),
    (Interval(60, 100), Interval(0, 60), True),
    (Interval(0, 60, closed_high=False), Interval(60, 100), False),
    (Interval(1, float("inf")), Interval(0, 0), False),
    (Interval(10, 20), Interval(15, 30), True),
])
def test_interval_overlap_respects_open_ends(a, b, overlap):
    assert a.overlaps(b) is overlap and b.overlaps(a) is overlap


def test_error_messages_read_key_value_allowed():
    with pytest.raises(ConfigError) as caught:
        load(base(with_("burst.periodSeconds", 15)))
    assert re.fullmatch(rf"{re.escape(SCALING)}\.burst\.periodSeconds \(group \"infer\"\): 15 is not allowed; "
                        r"allowed: .+",
                        str(caught.value))
