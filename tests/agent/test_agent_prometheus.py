"""/metrics and /healthz over HTTP, and the independence of sampling, scraping and publishing."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pynvml
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent_support import wait_until
from gpu_metrics_agent.fake_nvml import FakeNvml


def _get(agent, path: str, timeout: float = 2.0) -> tuple[int, str]:
    url = f"http://127.0.0.1:{agent.server.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_and_healthz_while_healthy(make_agent):
    nvml = FakeNvml(2)
    nvml.gpus[1].utilization_gpu = 64
    agent = make_agent(nvml, cloudwatch=False)
    agent.start()
    wait_until(lambda: agent.health.collections >= 2, message="two collections")
    status, text = _get(agent, "/metrics")
    samples = _samples(text)
    assert status == 200
    assert samples[("gpuscale_gpu_utilization_ratio", (("gpu", "1"), ("uuid", nvml.gpus[1].uuid)))] == 0.64
    assert samples[("gpuscale_node_gpus", ())] == 2.0
    assert samples[("gpuscale_agent_collection_success", ())] == 1.0
    assert samples[("gpuscale_agent_collection_failures_total", (("tier", "lifecycle"),))] == 0.0
    assert not any(name.startswith("gpuscale_agent_cloudwatch_") for name, _ in samples), "CloudWatch is off"
    status, body = _get(agent, "/healthz")
    assert status == 200 and json.loads(body)["healthy"] is True
    assert _get(agent, "/nope")[0] == 404


def test_a_hung_collection_never_stalls_a_scrape_and_readings_go_stale(make_agent):
    nvml = FakeNvml(1)
    agent = make_agent(nvml, cloudwatch=False, shutdown_timeout=0.5)
    agent.start()
    wait_until(lambda: agent.health.collections >= 1, message="a collection")
    nvml.stall = threading.Event()  # the next NVML call hangs, as a wedged driver would
    time.sleep(4 * 0.05 + 0.2)  # past the stale limit: 4 intervals of 0.05 s
    started = time.monotonic()
    status, text = _get(agent, "/metrics", timeout=1.0)
    assert status == 200 and time.monotonic() - started < 0.5
    samples = _samples(text)
    names = {name for name, _ in samples}
    assert "gpuscale_gpu_utilization_ratio" not in names, "stale readings are withdrawn, not repeated"
    assert "gpuscale_agent_last_success_timestamp_seconds" in names
    status, body = _get(agent, "/healthz")
    assert status == 503 and "no successful collection for" in json.loads(body)["reason"]
    # The health metrics say what /healthz says: the hung collection has not failed, but nothing is fresh.
    assert samples[("gpuscale_agent_collection_success", ())] == 0.0
    assert samples[("gpuscale_agent_healthy", ())] == 0.0
    nvml.stall.set()
    wait_until(lambda: _get(agent, "/healthz")[0] == 200, message="recovery")


def test_healthz_is_unhealthy_until_a_first_collection_succeeds(make_agent):
    nvml = FakeNvml(1)
    nvml.fail_init(times=1000, code=pynvml.NVML_ERROR_UNKNOWN)  # a driver that is there but failing
    agent = make_agent(nvml, cloudwatch=False)
    agent.start()
    wait_until(lambda: agent.health.failures["lifecycle"] >= 3, message="failing cycles")
    status, body = _get(agent, "/healthz")
    assert status == 503 and "NVMLError_Unknown" in json.loads(body)["reason"]
    samples = _samples(_get(agent, "/metrics")[1])
    assert samples[("gpuscale_agent_collection_success", ())] == 0.0
    assert samples[("gpuscale_agent_collection_failures_total", (("tier", "lifecycle"),))] >= 3


def test_a_stuck_cloudwatch_call_never_stalls_sampling(make_agent, proxy, moto):
    proxy.hang_s = 1.5
    proxy.mode = "hang"
    agent = make_agent(FakeNvml(1), cloudwatch_endpoint=proxy.url, cloudwatch_timeout=10.0, shutdown_timeout=0.3)
    agent.start()
    wait_until(lambda: proxy.faulted >= 1, message="the publisher to be stuck in a call")
    before = agent.health.collections
    time.sleep(0.5)
    assert agent.health.collections >= before + 6, "sampling went on at 0.05 s while the publisher hung"
    samples = _samples(_get(agent, "/metrics")[1])
    assert samples[("gpuscale_agent_cloudwatch_buffered_datapoints", ())] > 0
    proxy.mode = "pass"  # let the stuck call end within the test, so no thread outlives it
    wait_until(lambda: agent.health.cw_sent > 0, timeout=10, message="the publisher to recover")


def test_build_and_node_info_and_gpu_states(make_agent):
    nvml = FakeNvml(2)
    agent = make_agent(nvml, cloudwatch=False, hostname="ip-10-0-1-23.ec2.internal", fake_gpus=2)
    agent.start()
    wait_until(lambda: agent.health.collections >= 1, message="a collection")
    samples = _samples(_get(agent, "/metrics")[1])
    build = [dict(labels) for name, labels in samples if name == "gpuscale_agent_build_info"]
    assert build == [{"version": gpu_metrics_agent_version(), "driver_version": "550.90.07-fake",
                      "nvml_version": "12.550.90.07-fake", "gpu_model": "NVIDIA H100 80GB HBM3", "fake_gpus": "2"}]
    node = [dict(labels) for name, labels in samples if name == "gpuscale_agent_node_info"]
    assert node == [{"hostname": "ip-10-0-1-23.ec2.internal", "instance_id": "i-0123456789abcdef0",
                     "instance_type": "p5.48xlarge", "autoscaling_group": "gpu-asg"}]
    states = {(dict(labels)["gpu"], dict(labels)["state"]): value for (name, labels), value in samples.items()
              if name == "gpuscale_agent_gpu_state"}
    assert states == {("0", "ok"): 1.0, ("0", "error"): 0.0, ("0", "lost"): 0.0,
                      ("1", "ok"): 1.0, ("1", "error"): 0.0, ("1", "lost"): 0.0}
    nvml.gpus[1].error = pynvml.NVML_ERROR_UNKNOWN
    wait_until(lambda: agent.sampler.latest.skipped == (1,), message="GPU 1 failing")
    states = {(dict(labels)["gpu"], dict(labels)["state"]): value
              for (name, labels), value in _samples(_get(agent, "/metrics")[1]).items()
              if name == "gpuscale_agent_gpu_state"}
    assert states[("1", "error")] == 1.0 and states[("1", "ok")] == 0.0


def gpu_metrics_agent_version() -> str:
    from gpu_metrics_agent.config import version
    return version()


def test_listens_on_ipv6_and_answers_50_concurrent_scrapes(make_agent):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    agent = make_agent(FakeNvml(8), cloudwatch=False, prometheus_address="::1")
    try:
        agent.start()
    except OSError as exc:
        pytest.skip(f"IPv6 loopback unavailable: {exc}")
    wait_until(lambda: agent.health.collections >= 1, message="a collection")
    url = f"http://[::1]:{agent.server.port}/metrics"
    results: list[int] = []

    def scrape() -> None:
        with urllib.request.urlopen(url, timeout=10) as response:
            results.append(response.status if b"gpuscale_node_gpus " in response.read() else -1)

    threads = [threading.Thread(target=scrape) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 50
