"""The boot script and environment file the GPU instances get, checked against the agent's own parser and unit."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from gpu_metrics_agent.config import OPTIONS, parse_config
from gpuscale.components import agent_user_data as ud

REPO = Path(__file__).resolve().parents[2]
SETTINGS = ud.AgentSettings(sample_interval_seconds=0.5, flush_interval_seconds=15, prometheus_port=9401,
                            region="eu-west-1", scale_in_protection=True, drain_timeout_seconds=600)


def heredoc(script: str, marker: str) -> str:
    """The body of `cat > FILE <<'MARKER' ... MARKER` in the script."""
    start = script.index(f"<<'{marker}'\n") + len(marker) + 5
    return script[start:script.index(f"\n{marker}\n", start) + 1]


def parse_environment_file(text: str) -> dict[str, str]:
    """Read a systemd EnvironmentFile the simple way systemd does for unquoted values."""
    env = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    return env


def test_environment_file_configures_the_agent_through_its_own_parser():
    script = ud.render_user_data("bucket", "gpu-metrics-agent/abc.zip", "eu-west-1", SETTINGS)
    env = parse_environment_file(heredoc(script, "GPUSCALE_ENV"))
    known = {option.env for option in OPTIONS}
    assert set(env) <= known, f"names the agent does not read: {sorted(set(env) - known)}"
    config = parse_config([], environ=env)
    assert (config.sample_interval, config.flush_interval, config.prometheus_port, config.region) == \
        (0.5, 15.0, 9401, "eu-west-1"), "every setting reaches the agent with its value"
    assert (config.scale_in_protection, config.drain, config.drain_timeout) == (True, True, 600 - ud.DRAIN_MARGIN_S), \
        "protection and drain on, the drain ending early enough to flush and complete before the hook times out"
    assert config.drain_hook_name == "gpuscale-drain", "the hook GpuScalingPolicies declares, by name"


def test_drain_and_protection_stay_off_unless_the_group_scales():
    config = parse_config([], environ=parse_environment_file(ud.render_environment_file(
        ud.AgentSettings(scale_in_protection=False).environment())))
    assert (config.scale_in_protection, config.drain) == (False, False)


def test_unset_settings_leave_the_agents_defaults():
    env = parse_environment_file(ud.render_environment_file(ud.AgentSettings().environment()))
    assert env == {}
    assert parse_config([], environ=env) == parse_config([], environ={})


@pytest.mark.parametrize("env", [{"GPU_METRICS_AGENT_REGION": "us west"}, {"OTHER": "1"},
                                 {"GPU_METRICS_AGENT_REGION": "$(reboot)"}])
def test_environment_file_refuses_what_systemd_would_misread(env):
    with pytest.raises(ValueError, match="agent environment"):
        ud.render_environment_file(env)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash to syntax-check the scripts")
def test_boot_scripts_are_valid_bash(tmp_path):
    script = ud.render_user_data("bucket", "gpu-metrics-agent/abc.zip", "us-west-2", SETTINGS)
    for name, text in {"user-data": script, "ready": heredoc(script, "GPUSCALE_READY")}.items():
        path = tmp_path / name
        path.write_text(text)
        result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, f"{name}: {result.stderr}"


def test_ready_unit_runs_the_ready_script_after_the_agent():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    script = ud.render_user_data("b", "k.zip", "us-west-2", SETTINGS)
    unit.read_string(heredoc(script, "GPUSCALE_UNIT"))
    assert unit["Service"]["ExecStart"] == ud.READY_SCRIPT
    assert ud.UNIT_NAME in unit["Unit"]["After"].split()
    assert f"--lifecycle-hook-name {ud.LIFECYCLE_HOOK}" in heredoc(script, "GPUSCALE_READY")


_FAKE_CURL = """#!/bin/bash
for arg in "$@"; do url=$arg; done  # the URL comes last in every call the script makes
case "$url" in
  */healthz) n=$(cat "$STATE/checks" 2>/dev/null || echo 0); echo $((n + 1)) > "$STATE/checks"
             echo "curl $*" >> "$STATE/log"; [ "$n" -ge "$UNHEALTHY_CHECKS" ] ;;
  */target-lifecycle-state) echo InService ;;
  *) echo x ;;
esac
"""


def run_ready_script(tmp_path, unhealthy_checks: int, **render) -> tuple[list[str], str]:
    """Runs the ready script with curl, aws and sleep faked on PATH; the agent's /healthz answers 503 (curl -f
    fails) ``unhealthy_checks`` times, then 200. Returns the calls made, in order, and what the script printed."""
    script = ud.render_user_data("b", "k.zip", "us-west-2", SETTINGS, **render)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fakes = {"curl": _FAKE_CURL, "aws": '#!/bin/bash\necho "aws $*" >> "$STATE/log"\n',
             "sleep": '#!/bin/bash\necho "sleep $*" >> "$STATE/log"\n'}
    for name, text in fakes.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "ready").write_text(heredoc(script, "GPUSCALE_READY"))
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "STATE": str(tmp_path), "UNHEALTHY_CHECKS": str(unhealthy_checks)}
    result = subprocess.run(["bash", str(tmp_path / "ready")], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return (tmp_path / "log").read_text().splitlines(), result.stdout


@pytest.mark.skipif(shutil.which("bash") is None or not Path("/proc/uptime").exists(),
                    reason="needs bash and /proc/uptime to run the ready script")
def test_ready_script_completes_the_hook_only_once_the_agent_is_healthy(tmp_path):
    calls, out = run_ready_script(tmp_path, 2, hook_timeout_seconds=10**9)  # a deadline the test never reaches
    checks = [c for c in calls if c.startswith("curl")]
    assert len(checks) == 3 and all(c.endswith("http://127.0.0.1:9401/healthz") for c in checks), \
        "polls the agent's own /healthz on its configured port until it answers 200"
    assert all("--max-time" in c and "--connect-timeout" in c for c in checks), "short timeouts on every check"
    assert [c.split()[0] for c in calls] == ["curl", "sleep", "curl", "sleep", "curl", "aws"], calls
    assert "--lifecycle-action-result CONTINUE" in calls[-1] and "healthy at" in out


@pytest.mark.skipif(shutil.which("bash") is None or not Path("/proc/uptime").exists(),
                    reason="needs bash and /proc/uptime to run the ready script")
def test_ready_script_continues_at_its_deadline_when_the_agent_never_gets_healthy(tmp_path):
    # A 60 s hook leaves no time after the margin: one check, then CONTINUE with the reason logged.
    calls, out = run_ready_script(tmp_path, 10**6, hook_timeout_seconds=ud.READY_MARGIN_S)
    assert [c.split()[0] for c in calls] == ["curl", "aws"], calls
    assert "--lifecycle-action-result CONTINUE" in calls[-1]
    assert "not healthy" in out and "completing the hook anyway" in out


def test_ready_deadline_is_below_the_launch_hooks_heartbeat_timeout():
    script = ud.render_user_data("b", "k.zip", "us-west-2", SETTINGS)  # the group's default hook timeout, 600 s
    assert "\ndeadline=540 " in heredoc(script, "GPUSCALE_READY"), "600 s less READY_MARGIN_S, counted from boot"
    assert 0 < ud.READY_MARGIN_S < 600


def test_agent_unit_matches_what_the_boot_script_installs():
    """The archive's unit must read our environment file and run the agent from the venv the script creates."""
    path = REPO / "agent" / ud.UNIT_NAME
    assert path.is_file(), f"{path} is shipped in the agent archive and installed by the boot script"
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string(path.read_text())
    service = unit["Service"]
    assert service["EnvironmentFile"].lstrip("-") == ud.ENVIRONMENT_FILE
    command = service["ExecStart"].split()
    venv_agent = f"{ud.AGENT_HOME}/bin/gpu-metrics-agent"
    if command[0] == "/usr/bin/env":
        # Found through the unit's PATH: the venv's bin must come first, so no other install shadows it.
        path_entries = service["Environment"].removeprefix("PATH=").split(":")
        assert (command[1], path_entries[0]) == ("gpu-metrics-agent", f"{ud.AGENT_HOME}/bin"), service["ExecStart"]
    else:
        assert command[0] == venv_agent, f"ExecStart runs {command[0]}; the boot script installs {venv_agent}"
