"""Options: one table, read from flags and from environment variables with the one prefix GPU_METRICS_AGENT_.

A flag beats its environment variable, which beats the default. A bad value, from either, stops the agent with a
message naming the option and what it accepts.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping, Sequence

from . import catalogue as cat

ENV_PREFIX = "GPU_METRICS_AGENT_"
DEFAULT_PROMETHEUS_PORT = 9410
"""Beside dcgm-exporter's 9400, which the NVIDIA GPU operator may run on the same node."""


def datapoints_per_snapshot(gpus: int) -> int:
    """CloudWatch datapoints one snapshot yields on a node of ``gpus`` full-featured GPUs (no MIG), roll-ups included."""
    per_gpu = sum(1 + m.group_rollup for m in cat.ALL_METRICS if m.scope == "gpu")
    per_node = sum(1 + m.group_rollup for m in cat.ALL_METRICS if m.scope == "node")
    return gpus * per_gpu + per_node


DEFAULT_BUFFER_DATAPOINTS = 3600 * datapoints_per_snapshot(8)
"""One hour at 1 Hz on an 8-GPU node."""


def _number(minimum: float, *, integer: bool = False, inclusive: bool = False) -> Callable[[str], float]:
    kind = "an integer" if integer else "a number"
    bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"

    def parse(text: str):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {kind} {bound}, got {text!r}") from None
        if value < minimum or (value == minimum and not inclusive):
            raise argparse.ArgumentTypeError(f"must be {kind} {bound}, got {text!r}")
        return value

    return parse


def _port(text: str) -> int:
    value = _number(0, integer=True, inclusive=True)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port 0-65535 (0 picks a free one), got {text!r}")
    return value


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.lower() not in allowed:
            raise argparse.ArgumentTypeError(f"must be one of {', '.join(allowed)}, got {text!r}")
        return text.lower()
    return parse


def _url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"must be an http:// or https:// URL, got {text!r}")
    return text


def _percent(text: str) -> float:
    value = _number(0, inclusive=True)(text)
    if value >= 100:
        raise argparse.ArgumentTypeError(f"must be a percentage >= 0 and < 100, got {text!r}")
    return value


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"must be true or false, got {text!r}")


@dataclass(frozen=True)
class AgentConfig:
    """Every option, with its default: the one place defaults are written."""

    sample_interval: float = 1.0
    flush_interval: float = 10.0
    buffer_datapoints: int = DEFAULT_BUFFER_DATAPOINTS
    stale_intervals: int = 5
    shutdown_timeout: float = 5.0
    cloudwatch: bool = True
    cloudwatch_endpoint: str | None = None
    cloudwatch_timeout: float = 5.0
    cloudwatch_retry_mode: str = "standard"
    cloudwatch_max_attempts: int = 3
    region: str | None = None
    asg_name: str | None = None
    instance_id: str | None = None
    instance_type: str | None = None
    imds_endpoint: str = "http://169.254.169.254"
    prometheus: bool = True
    prometheus_address: str = "0.0.0.0"
    prometheus_port: int = DEFAULT_PROMETHEUS_PORT
    scale_in_protection: bool = False
    busy_utilization: float = 10.0
    busy_hold: float = 10.0
    idle_hold: float = 60.0
    drain: bool = False
    drain_hook_name: str | None = None
    drain_timeout: float = 285.0
    lifecycle_poll_interval: float = 5.0
    autoscaling_endpoint: str | None = None
    log_level: str = "info"
    fake_gpus: int = 0
    once: bool = False


_DEFAULTS = {f.name: f.default for f in fields(AgentConfig)}


@dataclass(frozen=True)
class Option:
    flag: str
    parse: Callable[[str], Any] | None
    """None for on/off switches (``--x`` / ``--no-x``)."""
    help: str

    @property
    def dest(self) -> str:
        return self.flag[2:].replace("-", "_")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.dest.upper()


OPTIONS: tuple[Option, ...] = (
    Option("--sample-interval", _number(0), "seconds between collections"),
    Option("--flush-interval", _number(0), "seconds between CloudWatch flushes"),
    Option("--buffer-datapoints", _number(1, integer=True, inclusive=True),
           "datapoints held for CloudWatch while it is unreachable; beyond this the oldest are dropped and counted "
           "(default is one hour at 1 Hz for 8 GPUs)"),
    Option("--stale-intervals", _number(1, integer=True, inclusive=True),
           "/healthz fails, and readings leave /metrics, after this many sample intervals without a successful "
           "collection"),
    Option("--shutdown-timeout", _number(0), "seconds to flush the buffer on SIGTERM before exiting"),
    Option("--cloudwatch", None, "publish to CloudWatch"),
    Option("--cloudwatch-endpoint", _url, "CloudWatch endpoint URL (default: the region's)"),
    Option("--cloudwatch-timeout", _number(0), "connect and read timeout of one CloudWatch call, in seconds"),
    Option("--cloudwatch-retry-mode", _choice("standard", "adaptive"), "botocore retry mode"),
    Option("--cloudwatch-max-attempts", _number(1, integer=True, inclusive=True),
           "attempts per PutMetricData call, the first included (botocore's retries)"),
    Option("--region", str, "AWS region (default: AWS_REGION / AWS_DEFAULT_REGION, else instance metadata)"),
    Option("--asg-name", str, "AutoScalingGroupName dimension (default: the instance's aws:autoscaling:groupName "
                              "tag, from instance metadata)"),
    Option("--instance-id", str, "InstanceId dimension (default: from instance metadata)"),
    Option("--instance-type", str, "InstanceType dimension (default: from instance metadata)"),
    Option("--imds-endpoint", _url, "EC2 instance metadata endpoint"),
    Option("--prometheus", None, "serve /metrics and /healthz"),
    Option("--prometheus-address", str, "address /metrics and /healthz listen on"),
    Option("--prometheus-port", _port, "port of /metrics and /healthz (0: any free port)"),
    Option("--scale-in-protection", None,
           "protect this instance from scale-in (SetInstanceProtection) while its GPUs are busy, and remove the "
           "protection once they are idle"),
    Option("--busy-utilization", _percent,
           "node mean GPU utilization, in percent, above which the node is busy; at or below it, idle"),
    Option("--busy-hold", _number(0, inclusive=True), "seconds busy before scale-in protection is set"),
    Option("--idle-hold", _number(0, inclusive=True),
           "seconds idle before scale-in protection is removed, and before a draining node counts as done"),
    Option("--drain", None,
           "when the instance is terminating (instance metadata target-lifecycle-state Terminated), wait for the "
           "GPUs to go idle, flush CloudWatch, then complete the termination lifecycle action"),
    Option("--drain-hook-name", str, "the termination lifecycle hook --drain completes (default: the group's only "
                                     "EC2_INSTANCE_TERMINATING hook, found with DescribeLifecycleHooks)"),
    Option("--drain-timeout", _number(0, inclusive=True),
           "most seconds to wait for idle GPUs once terminating; keep it below the hook's heartbeat timeout so the "
           "flush and the completion land first (default fits a 300 s hook)"),
    Option("--lifecycle-poll-interval", _number(0), "seconds between reads of the target lifecycle state"),
    Option("--autoscaling-endpoint", _url, "Auto Scaling endpoint URL (default: the region's)"),
    Option("--log-level", _choice("debug", "info", "warning", "error"), "log level"),
    Option("--fake-gpus", _number(0, integer=True, inclusive=True),
           "read N simulated GPUs instead of NVML, for demos and tests (0: the real NVML)"),
    Option("--once", None, "print one snapshot as JSON and exit"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpu-metrics-agent",
        description="Samples NVIDIA GPUs through NVML and publishes to CloudWatch (namespace "
                    f"{cat.NAMESPACE}) and Prometheus. Every option can also be set by the environment variable "
                    f"shown, prefix {ENV_PREFIX}; a flag beats its variable.")
    for option in OPTIONS:
        help_text = f"{option.help} [env {option.env}]"
        if option.parse is None:
            parser.add_argument(option.flag, action=argparse.BooleanOptionalAction, default=_DEFAULTS[option.dest],
                                help=help_text + " (default: %(default)s)")
        else:
            parser.add_argument(option.flag, type=option.parse, default=_DEFAULTS[option.dest],
                                help=help_text + " (default: %(default)s)")
    return parser


def parse_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> AgentConfig:
    """Flags over environment over defaults. Exits with status 2 and a message on a bad value (argparse's way)."""
    environ = os.environ if environ is None else environ
    parser = build_parser()
    for option in OPTIONS:
        text = environ.get(option.env)
        if text is None or text == "":
            continue
        try:
            value = (option.parse or _bool)(text)
        except argparse.ArgumentTypeError as exc:
            parser.error(f"environment variable {option.env} (option {option.flag}): {exc}")
        parser.set_defaults(**{option.dest: value})
    return AgentConfig(**vars(parser.parse_args(argv)))
