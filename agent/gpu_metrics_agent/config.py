"""Options: one table, read from flags and from environment variables with the one prefix GPU_METRICS_AGENT_.

A flag beats its environment variable, which beats the default. A bad value, from either, stops the agent with a
message naming the option and what it accepts.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import math
import os
import re
import urllib.parse
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping, Sequence

from . import catalogue as cat

ENV_PREFIX = "GPU_METRICS_AGENT_"
DEFAULT_PROMETHEUS_PORT = 9410
"""Beside dcgm-exporter's 9400, which the NVIDIA GPU operator may run on the same node."""


def datapoints_per_snapshot(gpus: int) -> int:
    """CloudWatch datapoints one snapshot yields on a node of ``gpus`` full-featured GPUs (no MIG), roll-ups included."""
    per_gpu = sum(1 + m.group_rollup for m in cat.ALL_METRICS if m.scope == "gpu" and m.cloudwatch)
    per_node = sum(1 + m.group_rollup for m in cat.ALL_METRICS if m.scope == "node" and m.cloudwatch)
    return gpus * per_gpu + per_node


DEFAULT_BUFFER_DATAPOINTS = 3600 * datapoints_per_snapshot(8)
"""One hour at 1 Hz on an 8-GPU node."""


def _number(minimum: float, maximum: float, *, integer: bool = False, low_inclusive: bool = False,
            unit: str = "") -> Callable[[str], float]:
    """A parser for a finite number in a range; NaN and infinity are refused like any other value out of range."""
    kind = "an integer" if integer else "a number"
    low = f"{minimum:g} <= " if low_inclusive else f"{minimum:g} < "
    allowed = f"must be {kind}, {low}value <= {maximum:g}{unit}"

    def parse(text: str):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{allowed}, got {text!r}") from None
        # NaN compares false with everything, so it must be named; inf fails the upper bound.
        if not math.isfinite(value) or value > maximum or value < minimum or (value == minimum and not low_inclusive):
            raise argparse.ArgumentTypeError(f"{allowed}, got {text!r}")
        return value

    return parse


def _port(text: str) -> int:
    try:
        return _number(0, 65535, integer=True, low_inclusive=True)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be a TCP port 0-65535 (0 picks a free one), got {text!r}") from None


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.lower() not in allowed:
            raise argparse.ArgumentTypeError(f"must be one of {', '.join(allowed)}, got {text!r}")
        return text.lower()
    parse.choices = allowed  # type: ignore[attr-defined]  # listed in --help
    return parse


def _url(text: str) -> str:
    """An http(s) URL with a host and, if any, a valid port: botocore and urllib fail later, on another thread,
    on anything less."""
    allowed = "must be an http:// or https:// URL with a host, e.g. https://monitoring.us-west-2.amazonaws.com"
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # raises ValueError for a port that is not a number in 0-65535
    except ValueError:
        raise argparse.ArgumentTypeError(f"{allowed}, got {text!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError(f"{allowed}, got {text!r}")
    return text


_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")


def region_error(text: str) -> str | None:
    """Why ``text`` is not an AWS region name, or None when it is one."""
    if _REGION.match(text):
        return None
    return f"must be an AWS region name such as us-west-2 or eu-central-1, got {text!r}"


def _region(text: str) -> str:
    error = region_error(text)
    if error:
        raise argparse.ArgumentTypeError(error)
    return text


def _name(what: str, pattern: str, example: str) -> Callable[[str], str]:
    compiled = re.compile(pattern)

    def parse(text: str) -> str:
        if not compiled.match(text):
            raise argparse.ArgumentTypeError(f"must be {what}, e.g. {example}, got {text!r}")
        return text
    return parse


def _percent(text: str) -> float:
    value = _number(0, 100, low_inclusive=True)(text)
    if value >= 100:
        raise argparse.ArgumentTypeError(f"must be a percentage, 0 <= value < 100, got {text!r}")
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
    flush_on_change: float = 10.0
    buffer_datapoints: int = DEFAULT_BUFFER_DATAPOINTS
    stale_intervals: int = 5
    shutdown_timeout: float = 5.0
    lost_gpu_reprobe_interval: float = 30.0
    cloudwatch: bool = True
    cloudwatch_endpoint: str | None = None
    cloudwatch_timeout: float = 5.0
    cloudwatch_retry_mode: str = "standard"
    cloudwatch_max_attempts: int = 3
    region: str | None = None
    asg_name: str | None = None
    instance_id: str | None = None
    instance_type: str | None = None
    hostname: str | None = None
    imds_endpoint: str = "http://169.254.169.254"
    prometheus: bool = True
    prometheus_address: str = "::"
    prometheus_port: int = DEFAULT_PROMETHEUS_PORT
    dcgm_compat: bool = False
    pod_resources_socket: str | None = None
    pod_resources_interval: float = 10.0
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
    fake_gpus_publish: bool = False
    once: bool = False


_DEFAULTS = {f.name: f.default for f in fields(AgentConfig)}


@dataclass(frozen=True)
class Option:
    flag: str
    parse: Callable[[str], Any] | None
    """None for on/off switches (``--x`` / ``--no-x``)."""
    help: str
    default_help: str | None = None
    """What the default means where the value itself (None) says nothing; shown in --help as the default."""
    from_env: bool = True
    """False for a flag that only makes sense typed on a command line (``--once``): an environment variable left
    in a unit file must not turn the daemon into something else."""

    @property
    def dest(self) -> str:
        return self.flag[2:].replace("-", "_")

    @property
    def env(self) -> str | None:
        return ENV_PREFIX + self.dest.upper() if self.from_env else None


_SECONDS_DAY = 86400.0
OPTIONS: tuple[Option, ...] = (
    Option("--sample-interval", _number(0.01, 60, unit=" s"), "seconds between collections"),
    Option("--flush-interval", _number(0.05, 3600, unit=" s"),
           "seconds between CloudWatch flushes; not below --sample-interval"),
    Option("--flush-on-change", _number(0, 100, low_inclusive=True),
           "flush to CloudWatch at once when the node's mean GPU utilization has moved by this many percentage "
           "points since the last flush, so a burst reaches the scaling alarms within seconds (0: off)"),
    Option("--buffer-datapoints", _number(1, 10**9, integer=True, low_inclusive=True),
           "datapoints held for CloudWatch while it is unreachable; beyond this the oldest are dropped and counted "
           "(the default is one hour at 1 Hz for 8 GPUs)"),
    Option("--stale-intervals", _number(1, 1000, integer=True, low_inclusive=True),
           "/healthz fails, and readings leave /metrics, after this many sample intervals without a successful "
           "collection"),
    Option("--shutdown-timeout", _number(0, 300, unit=" s"), "seconds to flush the buffer on SIGTERM before exiting"),
    Option("--lost-gpu-reprobe-interval", _number(0, 3600, unit=" s"),
           "while a GPU is lost, NVML is initialised again this often to find it if it came back"),
    Option("--cloudwatch", None, "publish to CloudWatch"),
    Option("--cloudwatch-endpoint", _url, "CloudWatch endpoint URL", "the region's"),
    Option("--cloudwatch-timeout", _number(0, 300, unit=" s"),
           "connect and read timeout of one CloudWatch call, in seconds"),
    Option("--cloudwatch-retry-mode", _choice("standard", "adaptive"), "botocore retry mode"),
    Option("--cloudwatch-max-attempts", _number(1, 10, integer=True, low_inclusive=True),
           "attempts per PutMetricData call, the first included (botocore's retries)"),
    Option("--region", _region, "AWS region", "AWS_REGION, AWS_DEFAULT_REGION, else instance metadata"),
    Option("--asg-name", _name("an Auto Scaling group name (1-255 characters, no ':')", r"^[^:\s][^:]{0,254}$",
                               "gpu-workers"),
           "AutoScalingGroupName dimension",
           "the instance's aws:autoscaling:groupName tag in instance metadata, else DescribeAutoScalingInstances"),
    Option("--instance-id", _name("an EC2 instance id", r"^i-[0-9a-f]{8,17}$", "i-0123456789abcdef0"),
           "InstanceId dimension", "instance metadata"),
    Option("--instance-type", _name("an EC2 instance type", r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$", "p5.48xlarge"),
           "InstanceType dimension", "instance metadata"),
    Option("--hostname", _name("a host name", r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$", "ip-10-0-1-23.ec2.internal"),
           "the node's name in /metrics (dcgm-exporter's Hostname label, the node info series); in a Kubernetes "
           "pod set it to the node's name (spec.nodeName)", "this machine's host name"),
    Option("--imds-endpoint", _url, "EC2 instance metadata endpoint (IMDSv2)"),
    Option("--prometheus", None, "serve /metrics and /healthz"),
    Option("--prometheus-address", str, "address /metrics and /healthz listen on (:: listens on IPv6 and IPv4)"),
    Option("--prometheus-port", _port, "port of /metrics and /healthz (0: any free port)"),
    Option("--dcgm-compat", None, "also expose dcgm-exporter's series (DCGM_FI_*) with its units and labels on "
                                  "/metrics, for dashboards and autoscaler rules written for dcgm-exporter"),
    Option("--pod-resources-socket", str,
           "the kubelet's pod-resources socket (mounted read-only); per-GPU series on /metrics then carry the "
           "pod, namespace and container holding the GPU, e.g. /var/lib/kubelet/pod-resources/kubelet.sock",
           "none: no pod labels"),
    Option("--pod-resources-interval", _number(0, 3600, unit=" s"),
           "seconds between reads of the kubelet's pod-resources API"),
    Option("--scale-in-protection", None,
           "protect this instance from scale-in (SetInstanceProtection) while its GPUs are busy, and remove the "
           "protection once they are idle"),
    Option("--busy-utilization", _percent,
           "node mean GPU utilization, in percent, above which the node is busy; at or below it, idle"),
    Option("--busy-hold", _number(0, _SECONDS_DAY, low_inclusive=True, unit=" s"),
           "seconds busy before scale-in protection is set"),
    Option("--idle-hold", _number(0, _SECONDS_DAY, low_inclusive=True, unit=" s"),
           "seconds idle before scale-in protection is removed, and before a draining node counts as done"),
    Option("--drain", None,
           "when the instance is terminating (instance metadata target-lifecycle-state Terminated), wait for the "
           "GPUs to go idle, flush CloudWatch, then complete the termination lifecycle action"),
    Option("--drain-hook-name", _name("a lifecycle hook name (1-255 letters, digits, -_/)", r"^[A-Za-z0-9\-_/]{1,255}$",
                                      "gpuscale-drain"),
           "the termination lifecycle hook --drain completes",
           "the group's only EC2_INSTANCE_TERMINATING hook, found with DescribeLifecycleHooks"),
    Option("--drain-timeout", _number(0, 7200, low_inclusive=True, unit=" s"),
           "most seconds to wait for idle GPUs once terminating; keep it below the hook's heartbeat timeout so the "
           "flush and the completion land first (the default fits a 300 s hook)"),
    Option("--lifecycle-poll-interval", _number(0, 300, unit=" s"),
           "seconds between reads of the target lifecycle state"),
    Option("--autoscaling-endpoint", _url, "Auto Scaling endpoint URL", "the region's"),
    Option("--log-level", _choice("debug", "info", "warning", "error"), "log level"),
    Option("--fake-gpus", _number(0, 64, integer=True, low_inclusive=True),
           "read N simulated GPUs instead of NVML, for demos and tests (0: the real NVML); CloudWatch stays off "
           "unless --cloudwatch-endpoint names another endpoint or --fake-gpus-publish is given"),
    Option("--fake-gpus-publish", None,
           "with --fake-gpus, publish the simulated readings to AWS CloudWatch anyway, under the node's real "
           "dimensions (logged as a warning)"),
    Option("--once", None, "print one snapshot as JSON and exit (a flag only: no environment variable)",
           from_env=False),
)


def version() -> str:
    """The installed agent's version (its distribution, or the repository's package that installs it too)."""
    for distribution in ("gpu-metrics-agent", "gpuscale"):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpu-metrics-agent",
        description="Samples NVIDIA GPUs through NVML and publishes to CloudWatch (namespace "
                    f"{cat.NAMESPACE}) and Prometheus. Every option but --once can also be set by the environment "
                    f"variable shown, prefix {ENV_PREFIX}; a flag beats its variable.")
    parser.add_argument("--version", action="version", version=f"gpu-metrics-agent {version()}")
    for option in OPTIONS:
        default = _DEFAULTS[option.dest]
        shown = option.default_help if default is None else ("on" if default is True else "off")
        if option.parse is not None and default is not None:
            shown = f"{default:g}" if isinstance(default, float) else str(default)
        env = f"; env {option.env}" if option.env else ""
        help_text = f"{option.help} [default: {shown}{env}]".replace("%", "%%")
        choices = getattr(option.parse, "choices", None)
        if option.parse is None:
            action = parser.add_argument(option.flag, action=argparse.BooleanOptionalAction, default=default)
            action.help = help_text  # set after: Python 3.10's BooleanOptionalAction appends a default of its own
        else:
            parser.add_argument(option.flag, type=option.parse, default=default, help=help_text,
                                metavar="{" + ",".join(choices) + "}" if choices else None)
    return parser


def _check_together(config: AgentConfig) -> str | None:
    """Values valid one by one that cannot work together, or None."""
    if config.flush_interval < config.sample_interval:
        return (f"--flush-interval {config.flush_interval:g} is below --sample-interval {config.sample_interval:g}: "
                f"a flush must carry at least one sample; allowed: flush interval >= sample interval")
    if config.fake_gpus_publish and not config.fake_gpus:
        return "--fake-gpus-publish is allowed only with --fake-gpus N (N >= 1)"
    return None


def parse_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> AgentConfig:
    """Flags over environment over defaults. Exits with status 2 and a message on a bad value (argparse's way).

    A bad environment value is reported after the command line is parsed, so ``--help`` and ``--version`` still
    work on a node whose environment file has a mistake in it.
    """
    environ = os.environ if environ is None else environ
    parser = build_parser()
    env_errors: list[str] = []
    for option in OPTIONS:
        text = environ.get(option.env) if option.env else None
        if text is None or text == "":
            continue
        try:
            value = (option.parse or _bool)(text)
        except argparse.ArgumentTypeError as exc:
            env_errors.append(f"environment variable {option.env} (option {option.flag}): {exc}")
            continue
        parser.set_defaults(**{option.dest: value})
    namespace = parser.parse_args(argv)
    if env_errors:
        parser.error("; ".join(env_errors))
    config = AgentConfig(**vars(namespace))
    problem = _check_together(config)
    if problem:
        parser.error(problem)
    return config
