"""cluster-autoscaler 1.33's rules (core/static_autoscaler.go, processors/customresources/gpu_processor.go,
clusterstate, simulator/utilization, core/scaledown) on a simulated node group, through `PodCluster`. The settings
come from the stack config (`gpuscale:kubernetes.clusterAutoscaler`, defaults cited in gpuscale/config/kubernetes.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sim_support import CATALOG

from gpuscale.config import load_stack_config
from gpuscale.sim.cluster_autoscaler import ca_settings
from gpuscale.sim.pods import PodCluster
from gpuscale.sim.service import service_model

COLD = {"nodeProvisioningSeconds": 100, "devicePluginReadySeconds": 30, "imagePullSeconds": 20,
        "modelLoadSeconds": 10}


def stack(instance_type="g6.xlarge", max_size=10, min_size=0, kubernetes=None, autoscaler=None):
    entry = {"name": "gpu", "instanceTypes": [instance_type], "minSize": min_size, "maxSize": max_size,
             "workload": {"concurrencyPerReplica": 1, "serviceTime": {"meanSeconds": 60, "distribution": "fixed"},
                          "coldStart": COLD, "price": {"perInstanceHour": 1.0}, "requestTimeoutSeconds": 3600}}
    if autoscaler:
        entry["autoscaler"] = autoscaler
    values = {"aws:region": "us-west-2", "gpuscale:cluster": {"name": "t"}, "gpuscale:nodeGroups": [entry]}
    if kubernetes:
        values["gpuscale:kubernetes"] = {"clusterAutoscaler": kubernetes}
    return load_stack_config(values, "t", CATALOG)


def cluster(cfg, **settings) -> PodCluster:
    g = cfg.node_groups[0]
    svc = service_model(g.workload)
    s = replace(ca_settings(cfg.kubernetes.cluster_autoscaler, g.autoscaler), **settings)
    return PodCluster(svc, g.min_size, g.max_size, 0, g.max_size * svc.replicas_per_instance, s, start_at_zero=True)


def run(c: PodCluster, until: int, desired: dict[int, int] | None = None, record=None) -> None:
    """Step the cluster second by second as the engine does, setting the desired pods at the given seconds."""
    for t in range(until):
        if t >= c.next_change:
            c.advance(t)
        if desired and t in desired:
            c.set_desired(t, desired[t])
        if record is not None:
            record.append((t, len(c.nodes), c.ready_replicas))


def first(record, predicate, after=0):
    return next(t for t, nodes, ready in record if t >= after and predicate(nodes, ready))


def test_gpu_pods_wait_30_s_then_the_next_scan_buys_nodes_once():
    c = cluster(stack())
    record = []
    run(c, 400, {0: 4}, record)
    assert first(record, lambda n, r: n > 0) == 30, "GPU pods are helped once the oldest is 30 s old (scan at 30)"
    assert max(n for _, n, _ in record) == 4, "upcoming nodes count for the pending pods: bought once"
    # Registered at 130, GPU advertised at 160, image pulled at 180, model loaded at 190.
    assert first(record, lambda n, r: r > 0) == 190


def test_without_the_gpu_label_a_registered_node_looks_ready_and_more_are_bought():
    c = cluster(stack(), accelerator_label=False)
    record = []
    run(c, 400, {0: 4}, record)
    assert max(n for _, n, _ in record) == 8, "the scan at 130 sees Ready nodes with no GPU and buys again"


def test_scan_interval_and_overrides_come_from_the_config():
    c = cluster(stack(kubernetes={"scanIntervalSeconds": 25}))
    record = []
    run(c, 200, {0: 1}, record)
    assert first(record, lambda n, r: n > 0) == 50, "first scan at or after the 30 s buffer: 50"
    g = stack(kubernetes={"scaleDownUnneededSeconds": 900},
              autoscaler={"scaleDownUnneededSeconds": 120, "scaleDownGpuUtilizationThreshold": 0.3})
    s = ca_settings(g.kubernetes.cluster_autoscaler, g.node_groups[0].autoscaler)
    assert (s.scale_down_unneeded, s.gpu_utilization_threshold) == (120, 0.3), "the group's tags win"


def test_a_node_not_registered_within_max_node_provision_time_is_given_up_and_the_group_backs_off():
    cfg = stack(kubernetes={"maxNodeProvisionSeconds": 60})
    c = cluster(cfg)
    record = []
    run(c, 500, {0: 1}, record)
    assert c.ca.gave_up >= 1
    launches = [t for (t, n, _), (_, before, _) in zip(record[1:], record) if n > before]
    assert launches[0] == 30 and launches[1] >= 90 + 300, "removed at 90, then 5 min of backoff"
    assert c.ready_replicas == 0


def test_scale_down_after_unneeded_time_and_delay_after_add():
    c = cluster(stack(kubernetes={"scaleDownUnneededSeconds": 120, "scaleDownDelayAfterAddSeconds": 600}))
    record = []
    run(c, 1200, {0: 2, 300: 0}, record)
    # Scale-up at 30; unneeded from 300; 120 s later (420) it would go, but not within 600 s of the scale-up.
    assert first(record, lambda n, r: n == 0, after=300) == 630


def test_gpu_utilization_threshold_drains_a_partly_used_multi_gpu_node():
    # g5.12xlarge: 4 GPUs, 4 single-GPU replicas a node.
    def shape(threshold):
        c = cluster(stack("g5.12xlarge", max_size=4, kubernetes={"scaleDownGpuUtilizationThreshold": threshold,
                                                                  "scaleDownUnneededSeconds": 60,
                                                                  "scaleDownDelayAfterAddSeconds": 0}))
        record = []
        run(c, 900, {0: 5, 300: 3}, record)
        return c, record

    c, record = shape(0.5)
    # 5 pods on two nodes (4 + 1); down to 3 takes pods from the fuller node: 2 + 1. The node with 1 GPU of 4
    # requested (25 % < 50 %) is drained onto the other, whose image is there: the pod only reloads its model.
    assert len(c.nodes) == 1 and c.ready_replicas == 3
    c, _ = shape(0.2)
    assert len(c.nodes) == 2, "25 % is above a 20 % threshold: both nodes stay"


def test_scale_down_keeps_the_group_minimum():
    c = cluster(stack(min_size=1, kubernetes={"scaleDownUnneededSeconds": 60, "scaleDownDelayAfterAddSeconds": 0}))
    run(c, 900, {0: 3, 300: 0})
    assert len(c.nodes) == 1


@pytest.mark.parametrize("key, value", [("devicePluginReadySeconds", 45)])
def test_device_plugin_readiness_is_part_of_a_node_groups_cold_start(key, value):
    cfg = stack()
    cs = cfg.node_groups[0].workload.cold_start
    assert cs.device_plugin_ready_seconds == 30
    assert cs.cold_seconds == 100 + 30 + 20 + 10
    # Pending pod to GPU advertised: the 30 s GPU pod buffer, a scan, provisioning, the device plugin.
    assert cs.gpu_ready_seconds(cfg.kubernetes.cluster_autoscaler.scan_interval_seconds) == 30 + 10 + 100 + 30
