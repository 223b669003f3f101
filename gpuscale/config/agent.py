"""The agent section (`gpuscale:agent`): how the node agent samples and publishes on the self-managed GPU groups'
instances (the settings the GPU groups and the agent's DaemonSet share)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gpu_metrics_agent.config import DEFAULT_PROMETHEUS_PORT

from .reader import Section


def read_sample_interval(s: Section) -> Any:
    """The agent's sampling interval, seconds."""
    return s.float("sampleIntervalSeconds", 1.0, min=0.1, max=60)


@dataclass(frozen=True)
class AgentConfig:
    sample_interval_seconds: float
    flush_interval_seconds: float
    prometheus_port: int


def read_agent_settings(s: Section) -> tuple[Any, Any, Any]:
    """The agent's sample and flush intervals and Prometheus port (`gpuscale:agent`, and the Args of the
    components that run the agent)."""
    sample = read_sample_interval(s)
    flush = s.float("flushIntervalSeconds", 10.0, min=1, max=60)
    if flush < sample:
        s.report("flushIntervalSeconds", flush,
                 f"a flush interval >= {s.name('sampleIntervalSeconds')} ({sample:g}), the sample interval")
    port = s.int("prometheusPort", DEFAULT_PROMETHEUS_PORT, min=1024, max=65535)
    return sample, flush, port


def read_agent(s: Section) -> AgentConfig:
    sample, flush, port = read_agent_settings(s)
    s.finish()
    return AgentConfig(sample, flush, port)
