"""Shared by the scaling tests: runs components under the offline plan's mock engine and recorder, so tests see what
the plan holds.

`GpuScaleMocks` answers like AWS and `gpuscale.plan.monitor.RecordingMonitor` keeps each registration as the plan
stores it (type, name, parent URN, camelCase inputs as JSON values).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import rpc
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from gpuscale.plan.mocks import GpuScaleMocks
from gpuscale.plan.model import PlannedResource
from gpuscale.plan.monitor import RecordingMonitor

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-west-2"


class OutputRecordingMonitor(RecordingMonitor):
    """The plan's recorder, plus what the mocks answered for each resource (its ARN, its auto-name)."""

    def __init__(self) -> None:
        super().__init__(GpuScaleMocks(), ROOT)
        self.outputs: dict[str, dict[str, Any]] = {}

    def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)
        self.outputs[response.urn] = rpc.deserialize_properties(response.object) if response.object else {}
        return response


@dataclass
class Program:
    result: Any
    resources: list[PlannedResource]
    outputs: dict[str, dict[str, Any]]
    """Per URN, the state the mocks returned."""

    def of_type(self, token: str) -> list[PlannedResource]:
        return [r for r in self.resources if r.type == token]

    def named(self, name: str) -> PlannedResource:
        found = [r for r in self.resources if r.name == name]
        assert len(found) == 1, f"expected one resource named {name}, found {len(found)}: " \
                                f"{sorted(r.name for r in self.resources)}"
        return found[0]

    def component(self, token: str) -> PlannedResource:
        found = self.of_type(token)
        assert len(found) == 1, f"expected one {token}, found {[r.name for r in found]}"
        return found[0]

    def children(self, parent: PlannedResource) -> list[PlannedResource]:
        return [r for r in self.resources if r.parent == parent.urn]

    def arn(self, name: str) -> str:
        return self.outputs[self.named(name).urn]["arn"]


def run_program(build: Callable[[], Any], stack: str = "test") -> Program:
    """Declare resources with `build()` under the mocks; return its result (outputs resolved) and the records."""
    pulumi.runtime.settings.reset_options(project="gpuscale", stack=stack)
    pulumi.runtime.set_all_config({"aws:region": REGION})
    monitor = OutputRecordingMonitor()
    pulumi.runtime.set_mocks(monitor.mocks, project="gpuscale", stack=stack, preview=False, monitor=monitor)
    built: list[Any] = []
    _sync_await(run_pulumi_func(lambda: built.append(build())))
    return Program(built[0], list(monitor.recorded), monitor.outputs)


def resolve(output: pulumi.Input[Any]) -> Any:
    """The value of an output of a finished program."""
    return _sync_await(pulumi.Output.from_input(output).future())


ASG = "infer-asg"
ASG_ARN = f"arn:aws:autoscaling:{REGION}:123456789012:autoScalingGroup:1d6f4a9c-0b1e-4c39-9a57-3b2f0e7d5c11" \
          f":autoScalingGroupName/{ASG}"
QUEUE = "infer-requests"


def full_policies_args(**overrides: Any) -> dict[str, Any]:
    """GpuScalingPolicies arguments with every feature on (the prod inference preset plus scale to zero)."""
    args: dict[str, Any] = {
        "asg_name": ASG, "asg_arn": ASG_ARN, "instance_role_name": "infer-role",
        "target": {"target_gpu_utilization": 60.0, "disable_scale_in": False, "period_seconds": 60},
        "demand": {"signal": {"kind": "sqs", "queue_name": QUEUE}, "target_per_instance": 8.0},
        "burst": {"period_seconds": 10, "evaluation_periods": 3,
                  "steps": [{"lower_bound_above_target": 10.0, "adjustment_percent": 25},
                            {"lower_bound_above_target": 20.0, "adjustment_percent": 50},
                            {"lower_bound_above_target": 30.0, "adjustment_percent": 100}]},
        "scale_to_zero": {"idle_minutes": 15, "wake": {"kind": "sqs", "queue_name": QUEUE}, "warm_minimum": 2,
                          "idle_gpu_utilization": 5.0, "wake_messages_per_instance": 8.0, "wake_maximum": 4},
        "scale_in_protection": True, "drain_timeout_seconds": 600,
    }
    args.update(overrides)
    return args
