"""The wake from zero as the stack deploys it: one one-minute SQS datapoint at zero capacity, then the capacity of the
wake policy's step for that backlog (ExactCapacity), and nothing while the group runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sim_support import config, group, workload

from gpuscale.sim.results import simulate_group
from gpuscale.sim.traces import Trace, burst

COLD = {"nodeProvisioningSeconds": 30, "imagePullSeconds": 20, "modelLoadSeconds": 10}
QUEUE = {"kind": "sqs", "queueName": "jobs"}


def zero_scaling(**zero) -> dict:
    return {"target": {"gpuUtilization": 75}, "scaleToZero": {"idleMinutes": 5, "wake": QUEUE, **zero}}


def launched(scaling: dict, trace: Trace, max_size: int = 10) -> tuple[int, int]:
    """(second of the first launch, instances it asked for) for the stack preset."""
    cfg = config(group(maxSize=max_size, scaling=scaling, workload=workload(concurrencyPerReplica=2, coldStart=COLD)))
    run = simulate_group(cfg.auto_scaling_groups[0], cfg.agent, trace, ["stack"]).runs["stack"]
    first = int(np.flatnonzero(run.billed_instances)[0])
    return first, int(run.billed_instances[first])


@pytest.mark.parametrize("per_instance, max_size, expected", [
    (None, 10, 2),  # no size: the warm minimum
    (8, 10, math.ceil(100 / 8)),  # 13 wanted, capped at maxSize 10
    (8, 20, 13),
    (25, 20, 4),
    (100, 20, 2),  # one instance would do; the warm minimum is the floor
])
def test_a_burst_at_zero_wakes_ceil_backlog_over_per_instance_after_one_sqs_minute(per_instance, max_size, expected):
    zero = {"warmMinimum": 2} if per_instance is None else {"warmMinimum": 2, "wakeMessagesPerInstance": per_instance}
    second, instances = launched(zero_scaling(**zero), burst(), max_size)
    assert second == 60, "the queue's one-minute datapoint closes at 60 s; the alarm needs one"
    assert instances == min(expected, max_size)


def test_the_wake_does_not_resize_a_running_group():
    # 10 requests wake 1 instance (10 per instance); a second wave of 200 arrives while it runs: the wake, which
    # acts only while the desired capacity was zero all minute, must not set 10 instances then.
    arrivals = np.zeros(600)
    arrivals[0], arrivals[200] = 10, 200
    cfg = config(group(maxSize=10, scaling=zero_scaling(warmMinimum=1, wakeMessagesPerInstance=10),
                       workload=workload(concurrencyPerReplica=2, coldStart=COLD)))
    run = simulate_group(cfg.auto_scaling_groups[0], cfg.agent, Trace("two waves", arrivals, "10, then 200"),
                         ["stack"], duration=600).runs["stack"]
    assert run.billed_instances[60] == 1
    assert run.billed_instances[200:300].max() < 10, "only target tracking adds capacity to a running group"
