"""Another Pulumi program can pip install gpuscale from a built wheel and use the components: the wheel is built,
installed with its dependencies into a fresh virtual environment outside the repository, and a small program of the
user's own (GpuNodeGroup, GpuAutoScalingGroup with its AgentBundle, GpuScalingPolicies) is planned there by the
installed gpuscale's plan engine (Pulumi's mock engine). Nothing of this checkout is on that environment's path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from gpuscale.components.agent_bundle import content_hash, source_files

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = textwrap.dedent("""
    import pulumi

    from gpuscale.components.agent_bundle import AgentBundle
    from gpuscale.components.gpu_asg import GpuAutoScalingGroup
    from gpuscale.components.gpu_node_group import GpuNodeGroup
    from gpuscale.components.gpu_scaling_policies import GpuScalingPolicies

    region = pulumi.Config("aws").require("region")
    GpuNodeGroup("their-gpus", {"cluster_name": "theirs", "node_role_arn": "arn:aws:iam::123456789012:role/n",
                                "subnet_ids": ["subnet-0123456789abcdef0"], "instance_types": ["g6.xlarge"],
                                "gpu_count": 1, "gpu_name": "L4", "min_size": 0, "max_size": 2})
    # No agent_dir: the bundle finds the agent's package inside the installed gpuscale.
    bundle = AgentBundle("their-agent", {})
    fleet = GpuAutoScalingGroup("their-fleet", {
        "vpc_id": "vpc-0123456789abcdef0", "subnet_ids": ["subnet-0123456789abcdef0"],
        "instance_types": ["g6.xlarge"], "min_size": 0, "max_size": 2, "region": region,
        "agent_bucket_arn": bundle.bucket_arn, "agent_bucket_name": bundle.bucket_name,
        "agent_object_key": bundle.object_key})
    GpuScalingPolicies("their-scaling", {"asg_name": fleet.asg_name, "asg_arn": fleet.asg_arn,
                                         "target": {"target_gpu_utilization": 60.0}})
    pulumi.export("agentKey", bundle.object_key)
""")

PLAN = textwrap.dedent("""
    # gpuscale plan's engine; the CLI on a program of one's own: tests/plan/test_plan_any_program.py.
    import json, pathlib
    from gpuscale.plan.engine import run_plan
    print(json.dumps(run_plan(pathlib.Path.cwd(), "test").to_json()))
""")

PROBE = textwrap.dedent("""
    import importlib, importlib.util, json, pkgutil
    import gpuscale, gpuscale.components
    from gpuscale.components.agent_bundle import find_agent_dir
    # Every module imports with the declared dependencies alone (the policy pack's needs the `policy` extra).
    broken = {}
    for module in pkgutil.walk_packages(gpuscale.__path__, "gpuscale."):
        if module.name not in ("gpuscale.policy.pack", "gpuscale.__main__"):
            try:
                importlib.import_module(module.name)
            except ImportError as exc:
                broken[module.name] = str(exc)
    print(json.dumps({"components": gpuscale.components.__file__, "agent": str(find_agent_dir()),
                      "moto": importlib.util.find_spec("moto") is not None, "broken": broken}))
""")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{cmd}: {proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(ROOT)],
         timeout=300)
    (built,) = out.glob("gpuscale-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment outside the repository with the wheel and its dependencies installed (pip's
    cache and the package index make this quick: no build of anything but the wheel)."""
    env_dir = tmp_path_factory.mktemp("consumer") / ".venv"
    _run([sys.executable, "-m", "venv", str(env_dir)], timeout=120)
    _run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)], timeout=600)
    return env_dir


def _clean_env() -> dict[str, str]:
    # Nothing of this checkout or of the test's own environment may leak onto the consumer's path.
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def test_the_wheel_carries_the_agent_package_the_bundle_archives(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    prefix = "gpuscale/agent_source/"
    shipped = sorted(n[len(prefix):] for n in names if n.startswith(prefix))
    assert shipped == sorted(p.as_posix() for p in source_files(ROOT / "agent")), \
        "pyproject.toml's gpuscale.agent_source package data must list every file AgentBundle archives"
    assert "gpuscale/components/gpu_node_group.py" in names and "gpu_metrics_agent/catalogue.py" in names
    assert "gpuscale/data/instance_types.json" in names
    assert not any(n.startswith(("components/", "agent/")) for n in names), \
        "components and the agent must not install as ambiguous top-level names"


def test_a_consumers_program_plans_from_the_installed_wheel(venv, tmp_path):
    program = tmp_path / "their-platform"
    (program / "stacks").mkdir(parents=True)
    (program / "Pulumi.yaml").write_text("name: their-platform\nruntime: python\nstackConfigDir: stacks\n")
    (program / "stacks" / "Pulumi.test.yaml").write_text("config:\n  aws:region: eu-west-1\n")
    (program / "__main__.py").write_text(PROGRAM)
    probe = json.loads(_run([str(venv / "bin" / "python"), "-c", PROBE], cwd=program, env=_clean_env(),
                            timeout=60).stdout)
    site = venv.resolve()
    assert Path(probe["components"]).resolve().is_relative_to(site), probe
    assert Path(probe["agent"]).resolve().is_relative_to(site), "the agent's package comes from the installed wheel"
    assert probe["moto"] is False, "a consumer install carries no mock framework"
    assert probe["broken"] == {}, "modules needing packages that are not declared dependencies"

    plan = json.loads(_run([str(venv / "bin" / "python"), "-c", PLAN], cwd=program, env=_clean_env(),
                           timeout=300).stdout.strip().splitlines()[-1])
    types = {r["type"] for r in plan["resources"]}
    for component in ("GpuNodeGroup", "AgentBundle", "GpuAutoScalingGroup", "GpuScalingPolicies"):
        assert f"gpuscale:index:{component}" in types, component
    assert {"aws:eks/nodeGroup:NodeGroup", "aws:autoscaling/group:Group", "aws:autoscaling/policy:Policy",
            "aws:s3/bucketObjectv2:BucketObjectv2"} <= types

    (archive,) = [r for r in plan["resources"] if r["type"] == "aws:s3/bucketObjectv2:BucketObjectv2"]
    assets = archive["inputs"]["source"]["assets"]
    # The archive is the agent package shipped in the wheel: the same files, so the same content key as a checkout.
    assert sorted(assets) == sorted(p.as_posix() for p in source_files(ROOT / "agent"))
    assert plan["outputs"]["agentKey"] == f"gpu-metrics-agent/{content_hash(ROOT / 'agent')[:16]}.zip"
