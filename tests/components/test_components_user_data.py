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
