"""One simulated day at one-second resolution on a fleet of up to 100 replicas: how long does it take?

Every preset on an Auto Scaling group, the Kubernetes ones (HPA, KPA, KEDA) with the cluster-autoscaler adding and
removing nodes, the same workload on an EKS node group whose own setup is the cluster-autoscaler alone, and as a model
service on that node group (`simulate --service`: KEDA on GPU utilisation and an SQS wake, and every service preset).
Target: <= 2 s of wall time per run on one core. Run: python benchmarks/sim_bench.py
"""

from __future__ import annotations

import time

from gpuscale.config import load_stack_config
from gpuscale.instance_types import RecordedInstanceTypes
from gpuscale.sim.results import peak_rps, simulate_group
from gpuscale.sim.service import service_model
from gpuscale.sim.serving import SERVICE_PRESETS, simulate_service
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
NODE_GROUP = {"name": "bench-ng", "instanceTypes": ["g6.xlarge"], "minSize": 0, "maxSize": 100,
              "workload": dict(GROUP["workload"], coldStart={**GROUP["workload"]["coldStart"],
                                                              "devicePluginReadySeconds": 30})}
SERVICE = {"name": "bench-svc", "nodeGroup": "bench-ng", "model": {"storageUri": "s3://bench-models/m",
                                                                  "format": "huggingface"},
           "minReplicas": 0, "maxReplicas": 100,
           "scaling": {"keda": {"gpuUtilization": {"target": 70}, "pollingIntervalSeconds": 10,
                                "wake": {"kind": "sqs", "queueName": "bench-svc-requests"}}},
           "workload": {k: GROUP["workload"][k] for k in ("concurrencyPerReplica", "serviceTime")}
           | {"coldStart": {"imagePullSeconds": 90, "modelLoadSeconds": 60}}}
VALUES = {"aws:region": "us-west-2", "gpuscale:cluster": {"name": "bench"}, "gpuscale:autoScalingGroups": [GROUP],
          "gpuscale:nodeGroups": [NODE_GROUP], "gpuscale:kubernetes": {"serving": {"mode": "standard"}},
          "gpuscale:services": [SERVICE]}
TARGET_SECONDS = 2.0


def main() -> None:
    config = load_stack_config(VALUES, "bench", RecordedInstanceTypes())
    group = config.auto_scaling_groups[0]
    svc = service_model(group.workload)
    # Peaks at 70% of what 100 replicas serve: the fleet swings between a handful and ~80 replicas over the day.
    trace = diurnal(0.7 * peak_rps(group, svc))
    print(f"trace: {trace.description}, {trace.total_requests:.0f} requests over {trace.seconds} s")
    runs = [(group, p) for p in ("stack", "ideal", "hpa-example", "coreweave-kpa", "keda-queue", "hf-like")]
    runs.append((config.node_groups[0], "stack"))
    for g, preset in runs:
        start = time.perf_counter()
        sim = simulate_group(g, config.agent, trace, [preset], duration=trace.seconds, kubernetes=config.kubernetes)
        _report(g.name, preset, sim, time.perf_counter() - start)
    service = config.services[0]
    for preset in SERVICE_PRESETS:
        start = time.perf_counter()
        sim = simulate_service(service, config, trace, [preset], duration=trace.seconds)
        _report(service.name, preset, sim, time.perf_counter() - start)


def _report(name: str, preset: str, sim, wall: float) -> None:
    r = sim.results[0]
    peak = int(sim.runs[preset].ready_replicas.max())
    verdict = "OK" if wall <= TARGET_SECONDS else f"SLOW (target {TARGET_SECONDS:g} s)"
    print(f"{name:9s} {preset:14s} {wall:5.2f} s wall  peak {peak:3d} ready replicas  p99 {r.latency_p99} s  "
          f"cost {r.cost:.2f} {sim.currency}  {verdict}")

if __name__ == "__main__":
    main()
