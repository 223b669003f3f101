"""Every option refuses what it cannot run with, at start and naming itself; --help and --version always work."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest

from agent_support import wait_until
from gpu_metrics_agent.config import OPTIONS, AgentConfig, parse_config
from test_agent_cli import _env, _run

_NUMERIC = [o for o in OPTIONS if o.parse is not None and o.flag not in (
    "--cloudwatch-endpoint", "--imds-endpoint", "--autoscaling-endpoint", "--region", "--asg-name", "--instance-id",
    "--instance-type", "--hostname", "--prometheus-address", "--pod-resources-socket", "--drain-hook-name",
    "--cloudwatch-retry-mode", "--log-level")]


def _refused(argv, environ, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        parse_config(argv, environ)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("option", _NUMERIC, ids=lambda o: o.flag)
@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e400", "ten", ""])
def test_every_numeric_option_refuses_nan_infinity_and_garbage(option, text, capsys):
    if text == "":
        assert parse_config([], {option.env: ""}) == AgentConfig(), "an empty variable means unset"
        return
    err = _refused([f"{option.flag}={text}"], {}, capsys)
    assert f"argument {option.flag}: must be " in err and repr(text) in err
    err = _refused([], {option.env: text}, capsys)
    assert f"environment variable {option.env} (option {option.flag}): must be " in err


@pytest.mark.parametrize("argv, expected", [
    (["--sample-interval", "61"], "--sample-interval: must be a number, 0.01 < value <= 60 s, got '61'"),
    (["--flush-interval", "3601"], "--flush-interval: must be a number, 0.05 < value <= 3600 s"),
    (["--flush-on-change", "101"], "--flush-on-change: must be a number, 0 <= value <= 100"),
    (["--cloudwatch-max-attempts", "11"], "--cloudwatch-max-attempts: must be an integer, 1 <= value <= 10"),
    (["--stale-intervals", "2.5"], "--stale-intervals: must be an integer"),
    (["--fake-gpus", "65"], "--fake-gpus: must be an integer, 0 <= value <= 64"),
    (["--flush-interval", "0.5"], "--flush-interval 0.5 is below --sample-interval 1"),
    (["--sample-interval", "5", "--flush-interval", "2"], "allowed: flush interval >= sample interval"),
    (["--fake-gpus-publish"], "--fake-gpus-publish is allowed only with --fake-gpus N"),
    (["--cloudwatch-endpoint", "monitoring.us-east-1.amazonaws.com"], "--cloudwatch-endpoint: must be an http"),
    (["--cloudwatch-endpoint", "https://host:99999"], "got 'https://host:99999'"),
    (["--cloudwatch-endpoint", "http://"], "must be an http:// or https:// URL with a host"),
    (["--autoscaling-endpoint", "ftp://host"], "--autoscaling-endpoint: must be an http"),
    (["--region", "us east 1"], "--region: must be an AWS region name such as us-west-2"),
    (["--instance-id", "0123"], "--instance-id: must be an EC2 instance id, e.g. i-0123456789abcdef0"),
    (["--asg-name", "a:b"], "--asg-name: must be an Auto Scaling group name"),
])
def test_values_out_of_range_or_malformed_are_refused_naming_what_is_allowed(argv, expected, capsys):
    assert expected in _refused(argv, {}, capsys)


def test_help_and_version_work_with_a_bad_environment_and_show_each_default_once():
    bad = {"GPU_METRICS_AGENT_SAMPLE_INTERVAL": "nan", "GPU_METRICS_AGENT_REGION": "nowhere"}
    result = _run("--help", **bad)
    assert result.returncode == 0, result.stderr
    help_text = " ".join(result.stdout.split())
    assert "{standard,adaptive}" in help_text and "{debug,info,warning,error}" in help_text
    assert help_text.count("[default: ") == len(OPTIONS), "one default for each option"
    assert help_text.count("(default:") == 0, "argparse's own '(default: ...)' would contradict ours"
    assert "[default: the region's; env GPU_METRICS_AGENT_CLOUDWATCH_ENDPOINT]" in help_text
    assert "[default: 1; env GPU_METRICS_AGENT_SAMPLE_INTERVAL]" in help_text
    version = _run("--version", **bad)
    assert version.returncode == 0 and re.fullmatch(r"gpu-metrics-agent \d+\.\d+\.\d+\S*\n", version.stdout)
    refused = _run("--once", "--fake-gpus", "1", **bad)
    assert refused.returncode == 2
    assert "GPU_METRICS_AGENT_SAMPLE_INTERVAL" in refused.stderr and "GPU_METRICS_AGENT_REGION" in refused.stderr


def test_the_once_switch_is_a_flag_only_so_a_leftover_variable_cannot_end_the_daemon():
    assert not any(o.env == "GPU_METRICS_AGENT_ONCE" for o in OPTIONS)
    assert parse_config([], {"GPU_METRICS_AGENT_ONCE": "true"}).once is False
    agent = subprocess.Popen([sys.executable, "-m", "gpu_metrics_agent", "--fake-gpus", "1", "--no-cloudwatch",
                              "--prometheus-address", "127.0.0.1", "--prometheus-port", "0"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=_env(GPU_METRICS_AGENT_ONCE="true"))
    try:
        time.sleep(1.5)
        assert agent.poll() is None, "still running as a daemon"
        agent.send_signal(signal.SIGTERM)
        out, err = agent.communicate(timeout=20)
    finally:
        agent.kill()
    assert agent.returncode == 0 and out == "" and "Traceback" not in err


def test_a_bad_region_in_the_environment_is_refused_at_start_before_anything_runs():
    result = _run("--fake-gpus", "1", "--fake-gpus-publish", "--no-prometheus", AWS_REGION="us-east-1; rm -rf")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "AWS_REGION: must be an AWS region name" in result.stderr
