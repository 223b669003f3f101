"""Shared pieces of the simulator's tests: stack configs built through the real config reader."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from gpuscale.config import StackConfig, load_stack_config, read_stack_values, stack_file_path
from gpuscale.instance_types import RecordedInstanceTypes

REPO = Path(__file__).resolve().parents[2]
CATALOG = RecordedInstanceTypes()

# The scaling this simulator's measurements propose for the stacks (docs/simulate.md, "Tuning the stacks"): the
# stack files' own values, with these keys replaced per group. Once the stack files carry them, this is a no-op.
PROPOSED: dict[str, dict[str, dict[str, Any]]] = {
    "dev": {"infer": {"scaling": {
        "target": {"gpuUtilization": 75},
        # One idle minute, then zero: a dev fleet pays for nothing it does not use.
        "scaleToZero": {"idleMinutes": 1, "idleGpuUtilization": 5, "warmMinimum": 2,
                        "wake": {"kind": "sqs", "queueName": "gpuscale-dev-infer-requests"}},
        "drainTimeoutSeconds": 120}}},
    "prod": {"infer-l40s": {"minSize": 0, "scaling": {
        "target": {"gpuUtilization": 60, "periodSeconds": 10},
        "burst": {"periodSeconds": 10, "evaluationPeriods": 3,
                  "steps": [{"lowerBoundAboveTarget": 10, "adjustmentPercent": 25},
                            {"lowerBoundAboveTarget": 20, "adjustmentPercent": 50},
                            {"lowerBoundAboveTarget": 30, "adjustmentPercent": 100}]},
        # Wake the whole warm pool (four stopped instances) at once; zero after two idle minutes.
        "scaleToZero": {"idleMinutes": 2, "warmMinimum": 4,
                        "wake": {"kind": "sqs", "queueName": "gpuscale-prod-infer-requests"}},
        "scaleInProtection": True,
        "drainTimeoutSeconds": 600}}},
}


def stack(name: str, proposed: bool = False) -> StackConfig:
    """A stack file's config, optionally with the proposed keys in place."""
    values = read_stack_values(stack_file_path(REPO, name))
    if proposed:
        values = copy.deepcopy(values)
        for group in values.get("gpuscale:autoScalingGroups", []):
            group.update(copy.deepcopy(PROPOSED.get(name, {}).get(group["name"], {})))
    return load_stack_config(values, name, CATALOG)


def workload(**overrides: Any) -> dict[str, Any]:
    """A `workload:` section: one request per replica at a time, 60 s each, no cold start."""
    section: dict[str, Any] = {
        "concurrencyPerReplica": 1,
        "serviceTime": {"meanSeconds": 60, "distribution": "fixed"},
        "coldStart": {"nodeProvisioningSeconds": 0, "imagePullSeconds": 0, "modelLoadSeconds": 0},
        "price": {"perInstanceHour": 1.0},
        "requestTimeoutSeconds": 3600,
    }
    section.update(overrides)
    return section


def group(name: str = "svc", **keys: Any) -> dict[str, Any]:
    """One `gpuscale:autoScalingGroups` entry of single-GPU g6.xlarge instances."""
    entry: dict[str, Any] = {"name": name, "instanceTypes": ["g6.xlarge"], "minSize": 0, "maxSize": 10,
                             "workload": workload()}
    entry.update(keys)
    return entry


def config(*groups: dict[str, Any], agent: dict[str, Any] | None = None) -> StackConfig:
    values: dict[str, Any] = {"aws:region": "us-west-2", "gpuscale:cluster": {"name": "test"},
                              "gpuscale:autoScalingGroups": list(groups)}
    if agent is not None:
        values["gpuscale:agent"] = agent
    return load_stack_config(values, "test", CATALOG)
