"""A harness that builds components under Pulumi's mock engine (GpuScaleMocks) and records every registration.

Each registration keeps what a reviewer of `pulumi preview` would look at: type, name, parent, the inputs as the
provider receives them (camelCase) and the resource options (ignore_changes, dependencies).
"""

from __future__ import annotations

import runpy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pulumi
from google.protobuf.json_format import MessageToDict
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from gpuscale.config import read_stack_values, stack_file_path
from gpuscale.plan.mocks import GpuScaleMocks
from gpuscale.plan.engine import stack_config_strings

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Registered:
    type: str
    name: str
    parent: str
    inputs: dict[str, Any]
    ignore_changes: tuple[str, ...]
    dependencies: tuple[str, ...]
    urn: str
    id: str
    """The id the mocks gave it (empty for components)."""
    aliases: tuple[dict[str, Any], ...] = ()
    """Its aliases as the engine receives them (`{"spec": {"noParent": True}}`: it was declared at the top)."""
    replace_on_changes: tuple[str, ...] = ()
    """Inputs whose change the program says replaces it (`replace_on_changes`)."""
    delete_before_replace: bool = False


class RecordingMonitor(MockMonitor):
    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.registered: list[Registered] = []
        self.invokes: list[tuple[str, dict[str, Any]]] = []

    def Invoke(self, request):  # noqa: N802 (gRPC method name)
        self.invokes.append((request.tok, rpc.deserialize_properties(request.args)))
        return super().Invoke(request)

    def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)
        inputs = rpc.deserialize_properties(request.object, keep_unknowns=True) if request.object else {}
        self.registered.append(Registered(request.type, request.name, request.parent, inputs,
                                          tuple(request.ignoreChanges), tuple(request.dependencies), response.urn,
                                          response.id, tuple(MessageToDict(a) for a in request.aliases),
                                          tuple(request.replaceOnChanges), bool(request.deleteBeforeReplace)))
        return response


class Harness:
    """Runs a program (a function declaring resources) under the mocks, then answers questions about it."""

    def __init__(self, region: str = "us-west-2", stack: str = "test"):
        self.region, self.stack = region, stack
        self.config: dict[str, Any] = {}
        """Stack config (full keys to values) the program reads; `aws:region` defaults to `region`."""
        self.resources: list[Registered] = []
        self.invokes: list[tuple[str, dict[str, Any]]] = []

    def run(self, program: Callable[[], T]) -> T:
        pulumi.runtime.settings.reset_options(project="gpuscale", stack=self.stack)
        config = {"aws:region": self.region, **self.config}
        pulumi.runtime.set_all_config(stack_config_strings(config))
        monitor = RecordingMonitor(GpuScaleMocks())
        pulumi.runtime.set_mocks(monitor.mocks, project="gpuscale", stack=self.stack, preview=False,
                                 monitor=monitor)
        result: list[T] = []
        try:
            _sync_await(run_pulumi_func(lambda: result.append(program())))
        finally:
            self.resources, self.invokes = monitor.registered, monitor.invokes
        return result[0]

    def run_program(self, stack: str, values: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run the project's __main__.py with a stack's config (the stack file's, or `values`); its exports."""
        self.stack = stack
        self.config = values if values is not None else stack_values(stack)
        self.region = self.config.get("aws:region", self.region)

        def program() -> dict[str, Any]:
            runpy.run_path(str(REPO / "__main__.py"), run_name="__main__")
            return pulumi.runtime.get_root_resource().outputs

        outputs = self.run(program)
        return {k: self.value(v) for k, v in outputs.items()}

    @staticmethod
    def value(output: pulumi.Input[Any]) -> Any:
        """The resolved value of an output of the finished program."""
        return _sync_await(pulumi.Output.from_input(output).future())

    def of_type(self, token: str) -> list[Registered]:
        return [r for r in self.resources if r.type == token]

    def one(self, token: str, name: str | None = None) -> Registered:
        found = [r for r in self.of_type(token) if name is None or r.name == name]
        assert len(found) == 1, f"expected one {token} named {name or '*'}, found {[r.name for r in found]}"
        return found[0]

    def children_of(self, component_urn: str) -> list[Registered]:
        return [r for r in self.resources if r.parent == component_urn]


def stack_values(stack: str) -> dict[str, Any]:
    """The `config:` mapping of stacks/Pulumi.<stack>.yaml."""
    return read_stack_values(stack_file_path(REPO, stack))
