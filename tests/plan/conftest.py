"""The plan's tests import their helpers from plan_support.py next to this file; `plans` is shared by them all."""

from __future__ import annotations

import json

import pytest

from plan_support import gpuscale


@pytest.fixture(scope="session")
def plans(tmp_path_factory) -> dict[str, dict]:
    """Both stacks planned once per session: (stdout, JSON plan)."""
    out = {}
    for stack in ("dev", "prod"):
        path = tmp_path_factory.mktemp("plans") / f"{stack}.json"
        proc = gpuscale("plan", "--stack", stack, "--json", str(path))
        assert proc.returncode == 0, f"plan of {stack} failed:\n{proc.stderr}"
        out[stack] = {"stdout": proc.stdout, "path": path, "doc": json.loads(path.read_text())}
    return out
