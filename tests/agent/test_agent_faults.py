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


# --- the agent never reports healthy while it is not, and never feeds scaling a wrong number -------------------

def test_a_publisher_thread_that_dies_turns_healthz_unhealthy_and_shows_in_the_health_metrics():
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from gpu_metrics_agent.cloudwatch import CloudWatchPublisher, CloudWatchSettings
    from gpu_metrics_agent.collector import Collector
    from gpu_metrics_agent.health import Health
    from gpu_metrics_agent.imds import NodeIdentity
    from gpu_metrics_agent.prometheus import AgentCollector, make_registry

    class Defective:  # a defect that is no botocore error: nothing in the publisher expects it
        def put_metric_data(self, **params):
            raise RuntimeError("defect in the request path")

    health = Health(sample_interval=1.0, stale_intervals=5)
    snapshot = Collector(FakeNvml(1), health).collect()
    publisher = CloudWatchPublisher(CloudWatchSettings(flush_interval=0.05), health,
                                    lambda: NodeIdentity("g", "i-0123456789abcdef0", "p5.48xlarge", "us-east-1"),
                                    client_factory=lambda identity, settings: Defective())
    publisher.start()
    assert health.status()[0], "healthy while everything runs"
    publisher.offer(snapshot)
    wait_until(lambda: health.threads["cloudwatch"] is not None, message="the publisher thread to die")
    healthy, reason = health.status()
    assert not healthy and "cloudwatch (RuntimeError: defect in the request path)" in reason
    text = generate_latest(make_registry(AgentCollector(lambda: snapshot, health, publisher.buffer))).decode()
    samples = {(s.name, tuple(s.labels.items())): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("gpuscale_agent_thread_up", (("thread", "cloudwatch"),))] == 0.0
    assert samples[("gpuscale_agent_healthy", ())] == 0.0
    assert samples[("gpuscale_agent_cloudwatch_buffered_datapoints", ())] > 0, "what was sampled is still held"
    assert publisher.stop(timeout=1.0) == len(publisher.buffer), "stopping after a death raises nothing"


def test_a_gpu_lost_then_recovered_is_read_again_and_its_datapoints_resume(moto, make_agent):
    url, client = moto
    nvml = FakeNvml(2)
    agent = make_agent(nvml, cloudwatch_endpoint=url, prometheus=False, lost_gpu_reprobe_interval=0.3)
    agent.start()
    wait_until(lambda: agent.health.collections >= 3, message="3 collections")
    nvml.lose_gpu(1)
    wait_until(lambda: agent.sampler.latest.skipped == (1,), message="GPU 1 confirmed lost")
    assert [s.state for s in agent.sampler.latest.states] == ["ok", "lost"]
    before = stored_count(client, cat.GPU_POWER.name, _gpu_dims(nvml, 1))
    nvml.gpus[1].lost = False  # reset, back on the bus
    wait_until(lambda: [s.state for s in agent.sampler.latest.states] == ["ok", "ok"], message="GPU 1 found again")
    back_at = agent.health.collections
    wait_until(lambda: agent.health.collections >= back_at + 5, message="5 more collections")
    agent.stop()
    assert agent.health.failures["lifecycle"] == 1, "only the cycle that found it lost failed"
    assert stored_count(client, cat.GPU_POWER.name, _gpu_dims(nvml, 1)) >= before + 5
    assert agent.sampler.latest.node[cat.NODE_GPU_COUNT.name] == 2.0


def test_a_mig_gpu_in_the_fleet_rollup_keeps_sum_over_count_the_mean_of_the_same_gpus(moto, make_agent):
    from gpu_metrics_agent.fake_nvml import FakeGpu, FakeMig
    import pynvml

    url, client = moto
    # The node: three plain GPUs reading 56, 64 and 72 % and a MIG GPU without any utilization (no GPM,
    # as on an A100). SUM(sum)/SUM(count) once read 192/4 = 48 %; the GPUs that report average 64 %.
    plain = [FakeGpu(uuid=f"GPU-{n}", utilization_gpu=u) for n, u in enumerate((56, 64, 72))]
    a100_mig = FakeGpu(uuid="GPU-mig", mig=[FakeMig(1), FakeMig(2)])
    hopper_mig = FakeGpu(uuid="GPU-h-mig", gpm={pynvml.NVML_GPM_METRIC_SM_UTIL: 0.0},
                         mig=[FakeMig(1, sms=16, gpm={pynvml.NVML_GPM_METRIC_SM_UTIL: 64.0}),
                              FakeMig(2, sms=48, gpm={pynvml.NVML_GPM_METRIC_SM_UTIL: 64.0})])
    agent = make_agent(FakeNvml(plain + [a100_mig, hopper_mig]), cloudwatch_endpoint=url, prometheus=False)
    agent.start()
    wait_until(lambda: agent.health.collections >= 6, message="6 collections")
    agent.stop()
    now = datetime.now(timezone.utc)

    def total(metric: str, dimensions: dict[str, str]) -> float:
        points = client.get_metric_statistics(
            Namespace=cat.NAMESPACE, MetricName=metric, Dimensions=[{"Name": k, "Value": v} for k, v in
                                                                     dimensions.items()],
            Period=60, Statistics=["Sum"], StartTime=now - timedelta(hours=1), EndTime=now + timedelta(minutes=5))
        return sum(p["Sum"] for p in points["Datapoints"])

    # What the scaling policies divide, over the group's dimension set. The Hopper MIG GPU reads 64 % from its
    # instances once GPM has two samples (the first collection counts 3 GPUs in both sum and count).
    group = {cat.DIM_ASG: NODE["AutoScalingGroupName"]}
    assert total(cat.NODE_GPU_UTILIZATION_SUM.name, group) / total(cat.NODE_GPU_COUNT.name, group) == 64.0
    assert total(cat.NODE_GPUS_READ.name, NODE) == 5 * agent.health.collections


def test_fake_gpus_never_publish_to_aws_unless_asked_and_say_so_loudly_when_they_do(moto, proxy):
    import signal
    import subprocess
    import sys

    from test_agent_cli import NODE_FLAGS, _env

    def run(*extra: str) -> str:
        # botocore sends "the region's endpoint" wherever AWS_ENDPOINT_URL_CLOUDWATCH says: here, the proxy.
        agent = subprocess.Popen([sys.executable, "-m", "gpu_metrics_agent", "--fake-gpus", "2", "--sample-interval",
                                  "0.05", "--flush-interval", "0.2", "--no-prometheus", *NODE_FLAGS, *extra],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=_env(AWS_ENDPOINT_URL_CLOUDWATCH=proxy.url))
        try:
            time.sleep(2.0)
            agent.send_signal(signal.SIGTERM)
            _out, err = agent.communicate(timeout=20)
        finally:
            agent.kill()
        assert agent.returncode == 0, err
        return err

    err = run()
    assert proxy.payloads == [], "nothing simulated reached the endpoint"
    assert "CloudWatch publishing is off: --fake-gpus readings are simulated" in err
    err = run("--fake-gpus-publish")
    assert proxy.payloads, "asked explicitly, it publishes"
    assert "WARNING" in err and "PUBLISHING SIMULATED GPU READINGS" in err
