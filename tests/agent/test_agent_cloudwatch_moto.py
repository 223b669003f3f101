"""The agent against a moto CloudWatch server on loopback: what it stores, under which dimensions."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone

from agent_support import NODE, FakeImds, stored_count, wait_until
from gpu_metrics_agent import catalogue as cat
from gpu_metrics_agent.fake_nvml import FakeNvml
from gpu_metrics_agent.imds import TARGET_LIFECYCLE_STATE


def _gpu_dims(nvml: FakeNvml, index: int) -> dict[str, str]:
    return {**NODE, cat.DIM_GPU_INDEX: str(index), cat.DIM_GPU_UUID: nvml.gpus[index].uuid}


def test_datapoints_come_back_with_their_dimensions_and_values(moto, make_agent):
    url, client = moto
    nvml = FakeNvml(2)
    nvml.gpus[0].utilization_gpu, nvml.gpus[1].utilization_gpu = 30, 90
    agent = make_agent(nvml, cloudwatch_endpoint=url, prometheus=False)
    agent.start()
    wait_until(lambda: agent.health.collections >= 10, message="10 collections")
    agent.stop()
    collections = agent.health.collections

    assert stored_count(client, cat.NODE_GPU_COUNT.name, NODE) == collections
    assert stored_count(client, cat.GPU_UTILIZATION.name, _gpu_dims(nvml, 1)) == collections
    stats = client.get_metric_statistics(
        Namespace=cat.NAMESPACE, MetricName=cat.GPU_UTILIZATION.name, Period=60, Statistics=["Maximum", "Minimum"],
        Dimensions=[{"Name": k, "Value": v} for k, v in _gpu_dims(nvml, 1).items()],
        StartTime=_hour_ago(), EndTime=_soon())["Datapoints"]
    assert {p["Maximum"] for p in stats} == {90.0} and {p["Minimum"] for p in stats} == {90.0}
    assert {p["Unit"] for p in stats} == {"Percent"}

    node_util = client.get_metric_statistics(
        Namespace=cat.NAMESPACE, MetricName=cat.NODE_GPU_UTILIZATION.name, Period=60, Statistics=["Average"],
        Dimensions=[{"Name": k, "Value": v} for k, v in NODE.items()], StartTime=_hour_ago(), EndTime=_soon())
    assert {p["Average"] for p in node_util["Datapoints"]} == {60.0}


def test_node_series_and_flagged_gpu_series_are_rolled_up_to_the_group(moto, make_agent):
    url, client = moto
    agent = make_agent(FakeNvml(2), cloudwatch_endpoint=url, prometheus=False)
    agent.start()
    wait_until(lambda: agent.health.cw_sent > 0, message="a successful flush")
    agent.stop()
    dimension_sets: dict[str, set[tuple[str, ...]]] = {}
    for page in client.get_paginator("list_metrics").paginate(Namespace=cat.NAMESPACE):
        for metric in page["Metrics"]:
            names = tuple(sorted(d["Name"] for d in metric["Dimensions"]))
            dimension_sets.setdefault(metric["MetricName"], set()).add(names)
    group = (cat.DIM_ASG,)
    for spec in cat.ALL_METRICS:
        if spec.scope == "mig" or not spec.cloudwatch:
            continue  # the fake's GPUs here have no MIG; some series are for Prometheus only
        expected = {tuple(sorted(spec.dimensions))} | ({group} if spec.group_rollup else set())
        assert dimension_sets.get(spec.name) == expected, spec.name


def _datums(payloads: list[dict]) -> tuple[set[str], set[str]]:
    """Metric names sent under the group's dimensions only, and under the node's own."""
    group, own = set(), set()
    for payload in payloads:
        for datum in payload["MetricData"]:
            names = {d["Name"] for d in datum["Dimensions"]}
            (group if names == {cat.DIM_ASG} else own).add(datum["MetricName"])
    return group, own


def test_a_warm_pool_instance_is_left_out_of_the_group_rollup_until_in_service(moto, proxy, make_agent):
    imds = FakeImds({TARGET_LIFECYCLE_STATE: "Warmed:Running"})
    rollups = {spec.name for spec in cat.ALL_METRICS if spec.group_rollup and spec.scope != "mig" and spec.cloudwatch}
    try:
        agent = make_agent(FakeNvml(2), cloudwatch_endpoint=proxy.url, prometheus=False, imds_endpoint=imds.url,
                           lifecycle_poll_interval=0.1)
        agent.start()
        wait_until(lambda: agent.health.cw_requests >= 3, message="three requests while warmed")
        group, own = _datums(proxy.payloads)
        assert group == set(), "no roll-up from a warm-pool instance: its idle GPUs would dilute the fleet's mean"
        assert {cat.NODE_GPU_COUNT.name, cat.NODE_GPU_UTILIZATION_SUM.name, cat.AGENT_HEARTBEAT.name} <= own
        sent = len(proxy.payloads)
        imds.items[TARGET_LIFECYCLE_STATE] = "InService"
        wait_until(lambda: _datums(proxy.payloads[sent:])[0] == rollups, message="the roll-up once in service")
        assert rollups <= _datums(proxy.payloads[sent:])[1], "own series go on"
        agent.stop()
    finally:
        imds.close()


def test_unknown_lifecycle_state_publishes_the_rollup(moto, proxy, make_agent):
    # FAST's instance metadata endpoint refuses connections; a 404 (not in a group) reads the same as None.
    agent = make_agent(FakeNvml(1), cloudwatch_endpoint=proxy.url, prometheus=False)
    agent.start()
    wait_until(lambda: _datums(proxy.payloads)[0], message="a roll-up datum")
    assert agent.health.lc_errors["target_lifecycle_state"] >= 1 and not agent.lifecycle.warmed


def _hour_ago() -> datetime:
    return datetime.now(timezone.utc) - timedelta(hours=1)


def _soon() -> datetime:
    return datetime.now(timezone.utc) + timedelta(minutes=5)


def test_dimensions_come_from_instance_metadata_when_not_overridden(moto, make_agent, monkeypatch):
    url, client = moto
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):  # the region too must come from instance metadata
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    imds = FakeImds({"/latest/meta-data/instance-id": "i-0fromimds",
                     "/latest/meta-data/instance-type": "g6e.xlarge",
                     "/latest/meta-data/placement/region": "us-east-1",
                     "/latest/meta-data/tags/instance/aws:autoscaling:groupName": "asg-from-tag"})
    try:
        agent = make_agent(FakeNvml(1), cloudwatch_endpoint=url, prometheus=False, imds_endpoint=imds.url,
                           asg_name=None, instance_id=None, instance_type=None, region=None)
        agent.start()
        wait_until(lambda: agent.health.cw_sent > 0, message="a flush")
        agent.stop()
    finally:
        imds.close()
    dims = {cat.DIM_ASG: "asg-from-tag", cat.DIM_INSTANCE_ID: "i-0fromimds", cat.DIM_INSTANCE_TYPE: "g6e.xlarge"}
    assert stored_count(client, cat.AGENT_HEARTBEAT.name, dims) == agent.health.collections
    assert ("GET", "/latest/meta-data/placement/region") in imds.requests


def _utilizations_sent(payloads: list[dict]) -> set[float]:
    return {value for payload in payloads for datum in payload["MetricData"]
            if datum["MetricName"] == cat.NODE_GPU_UTILIZATION.name
            for value in datum.get("Values") or [datum["Value"]]}


def test_a_utilization_step_flushes_at_once_and_a_steady_node_flushes_on_its_interval(moto, proxy, make_agent):
    nvml = FakeNvml(2)
    for gpu in nvml.gpus:
        gpu.utilization_gpu = 20
    # A flush interval far longer than the test's waits: only the early flush can deliver the step in time.
    agent = make_agent(nvml, cloudwatch_endpoint=proxy.url, prometheus=False, flush_interval=30.0,
                       flush_on_change=10.0)
    agent.start()
    wait_until(lambda: agent.health.cw_requests >= 1, message="the first flush")
    time.sleep(0.3)  # the first flush may still be sending the samples that arrived while it ran
    sent = len(proxy.payloads)
    for gpu in nvml.gpus:
        gpu.utilization_gpu = 25  # a move below the step: no early flush
    time.sleep(0.5)
    assert agent.health.cw_early_flushes == 0 and len(proxy.payloads) == sent
    for gpu in nvml.gpus:
        gpu.utilization_gpu = 90
    wait_until(lambda: 90.0 in _utilizations_sent(proxy.payloads), timeout=2, message="the burst in CloudWatch")
    assert agent.health.cw_early_flushes == 1
    assert 25.0 in _utilizations_sent(proxy.payloads), "everything buffered goes with it"
    time.sleep(0.5)
    assert agent.health.cw_early_flushes == 1, "a held level flushes no more"
    agent.stop()


def test_without_flush_on_change_a_step_waits_for_the_interval(moto, proxy, make_agent):
    nvml = FakeNvml(1)
    agent = make_agent(nvml, cloudwatch_endpoint=proxy.url, prometheus=False, flush_interval=30.0,
                       flush_on_change=0.0)
    agent.start()
    wait_until(lambda: agent.health.cw_requests >= 1, message="the first flush")
    time.sleep(0.3)
    sent = len(proxy.payloads)
    nvml.gpus[0].utilization_gpu = 95
    time.sleep(0.6)
    assert len(proxy.payloads) == sent and agent.health.cw_early_flushes == 0
    agent.stop()
