"""Reading a stack's file (`stacks/Pulumi.<stack>.yaml`) for the offline tools, the way Pulumi reads it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ..instance_types import InstanceTypeCatalog, RecordedInstanceTypes
from .reader import ConfigError
from .stack import StackConfig, load_stack_config

STACK_NAME_PATTERN = r"[A-Za-z0-9_.-]+"
# libyaml's safe loader where PyYAML was built with it (ten times faster); the pure-Python one otherwise.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def stack_file_path(project_dir: Path, stack: str) -> Path:
    """`stacks/Pulumi.<stack>.yaml`, as `stackConfigDir: stacks` in Pulumi.yaml tells Pulumi."""
    if not re.fullmatch(STACK_NAME_PATTERN, stack):
        raise ConfigError("--stack", stack, "a stack name of letters, digits, '_', '.' or '-'")
    path = project_dir / "stacks" / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in (project_dir / "stacks").glob("Pulumi.*.yaml"))
        raise ConfigError("--stack", stack, "a stack with a file in stacks/: " + (", ".join(known) or "none found"))
    return path


def read_stack_values(path: Path) -> dict[str, Any]:
    """The `config:` mapping of a stack file: full keys to decoded values."""
    try:
        doc = yaml.load(path.read_text(), Loader=_LOADER) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), "(unparsable YAML)", f"valid YAML ({exc})") from None
    values = doc.get("config") or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: config", values, "a mapping of config keys to values")
    return values


def load_stack_file(project_dir: Path, stack: str, instance_types: InstanceTypeCatalog | None = None) -> StackConfig:
    """Validate a stack's config from its file, with instance types from EC2's recorded descriptions."""
    values = read_stack_values(stack_file_path(project_dir, stack))
    return load_stack_config(values, stack, instance_types or RecordedInstanceTypes())
