"""KEDA v2.17's executor tests (pkg/scaling/executor/scale_scaledobjects_test.go) through the simulator's
`ScaleExecutor`, then the rules of scale_scaledobjects.go and the SQS scaler the tests do not cover (cooldown,
activation strictly above the threshold, the HPA it creates), and KEDA on a simulated cluster."""

from __future__ import annotations

import numpy as np
import pytest
from sim_support import config, group, workload

from gpuscale.sim.engine import Engine
from gpuscale.sim.hpa import AVERAGE_VALUE, EXTERNAL
from gpuscale.sim.keda import KedaScaler, QueueTrigger, ScaledObject, ScaleExecutor, keda_hpa
from gpuscale.sim.presets import PRESETS, StackEnv
from gpuscale.sim.service import service_model


@pytest.mark.parametrize("name, so, current, active, expected", [
    ("TestScaleToMinReplicasWhenNotActive", ScaledObject(min_replica_count=0), 10, False, 0),
    ("TestScaleToMinReplicasFromLowerInitialReplicaCount", ScaledObject(min_replica_count=5), 1, False, 5),
    ("TestScaleFromMinReplicasWhenActive", ScaledObject(min_replica_count=0), 0, True, 1),
    ("TestScaleToIdleReplicasWhenNotActive", ScaledObject(min_replica_count=5, idle_replica_count=0), 10, False, 0),
    ("TestScaleFromIdleToMinReplicasWhenActive", ScaledObject(min_replica_count=5, idle_replica_count=0), 0, True,
     5),
])
def test_executor(name, so, current, active, expected):
    # The upstream tests run on a ScaledObject that was never active: no cooldown applies.
    assert ScaleExecutor(so).request_scale(1.0, current, active) == expected, name


@pytest.mark.skip(reason="paused ScaledObjects (TestScaleToPausedReplicasCount) and trigger events "
                         "(TestEventWitTriggerInfo) are not modelled")
def test_executor_pause_and_events():
    """TestScaleToPausedReplicasCount, TestEventWitTriggerInfo."""


def test_cooldown_counts_from_the_last_active_poll_and_is_strict():
    """scaleToZeroOrIdle: back to zero once lastActiveTime + cooldownPeriod is before now (300 s by default)."""
    executor = ScaleExecutor(ScaledObject())
    assert executor.request_scale(0, 0, True) == 1
    assert executor.request_scale(30, 1, True) is None, "active with replicas: the HPA scales, KEDA records activity"
    assert executor.request_scale(330, 1, False) is None, "exactly 300 s after the last active poll: not yet"
    assert executor.request_scale(360, 1, False) == 0


def test_active_means_strictly_above_the_activation_value():
    """aws_sqs_queue_scaler.go: active when the queue length is greater than activationQueueLength (default 0)."""
    assert not QueueTrigger().is_active(0) and QueueTrigger().is_active(1)
    trigger = QueueTrigger(activation_queue_length=5)
    assert not trigger.is_active(5) and trigger.is_active(6)


def test_the_hpa_keda_creates():
    """scaledobject_types.go: minReplicas at least 1, maxReplicas 100 by default; the trigger's target is an
    AverageValue of the external metric; no behavior unless the ScaledObject gives one."""
    hpa = keda_hpa(ScaledObject(), QueueTrigger())
    assert (hpa.min, hpa.max, hpa.behavior) == (1, 100, None)
    (metric,) = hpa.metrics
    assert (metric.source, metric.target_type, metric.target) == (EXTERNAL, AVERAGE_VALUE, 5000)
    assert hpa.sync(0, 0, 0, (), ((40_000,),)) == 0, "the HPA leaves a target at zero alone: KEDA activates it"
    assert hpa.sync(0, 1, 1, (), ((40_000,),)) == 4, "40 messages at 5 per replica: 8, capped at max(2 x 1, 4)"


def test_keda_on_a_cluster_wakes_at_the_first_poll_and_returns_to_zero_after_the_cooldown():
    cfg = config(group(maxSize=10, workload=workload(concurrencyPerReplica=4)))
    g = cfg.auto_scaling_groups[0]
    svc = service_model(g.workload)
    setup = PRESETS["keda-queue"].build(svc, g, StackEnv(cfg.agent, cfg.kubernetes.cluster_autoscaler), None, True)
    assert isinstance(setup.scaler, KedaScaler)
    arrivals = np.zeros(3600)
    arrivals[5] = 8  # after the poll at 0: the next poll, at 30 s, activates
    run = Engine(svc, setup.fleet, setup.scaler, arrivals, 3600, setup.at_zero_capacity).run()
    starting = np.flatnonzero(run.starting_replicas)
    assert starting[0] == 30, "KEDA's first poll after the requests arrive creates the first pod"
    assert run.completed == pytest.approx(8)
    ready = np.flatnonzero(run.ready_replicas)
    last_busy = int(np.flatnonzero(run.busy)[-1])
    # The last active poll is at most 30 s before the queue empties; the first poll more than 300 s after it scales
    # to zero.
    assert last_busy + 270 < ready[-1] <= last_busy + 300 + 30
