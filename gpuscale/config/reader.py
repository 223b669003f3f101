"""A small typed reader over raw stack config that turns every bad value into a ConfigError naming its key.

Stack config arrives as plain YAML/JSON values (from `pulumi.Config` in `__main__.py`, or from the stack file for
the offline tools). Each `Section` knows its dotted key path, so an error reads
``gpuscale:nodeGroups[0].maxSize: -1 is not allowed; allowed: an integer >= 0`` and the user knows where to look.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A stack config value that is not allowed. `key` is the full dotted path, `allowed` says what would be."""

    def __init__(self, key: str, value: Any, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        shown = "(missing)" if value is _MISSING else repr(value)
        super().__init__(f"{key}: {shown} is not allowed; allowed: {allowed}")


class _Missing:
    def __repr__(self) -> str:
        return "(missing)"


_MISSING: Any = _Missing()
REQUIRED: Any = _MISSING
"""Pass as `default` to make a key required."""


class Section:
    """One mapping of the config, read key by key; `finish()` rejects keys nobody read (typos)."""

    def __init__(self, data: Any, path: str):
        if not isinstance(data, Mapping):
            raise ConfigError(path, data, "a mapping of keys to values")
        self.data, self.path, self._read = data, path, set()

    def key(self, name: str) -> str:
        # A namespace path ("gpuscale:") is followed directly by the key, as in the stack file.
        return f"{self.path}{name}" if not self.path or self.path.endswith(":") else f"{self.path}.{name}"

    def _get(self, name: str, default: Any) -> Any:
        self._read.add(name)
        value = self.data.get(name, _MISSING)
        if value is _MISSING or value is None:
            if default is _MISSING:
                raise ConfigError(self.key(name), _MISSING, "a value is required here")
            return default
        return value

    def has(self, name: str) -> bool:
        return self.data.get(name) is not None

    def str(self, name: str, default: Any = _MISSING, *, choices: Sequence[str] | None = None,
            pattern: str | None = None, describe: str | None = None) -> Any:
        value = self._get(name, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, str) or not value:
            raise ConfigError(self.key(name), value, describe or "a non-empty string")
        if choices is not None and value not in choices:
            raise ConfigError(self.key(name), value, "one of " + ", ".join(choices))
        if pattern is not None and not re.fullmatch(pattern, value):
            raise ConfigError(self.key(name), value, describe or f"a string matching {pattern}")
        return value

    def int(self, name: str, default: Any = _MISSING, *, min: int | None = None, max: int | None = None) -> Any:
        return self._number(name, default, int, min, max, "an integer")

    def float(self, name: str, default: Any = _MISSING, *, min: float | None = None, max: float | None = None,
              min_exclusive: bool = False) -> Any:
        return self._number(name, default, float, min, max, "a number", min_exclusive)

    def _number(self, name, default, kind, lo, hi, noun, lo_exclusive=False):
        value = self._get(name, default)
        if value is default and default is not _MISSING:
            return value
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is int:
            ok = ok and float(value).is_integer()
        if ok:
            value = kind(value)
        if not ok or (lo is not None and (value < lo or (lo_exclusive and value == lo))) or \
                (hi is not None and value > hi):
            raise ConfigError(self.key(name), value, _range(noun, lo, hi, lo_exclusive))
        return value

    def bool(self, name: str, default: Any = _MISSING) -> Any:
        value = self._get(name, default)
        if not isinstance(value, bool):
            raise ConfigError(self.key(name), value, "true or false")
        return value

    def str_list(self, name: str, default: Any = _MISSING, *, min_items: int = 0, unique: bool = True,
                 pattern: str | None = None, describe: str | None = None) -> Any:
        value = self._get(name, default)
        if value is default and default is not _MISSING:
            return value
        item_rule = describe or "non-empty strings"
        if isinstance(value, str) or not isinstance(value, Sequence) or len(value) < min_items or \
                not all(isinstance(v, str) and v for v in value):
            raise ConfigError(self.key(name), value, f"a list of at least {min_items} {item_rule}")
        for i, item in enumerate(value):
            if pattern is not None and not re.fullmatch(pattern, item):
                raise ConfigError(f"{self.key(name)}[{i}]", item, item_rule)
        if unique and len(set(value)) != len(value):
            raise ConfigError(self.key(name), value, "a list without repeated entries")
        return tuple(value)

    def str_map(self, name: str, default: Any = _MISSING, *, key_pattern: str, describe: str) -> Any:
        value = self._get(name, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(self.key(name), value, f"a mapping of {describe}")
        for k, v in value.items():
            if not isinstance(k, str) or not re.fullmatch(key_pattern, k) or not isinstance(v, str):
                raise ConfigError(f"{self.key(name)}.{k}", v, describe)
        return dict(value)

    def cidr(self, name: str, default: Any = _MISSING, *, min_prefix: int = 16, max_prefix: int = 24) -> Any:
        value = self._get(name, default)
        rule = f"an IPv4 network in CIDR notation with a prefix from /{min_prefix} to /{max_prefix}, e.g. 10.0.0.0/16"
        try:
            net = ipaddress.IPv4Network(value, strict=True)
        except (ValueError, TypeError):
            raise ConfigError(self.key(name), value, rule) from None
        if not min_prefix <= net.prefixlen <= max_prefix:
            raise ConfigError(self.key(name), value, rule)
        return str(net)

    def section(self, name: str, default: Any = _MISSING) -> Any:
        value = self._get(name, default)
        if value is default and default is not _MISSING:
            return value
        return Section(value, self.key(name))

    def optional_section(self, name: str) -> Section | None:
        return self.section(name, None)

    def sections(self, name: str, default: Any = _MISSING, *, min_items: int = 0) -> Any:
        value = self._get(name, default)
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, (str, Mapping)) or not isinstance(value, Sequence) or len(value) < min_items:
            raise ConfigError(self.key(name), value, f"a list of at least {min_items} mappings")
        return [Section(item, f"{self.key(name)}[{i}]") for i, item in enumerate(value)]

    def fail(self, name: str, value: Any, allowed: str) -> ConfigError:
        """An error for a rule spanning several keys, reported against `name`."""
        return ConfigError(self.key(name), value, allowed)

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self._read)
        if unknown:
            raise ConfigError(self.key(unknown[0]), self.data[unknown[0]],
                              "known keys here are " + ", ".join(sorted(self._read)))


def _range(noun: str, lo, hi, lo_exclusive=False) -> str:
    if lo is not None and hi is not None:
        return f"{noun} in {'(' if lo_exclusive else '['}{lo}, {hi}]"
    if lo is not None:
        return f"{noun} {'>' if lo_exclusive else '>='} {lo}"
    if hi is not None:
        return f"{noun} <= {hi}"
    return noun
