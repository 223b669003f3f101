"""Shared pieces of the simulator's tests: stack configs built through the real config reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpuscale.config import StackConfig, load_stack_config, read_stack_values, stack_file_path
from gpuscale.instance_types import RecordedInstanceTypes

REPO = Path(__file__).resolve().parents[2]
CATALOG = RecordedInstanceTypes()


def stack(name: str) -> StackConfig:
    """A stack file's config, as the program and `gpuscale simulate` read it."""
    return load_stack_config(read_stack_values(stack_file_path(REPO, name)), name, CATALOG)


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
