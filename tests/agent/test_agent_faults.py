"""The fault suite: CloudWatch failing in every way it can, a GPU lost, a full buffer; datapoints are counted as
sampled (successful collections) and as stored in moto, and none is lost within the buffer's bound."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from agent_support import NODE, stored_count, wait_until
from gpu_metrics_agent import catalogue as cat
from gpu_metrics_agent.config import datapoints_per_snapshot
from gpu_metrics_agent.fake_nvml import FakeNvml


def _gpu_dims(nvml: FakeNvml, index: int) -> dict[str, str]:
    return {**NODE, cat.DIM_GPU_INDEX: str(index), cat.DIM_GPU_UUID: nvml.gpus[index].uuid}


def _through(agent, reason: str) -> None:
    before = agent.health.cw_errors[reason]
    wait_until(lambda: agent.health.cw_errors[reason] > before, timeout=8, message=f"a {reason} publish error")
    time.sleep(0.3)  # keep sampling into the buffer while CloudWatch stays down


def test_5xx_throttling_timeouts_and_refused_connections_lose_nothing(moto, proxy, make_agent):
    url, client = moto
    nvml = FakeNvml(2)
    agent = make_agent(nvml, cloudwatch_endpoint=proxy.url, prometheus=False)
    agent.start()
    wait_until(lambda: agent.health.cw_sent > 0, message="a first successful flush")

    for mode, reason in (("5xx", "server"), ("throttle", "throttled"), ("hang", "connection")):
        proxy.mode = mode
        _through(agent, reason)
    proxy.mode = "pass"
    proxy.refuse()
    _through(agent, "connection")
    buffered_in_outage = len(agent.cloudwatch.buffer)
    proxy.accept()

    wait_until(lambda: len(agent.cloudwatch.buffer) < 100, timeout=10, message="the backlog to drain")
    agent.stop()
    sampled = agent.health.collections
    assert buffered_in_outage > 10 * datapoints_per_snapshot(2), "the outage should have left a backlog to resend"
    assert agent.cloudwatch.buffer.dropped == 0 and agent.health.cw_given_up == {"expired": 0, "rejected": 0}
    assert len(agent.cloudwatch.buffer) == 0
    assert stored_count(client, cat.NODE_GPU_COUNT.name, NODE) == sampled
    assert stored_count(client, cat.AGENT_HEARTBEAT.name, NODE) == sampled
    for index in (0, 1):
        assert stored_count(client, cat.GPU_POWER.name, _gpu_dims(nvml, index)) == sampled


def test_resent_datapoints_keep_their_original_timestamps(moto, proxy, make_agent):
    url, client = moto
    nvml = FakeNvml(1)
    agent = make_agent(nvml, cloudwatch_endpoint=proxy.url, prometheus=False, sample_interval=0.25)
    proxy.mode = "5xx"
    agent.start()
    _through(agent, "server")
    time.sleep(1.5)
    outage_end = time.time()
    proxy.mode = "pass"
    wait_until(lambda: len(agent.cloudwatch.buffer) == 0 and agent.health.cw_sent > 0, message="the resend")
    agent.stop()
    now = datetime.now(timezone.utc)
    points = client.get_metric_statistics(
        Namespace=cat.NAMESPACE, MetricName=cat.AGENT_HEARTBEAT.name, Period=1, Statistics=["SampleCount"],
        Dimensions=[{"Name": k, "Value": v} for k, v in NODE.items()],
        StartTime=now - timedelta(minutes=5), EndTime=now + timedelta(minutes=1))
    seconds = sorted(p["Timestamp"].timestamp() for p in points["Datapoints"])
    # One-second buckets through the outage, not one burst stamped at the resend.
    assert len([s for s in seconds if s < outage_end - 1]) >= 2
    assert sum(p["SampleCount"] for p in points["Datapoints"]) == agent.health.collections


def _first_gpm_gap(health) -> int:
    # GPM series need two samples: the first snapshot of each NVML session lacks the four of them.
    return 4 * health.nvml_inits


def test_a_full_buffer_drops_the_oldest_and_counts_them(moto, proxy, make_agent):
    url, client = moto
    nvml = FakeNvml(1)
    per_snapshot = datapoints_per_snapshot(1)
    agent = make_agent(nvml, cloudwatch_endpoint=proxy.url, prometheus=False, buffer_datapoints=10 * per_snapshot)
    proxy.mode = "5xx"
    agent.start()
    wait_until(lambda: agent.cloudwatch.buffer.dropped >= 20 * per_snapshot, message="overflow")
    proxy.mode = "pass"
    wait_until(lambda: len(agent.cloudwatch.buffer) == 0, message="the drain")
    agent.stop()
    health, buffer = agent.health, agent.cloudwatch.buffer
    sampled_datapoints = health.cw_sent + buffer.dropped
    assert buffer.dropped > 0 and health.cw_sent > 0
    assert sampled_datapoints == health.collections * per_snapshot - _first_gpm_gap(health)
    # Whole snapshots are dropped; only the first (no GPM yet) is short, so rounding up counts them exactly.
    dropped_snapshots = -(-buffer.dropped // per_snapshot)
    assert stored_count(client, cat.NODE_GPU_COUNT.name, NODE) == health.collections - dropped_snapshots


def test_a_request_refused_as_invalid_is_dropped_and_counted_not_retried_forever(moto, proxy, make_agent):
    url, client = moto
    agent = make_agent(FakeNvml(1), cloudwatch_endpoint=proxy.url, prometheus=False)
    proxy.mode = "invalid"
    agent.start()
    wait_until(lambda: agent.health.cw_given_up["rejected"] > 0, message="a rejected request")
    proxy.mode = "pass"
    wait_until(lambda: agent.health.cw_sent > 0 and len(agent.cloudwatch.buffer) == 0, message="publishing on")
    agent.stop()
    health = agent.health
    assert health.cw_errors["rejected"] >= 1 and agent.cloudwatch.buffer.dropped == 0
    sampled = health.collections * datapoints_per_snapshot(1) - _first_gpm_gap(health)
    assert health.cw_sent + health.cw_given_up["rejected"] == sampled, "every datapoint is stored or counted"
    assert stored_count(client, cat.NODE_GPU_COUNT.name, NODE) < health.collections


def test_a_gpu_lost_mid_run_costs_one_cycle_then_the_others_keep_reporting(moto, make_agent):
    url, client = moto
    nvml = FakeNvml(3)
    agent = make_agent(nvml, cloudwatch_endpoint=url, prometheus=False)
    agent.start()
    wait_until(lambda: agent.health.collections >= 5, message="5 collections")
    nvml.lose_gpu(1)
    wait_until(lambda: agent.health.nvml_inits == 2 and agent.sampler.latest.skipped == (1,), message="re-init")
    lost_at = agent.health.collections
    wait_until(lambda: agent.health.collections >= lost_at + 5, message="5 more collections")
    agent.stop()
    health = agent.health
    assert health.failures["lifecycle"] == 1, "one failed cycle, then GPU 1 is confirmed lost and skipped"
    assert agent.sampler.latest.node[cat.NODE_GPU_COUNT.name] == 2.0
    assert stored_count(client, cat.NODE_GPU_COUNT.name, NODE) == health.collections
    assert stored_count(client, cat.GPU_POWER.name, _gpu_dims(nvml, 0)) == health.collections
    assert stored_count(client, cat.GPU_POWER.name, _gpu_dims(nvml, 1)) < lost_at
