"""Another Pulumi program can pip install this repository and import the components under `gpuscale.components`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = textwrap.dedent("""
    import json, sys
    import pulumi
    from pulumi.runtime import stack as runtime_stack
    from pulumi.runtime.sync_await import _sync_await

    import gpuscale.components
    from gpuscale.components.gpu_node_group import GpuNodeGroup
    from gpuscale.mocks import GpuScaleMocks

    registered = []

    class Recording(GpuScaleMocks):
        def new_resource(self, args):
            registered.append(args.typ)
            return super().new_resource(args)

    pulumi.runtime.set_all_config({"aws:region": "eu-west-1"})
    pulumi.runtime.set_mocks(Recording(), project="their-platform", stack="test", preview=True)

    def program():
        GpuNodeGroup("their-gpus", {"cluster_name": "theirs", "node_role_arn": "arn:aws:iam::123456789012:role/n",
                                    "subnet_ids": ["subnet-0123456789abcdef0"], "instance_types": ["g6.xlarge"],
                                    "gpu_count": 1, "gpu_name": "L4", "min_size": 0, "max_size": 2})

    _sync_await(runtime_stack.run_pulumi_func(program))
    print(json.dumps({"components": gpuscale.components.__file__, "types": sorted(set(registered))}))
""")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A regular (non-editable) install of the repository into its own directory."""
    target = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                           str(ROOT)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return target


def test_separate_program_imports_installed_components(installed, tmp_path):
    program_dir = tmp_path / "their-program"
    program_dir.mkdir()
    (program_dir / "__main__.py").write_text(PROGRAM)
    # The installed copy comes first on the path: the program must not be reading this checkout.
    env = {**os.environ, "PYTHONPATH": str(installed)}
    proc = subprocess.run([sys.executable, "__main__.py"], cwd=program_dir, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(result["components"]).is_relative_to(installed), result["components"]
    assert "gpuscale:index:GpuNodeGroup" in result["types"]
    assert "aws:eks/nodeGroup:NodeGroup" in result["types"]


def test_install_carries_the_cli_and_the_agent(installed):
    assert (installed / "gpuscale" / "components" / "gpu_node_group.py").is_file()
    assert (installed / "gpu_metrics_agent" / "catalogue.py").is_file()
    assert not (installed / "components").exists(), "components must not install as an ambiguous top-level name"
    assert not (installed / "agent").exists()
