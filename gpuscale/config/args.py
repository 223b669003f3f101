"""Component Args checked by the stack config's own rules, before the component declares anything.

A component's Args are a TypedDict with Python names (`min_size`); the stack config has camelCase keys (`minSize`).
Each rule is written once, as a function over a `Section` in the config modules (`read_group_sizes`,
`read_node_group_settings`, ...), and a component reads its Args through the same functions: `validate_args` wraps
the Args in a Section whose key style is `camel_to_snake`, so `s.int("minSize", ...)` reads `min_size` and an error
names `min_size`. Every mistake is reported together (one ConfigErrors, a ValueError), each with the argument, its
value and what is allowed, and an argument the TypedDict does not declare is refused (with the nearest real one).

Adopting it in a new component is two lines:

    def check_args(s: Section) -> None:             # the rules of this component's Args
        s.input("cluster_name")                      # an Input: plain or an Output, required
        read_group_sizes(s)                          # a rule the stack config applies too

    class MyComponent(pulumi.ComponentResource):
        def __init__(self, name, args: MyComponentArgs, opts=None):
            validate_args("MyComponent", name, args, MyComponentArgs, check_args)
            super().__init__("gpuscale:index:MyComponent", name, None, opts)
"""

from __future__ import annotations

import difflib
import inspect
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from typing_extensions import is_typeddict

from .reader import ConfigError, ConfigErrors, Section, camel_to_snake, collecting


def args_style(aliases: Mapping[str, str] | None = None) -> Callable[[str], str]:
    """Config key names as Args names: camel_to_snake, except where an Args name says more (`aliases`, config name
    to Args name, e.g. `maxPreparedCapacity` -> `max_group_prepared_capacity`, AWS's own name)."""
    table = dict(aliases or {})
    return lambda name: table.get(name) or camel_to_snake(name)


def declared_keys(args_type: type) -> tuple[str, ...]:
    """The keys a TypedDict declares (its own and inherited)."""
    keys: dict[str, None] = {}
    for klass in reversed(args_type.__mro__):
        keys.update(dict.fromkeys(getattr(klass, "__annotations__", {})))
    return tuple(keys)


def validate_args(component: str, name: str, args: Any, args_type: type,
                  check: Callable[[Section], Any] | None = None, aliases: Mapping[str, str] | None = None) -> None:
    """Refuse `args` of the component `component` named `name` unless every rule of `check` holds and every key is
    one `args_type` declares; raise ConfigErrors (a ValueError) listing every mistake."""
    where = f'{component} "{name}"'
    if not isinstance(args, Mapping):
        raise ConfigErrors([ConfigError("args", args, f"a mapping of {args_type.__name__}", where)])
    declared = declared_keys(args_type)
    with collecting() as errors:
        for key in sorted(set(args) - set(declared), key=str):
            near = difflib.get_close_matches(str(key), declared, n=1, cutoff=0.6)
            errors.add(ConfigError(str(key), args[key], (f"{near[0]} (an argument of {args_type.__name__}); " if near
                                                         else "") + f"the arguments of {args_type.__name__}: "
                                   + ", ".join(sorted(declared)), where))
        if check is not None:
            section = Section(args, "", style=args_style(aliases), where=where)
            section.skip(*(str(k) for k in args if k not in declared))  # reported above, once
            errors.guard(check, section)
    errors.raise_if_any(f"the arguments of {where}")


def admits_none(annotation: Any) -> bool:
    """Whether an Args field's type takes None (``X | None``, ``Optional[X]``)."""
    return type(None) in typing.get_args(annotation)


def with_absent_nones(args: Any, args_type: type) -> Any:
    """`args` with every required key whose type takes None set to None where it is absent, in nested Args too.

    Pulumi's component host publishes such a key as optional (a package schema has no "required but may be
    null"), so a program in another language may leave it out, meaning None, as a Python program writes it. A copy:
    the caller's dicts are not changed. Anything that is not a mapping of a TypedDict is returned as it is, for
    validate_args to refuse."""
    if not isinstance(args, Mapping) or not is_typeddict(args_type):
        return args
    hints = inspect.get_annotations(args_type, eval_str=True)  # not get_type_hints: pulumi.Input's forward refs
    out = dict(args)
    for key, annotation in hints.items():
        if key not in out:
            if key in args_type.__required_keys__ and admits_none(annotation):
                out[key] = None
            continue
        nested = next(_typed_dicts(annotation), None)
        value = out[key]
        if nested is None:
            continue
        if isinstance(value, Mapping):
            out[key] = with_absent_nones(value, nested)
        elif isinstance(value, (list, tuple)):
            out[key] = [with_absent_nones(v, nested) for v in value]
    return out


def _typed_dicts(annotation: Any) -> Iterator[type]:
    if is_typeddict(annotation):
        yield annotation
        return
    for arg in typing.get_args(annotation):
        yield from _typed_dicts(arg)
