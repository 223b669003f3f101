"""/metrics and /healthz over HTTP, and the independence of sampling, scraping and publishing."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pynvml
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
    names = {name for name, _ in _samples(text)}
    assert "gpuscale_gpu_utilization_ratio" not in names, "stale readings are withdrawn, not repeated"
    assert "gpuscale_agent_last_success_timestamp_seconds" in names
    status, body = _get(agent, "/healthz")
    assert status == 503 and "no successful collection for" in json.loads(body)["reason"]
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
