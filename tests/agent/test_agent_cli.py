"""The ``gpu-metrics-agent`` command as a real subprocess: help, --once, errors, SIGTERM; and its import hygiene."""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import fields
from pathlib import Path

import pynvml
import pytest

import gpu_metrics_agent
from agent_support import NODE, stored_count, wait_until
from gpu_metrics_agent import catalogue as cat
from gpu_metrics_agent.config import OPTIONS, AgentConfig, parse_config

AGENT_DIR = Path(gpu_metrics_agent.__file__).parent
FORBIDDEN = ("pulumi", "pulumi_aws", "pulumi_kubernetes", "gpuscale", "components")
NODE_FLAGS = ["--asg-name", NODE["AutoScalingGroupName"], "--instance-id", NODE["InstanceId"],
              "--instance-type", NODE["InstanceType"], "--region", "us-east-1"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPU_METRICS_AGENT_")}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", PYTHONUNBUFFERED="1", **extra)
    return env


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpu_metrics_agent", *args], capture_output=True, text=True,
                          env=_env(**env), timeout=60)


def test_help_lists_every_option_with_its_environment_variable():
    result = _run("--help")
    assert result.returncode == 0
    for flag in ("--sample-interval", "--flush-interval", "--buffer-datapoints", "--asg-name", "--once"):
        assert flag in result.stdout
    assert "GPU_METRICS_AGENT_FLUSH_INTERVAL" in result.stdout


def test_once_prints_a_snapshot_and_imports_nothing_of_pulumi_or_gpuscale():
    code = ("import contextlib, io, json, sys\n"
            "from gpu_metrics_agent import cli\n"
            "out = io.StringIO()\n"
            "with contextlib.redirect_stdout(out):\n"
            "    rc = cli.main(['--once', '--fake-gpus', '3'])\n"
            "leaked = sorted(m for m in sys.modules if m.split('.')[0] in %r)\n"
            "print(json.dumps({'rc': rc, 'leaked': leaked, 'snapshot': json.loads(out.getvalue())}))\n" % (FORBIDDEN,))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60)
    report = json.loads(result.stdout)
    assert report["rc"] == 0 and report["leaked"] == []
    snapshot = report["snapshot"]
    assert [g["index"] for g in snapshot["gpus"]] == [0, 1, 2]
    assert snapshot["node"][cat.NODE_GPU_COUNT.name] == 3
    assert cat.GPU_SM_ACTIVITY.name in snapshot["gpus"][0]["values"], "--once samples twice so GPM shows"


def test_the_catalogue_and_options_import_light_for_the_pulumi_side():
    # The components import these two modules; NVML, boto3 and prometheus_client have no business in a Pulumi run.
    code = ("import sys, gpu_metrics_agent.catalogue, gpu_metrics_agent.config\n"
            "print(sorted(m for m in ('pynvml', 'boto3', 'botocore', 'prometheus_client') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60)
    assert result.stdout.strip() == "[]", result.stderr


def test_agent_sources_never_import_pulumi_or_gpuscale():
    for path in AGENT_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            for module in modules:
                assert module.split(".")[0] not in FORBIDDEN, f"{path.name} imports {module}"


def test_options_come_from_the_environment_too():
    result = _run("--once", GPU_METRICS_AGENT_FAKE_GPUS="2")
    assert result.returncode == 0 and len(json.loads(result.stdout)["gpus"]) == 2


@pytest.mark.parametrize("args, env, expected", [
    (["--sample-interval", "0"], {}, "argument --sample-interval: must be a number, 0.01 < value <= 60 s, got '0'"),
    (["--cloudwatch-retry-mode", "legacy"], {}, "must be one of standard, adaptive, got 'legacy'"),
    ([], {"GPU_METRICS_AGENT_PROMETHEUS_PORT": "70000"},
     "environment variable GPU_METRICS_AGENT_PROMETHEUS_PORT (option --prometheus-port): must be a TCP port"),
    ([], {"GPU_METRICS_AGENT_CLOUDWATCH": "maybe"}, "(option --cloudwatch): must be true or false, got 'maybe'"),
])
def test_bad_values_name_the_option_and_what_it_accepts(args, env, expected):
    result = _run(*args, **env)
    assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr


def test_no_driver_is_a_clear_message_and_a_non_zero_exit():
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("an NVIDIA driver is present on this machine")
    for args in (["--once"], ["--no-cloudwatch", "--prometheus-port", "0"]):
        result = _run(*args)
        assert result.returncode == 1, args
        assert "NVML is unavailable" in result.stderr and "nvidia-smi" in result.stderr
        assert "Traceback" not in result.stderr


def test_a_flag_beats_its_environment_variable_which_beats_the_default():
    environ = {"GPU_METRICS_AGENT_FLUSH_INTERVAL": "7", "GPU_METRICS_AGENT_PROMETHEUS": "off"}
    assert parse_config(["--flush-interval", "3"], environ).flush_interval == 3.0
    from_env = parse_config([], environ)
    assert from_env.flush_interval == 7.0 and from_env.prometheus is False
    assert parse_config([], {}) == AgentConfig()
    assert {option.dest for option in OPTIONS} == {f.name for f in fields(AgentConfig)}


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gpu_metrics_agent", "--fake-gpus", "2", "--sample-interval",
                             "0.05", "--prometheus-address", "127.0.0.1", "--prometheus-port", "0",
                             "--cloudwatch-max-attempts", "1", *NODE_FLAGS, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())


def _summary(stderr: str) -> dict[str, int]:
    match = re.search(r"stopped: collections=(\d+) .* sent=(\d+) unsent=(\d+) dropped=(\d+)", stderr)
    assert match, stderr
    return dict(zip(("collections", "sent", "unsent", "dropped"), map(int, match.groups())))


def test_sigterm_flushes_everything_buffered_and_exits_0(moto, proxy):
    _url, client = moto
    proxy.mode = "5xx"
    # A flush interval far beyond the test: only the first flush (failing) and the one at SIGTERM run.
    agent = _start("--cloudwatch-endpoint", proxy.url, "--flush-interval", "600", "--shutdown-timeout", "10")
    try:
        wait_until(lambda: proxy.faulted >= 1, timeout=20, message="the first flush to fail")
        time.sleep(1.0)
        proxy.mode = "pass"
        agent.send_signal(signal.SIGTERM)
        _out, err = agent.communicate(timeout=20)
    finally:
        agent.kill()
    assert agent.returncode == 0 and "Traceback" not in err
    summary = _summary(err)
    assert summary["collections"] >= 10 and summary["unsent"] == 0 and summary["dropped"] == 0
    assert stored_count(client, cat.NODE_GPU_COUNT.name, NODE) == summary["collections"]


def test_sigterm_while_cloudwatch_is_down_exits_0_within_the_deadline(moto, proxy):
    proxy.refuse()
    agent = _start("--cloudwatch-endpoint", proxy.url, "--flush-interval", "0.2", "--shutdown-timeout", "1")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(agent.stderr), daemon=True)
    reader.start()
    try:
        # Running, sampling and failing to flush (not merely started: on a busy machine that takes a while).
        wait_until(lambda: any("PutMetricData failed" in line for line in lines), timeout=30,
                   message="a flush to fail against the refusing endpoint")
        assert agent.poll() is None, "the agent runs on while CloudWatch refuses connections"
        started = time.monotonic()
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=20)
        elapsed = time.monotonic() - started
        reader.join(timeout=5)
    finally:
        agent.kill()
    err = "".join(lines)
    assert agent.returncode == 0 and "Traceback" not in err
    assert elapsed < 1 + 2.5, "the flush gives up at the shutdown timeout"
    assert _summary(err)["unsent"] > 0
    proxy.accept()
