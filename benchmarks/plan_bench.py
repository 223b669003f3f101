"""Wall time of `gpuscale plan --stack prod` beside a bare import of the Pulumi SDKs it stands on.

The issue's target is plan / bare import <= 1.5. pulumi_aws loads its submodules lazily, so the bare import loads
almost nothing; a third figure, the import of exactly the SDK submodules the plan's resources come from (read off
the plan itself, loaded with the cyclic collector paused as the plan loads them), is the floor any program
declaring those resources pays. It is a lower bound: the plan also loads submodules for its data lookups (ssm for
the AMI parameter), which plan_breakdown.py counts. A second ratio, plan / floor, says what the program, the mocks,
the checks and the rendering add; a third, floor / bare import, says whether the target can be met at all (only
below 1.5 is there room left for the program). Each command runs in a fresh interpreter, several times; medians
are compared, after one untimed warm-up run of each to fill the OS file cache.

    python benchmarks/plan_bench.py [--runs N] [--stack prod]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.5


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each command (default 5)")
    parser.add_argument("--stack", default="prod", help="stack to plan (default prod)")
    args = parser.parse_args()

    plan_cmd = [sys.executable, "-m", "gpuscale", "plan", "--stack", args.stack]
    import_cmd = [sys.executable, "-c", "import pulumi_aws, pulumi_kubernetes"]
    # pulumi_aws's submodules are lazy: an import alone only registers them; touching an attribute loads them.
    modules = sdk_modules(args.stack)
    # With the cyclic collector paused and what was built frozen, as the plan loads them (gpuscale.plan.engine).
    sdk_cmd = [sys.executable, "-c", "import gc; gc.disable()\nimport importlib\n" + "".join(
        f"hasattr(importlib.import_module({m!r}), 'load')\n" for m in modules) + "gc.freeze()\n"]
    commands = {f"gpuscale plan --stack {args.stack}": plan_cmd, "import pulumi_aws, pulumi_kubernetes": import_cmd,
                f"loading the {len(modules) - 1} pulumi_aws submodules of the plan's resource types, collector paused "
                f"as in the plan": sdk_cmd}
    medians = {}
    for label, cmd in commands.items():
        wall(cmd)  # warm-up
        times = [wall(cmd) for _ in range(args.runs)]
        medians[label] = statistics.median(times)
        print(f"{label}: median {medians[label]:.2f} s over {args.runs} runs "
              f"(min {min(times):.2f}, max {max(times):.2f})")
    plan_s, import_s, sdk_s = medians.values()
    ratio = plan_s / import_s
    print(f"ratio plan / bare import: {ratio:.2f} (target <= {TARGET_RATIO}) -> "
          f"{'met' if ratio <= TARGET_RATIO else 'NOT met'}")
    print(f"ratio plan / SDK submodules of its resource types: {plan_s / sdk_s:.2f}")
    print(f"ratio SDK submodules / bare import: {sdk_s / import_s:.2f} (what any program declaring these resources "
          f"pays before its first line)")


def sdk_modules(stack: str) -> list[str]:
    """pulumi_aws submodules behind the plan's resource types (aws:ec2/... -> pulumi_aws.ec2), plus the bare SDKs."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "plan.json"
        subprocess.run([sys.executable, "-m", "gpuscale", "plan", "--stack", stack, "--json", str(path), "--quiet"],
                       cwd=ROOT, check=True)
        types = {r["type"] for r in json.loads(path.read_text())["resources"]}
    modules = sorted({f"pulumi_aws.{t.split(':')[1].split('/')[0]}" for t in types if t.startswith("aws:")})
    return ["pulumi_kubernetes", *modules]


if __name__ == "__main__":
    main()
