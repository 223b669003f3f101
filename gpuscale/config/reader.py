"""A small typed reader over raw stack config that turns every bad value into a ConfigError naming its key.

Stack config arrives as plain YAML/JSON values (from `pulumi.Config` in `__main__.py`, or from the stack file for
the offline tools). Each `Section` knows its dotted key path, so an error reads
``gpuscale:nodeGroups[0].maxSize: -1 is not allowed; allowed: an integer >= 0`` and the user knows where to look.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A stack config value that is not allowed. `key` is the full dotted path, `allowed` says what would be.

    `where` names the entry in words when its path alone does not (a group's name: `group "l4"`), so a message
    about `gpuscale:nodeGroups[2].maxSize` says which group that is."""

    def __init__(self, key: str, value: Any, allowed: str, where: str | None = None):
        self.key, self.value, self.allowed, self.where = key, value, allowed, where
        shown = "(missing)" if value is _MISSING else repr(value)
        super().__init__(f"{key}{f' ({where})' if where else ''}: {shown} is not allowed; allowed: {allowed}")


class ConfigErrors(ConfigError):
    """Every mistake found in one reading, reported together (a user with three mistakes learns all three in one
    run). `errors` lists them in reading order; `key`, `value` and `allowed` are the first one's, so a caller that
    handles one ConfigError still reads a sensible one."""

    def __init__(self, errors: Sequence[ConfigError], subject: str = "the config"):
        first = errors[0]
        self.errors, self.subject = tuple(errors), subject
        self.key, self.value, self.allowed, self.where = first.key, first.value, first.allowed, first.where
        if len(errors) == 1:
            ValueError.__init__(self, str(first))
        else:
            ValueError.__init__(self, f"{len(errors)} problems in {subject}:\n" +
                                "\n".join(f"  - {e}" for e in errors))


class EntryAbandoned(ConfigError):
    """Raised by a reader that recorded its entry's errors and has no value to return: ends the entry, adds nothing
    (only raised while collecting, where the errors it stands for are recorded already)."""

    def __init__(self, key: str):
        super().__init__(key, None, "(errors recorded above)")


class Collector:
    """The errors of one reading. While it is active (`collecting()`), every Section records a bad value that has a
    default and goes on with the default, records every unknown key, and `guard` records the error that ends a
    section (a required key missing, a rule across keys), so one reading finds every mistake it can."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    def add(self, error: ConfigError) -> None:
        if isinstance(error, EntryAbandoned):
            return
        # One error per key, the first: a refused value read on as its default (None) would otherwise trip the rules
        # that follow it ("storageUri is required" after "storageUri 'gs://..' is not allowed").
        for e in getattr(error, "errors", (error,)):
            if not any(e.key == known.key for known in self.errors):
                self.errors.append(e)

    def guard(self, read: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """`read(*args, **kwargs)`, or None when it stops at an error (recorded): one section's mistake does not
        hide the next section's."""
        try:
            return read(*args, **kwargs)
        except ConfigError as e:
            self.add(e)
            return None

    def raise_if_any(self, subject: str = "the config") -> None:
        if self.errors:
            raise ConfigErrors(self.errors, subject)


_COLLECTOR: contextvars.ContextVar[Collector | None] = contextvars.ContextVar("gpuscale_config_collector",
                                                                              default=None)


@contextlib.contextmanager
def collecting() -> Iterator[Collector]:
    """Collect the errors of every Section read inside the block (see Collector); the caller raises them."""
    collector = Collector()
    token = _COLLECTOR.set(collector)
    try:
        yield collector
    finally:
        _COLLECTOR.reset(token)


def guarded(read: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """`read(*args, **kwargs)` for one entry of a list: while collecting, an error that ends the entry is recorded
    and None returned (the next entry is still read); otherwise it is raised."""
    collector = _COLLECTOR.get()
    if collector is None:
        return read(*args, **kwargs)
    return collector.guard(read, *args, **kwargs)


def _report(error: ConfigError) -> None:
    """Record `error` when collecting, else raise it."""
    collector = _COLLECTOR.get()
    if collector is None:
        raise error
    collector.add(error)


def camel_to_snake(name: str) -> str:
    """A config key as a Python argument name: `minSize` -> `min_size`, `rootVolumeGiB` -> `root_volume_gib`.
    Snake-case names pass unchanged, so a component's own keys and the shared camelCase rules mix."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name.replace("GiB", "Gib")).lower()


NUMBER_TEXT = re.compile(r"\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*")
"""A number written as text ("5", "0.5", "1e3"): what `pulumi config set` stores for a top-level value, or for a
`--path` value it does not take for a number (a leading zero)."""


def _is_number_text(value: Any) -> bool:
    return isinstance(value, str) and NUMBER_TEXT.fullmatch(value) is not None


def is_deferred(value: Any) -> bool:
    """A value known only when the program runs against the cloud (a pulumi Output, an awaitable): nothing here can
    check it, and the reader passes it on."""
    return value is not None and not isinstance(value, (str, bytes, int, float, bool, Mapping, Sequence))


class _Missing:
    def __repr__(self) -> str:
        return "(missing)"


_MISSING: Any = _Missing()
REQUIRED: Any = _MISSING
"""Pass as `default` to make a key required."""
OFFLINE_SECRET = "[secret]"
"""What the offline plan reads for a value encrypted in the stack file (`{secure: ...}`), which it cannot decrypt:
shown as secret, its rules checked by `pulumi up`, which decrypts it."""


class Section:
    """One mapping of the config, read key by key; `finish()` rejects keys nobody read (typos).

    Rules are written once against a Section with the stack file's camelCase key names. A component's Args are
    read by the same rules through a Section whose `style` is `camel_to_snake` (its keys are Python names), so the
    stack config and the components share every rule (see `gpuscale.config.args`). `where` names the entry in
    words (a group's name) in every error under it; `number_strings`: accept "5" for 5, as `pulumi config set
    --path` stores numbers (stack config only: a component's Args are typed)."""

    def __init__(self, data: Any, path: str, *, style: Callable[[str], str] | None = None, where: str | None = None,
                 number_strings: bool | None = None):
        if not isinstance(data, Mapping):
            raise ConfigError(path, data, "a mapping of keys to values", where)
        self.data, self.path, self._read = data, path, set()
        self.style = style or (lambda name: name)
        self.where = where
        self.number_strings = style is None if number_strings is None else number_strings

    def _child(self, data: Any, path: str) -> Section:
        return Section(data, path, style=self.style, where=self.where, number_strings=self.number_strings)

    def name(self, name: str) -> str:
        """A key's name as this section spells it (`maxSize` in the stack file, `max_size` in a component's Args),
        for messages that mention another key."""
        return self.style(name)

    def key(self, name: str) -> str:
        name = self.style(name)
        # A namespace path ("gpuscale:") is followed directly by the key, as in the stack file.
        return f"{self.path}{name}" if not self.path or self.path.endswith(":") else f"{self.path}.{name}"

    def _get(self, name: str, default: Any) -> Any:
        self._read.add(self.style(name))
        value = self.data.get(self.style(name), _MISSING)
        if value is _MISSING or value is None:
            if default is _MISSING:
                raise self.error(name, _MISSING, "a value is required here")
            return default
        return value

    def error(self, name: str, value: Any, allowed: str, suffix: str = "") -> ConfigError:
        """An error about the key `name` of this section (`suffix`: an item of it, `[2]` or `.label-name`)."""
        return ConfigError(self.key(name) + suffix, value, allowed, self.where)

    def _bad(self, name: str, value: Any, default: Any, allowed: str, suffix: str = "") -> Any:
        """A bad value: with a default and while collecting, recorded and replaced by the default (the reading goes
        on to find the next mistake); otherwise raised."""
        error = self.error(name, value, allowed, suffix)
        if default is _MISSING or _COLLECTOR.get() is None:
            raise error
        _report(error)
        return default

    def has(self, name: str) -> bool:
        return self.data.get(self.style(name)) is not None

    def raw(self, name: str) -> Any:
        """The key's value as written, unchecked (for messages about it)."""
        return self.data.get(self.style(name))

    def input(self, name: str, default: Any = _MISSING, read: Callable[[str, Any], Any] | None = None) -> Any:
        """A component argument that may be a pulumi Output: required unless `default` is given; a deferred value
        (known only at deploy time) passes as it is, a plain one through `read(name, default)` when given."""
        value = self._get(name, default)
        if value is default or is_deferred(value) or read is None:
            return value
        return read(name, default)

    def str(self, name: str, default: Any = _MISSING, *, choices: Sequence[str] | None = None,
            pattern: str | None = None, describe: str | None = None) -> Any:
        value = self._get(name, default)
        if value is default and default is not _MISSING:
            return value
        if value == OFFLINE_SECRET:
            return value  # encrypted in the stack file: `pulumi up` decrypts and checks it, the offline plan cannot
        if not isinstance(value, str) or not value:
            return self._bad(name, value, default, describe or "a non-empty string")
        if choices is not None and value not in choices:
            return self._bad(name, value, default, "one of " + ", ".join(choices))
        if pattern is not None and not re.fullmatch(pattern, value):
            return self._bad(name, value, default, describe or f"a string matching {pattern}")
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
        if self.number_strings and _is_number_text(value):
            value = float(value)  # "5" as `pulumi config set --path` stores it; "five" stays refused below
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is int:
            ok = ok and float(value).is_integer()
        if ok:
            value = kind(value)
        if not ok or (lo is not None and (value < lo or (lo_exclusive and value == lo))) or \
                (hi is not None and value > hi):
            return self._bad(name, value, default, _range(noun, lo, hi, lo_exclusive))
        return value

    def bool(self, name: str, default: Any = _MISSING) -> Any:
        value = self._get(name, default)
        if not isinstance(value, bool):
            return self._bad(name, value, default, "true or false")
        return value

    def str_list(self, name: str, default: Any = _MISSING, *, min_items: int = 0, unique: bool = True,
                 pattern: str | None = None, describe: str | None = None) -> Any:
        value = self._get(name, default)
        if value is default and default is not _MISSING:
            return value
        item_rule = describe or "non-empty strings"
        if isinstance(value, str) or not isinstance(value, Sequence) or len(value) < min_items or \
                not all(isinstance(v, str) and v for v in value):
            return self._bad(name, value, default, f"a list of at least {min_items} {item_rule}")
        for i, item in enumerate(value):
            if pattern is not None and not re.fullmatch(pattern, item):
                return self._bad(name, item, default, item_rule, f"[{i}]")
        if unique and len(set(value)) != len(value):
            return self._bad(name, value, default, "a list without repeated entries")
        return tuple(value)

    def str_map(self, name: str, default: Any = _MISSING, *, key_pattern: str, describe: str) -> Any:
        value = self._get(name, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, Mapping):
            return self._bad(name, value, default, f"a mapping of {describe}")
        for k, v in value.items():
            if not isinstance(k, str) or not re.fullmatch(key_pattern, k) or not isinstance(v, str):
                return self._bad(name, v, default, describe, f".{k}")
        return dict(value)

    def cidr(self, name: str, default: Any = _MISSING, *, min_prefix: int = 16, max_prefix: int = 24) -> Any:
        value = self._get(name, default)
        rule = f"an IPv4 network in CIDR notation with a prefix from /{min_prefix} to /{max_prefix}, e.g. 10.0.0.0/16"
        try:
            net = ipaddress.IPv4Network(value, strict=True)
        except (ValueError, TypeError):
            return self._bad(name, value, default, rule)
        if not min_prefix <= net.prefixlen <= max_prefix:
            return self._bad(name, value, default, rule)
        return str(net)

    def section(self, name: str, default: Any = _MISSING) -> Any:
        value = self._get(name, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, Mapping):
            raise self.error(name, value, "a mapping of keys to values")
        return self._child(value, self.key(name))

    def optional_section(self, name: str) -> Section | None:
        return self.section(name, None)

    def sections(self, name: str, default: Any = _MISSING, *, min_items: int = 0) -> Any:
        value = self._get(name, default)
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, (str, Mapping)) or not isinstance(value, Sequence) or len(value) < min_items:
            raise self.error(name, value, f"a list of at least {min_items} mappings")
        entries = []
        for i, item in enumerate(value):
            entry = self._child(item, f"{self.key(name)}[{i}]")
            # An entry with a name (a group) is named in its errors: "gpuscale:nodeGroups[2].maxSize (group "l4")".
            if isinstance(item.get("name"), str) and item["name"]:
                # The list's last word, singular: nodeGroups -> group, services -> service.
                noun = re.split(r"(?=[A-Z])|_", self.style(name))[-1].lower().removesuffix("s")
                entry.where = f'{noun} "{item["name"]}"' if self.where is None \
                    else f'{self.where}, {noun} "{item["name"]}"'
            entries.append(entry)
        return entries

    def require(self, *names: str) -> None:
        """Keys a caller needs although the shared rule that reads them has a default (a component's required
        Args): each missing one is reported, then the entry ends."""
        missing = [n for n in names if not self.has(n)]
        for n in missing:
            _report(self.error(n, _MISSING, "a value is required here"))
        if missing:
            raise EntryAbandoned(self.path)

    def refuse(self, refusal: Any, prefix: str = "") -> None:
        """Report what a rule shaped as `components.arg_rules.Refusal` refused (None: nothing), in a component's
        Args section (its field is an Args path, under `prefix`)."""
        if refusal is not None:
            self.report(prefix + refusal.field, refusal.value, refusal.allowed)

    def skip(self, *names: str) -> None:
        """Keys this reading leaves unread on purpose (their section depends on a value that was refused): not
        reported as unknown."""
        self._read.update(self.style(n) for n in names)

    def abandon(self) -> EntryAbandoned:
        """End this entry after its errors were recorded: finish (unknown keys) and return the exception to raise."""
        self.finish()
        return EntryAbandoned(self.path)

    def fail(self, name: str, value: Any, allowed: str) -> ConfigError:
        """An error for a rule spanning several keys, reported against `name`; raise it to end the section."""
        return self.error(name, value, allowed)

    def report(self, name: str, value: Any, allowed: str) -> None:
        """An error for a rule spanning several keys after which reading can go on: recorded while collecting,
        raised otherwise."""
        _report(self.error(name, value, allowed))

    def _known_keys(self, unknown: str) -> str:
        near = difflib.get_close_matches(unknown, self._read, n=1, cutoff=0.75)
        known = "known keys here are " + ", ".join(sorted(self._read))
        return f"{near[0]} (a known key here); {known}" if near else known

    def finish(self) -> None:
        """Every key nobody read is a typo (or a key of another place): each one is an error."""
        # A key set to null is not set (as `_get` reads it), in the stack file and in Args alike.
        unknown = sorted((k for k in set(self.data) - self._read if self.data[k] is not None), key=str)
        errors = [ConfigError(self.key(str(k)), self.data[k], self._known_keys(str(k)), self.where) for k in unknown]
        if len(errors) == 1:
            _report(errors[0])
        elif errors:
            _report(ConfigErrors(errors, self.path or "the arguments"))


def _range(noun: str, lo, hi, lo_exclusive=False) -> str:
    if lo is not None and hi is not None:
        return f"{noun} in {'(' if lo_exclusive else '['}{lo}, {hi}]"
    if lo is not None:
        return f"{noun} {'>' if lo_exclusive else '>='} {lo}"
    if hi is not None:
        return f"{noun} <= {hi}"
    return noun
