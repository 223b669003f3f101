"""A mock resource monitor that records every registration the program makes, in JSON-able form."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor

from .model import STACK_TYPE, PlannedResource

UNKNOWN_TEXT = "(known after apply)"


class RecordingMonitor(MockMonitor):
    def __init__(self, mocks: pulumi.runtime.Mocks, project_dir: Path):
        super().__init__(mocks)
        self.project_dir = project_dir
        self.recorded: list[PlannedResource] = []

    @property
    def declared_count(self) -> int:
        """Resources declared so far, the stack itself not counted."""
        return sum(1 for r in self.recorded if r.type != STACK_TYPE)

    def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)
        inputs = {} if request.type == STACK_TYPE else rpc.deserialize_properties(request.object, keep_unknowns=True)
        options = {
            "ignoreChanges": sorted(request.ignoreChanges),
            "protect": bool(request.protect),
            "deleteBeforeReplace": bool(request.deleteBeforeReplace),
            "dependsOn": sorted(request.dependencies),
            "replaceOnChanges": sorted(request.replaceOnChanges),
            # An explicit provider (the stack's Kubernetes provider), as `<urn>::<id>`; default providers are empty.
            "provider": request.provider.rsplit("::", 1)[0] if request.provider else "",
            # Where the resource was before it moved (into a component): the URNs of its aliases, which `gpuscale
            # diff` matches, as the engine does.
            "aliases": sorted(self._alias_urn(a, request) for a in request.aliases),
        }
        self.recorded.append(PlannedResource(
            urn=response.urn, type=request.type, name=request.name, parent=request.parent or None,
            custom=bool(request.custom), inputs=to_jsonable(inputs, self.project_dir),
            options={k: v for k, v in options.items() if v}))
        return response

    def _alias_urn(self, alias: Any, request: Any) -> str:
        """An alias as the URN the resource had: given whole, or as a spec (`noParent`: at the stack's top)."""
        if not alias.HasField("spec"):
            return alias.urn
        spec = alias.spec
        stack = next((r.urn for r in self.recorded if r.type == STACK_TYPE), "")
        parent = stack if spec.noParent else (spec.parentUrn or request.parent)
        return self.make_urn(parent, spec.type or request.type, spec.name or request.name)


def to_jsonable(value: Any, project_dir: Path) -> Any:
    """Plain JSON values for a plan: unknowns and secrets as markers, assets by their project-relative path."""
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the engine's wire format has only doubles; 2 reads better than 2.0 in a plan
    if value is None or isinstance(value, (bool, int, float, str)):
        return UNKNOWN_TEXT if value == rpc.UNKNOWN else value
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return "[secret]"
        return {k: to_jsonable(v, project_dir) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, project_dir) for v in value]
    if isinstance(value, (pulumi.FileAsset, pulumi.FileArchive)):
        return {"kind": type(value).__name__, "path": _relative(value.path, project_dir)}
    if isinstance(value, pulumi.StringAsset):
        return {"kind": "StringAsset", "text": value.text}
    if isinstance(value, pulumi.AssetArchive):
        return {"kind": "AssetArchive", "assets": to_jsonable(dict(value.assets), project_dir)}
    if isinstance(value, pulumi.Resource):
        return {"kind": "ResourceReference", "urn": UNKNOWN_TEXT}
    return str(value)


def _relative(path: str, project_dir: Path) -> str:
    # Plans are compared across machines and checkouts: keep them free of absolute paths.
    p = Path(path)
    try:
        return p.resolve().relative_to(project_dir.resolve()).as_posix()
    except ValueError:
        return p.name
