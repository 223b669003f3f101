"""What a shared rule returns when it refuses a value: one shape for the rules the stack config and the components
both apply (endpoint_access, queue_rules, workload_startup), so each caller words the error with its own key names.
Pure data, so the config reads it without importing Pulumi."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Refusal:
    field: str
    """The value's path in the component's Args (snake_case), e.g. "public_access_cidrs[0]", "container.ports[1]"."""
    value: object
    allowed: str

    def error(self, prefix: str = "") -> ValueError:
        """The component's error: the Args key (under `prefix`), the value and what is allowed."""
        return ValueError(f"{prefix}{self.field}: {self.value!r} is not allowed; allowed: {self.allowed}")

    def config_key(self, section: str) -> str:
        """The config key of the value under a config section: snake_case segments in camelCase (the config's
        spelling of the same names), map keys after an `env` segment as written."""
        segments = self.field.split(".")
        cut = segments.index("env") + 1 if "env" in segments else len(segments)
        return ".".join([section, *(camel(s) for s in segments[:cut]), *segments[cut:]])


def camel(name: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)
