"""Wall time of `gpuscale plan --stack prod` beside a bare import of the Pulumi SDKs it stands on.

The SDK import is the floor any offline plan pays; the ratio says what the program, the mocks and the rendering
add on top of it. Target: ratio <= 1.5. Each command runs in a fresh interpreter, several times; medians are
compared, after one untimed warm-up run of each to fill the OS file cache.

    python benchmarks/plan_bench.py [--runs N] [--stack prod]
"""

from __future__ import annotations

import argparse
import statistics
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
    for cmd in (plan_cmd, import_cmd):
        wall(cmd)  # warm-up
    plan_times = [wall(plan_cmd) for _ in range(args.runs)]
    import_times = [wall(import_cmd) for _ in range(args.runs)]
    plan_s, import_s = statistics.median(plan_times), statistics.median(import_times)
    ratio = plan_s / import_s
    print(f"gpuscale plan --stack {args.stack}: median {plan_s:.2f} s over {args.runs} runs "
          f"(min {min(plan_times):.2f}, max {max(plan_times):.2f})")
    print(f"import pulumi_aws, pulumi_kubernetes: median {import_s:.2f} s over {args.runs} runs "
          f"(min {min(import_times):.2f}, max {max(import_times):.2f})")
    print(f"ratio: {ratio:.2f} (target <= {TARGET_RATIO}) -> {'met' if ratio <= TARGET_RATIO else 'NOT met'}")


if __name__ == "__main__":
    main()
