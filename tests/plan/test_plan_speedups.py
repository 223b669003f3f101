"""The plan keeps the cyclic garbage collector out of its way without changing what it plans."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Plans the repository's dev stack in a fresh interpreter (one process plans one stack) and prints the plan as JSON,
# with the collector's state after the plan.
PLAN_SCRIPT = """
import contextlib, gc, json, sys
from pathlib import Path
import gpuscale.plan.engine as plan
if sys.argv[1] == "collector-on":
    plan._collector_paused = contextlib.nullcontext
was_enabled = gc.isenabled()
result = plan.run_plan(Path(sys.argv[2]), "dev")
doc = result.to_json()
print(json.dumps({"plan": doc, "enabled_before": was_enabled, "enabled_after": gc.isenabled(),
                  "frozen": gc.get_freeze_count()}))
"""


def plan_with(mode: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", PLAN_SCRIPT, mode, str(ROOT)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_pausing_the_collector_changes_nothing_in_the_plan_and_switches_it_back_on():
    paused, on = plan_with("paused"), plan_with("collector-on")
    assert paused["plan"] == on["plan"]
    assert paused["enabled_before"] and paused["enabled_after"]
    # What the plan built went to the permanent generation, which later collections and the shutdown skip.
    assert paused["frozen"] > 0 and on["frozen"] == 0


def test_the_collector_is_switched_back_on_when_the_program_fails(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: gpuscale\nruntime: python\nstackConfigDir: stacks\n")
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.dev.yaml").write_text("config: {}\n")
    (tmp_path / "__main__.py").write_text("raise ValueError('bad input')\n")
    code = ("import gc; from pathlib import Path; from gpuscale.plan.engine import run_plan, PlanError\n"
            f"try:\n    run_plan(Path({str(tmp_path)!r}), 'dev')\n"
            "except PlanError as e:\n    print(gc.isenabled(), e)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.stdout.startswith("True the program rejected its input: bad input"), proc.stderr

