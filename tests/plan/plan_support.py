"""Helpers for the plan's tests: the CLI in a subprocess and copies of the project with a stack changed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def gpuscale(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpuscale", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def project_copy(tmp_path: Path, stack: str, mutate) -> Path:
    """The program and stacks copied to a separate project, with `mutate(config)` applied to one stack file."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "stacks", project / "stacks")
    shutil.copy(ROOT / "Pulumi.yaml", project)
    shutil.copy(ROOT / "__main__.py", project)
    stack_file = project / "stacks" / f"Pulumi.{stack}.yaml"
    doc = yaml.safe_load(stack_file.read_text())
    mutate(doc["config"])
    stack_file.write_text(yaml.safe_dump(doc))
    return project


def diff_with_changed(tmp_path: Path, base_plan: Path, stack: str, mutate) -> subprocess.CompletedProcess:
    """`gpuscale diff` of `base_plan` against a plan of `stack` with `mutate(config)` applied; the new plan is
    written to tmp_path/new.json."""
    project = project_copy(tmp_path, stack, mutate)
    new = tmp_path / "new.json"
    planned = gpuscale("plan", "--stack", stack, "--project-dir", str(project), "--json", str(new), "--quiet")
    assert planned.returncode == 0, planned.stderr
    return gpuscale("diff", str(base_plan), str(new))
