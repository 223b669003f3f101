"""The user's startup beside the agent's: valid cloud-init MIME, a container run exactly as configured, refusals."""

from __future__ import annotations

import base64
import configparser
import email
import json
import shutil
import subprocess

import pytest
import yaml
from test_components_asg import LT, asg_args
from test_components_user_data import heredoc

from gpuscale.components import workload_startup as ws
from gpuscale.components.agent_user_data import AgentSettings, render_user_data
from gpuscale.components.gpu_asg import GpuAutoScalingGroup

AGENT = render_user_data("agent-bucket", "gpu-metrics-agent/abc.zip", "us-west-2", AgentSettings())
VLLM: ws.ContainerArgs = {
    "image": "vllm/vllm-openai:v0.11.0", "args": ["--model", "Qwen/Qwen3-8B-AWQ", "--max-num-seqs", "4"],
    "ports": [8000], "volumes": ["/opt/models:/root/.cache/huggingface"], "ipc_host": True,
    "env": {"VLLM_LOGGING_LEVEL": "INFO", "GREETING": "it's \"$HOME\" `here`; rm -rf /"}}
CLOUD_CONFIG = "#cloud-config\npackages: [amazon-cloudwatch-agent]\n"


def parts(user_data: str) -> list[tuple[str, str, str]]:
    archive = email.message_from_string(user_data)
    assert archive.get_content_type() == "multipart/mixed" and archive.is_multipart()
    return [(p.get_content_type(), p.get_filename(), p.get_payload(decode=True).decode()) for p in
            archive.get_payload()]


def test_without_startup_the_user_data_is_the_agents_script_alone():
    assert ws.render_launch_user_data(AGENT, None) == AGENT


def test_startup_is_a_cloud_init_archive_with_the_agent_first_and_unchanged():
    rendered = ws.render_launch_user_data(AGENT, {"container": VLLM, "user_data": CLOUD_CONFIG})
    found = parts(rendered)
    assert [(t, f) for t, f, _ in found] == [("text/x-shellscript", "10-gpu-metrics-agent.sh"),
                                            ("text/x-shellscript", "20-gpuscale-workload.sh"),
                                            ("text/cloud-config", "30-user-data.cfg")]
    assert found[0][2] == AGENT, "the agent's install is untouched"
    assert yaml.safe_load(found[2][2]) == {"packages": ["amazon-cloudwatch-agent"]}
    assert rendered == ws.render_launch_user_data(AGENT, {"container": VLLM, "user_data": CLOUD_CONFIG}), \
        "deterministic: a plan is identical twice and a template version changes only with its content"
    script = parts(ws.render_launch_user_data(AGENT, {"user_data": "#!/bin/bash\necho hi\n"}))[1]
    assert script[:2] == ("text/x-shellscript", "30-user-data.sh")


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_container_runs_exactly_as_configured_under_its_unit(tmp_path):
    part = ws.render_container_part(VLLM)
    (tmp_path / "part.sh").write_text(part)
    assert subprocess.run(["bash", "-n", str(tmp_path / "part.sh")], capture_output=True).returncode == 0
    run = tmp_path / "run"
    run.write_text(heredoc(part, "GPUSCALE_RUN"))
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "docker").write_text('#!/usr/bin/env python3\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n')
    (fake / "docker").chmod(0o755)
    result = subprocess.run(["bash", str(run)], env={"PATH": f"{fake}:/usr/bin:/bin"}, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        "run", "--rm", "--name", "gpuscale-workload", "--gpus", "all", "--ipc=host", "-p", "8000:8000",
        "-v", "/opt/models:/root/.cache/huggingface", "-e", "VLLM_LOGGING_LEVEL=INFO",
        "-e", "GREETING=it's \"$HOME\" `here`; rm -rf /", "vllm/vllm-openai:v0.11.0",
        "--model", "Qwen/Qwen3-8B-AWQ", "--max-num-seqs", "4"], "every word reaches docker as written, unexpanded"
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string(heredoc(part, "GPUSCALE_UNIT"))
    assert unit["Service"]["ExecStart"] == ws.WORKLOAD_SCRIPT and unit["Service"]["Restart"] == "always"
    assert "docker.service" in unit["Unit"]["After"].split() and unit["Install"]["WantedBy"] == "multi-user.target"
    assert f"systemctl enable --now --no-block {ws.WORKLOAD_UNIT}" in part, "starts on every boot (warm pools)"
    assert "mkdir -p /opt/models" in part


@pytest.mark.parametrize("startup, field", [
    ({}, "container"),
    ({"container": {**VLLM, "image": "vllm/vllm-openai"}}, "container.image"),
    ({"container": {**VLLM, "ports": [9410]}}, "container.ports[0]"),
    ({"container": {**VLLM, "ports": [8000, 8000]}}, "container.ports[1]"),
    ({"container": {**VLLM, "env": {"1BAD": "x"}}}, "container.env.1BAD"),
    ({"container": {**VLLM, "env": {"A": "two\nlines"}}}, "container.env.A"),
    ({"container": {**VLLM, "args": ["a\nb"]}}, "container.args[0]"),
    ({"container": {**VLLM, "volumes": ["models:/models"]}}, "container.volumes[0]"),
    ({"container": {**VLLM, "gpus": 0}}, "container.gpus"),
    ({"container": {**VLLM, "restart": "sometimes"}}, "container.restart"),
    ({"container": {**VLLM, "command": ["x"]}}, "container.command"),
    ({"user_data": "echo hi"}, "user_data"),
    ({"user_data": "#cloud-config\n- a list\n"}, "user_data"),
    ({"userdata": "#!/bin/sh\n"}, "userdata"),
])
def test_startup_rules_refuse_what_cannot_run(startup, field):
    problem = ws.startup_problem(startup, reserved_ports=(9410,))
    assert problem is not None and problem.field == field, problem


def test_user_data_over_ec2s_limit_is_refused():
    with pytest.raises(ValueError, match=r"^startup: user data of \d+ bytes is not allowed; allowed: at most 16384"):
        ws.render_launch_user_data(AGENT, {"user_data": "#!/bin/bash\n" + "#" * 16_000 + "\n"})


def test_group_launches_with_the_startup_and_opens_its_ports_to_the_given_networks(harness):
    harness.run(lambda: GpuAutoScalingGroup("infer", asg_args(
        startup={"container": VLLM}, workload_ingress_cidrs=["10.40.0.0/16"])))
    user_data = base64.b64decode(harness.one(LT).inputs["userData"]).decode()
    (agent, workload) = parts(user_data)
    assert "gpu-metrics-agent" in agent[2] and "vllm/vllm-openai:v0.11.0" in workload[2]
    ingress = harness.one("aws:ec2/securityGroup:SecurityGroup").inputs["ingress"]
    assert [(r["fromPort"], r["toPort"], r["cidrBlocks"]) for r in ingress] == [(8000, 8000, ["10.40.0.0/16"])], \
        "only the published port, only from the given network (no scrapers given)"


def test_group_refuses_a_bad_startup_before_declaring_anything(harness):
    with pytest.raises(ValueError, match=r"^startup\.container\.ports\[0\] \(GpuAutoScalingGroup \"infer\"\): 9400 "
                                         r"is not allowed"):
        harness.run(lambda: GpuAutoScalingGroup("infer", asg_args(startup={"container": {**VLLM, "ports": [9400]}})))
    assert [r.type for r in harness.resources] == ["pulumi:pulumi:Stack"]
