"""Where the wall time of `gpuscale plan --stack prod` goes, phase by phase, in fresh interpreters.

    python benchmarks/plan_breakdown.py [--runs N] [--stack prod]

Each figure is the median (and minimum) over N runs, each in a fresh interpreter, after one untimed warm-up. The
first block times whole commands from outside; the second times the phases of one plan from inside, the process
exit included (the wall time of the process less the time at which the command returned):

- our imports: the CLI, `gpuscale.plan.cli` and what it imports, up to the plan command itself;
- `import pulumi, pulumi_aws, pulumi_kubernetes`: the bare SDKs, as in plan_bench's reference command;
- SDK submodules: loading the pulumi_aws submodules (ec2, iam, ...) that the program touches (pulumi_aws loads them
  lazily: on first attribute access), with everything they import;
- program + mock engine: the rest of `run_plan`: the program's own code, the components, Pulumi's runtime under
  `set_mocks`, our mocks and the recording monitor;
- checks, render: the pre-apply checks (they run the simulator) and the text rendering;
- cyclic GC: time in the garbage collector across all phases (also inside the figures above).

Measurement only: in the measured process, hooks around importlib's `exec_module`, `__import__` and the plan's
phase functions read the clock and change nothing else.

A last block asks what deferred annotations (PEP 563/649: the default from Python 3.14) would buy: the same
submodule load and the same plan with pulumi_aws compiled as if each module began with `from __future__ import
annotations`, through an import hook that lives in this benchmark only (its compiled code is cached in a temporary
directory that the warm-up fills). It also checks that the plan is the same byte for byte under that hook.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from plan_bench import wall  # the same wall-clock timing of one command, from the repository root

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import gc, json, sys, time
T0 = time.perf_counter()
gc_time = [0.0, 0]
_gc_start = [0.0]
def _gc_cb(phase, info):
    if phase == "start":
        _gc_start[0] = time.perf_counter()
    else:
        gc_time[0] += time.perf_counter() - _gc_start[0]; gc_time[1] += 1
gc.callbacks.append(_gc_cb)

_bare = [0.0, False]  # time in the bare SDK imports; True while one runs
import importlib._bootstrap_external as _bx
sdk = {"time": 0.0, "modules": [], "active": False}
_exec_module = _bx._LoaderBasics.exec_module
def _timed_exec_module(self, module):
    name = module.__name__
    # A pulumi_aws subpackage (ec2, iam, ...), loaded by the plan rather than by `import pulumi_aws` itself.
    if sdk["active"] or _bare[1] or not (name.startswith("pulumi_aws.") and name.count(".") == 1
                                          and module.__spec__.submodule_search_locations is not None):
        return _exec_module(self, module)
    sdk["active"], start = True, time.perf_counter()
    try:
        return _exec_module(self, module)
    finally:
        sdk["time"] += time.perf_counter() - start
        sdk["active"] = False
        sdk["modules"].append(name)
_bx._LoaderBasics.exec_module = _timed_exec_module

marks = {}
import gpuscale.plan.cli as plan_cli
import gpuscale.plan.engine as plan_mod
marks["our imports"] = time.perf_counter() - T0
phase = {}
def _time_phase(module, attr, key):
    original = getattr(module, attr)
    def timed(*a, **k):
        start = time.perf_counter()
        try:
            return original(*a, **k)
        finally:
            phase[key] = time.perf_counter() - start
    setattr(module, attr, timed)
_time_phase(plan_mod, "run_plan", "run_plan")
import gpuscale.plan.checks as checks
_time_phase(checks, "run_checks", "checks")
import gpuscale.plan.render as render
_time_phase(render, "render_tree", "render")
import builtins
_import = builtins.__import__
def timed_import(name, *a, **k):
    if name in ("pulumi", "pulumi_aws", "pulumi_kubernetes") and name not in sys.modules and not _bare[1]:
        start, _bare[1] = time.perf_counter(), True
        try:
            return _import(name, *a, **k)
        finally:
            _bare[0] += time.perf_counter() - start
            _bare[1] = False
    return _import(name, *a, **k)
builtins.__import__ = timed_import
import io, contextlib
out = io.StringIO()
code = 0
try:
    with contextlib.redirect_stdout(out):
        plan_cli.plan.main(["--stack", sys.argv[1]], standalone_mode=False)
except SystemExit as exc:
    code = exc.code
end = time.perf_counter()
import re
m = re.search(r"^(\d+) to create", out.getvalue(), re.M)
result = {"our imports": marks["our imports"], "import pulumi, pulumi_aws, pulumi_kubernetes": _bare[0],
          "SDK submodules": sdk["time"],
          "program + mock engine": phase["run_plan"] - sdk["time"] - _bare[0],
          "checks": phase["checks"], "render": phase["render"], "cyclic GC (inside the above)": gc_time[0],
          "gc_collections": gc_time[1], "in_process": end - T0, "resources": int(m.group(1)) if m else None,
          "sdk_modules": sorted(set(sdk["modules"])), "code": code}
print("RESULT " + json.dumps(result))
sys.stdout.flush()
sys.stderr.write(f"END {time.time()!r}\n")
"""


# Compiles pulumi_aws's modules with annotations deferred (kept as strings, evaluated only when Pulumi asks for a
# type hint) and caches the code in DEFER_CACHE; everything else imports as usual.
DEFER_ANNOTATIONS = r"""
import __future__, hashlib, importlib.machinery, marshal, os, sys
class _DeferredAnnotationsLoader(importlib.machinery.SourceFileLoader):
    def get_code(self, fullname):
        path = self.get_filename(fullname)
        st = os.stat(path)
        key = hashlib.sha1(f"{path}:{st.st_mtime_ns}:{st.st_size}:{sys.version}".encode()).hexdigest()
        cached = os.path.join(os.environ["DEFER_CACHE"], key)
        try:
            with open(cached, "rb") as f:
                return marshal.loads(f.read())
        except OSError:
            pass
        code = compile(self.get_data(path), path, "exec", flags=__future__.annotations.compiler_flag,
                       dont_inherit=True)
        with open(cached + ".tmp", "wb") as f:
            marshal.dump(code, f)
        os.replace(cached + ".tmp", cached)
        return code
class _DeferredAnnotationsFinder:
    def find_spec(self, name, path, target=None):
        if name != "pulumi_aws" and not name.startswith("pulumi_aws."):
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and type(spec.loader) is importlib.machinery.SourceFileLoader:
            spec.loader = _DeferredAnnotationsLoader(spec.loader.name, spec.loader.path)
        return spec
sys.meta_path.insert(0, _DeferredAnnotationsFinder())
"""

# `gpuscale plan` as `python -m gpuscale` runs it, after DEFER_ANNOTATIONS.
PLAN_DEFERRED = DEFER_ANNOTATIONS + "import runpy; sys.argv[0] = 'gpuscale'; runpy.run_module('gpuscale', run_name='__main__')\n"


def child_run(stack: str) -> dict:
    start = time.time()
    proc = subprocess.run([sys.executable, "-c", CHILD, stack], cwd=ROOT, capture_output=True, text=True)
    done = time.time()
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    ended = float(next(x for x in proc.stderr.splitlines() if x.startswith("END ")).split()[1])
    result["process wall"] = done - start
    result["interpreter start + exit"] = result["process wall"] - result["in_process"]
    result["exit"] = done - ended
    return result


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):6.3f} (min {min(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each measurement (default 5)")
    parser.add_argument("--stack", default="prod", help="stack to plan (default prod)")
    args = parser.parse_args()

    first = child_run(args.stack)  # warm-up; also tells which SDK submodules the plan loads
    modules = first["sdk_modules"]
    py = sys.executable
    load = "".join(f"hasattr(importlib.import_module({m!r}), 'load')\n" for m in modules)
    commands = {
        "python -c pass": [py, "-c", "pass"],
        "import gpuscale.plan.cli": [py, "-c", "import gpuscale.plan.cli"],
        "import pulumi_aws, pulumi_kubernetes": [py, "-c", "import pulumi_aws, pulumi_kubernetes"],
        f"  + load the {len(modules)} pulumi_aws submodules": [py, "-c", "import importlib, pulumi_kubernetes\n" + load],
        "  + the same, collector paused and frozen as the plan does": [
            py, "-c", "import gc; gc.disable()\nimport importlib, pulumi_kubernetes\n" + load + "gc.freeze()\n"],
        f"gpuscale plan --stack {args.stack}": [py, "-m", "gpuscale", "plan", "--stack", args.stack],
    }
    deferred = {
        f"load the {len(modules)} submodules, collector paused, annotations deferred": [
            py, "-c", DEFER_ANNOTATIONS + "import gc; gc.disable()\nimport importlib, pulumi_kubernetes\n" + load
            + "gc.freeze()\n"],
        f"gpuscale plan --stack {args.stack}, annotations deferred": [
            py, "-c", PLAN_DEFERRED, "plan", "--stack", args.stack],
    }
    commands.update(deferred)
    times: dict[str, list[float]] = {label: [] for label in commands}
    phases: list[dict] = []
    with tempfile.TemporaryDirectory() as cache:
        os.environ["DEFER_CACHE"] = cache
        for cmd in commands.values():
            wall(cmd)  # warm-up; fills the deferred-annotations cache
        for _ in range(args.runs):  # interleaved, so drifts in machine load hit every figure alike
            for label, cmd in commands.items():
                times[label].append(wall(cmd))
            phases.append(child_run(args.stack))
        same = same_plan(py, args.stack)

    print(f"Whole commands, wall seconds, median of {args.runs} (min):")
    for label, values in times.items():
        if label not in deferred:
            print(f"  {summary(values)}  {label}")
    print(f"\nPhases of one plan (stack {args.stack}, {first['resources']} resources; SDK submodules loaded: "
          f"{', '.join(m.split('.', 1)[1] for m in modules)}), seconds, median of {args.runs} (min):")
    keys = ["our imports", "import pulumi, pulumi_aws, pulumi_kubernetes", "SDK submodules", "program + mock engine",
            "checks", "render", "interpreter start + exit", "process wall", "cyclic GC (inside the above)"]
    for key in keys:
        print(f"  {summary([p[key] for p in phases])}  {key}")
    print(f"  GC collections per plan: {statistics.median(p['gc_collections'] for p in phases):.0f}; "
          f"process exit after the command returned: {summary([p['exit'] for p in phases])}")

    bare = statistics.median(times["import pulumi_aws, pulumi_kubernetes"])
    print("\nWith pulumi_aws's annotations deferred (as Python 3.14 does by default), wall seconds, median (min), "
          "and against the bare import:")
    for label in deferred:
        print(f"  {summary(times[label])}  x{statistics.median(times[label]) / bare:.2f}  {label}")
    print(f"  the plan under the hook is {'the same byte for byte' if same else 'DIFFERENT'}")


def same_plan(py: str, stack: str) -> bool:
    """Whether `gpuscale plan --json` writes the same plan with and without deferred annotations."""
    with tempfile.TemporaryDirectory() as tmp:
        plain, deferred = Path(tmp) / "plain.json", Path(tmp) / "deferred.json"
        quiet = {"cwd": ROOT, "check": True, "stdout": subprocess.DEVNULL}
        subprocess.run([py, "-m", "gpuscale", "plan", "--stack", stack, "--json", str(plain), "--quiet"], **quiet)
        subprocess.run([py, "-c", PLAN_DEFERRED, "plan", "--stack", stack, "--json", str(deferred), "--quiet"],
                       **quiet)
        return plain.read_bytes() == deferred.read_bytes()


if __name__ == "__main__":
    main()
