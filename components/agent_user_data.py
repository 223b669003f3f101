"""User data that installs the GPU metrics agent from its S3 archive and runs it as a systemd service.

The agent reads its options from `GPU_METRICS_AGENT_*` environment variables; its systemd unit
(`agent/gpu-metrics-agent.service`, shipped in the archive) loads them from ENVIRONMENT_FILE. The variable names
come from the agent's own option table (`gpu_metrics_agent.config.OPTIONS`), and a test feeds the rendered file to
the agent's parser.
"""

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gpu_metrics_agent.config import DEFAULT_PROMETHEUS_PORT, ENV_PREFIX
from gpu_metrics_agent.config import OPTIONS as AGENT_OPTIONS

ENVIRONMENT_FILE = "/etc/default/gpu-metrics-agent"
AGENT_HOME = "/opt/gpu-metrics-agent"
"""The agent's virtual environment; the unit's ExecStart runs AGENT_HOME/bin/gpu-metrics-agent."""
UNIT_NAME = "gpu-metrics-agent.service"
INSTALL_LOG = "/var/log/gpu-metrics-agent-install.log"
LIFECYCLE_HOOK = "gpuscale-agent-ready"
"""Launch lifecycle hook holding new instances until the agent runs (the group declares it)."""
DRAIN_HOOK = "gpuscale-drain"
"""Termination lifecycle hook the agent completes after draining (GpuScalingPolicies declares it). Hook names are
per group, so a fixed name serves every group, and the agent needs no permission to look it up."""
DRAIN_MARGIN_S = 15
"""The agent stops waiting for idle GPUs this long before the termination hook times out: its instance metadata poll
(5 s), the CloudWatch flush (its 5 s shutdown timeout) and the CompleteLifecycleAction call must land before that."""
READY_UNIT = "gpuscale-instance-ready.service"
READY_SCRIPT = "/usr/local/sbin/gpuscale-instance-ready"
READY_MARGIN_S = 60
"""The ready script stops waiting for a healthy agent this long before the launch hook's heartbeat timeout, counted
from boot: the hook's clock starts at launch, before the kernel's uptime does, and CompleteLifecycleAction must land
before the hook times out on its own."""
READY_POLL_S = 5
"""Seconds between /healthz checks while the agent is not healthy yet."""

_ENV_BY_FLAG = {option.flag: option.env for option in AGENT_OPTIONS}
ENV_NAMES = {
    # AgentSettings field -> the environment variable of the agent's option (a renamed option fails here).
    "sample_interval_seconds": _ENV_BY_FLAG["--sample-interval"],
    "flush_interval_seconds": _ENV_BY_FLAG["--flush-interval"],
    "prometheus_port": _ENV_BY_FLAG["--prometheus-port"],
    "region": _ENV_BY_FLAG["--region"],
    "scale_in_protection": _ENV_BY_FLAG["--scale-in-protection"],
}
DRAIN_ENV = (_ENV_BY_FLAG["--drain"], _ENV_BY_FLAG["--drain-timeout"], _ENV_BY_FLAG["--drain-hook-name"])


@dataclass(frozen=True)
class AgentSettings:
    """What the agent on a node is told; None leaves the agent's own default (see `gpu-metrics-agent --help`).

    Everything else the agent finds itself: its group's name from the instance's tags in instance metadata.
    """

    sample_interval_seconds: float | None = None
    """Seconds between GPU readings. Default None: the agent's own default."""
    flush_interval_seconds: float | None = None
    """Seconds between CloudWatch PutMetricData flushes. Default None: the agent's own default."""
    prometheus_port: int | None = None
    """Port of the agent's Prometheus endpoint. Default None: the agent's own default."""
    region: str | None = None
    """CloudWatch region. Default None: the agent reads it from instance metadata."""
    scale_in_protection: bool | None = None
    """The agent protects its instance from scale-in while the GPUs are busy (the group's scaling
    `scale_in_protection`; the instance role must allow SetInstanceProtection). Default None: off."""
    drain_timeout_seconds: int | None = None
    """Heartbeat timeout of the group's termination lifecycle hook (GpuScalingPolicies declares it). When set, the
    agent drains on termination and completes the hook DRAIN_HOOK. Default None: no drain."""

    def environment(self) -> dict[str, str]:
        values = {"sample_interval_seconds": _number(self.sample_interval_seconds),
                  "flush_interval_seconds": _number(self.flush_interval_seconds),
                  "prometheus_port": None if self.prometheus_port is None else str(self.prometheus_port),
                  "region": self.region,
                  "scale_in_protection": None if self.scale_in_protection is None
                  else str(self.scale_in_protection).lower()}
        env = {ENV_NAMES[k]: v for k, v in values.items() if v is not None}
        if self.drain_timeout_seconds is not None:
            wait = max(0, self.drain_timeout_seconds - DRAIN_MARGIN_S)
            env.update(zip(DRAIN_ENV, ("true", str(wait), DRAIN_HOOK)))
        return env


def as_agent_settings(value: AgentSettings | Mapping[str, Any] | None) -> AgentSettings:
    """AgentSettings as given from Python, or built from the plain object Pulumi's component provider passes when a
    TypeScript, Go or YAML program sets the field (the schema describes AgentSettings by its fields); None: the
    agent's defaults."""
    if value is None:
        return AgentSettings()
    return value if isinstance(value, AgentSettings) else AgentSettings(**value)


def _number(value: float | None) -> str | None:
    if value is None:
        return None
    return str(int(value)) if float(value).is_integer() else str(value)


def render_environment_file(env: Mapping[str, str]) -> str:
    """A systemd EnvironmentFile: one NAME=value per line (values here never need quoting; checked)."""
    lines = ["# Written by gpuscale at first boot; options of gpu-metrics-agent (see `gpu-metrics-agent --help`)."]
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or any(c in value for c in " \t\n\"'\\$#"):
            raise ValueError(f"agent environment: {name}={value!r} is not allowed; allowed: {ENV_PREFIX}* names "
                             "with values free of spaces, quotes, '$', '#' and backslashes")
        lines.append(f"{name}={value}")
    return "\n".join(lines) + "\n"


def render_user_data(archive_bucket: str, archive_key: str, region: str, settings: AgentSettings,
                     hook_timeout_seconds: int = 600) -> str:
    """The boot script (cloud-init runs it once, as root, at first boot).

    It installs the agent, then enables READY_UNIT, which tells the Auto Scaling group the instance is ready on this
    and every later boot (the group's launch lifecycle hook LIFECYCLE_HOOK holds the instance until then), once the
    agent's /healthz answers 200, or anyway READY_MARGIN_S before ``hook_timeout_seconds`` (the hook's heartbeat
    timeout; the group's default) after boot. Warm-pool instances need this: the group stops them as soon as they
    launch unless a hook holds them, and when they later leave the pool, cloud-init does not run this script again,
    while the enabled units start.
    """
    uri = shlex.quote(f"s3://{archive_bucket}/{archive_key}")
    env_file = render_environment_file(settings.environment())
    return f"""#!/bin/bash
# gpuscale: install the GPU metrics agent from {archive_key} and run it as {UNIT_NAME}.
set -euo pipefail
exec > >(tee -a {INSTALL_LOG}) 2>&1

# The agent needs Python >= 3.10: AL2023 (the default Deep Learning AMI) ships 3.9 as python3 and 3.11 as a package.
if command -v python3.11 >/dev/null; then PY=python3.11
elif command -v dnf >/dev/null; then dnf install -y -q python3.11 python3.11-pip; PY=python3.11
elif command -v apt-get >/dev/null; then apt-get update -q && apt-get install -y -q python3-venv; PY=python3
else PY=python3; fi

src=$(mktemp -d)
# Retried: a new instance profile's permissions can take a little while to reach EC2.
for attempt in 1 2 3 4 5 6; do
  aws s3 cp --only-show-errors --region {shlex.quote(region)} {uri} "$src/agent.zip" && break
  [ "$attempt" = 6 ] && exit 1; sleep 10
done
"$PY" -m zipfile -e "$src/agent.zip" "$src/agent"
"$PY" -m venv {AGENT_HOME}
{AGENT_HOME}/bin/pip install --quiet --disable-pip-version-check "$src/agent"
install -m 0644 "$src/agent/{UNIT_NAME}" /etc/systemd/system/{UNIT_NAME}
rm -rf "$src"

cat > {ENVIRONMENT_FILE} <<'GPUSCALE_ENV'
{env_file}GPUSCALE_ENV
chmod 0644 {ENVIRONMENT_FILE}

cat > {READY_SCRIPT} <<'GPUSCALE_READY'
{_ready_script(settings.prometheus_port or DEFAULT_PROMETHEUS_PORT, hook_timeout_seconds)}GPUSCALE_READY
chmod 0755 {READY_SCRIPT}
cat > /etc/systemd/system/{READY_UNIT} <<'GPUSCALE_UNIT'
{_READY_UNIT}GPUSCALE_UNIT

systemctl daemon-reload
systemctl enable --now {UNIT_NAME}
systemctl enable --now {READY_UNIT}
"""


def _ready_script(port: int, hook_timeout_seconds: int) -> str:
    # The agent's unit is Type=simple: After= only orders the start, so a crash-looping agent would count as ready.
    deadline = max(0, hook_timeout_seconds - READY_MARGIN_S)
    return f"""#!/bin/bash
# Complete the Auto Scaling group's launch lifecycle action for this instance, on every boot (gpuscale), once the
# GPU metrics agent is healthy. Nothing is pending after a plain reboot of an in-service instance: that error is
# expected and ignored.
set -u
md=http://169.254.169.254/latest
healthz=http://127.0.0.1:{port}/healthz
deadline={deadline}  # seconds after boot: the launch hook's {hook_timeout_seconds} s heartbeat timeout less {READY_MARGIN_S} s
get() {{
  local token
  token=$(curl -sf -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "$md/api/token") &&
    curl -sf -H "X-aws-ec2-metadata-token: $token" "$md/meta-data/$1"
}}
# 200 once the agent has collected from the GPUs (503 before, or when its readings are stale).
healthy() {{ curl -sf -o /dev/null --connect-timeout 2 --max-time 5 "$healthz"; }}
wait_healthy() {{
  until healthy; do
    if [ "$(cut -d. -f1 /proc/uptime)" -ge "$deadline" ]; then
      echo "gpu-metrics-agent not healthy at $healthz by $deadline s after boot; completing the hook anyway"
      return
    fi
    sleep {READY_POLL_S}
  done
  echo "gpu-metrics-agent healthy at $healthz"
}}
ready() {{
  wait_healthy
  aws autoscaling complete-lifecycle-action --region "$(get placement/region)" \\
    --auto-scaling-group-name "$(get tags/instance/aws:autoscaling:groupName)" --instance-id "$(get instance-id)" \\
    --lifecycle-hook-name {LIFECYCLE_HOOK} --lifecycle-action-result CONTINUE || true
}}
ready
# A warm pool kept Running puts the instance in service later without a reboot: answer that transition too.
warm=0
while [ "$(get autoscaling/target-lifecycle-state)" = "Warmed:Running" ]; do warm=1; sleep 10; done
if [ "$warm" = 1 ]; then ready; fi
"""

_READY_UNIT = f"""[Unit]
Description=Report this instance ready to its Auto Scaling group once the GPU metrics agent is healthy (gpuscale)
Wants=network-online.target {UNIT_NAME}
After=network-online.target {UNIT_NAME}

[Service]
# simple, not oneshot: in a Running warm pool the script waits for the instance to enter service, and
# `systemctl enable --now` must not block the boot script on that.
Type=simple
ExecStart={READY_SCRIPT}

[Install]
WantedBy=multi-user.target
"""
