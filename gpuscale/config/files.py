"""Reading a stack's file (`Pulumi.<stack>.yaml` in the project's stackConfigDir) for the offline tools, the way
Pulumi reads it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..instance_types import InstanceTypeCatalog, RecordedInstanceTypes
from .namespace import PROJECT, check_namespace
from .policy import KEY as POLICY_KEY
from .project import YamlSyntaxError, read_project
from .reader import OFFLINE_SECRET, ConfigError, ConfigErrors
from .stack import StackConfig, TOP_LEVEL_KEYS, load_stack_config

# libyaml's safe loader where PyYAML was built with it (ten times faster); the pure-Python one otherwise.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def stack_file_path(project_dir: Path, stack: str) -> Path:
    """`Pulumi.<stack>.yaml` in the project's stack config directory, where its Pulumi.yaml's `stackConfigDir` puts
    it (`stacks/` in this repository), as Pulumi finds it."""
    return read_project(project_dir).stack_file(stack)


def read_stack_values(path: Path) -> dict[str, Any]:
    """The `config:` mapping of a stack file: full keys to decoded values.

    Values encrypted in the file below a key (`email: {secure: ...}` inside `gpuscale:alerts`) read as
    OFFLINE_SECRET: nothing offline can decrypt them; `pulumi up` hands the program the decrypted value."""
    try:
        doc = yaml.load(path.read_text(), Loader=_LOADER) or {}
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(path, exc) from None
    values = (doc.get("config") or {}) if isinstance(doc, dict) else doc
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: config", values, "a mapping of config keys to values")
    return {key: value if _is_secure(value) else _hide_secrets(value) for key, value in values.items()}


def _is_secure(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


def _hide_secrets(value: Any) -> Any:
    if _is_secure(value):
        return OFFLINE_SECRET
    if isinstance(value, dict):
        return {k: _hide_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_hide_secrets(v) for v in value]
    return value


def secret_paths(values: dict[str, Any]) -> list[str]:
    """Where a stack's values hold secrets the offline tools cannot read (`gpuscale:alerts.email`)."""
    found: list[str] = []

    def walk(value: Any, path: str) -> None:
        if value == OFFLINE_SECRET or _is_secure(value):
            found.append(path)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{path}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]")
    for key, value in values.items():
        walk(value, key)
    return found


def load_stack_file(project_dir: Path, stack: str, instance_types: InstanceTypeCatalog | None = None,
                    namespace: str = PROJECT) -> StackConfig:
    """Validate a stack's config from its file, with instance types from EC2's recorded descriptions; the platform's
    keys in `namespace` (a program's own, `fleet:nodeGroups`, or this project's)."""
    values = read_stack_values(stack_file_path(project_dir, stack))
    return load_stack_config(values, stack, instance_types or RecordedInstanceTypes(), namespace=namespace)


NAMESPACE_OPTION = "--config-namespace"


def settings_namespace(project_dir: Path, stack: str, given: str | None = None) -> str | None:
    """The config namespace holding the platform's settings in a stack's file, for the offline tools (plan,
    simulate) to read them where the program does: `given` (what the program passes to `load_program_config`, named
    on the command line), which must hold a section of them; else the project's name where it holds one
    (`fleet:nodeGroups` in project fleet); else this project's where the file has `gpuscale:` keys besides
    `gpuscale:policy`; None where none does (a program that declares the components from settings of its own)."""
    values = read_stack_values(stack_file_path(project_dir, stack))
    sections = set(TOP_LEVEL_KEYS) - {"policy"}

    def holds(namespace: str) -> bool:
        return any(key.partition(":")[0] == namespace and key.partition(":")[2] in sections for key in values)

    if given is not None:
        try:
            check_namespace(given)
        except ConfigErrors as exc:
            raise ConfigError(NAMESPACE_OPTION, given, exc.allowed) from None
        if not holds(given):
            spaces = sorted({key.partition(":")[0] for key in values if ":" in key})
            raise ConfigError(NAMESPACE_OPTION, given, f"a namespace holding the platform's settings in stack "
                              f"{stack}'s file ({given}:nodeGroups, {given}:cluster, ...); the namespaces it holds: "
                              f"{', '.join(spaces) or 'none'}")
        return given
    name = read_project(project_dir).name
    if name != PROJECT and holds(name):
        return name
    if any(key.partition(":")[0] == PROJECT and key != POLICY_KEY for key in values):
        return PROJECT
    return None
