"""Fixtures for the agent's tests: a moto server on loopback and agents wired to it with short intervals."""

from __future__ import annotations

import logging
import urllib.request

import boto3
import pytest
from moto.server import ThreadedMotoServer

from agent_support import NODE, FaultProxy
from gpu_metrics_agent.agent import Agent
from gpu_metrics_agent.config import AgentConfig

# Short intervals through the agent's public options, so a whole fault scenario takes seconds.
FAST = dict(sample_interval=0.05, flush_interval=0.2, stale_intervals=4, shutdown_timeout=3.0,
            cloudwatch_timeout=0.5, cloudwatch_max_attempts=2, prometheus_address="127.0.0.1", prometheus_port=0,
            region="us-east-1", asg_name=NODE["AutoScalingGroupName"], instance_id=NODE["InstanceId"],
            instance_type=NODE["InstanceType"], imds_endpoint="http://127.0.0.1:9")


@pytest.fixture(scope="session")
def moto_server():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield host, port
    server.stop()


@pytest.fixture
def moto(moto_server, monkeypatch):
    """A clean moto backend and a CloudWatch client reading it."""
    host, port = moto_server
    url = f"http://{host}:{port}"
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST")).read()
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    client = boto3.session.Session().client("cloudwatch", region_name="us-east-1", endpoint_url=url)
    return url, client


@pytest.fixture
def proxy(moto_server):
    fault_proxy = FaultProxy(moto_server, hang_s=1.0)
    yield fault_proxy
    fault_proxy.close()


@pytest.fixture
def make_agent():
    """Builds agents from AgentConfig (FAST overridden by keyword) and stops any still running at the end."""
    started: list[Agent] = []

    def build(nvml, **options) -> Agent:
        agent = Agent(AgentConfig(**{**FAST, **options}), nvml)
        started.append(agent)
        return agent

    yield build
    for agent in started:
        agent.stop()
