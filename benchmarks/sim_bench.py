"""One simulated day at one-second resolution on a fleet of up to 100 replicas: how long does it take?

Target: <= 2 s of wall time per preset on one core. Run: python benchmarks/sim_bench.py
"""

from __future__ import annotations

import time

from gpuscale.config import load_stack_config
from gpuscale.instance_types import RecordedInstanceTypes
from gpuscale.sim.results import peak_rps, simulate_group
from gpuscale.sim.service import service_model
from gpuscale.sim.traces import diurnal

# A g6.xlarge fleet of 0 to 100 instances, one replica each, with every policy the stack can configure.
GROUP = {
    "name": "bench", "instanceTypes": ["g6.xlarge"], "minSize": 0, "maxSize": 100, "instanceWarmupSeconds": 240,
    "scaling": {
        "target": {"gpuUtilization": 70, "periodSeconds": 10},
        "demand": {"kind": "sqs", "queueName": "bench-requests", "targetPerInstance": 16},
        "burst": {"periodSeconds": 10, "evaluationPeriods": 3,
                  "steps": [{"lowerBoundAboveTarget": 10, "adjustmentPercent": 50},
                            {"lowerBoundAboveTarget": 20, "adjustmentPercent": 100}]},
        "scaleToZero": {"idleMinutes": 5, "warmMinimum": 2},
        "scaleInProtection": True,
    },
    "workload": {
        "concurrencyPerReplica": 8, "serviceTime": {"meanSeconds": 20, "distribution": "lognormal", "cv": 0.6},
        "coldStart": {"nodeProvisioningSeconds": 90, "imagePullSeconds": 90, "modelLoadSeconds": 60},
        "price": {"perInstanceHour": 0.8048}, "requestTimeoutSeconds": 600,
    },
}
VALUES = {"aws:region": "us-west-2", "gpuscale:cluster": {"name": "bench"}, "gpuscale:autoScalingGroups": [GROUP]}


def main() -> None:
    config = load_stack_config(VALUES, "bench", RecordedInstanceTypes())
    group = config.auto_scaling_groups[0]
    svc = service_model(group.workload)
    # Peaks at 70% of what 100 replicas serve: the fleet swings between a handful and ~80 replicas over the day.
    trace = diurnal(0.7 * peak_rps(group, svc))
    print(f"trace: {trace.description}, {trace.total_requests:.0f} requests over {trace.seconds} s")
    for preset in ("stack", "ideal", "hpa-example", "coreweave-kpa", "hf-like"):
        start = time.perf_counter()
        sim = simulate_group(group, config.agent, trace, [preset], duration=trace.seconds)
        wall = time.perf_counter() - start
        r = sim.results[0]
        peak = int(sim.runs[preset].ready_replicas.max())
        print(f"{preset:14s} {wall:5.2f} s wall  peak {peak:3d} ready replicas  p99 {r.latency_p99} s  "
              f"cost {r.cost:.2f} {svc.currency}  {'OK' if wall <= 2 else 'SLOW (target 2 s)'}")


if __name__ == "__main__":
    main()
