"""The agent against a moto CloudWatch server on loopback: what it stores, under which dimensions."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from agent_support import NODE, FakeImds, stored_count, wait_until
from gpu_metrics_agent import catalogue as cat
from gpu_metrics_agent.fake_nvml import FakeNvml


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
        if spec.scope == "mig":
            continue  # the fake's GPUs here have no MIG
        expected = {tuple(sorted(spec.dimensions))} | ({group} if spec.group_rollup else set())
        assert dimension_sets.get(spec.name) == expected, spec.name


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
