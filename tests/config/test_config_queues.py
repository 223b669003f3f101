"""gpuscale:queues: the queues the signals name, created unless they exist; refused with the key, value and rule."""

from __future__ import annotations

import copy

import pytest
from test_config_validation import CATALOG, base

from gpuscale.plan.checks import run_checks
from gpuscale.config import ConfigError, load_stack_config
from gpuscale.config.queues import queue_uses

WAKE = {"kind": "sqs", "queueName": "infer-requests"}


def load(queues=None, queue_name="infer-requests", workload=None):
    cfg = copy.deepcopy(base())
    group = cfg["gpuscale:autoScalingGroups"][0]
    group["scaling"] = {"target": {"gpuUtilization": 70}, "demand": {"kind": "sqs", "queueName": queue_name,
                                                                     "targetPerInstance": 8},
                        "scaleToZero": {"idleMinutes": 5}}
    if workload:
        group["workload"] = workload
    if queues is not None:
        cfg["gpuscale:queues"] = queues
    return load_stack_config(cfg, "test", CATALOG)


def test_every_named_queue_is_created_with_defaults_once():
    (queue,) = load().queues
    assert (queue.name, queue.existing, queue.visibility_timeout_seconds, queue.max_receive_count) == \
        ("infer-requests", False, 30, 5)
    assert [u.key for u in queue.uses] == ["gpuscale:autoScalingGroups[0].scaling.demand.queueName"], \
        "the wake falls back to the demand signal: one use"
    assert queue.consumer_groups == ("infer",)
    assert [u.queue_name for u in queue_uses(load())] == ["infer-requests"]


def test_entry_sets_a_queue_and_existing_skips_creation():
    (queue,) = load([{"name": "infer-requests", "visibilityTimeoutSeconds": 600, "maxReceiveCount": 2}]).queues
    assert (queue.visibility_timeout_seconds, queue.max_receive_count, queue.entry_key) == (600, 2,
                                                                                           "gpuscale:queues[0]")
    assert load([{"name": "infer-requests", "existing": True}]).queues[0].existing


@pytest.mark.parametrize("queues, queue_name, key, allowed", [
    ([{"name": "other"}], "infer-requests", "gpuscale:queues[0].name", "a queue a wake or demand signal names"),
    ([{"name": "infer-requests"}, {"name": "infer-requests"}], "infer-requests", "gpuscale:queues[1].name",
     "named once"),
    ([{"name": "infer-requests", "existing": True, "maxReceiveCount": 3}], "infer-requests",
     "gpuscale:queues[0].maxReceiveCount", "keeps its own settings"),
    ([{"name": "infer-requests", "visibilityTimeoutSeconds": 50000}], "infer-requests",
     "gpuscale:queues[0].visibilityTimeoutSeconds", "[0, 43200]"),
    ([{"name": "infer-requests", "maxReceiveCount": 0}], "infer-requests", "gpuscale:queues[0].maxReceiveCount",
     "[1, 1000]"),
    ([{"name": "infer-requests", "retention": 60}], "infer-requests", "gpuscale:queues[0].retention",
     "known keys here are"),
    (None, "q" * 78, "gpuscale:autoScalingGroups[0].scaling.demand.queueName", "its dead-letter queue"),
    ({"name": "infer-requests"}, "infer-requests", "gpuscale:queues", "a list"),
])
def test_bad_queue_config_is_refused(queues, queue_name, key, allowed):
    with pytest.raises(ConfigError) as err:
        load(queues, queue_name)
    assert err.value.key == key, str(err.value)
    assert allowed in str(err.value)


def test_existing_long_name_is_not_held_to_the_dead_letter_rule():
    assert load([{"name": "q" * 78, "existing": True}], "q" * 78).queues[0].existing


def test_check_warns_when_messages_reappear_before_requests_finish():
    workload = {"concurrencyPerReplica": 4, "serviceTime": {"meanSeconds": 60},
                "coldStart": {"nodeProvisioningSeconds": 120, "imagePullSeconds": 60, "modelLoadSeconds": 60},
                "price": {"perInstanceHour": 1.0}, "requestTimeoutSeconds": 1800}
    short = [f for f in run_checks(load(workload=workload)) if f.check == "queue-visibility"]
    assert len(short) == 1 and short[0].severity == "warning" and "60 s infer takes" in short[0].message
    assert short[0].settings[0] == "gpuscale:queues (an entry for infer-requests).visibilityTimeoutSeconds"
    fine = load([{"name": "infer-requests", "visibilityTimeoutSeconds": 300}], workload=workload)
    assert not [f for f in run_checks(fine) if f.check == "queue-visibility"]
