"""``gpu-metrics-agent``: run the agent until SIGTERM, or print one snapshot with ``--once``."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from typing import Sequence

from .agent import Agent, ConfigError
from .collector import Collector, NvmlUnavailable
from .config import AgentConfig, parse_config
from .health import Health

log = logging.getLogger("gpu_metrics_agent")


def _nvml(config: AgentConfig):
    if config.fake_gpus:
        from .fake_nvml import FakeNvml
        return FakeNvml(config.fake_gpus)
    import pynvml
    return pynvml


def _fail(message: str) -> int:
    print(f"gpu-metrics-agent: {message}", file=sys.stderr)
    return 1


def _no_nvml(exc: NvmlUnavailable) -> int:
    return _fail(f"cannot start, NVML is unavailable: {exc}; is the NVIDIA driver installed and loaded (does "
                 f"`nvidia-smi` work)? In a container, is it run with the NVIDIA container runtime? To try the "
                 f"agent without a GPU, pass --fake-gpus N.")


def _once(config: AgentConfig, nvml) -> int:
    health = Health(config.sample_interval, config.stale_intervals)
    collector = Collector(nvml, health)
    try:
        collector.open()
    except NvmlUnavailable as exc:
        return _no_nvml(exc)
    try:
        snapshot = collector.collect()
        # GPM readings are rates between two samples; take a second one so --once shows them too.
        if snapshot is not None and any("gpm" not in gpu.absent for gpu in snapshot.gpus):
            time.sleep(min(config.sample_interval, 0.2))
            snapshot = collector.collect()
    finally:
        collector.close()
    if snapshot is None:
        return _fail(f"collection failed: {health.last_error}")
    print(json.dumps(snapshot.to_dict(), indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(argv)
    logging.basicConfig(level=config.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    nvml = _nvml(config)
    if config.once:
        return _once(config, nvml)

    try:
        agent = Agent(config, nvml)
    except ConfigError as exc:  # as argparse would for a bad option: status 2, nothing started or sent
        print(f"gpu-metrics-agent: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the Prometheus port is taken, or the address is not local
        return _fail(f"cannot listen on {config.prometheus_address}:{config.prometheus_port} "
                     f"(--prometheus-address/--prometheus-port): {exc}")
    # Before the first sample: a SIGTERM while the agent starts still ends in the flush below, not in a kill that
    # loses what was sampled.
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        agent.start()
    except NvmlUnavailable as exc:
        return _no_nvml(exc)
    while not stop.wait(1.0):
        pass
    log.info("stopping: flushing CloudWatch for at most %g s", config.shutdown_timeout)
    unsent = agent.stop()
    health, buffer = agent.health, agent.cloudwatch.buffer if agent.cloudwatch else None
    log.info("stopped: collections=%d failures=%s sent=%d unsent=%d dropped=%d", health.collections,
             health.failures, health.cw_sent, unsent,
             (buffer.dropped if buffer else 0) + sum(health.cw_given_up.values()))
    return 0
