"""`startup:` of a self-managed GPU group: the user's own container or user data beside the agent's.

The keys are the camelCase names of components/workload_startup.py's StartupArgs (`userData`, `container.ipcHost`);
that module's `startup_problem` is the one rule set, applied here with the config's key names and by
GpuAutoScalingGroup with its Args names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..components.arg_rules import camel
from ..components.workload_startup import StartupArgs, startup_problem
from .reader import ConfigError, Section


def _snake(key: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), key)


def read_startup(s: Section | None, reserved_ports: tuple[int, ...]) -> StartupArgs | None:
    """The group's `startup:` as StartupArgs, validated; None without one. `reserved_ports`: ports the instance
    already serves (the agent's)."""
    if s is None:
        return None
    startup: dict[str, Any] = {_snake(k): v for k, v in s.data.items()}
    if isinstance(startup.get("container"), Mapping):
        startup["container"] = {_snake(k): v for k, v in startup["container"].items()}
    problem = startup_problem(startup, reserved_ports)
    if problem is not None:
        raise ConfigError(problem.config_key(s.path), problem.value, _allowed_in_config_words(problem.allowed))
    return startup  # type: ignore[return-value]


def _allowed_in_config_words(allowed: str) -> str:
    """The rule's text names Args keys (snake_case); the config's reader names its own keys."""
    for name in ("ipc_host", "user_data"):
        allowed = allowed.replace(name, camel(name))
    return allowed
