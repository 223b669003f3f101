"""The offline plan: run the real Pulumi program under Pulumi's mock engine and record what it declares.

No Pulumi CLI, no provider plugins and no cloud account are needed: `pulumi.runtime.set_mocks` stands in for the
engine, `GpuScaleMocks` answers like AWS would (ids, ARNs, EC2 instance type data), and a recording monitor keeps
every resource registration: type, name, parent, inputs and the options that matter for review (ignore_changes,
protect, depends_on). The result is a `Plan`, which renders as a preview-like tree or as JSON for machines.
"""

from __future__ import annotations

import gc
import json
import os
import runpy
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..config import ConfigError, read_stack_values, secret_paths
from ..config.project import PulumiProject, read_project
from .model import Plan


class PlanError(Exception):
    """The program could not be planned; the message is for the user, without a traceback."""


class PlanConfigError(PlanError):
    """The stack's config was rejected before the program declared any resource."""

    def __init__(self, error: ConfigError, declared: int):
        super().__init__(str(error))
        self.error, self.declared = error, declared


def stack_config_strings(values: dict[str, Any]) -> dict[str, str]:
    """Stack file values as the engine hands them to the program: strings, objects JSON-encoded."""
    out = {}
    for key, value in values.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            raise PlanError(f"{key} is encrypted in the stack file as a whole; the offline plan cannot decrypt it. "
                            f"Encrypt only the value inside it (`pulumi config set --secret --path "
                            f"'{key}.<field>' ...`): the plan then shows that value as [secret]")
        out[key] = value if isinstance(value, str) else json.dumps(value)
    return out


def run_plan(project_dir: Path, stack: str) -> Plan:
    """Run the program of the Pulumi project in `project_dir` with the stack's config under the mock engine and
    return what it declared.

    Any Python Pulumi project plans, as its Pulumi.yaml says (gpuscale/config/project.py): its `name` is the project
    the engine reports (so `pulumi.Config()` reads the program's own namespace), `main` the program that runs (in
    its own directory, which is on `sys.path` as under `pulumi up`), `stackConfigDir` where the stack's file is.

    Pulumi's runtime keeps process-wide state, so one process plans one stack; tests and tools that plan several
    stacks run this in a subprocess (see `plan_in_subprocess`).
    """
    with _collector_paused():
        return _run_plan(read_project(project_dir), stack)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Keep Python's cyclic garbage collector out of the plan, and off what the plan leaves behind.

    Loading the SDK modules behind the program's resources and running the program under the mock engine leave
    some 300,000 container objects that live as long as the process (classes, typing aliases, resources, outputs).
    With the collector on, it walks them in some 600 collections while they load (about 0.5 s of a plan) and once
    more while the interpreter shuts down (about 0.9 s), to free under a tenth of them. Reference counting still
    frees everything that is not in a cycle. Afterwards `gc.freeze()` moves whatever exists to the permanent
    generation, which later collections and the shutdown skip, and the collector is switched back on as it was.
    Nothing the plan records or prints depends on when cyclic garbage is freed; peak memory grows by about 2 MiB.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _run_plan(project: PulumiProject, stack: str) -> Plan:
    import pulumi
    from pulumi.runtime import stack as runtime_stack
    from pulumi.runtime.sync_await import _sync_await

    from .mocks import GpuScaleMocks
    from .monitor import RecordingMonitor, to_jsonable

    values = read_stack_values(project.stack_file(stack))
    mocks = GpuScaleMocks()
    monitor = RecordingMonitor(mocks, project.directory)
    # Keys holding a value encrypted in the file are secret keys, as under `pulumi up`: the program marks what it
    # takes from them as secret, and the plan shows [secret].
    pulumi.runtime.set_all_config(stack_config_strings(values), sorted({p.split(".")[0].split("[")[0]
                                                                         for p in secret_paths(values)}))
    pulumi.runtime.set_mocks(mocks, project=project.name, stack=stack, preview=True, monitor=monitor)
    program_dir = str(project.program_dir)
    sys.path.insert(0, program_dir)
    cwd = Path.cwd()
    os.chdir(program_dir)  # a Pulumi program runs in its program directory (relative asset paths)
    try:
        _sync_await(runtime_stack.run_pulumi_func(lambda: runpy.run_path(str(project.entry_point),
                                                                          run_name="__main__")))
        root = pulumi.runtime.get_root_resource()
        outputs = _sync_await(pulumi.Output.from_input(getattr(root, "outputs", {}) or {}).future()) or {}
    except ConfigError as exc:
        raise PlanConfigError(exc, monitor.declared_count) from None
    except ValueError as exc:
        # Components check their Args and raise ValueError naming the argument: a user error, not a crash.
        raise PlanError(f"the program rejected its input: {exc}") from None
    finally:
        os.chdir(cwd)
        sys.path.remove(program_dir)
    return Plan(project.name, stack, tuple(monitor.recorded), to_jsonable(outputs, project.directory))


def plan_in_subprocess(project_dir: Path, stack: str, python: str = sys.executable) -> Plan:
    """Plan a stack in a fresh interpreter (Pulumi's runtime state is per process)."""
    doc, _ = plan_document(project_dir, stack, python)
    return Plan.from_json(doc)


def plan_document(project_dir: Path, stack: str, python: str = sys.executable,
                  accept_check_errors: bool = False) -> tuple[dict[str, Any], int]:
    """`gpuscale plan --json` of a stack, run by `python` (another checkout's environment, for one), and its exit
    code. With `accept_check_errors`, a plan whose checks found errors (exit 3) is returned too."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "plan.json"
        proc = subprocess.run([python, "-m", "gpuscale", "plan", "--project-dir", str(project_dir), "--stack", stack,
                               "--json", str(out), "--quiet"], capture_output=True, text=True)
        if proc.returncode != 0 and not (accept_check_errors and proc.returncode == 3 and out.is_file()):
            raise PlanError(proc.stderr.strip() or proc.stdout.strip())
        return json.loads(out.read_text()), proc.returncode
