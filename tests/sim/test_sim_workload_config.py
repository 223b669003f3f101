"""The `workload:` section: what it reads, and errors that name the key and what is allowed."""

from __future__ import annotations

import pytest
from sim_support import config, group, stack, workload

from gpuscale.config import ConfigError


def test_reads_a_full_section():
    w = config(group(workload=workload(
        concurrencyPerReplica=8, gpusPerReplica=1,
        serviceTime={"meanSeconds": 20, "distribution": "lognormal", "cv": 0.6},
        coldStart={"nodeProvisioningSeconds": 90, "imagePullSeconds": 80, "modelLoadSeconds": 40,
                   "warmPoolResumeSeconds": 30},
        price={"perInstanceHour": 0.8048, "currency": "EUR"}, requestTimeoutSeconds=120,
        readinessDeadlineSeconds=600, atZeroCapacity="refuse", clientRetrySeconds=5))).auto_scaling_groups[0].workload
    assert (w.concurrency_per_replica, w.replicas_per_instance, w.currency) == (8, 1, "EUR")
    assert w.cold_start.cold_seconds == 210 and w.cold_start.warm_seconds == 70
    assert (w.at_zero_capacity, w.client_retry_seconds, w.readiness_deadline_seconds) == ("refuse", 5, 600)


def test_replicas_per_instance_come_from_the_fewest_gpus():
    g = config(group(instanceTypes=["g5.12xlarge"], workload=workload(gpusPerReplica=2))).auto_scaling_groups[0]
    assert g.workload.replicas_per_instance == 2, "4 A10G GPUs, 2 per replica"


def test_the_stacks_have_workloads():
    for name in ("dev", "prod"):
        cfg = stack(name)
        assert all(g.workload is not None for g in (*cfg.auto_scaling_groups, *cfg.node_groups))


@pytest.mark.parametrize("section, key, allowed", [
    (workload(gpusPerReplica=2), "workload.gpusPerReplica", "at most 1: g6.xlarge"),
    (workload(concurrencyPerReplica=0), "workload.concurrencyPerReplica", "an integer in [1, 4096]"),
    (workload(serviceTime={"meanSeconds": 0.5}), "workload.serviceTime.meanSeconds", "a number in [1, 3600]"),
    (workload(serviceTime={"meanSeconds": 5, "distribution": "fixed", "cv": 1}), "workload.serviceTime.cv",
     "cv only with distribution: lognormal"),
    (workload(serviceTime={"meanSeconds": 5, "distribution": "pareto"}), "workload.serviceTime.distribution",
     "one of fixed, exponential, lognormal"),
    (workload(coldStart={"imagePullSeconds": 1, "modelLoadSeconds": 1}),
     "workload.coldStart.nodeProvisioningSeconds", "a value is required"),
    (workload(price={"perInstanceHour": 0}), "workload.price.perInstanceHour", "a number in (0, 1000]"),
    (workload(price={"perInstanceHour": 1, "currency": "usd"}), "workload.price.currency", "ISO 4217"),
    (workload(atZeroCapacity="drop"), "workload.atZeroCapacity", "one of queue, refuse"),
    (workload(clientRetrySeconds=5), "workload.clientRetrySeconds", "only with atZeroCapacity: refuse"),
    (workload(requestTimeout=5), "workload.requestTimeout", "known keys here are"),
    (workload(coldStart={"nodeProvisioningSeconds": 1, "imagePullSeconds": 1, "modelLoadSeconds": 1,
                         "devicePluginReadySeconds": 10}),
     "workload.coldStart.devicePluginReadySeconds", "only on gpuscale:nodeGroups entries"),
])
def test_bad_values_name_the_key(section, key, allowed):
    with pytest.raises(ConfigError) as err:
        config(group(workload=section))
    assert err.value.key == f"gpuscale:autoScalingGroups[0].{key}"
    assert allowed in err.value.allowed


def test_warm_pool_needs_a_resume_time():
    with pytest.raises(ConfigError) as err:
        config(group(warmPool={"minSize": 1}))
    assert err.value.key.endswith("workload.coldStart.warmPoolResumeSeconds")
