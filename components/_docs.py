"""What help() shows for a component: what it builds (its class docstring), each Args field with its type, whether it
is required and its meaning and default, the nested Args types, and the outputs.

One home for all of it: the docstring written under each field and each output annotation, which is also what
Pulumi's component provider host publishes as the schema's descriptions (gpuscale/provider.py). Python keeps no
such docstrings at runtime, so they are read from the class's source, as the host's analyzer does; only the class's
own lines are parsed (a whole module costs ~5 ms, and a plan imports most components).
"""

import ast
import dataclasses
import functools
import gc
import inspect
import linecache
import re
import sys
import typing
from collections.abc import Iterator
from typing import Any, TypeVar

from typing_extensions import is_typeddict

import pulumi

T = TypeVar("T", bound=type)

_BASES = (object, pulumi.Resource, pulumi.CustomResource, pulumi.ComponentResource)
_BODY_ENDS = ("    def ", "    @", "    async ")
"""Where a class body's annotated names end: its first method (fields and outputs come first)."""


@dataclasses.dataclass(frozen=True)
class Field:
    name: str
    annotation: str
    """As written in the source, without a NotRequired[...] wrapper."""
    required: bool
    doc: str


def documented(component: T) -> T:
    """Class decorator: give the component's __init__ the docstring help() shows under the class docstring (without
    one, help() shows ComponentResource's own parameters)."""
    component.__init__.__doc__ = describe(component)
    return component


def describe(component: type) -> str:
    args_type = inspect.get_annotations(component.__init__, eval_str=True)["args"]
    lines = [f"Declare a {component.__name__}: `name` names it and prefixes its children's names; `args` is a "
             f"{args_type.__name__} (a dict); `opts` are the usual resource options (parent, provider, ...).", ""]
    for i, typ in enumerate(args_types(args_type)):
        lines.append(f"{typ.__name__}:" if i else f"Args ({typ.__name__}):")
        lines += _field_lines(fields(typ))
        lines.append("")
    lines.append("Outputs (attributes of the component):")
    lines += _field_lines(outputs(component), show_required=False)
    return "\n".join(lines)


def _field_lines(entries: list[Field], show_required: bool = True) -> list[str]:
    out = []
    for f in entries:
        flag = (" (required)" if f.required else " (optional)") if show_required else ""
        out.append(f"    {f.name}: {f.annotation}{flag}")
        out += [f"        {line}" if line else "" for line in (f.doc or "(undocumented)").splitlines()]
    return out


def fields(typ: type) -> list[Field]:
    """The fields of an Args TypedDict (or a dataclass used as one), in declaration order."""
    docs = _class_docs(typ)
    if is_typeddict(typ):
        required = typ.__required_keys__
    else:  # a dataclass: a field without a default is required
        required = {f.name for f in dataclasses.fields(typ)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    return [Field(name, _shown(annotation), name in required, docs.get(name, ""))
            for name, annotation in _annotations(typ).items()]


def outputs(component: type) -> list[Field]:
    """The component's output attributes: its annotated class attributes, its bases' included (the same rule the
    component provider host applies)."""
    found: dict[str, Field] = {}
    for cls in reversed(component.__mro__):
        if cls in _BASES:
            continue
        docs = _class_docs(cls)
        for name, annotation in _annotations(cls).items():
            if not name.startswith("_"):
                found[name] = Field(name, annotation, True, docs.get(name, ""))
    return list(found.values())


def args_types(args_type: type) -> list[type]:
    """The Args type and every Args type nested in it (TypedDicts, dataclasses), each once, in order of use."""
    seen: list[type] = []

    def visit(typ: type) -> None:
        if typ in seen:
            return
        seen.append(typ)
        for annotation in inspect.get_annotations(typ, eval_str=True).values():
            for nested in _nested_types(annotation):
                visit(nested)

    visit(args_type)
    return seen


def _nested_types(annotation: Any) -> Iterator[type]:
    # A dataclass of the components' own (AgentSettings) is part of their Args; the stack config's (StackConfig,
    # GpuPlatform's one argument) has its own docs, under gpuscale.config.
    if inspect.isclass(annotation) and (is_typeddict(annotation) or dataclasses.is_dataclass(annotation)
                                        and annotation.__module__.startswith(f"{__package__}.")):
        yield annotation
        return
    for arg in typing.get_args(annotation):
        yield from _nested_types(arg)


def _shown(annotation: str) -> str:
    match = re.fullmatch(r"NotRequired\[(.*)\]", annotation, re.S)
    return match.group(1) if match else annotation


def _annotations(cls: type) -> dict[str, str]:
    return {name: source for name, (source, _) in _class_source(cls).items()}


def _class_docs(cls: type) -> dict[str, str]:
    return {name: doc for name, (_, doc) in _class_source(cls).items()}


@functools.cache
def _class_source(cls: type) -> dict[str, tuple[str, str]]:
    """name -> (annotation as written, docstring under it) for each annotated name of the class body."""
    node = _class_node(cls)
    found: dict[str, tuple[str, str]] = {}
    for i, statement in enumerate(node.body):
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            following = node.body[i + 1] if i + 1 < len(node.body) else None
            doc = following.value.value if isinstance(following, ast.Expr) and \
                isinstance(following.value, ast.Constant) and isinstance(following.value.value, str) else ""
            found[statement.target.id] = (ast.unparse(statement.annotation), inspect.cleandoc(doc))
    return found


def _class_node(cls: type) -> ast.ClassDef:
    """The class statement's annotated names, parsed from its own lines: from `class Name` to its first method (the
    fields and outputs come first) or the next line at column 0."""
    path = sys.modules[cls.__module__].__file__
    lines = linecache.getlines(path)
    heads = (f"class {cls.__name__}(", f"class {cls.__name__}:")
    start = next(i for i, line in enumerate(lines) if line.startswith(heads))
    end = next((j for j in range(start + 1, len(lines))
                if lines[j][:1] not in ("", " ", "\t", "\n", "#", ")") or lines[j].startswith(_BODY_ENDS)),
               len(lines))
    try:
        tree = parse("".join(lines[start:end]))
    except SyntaxError:  # a class whose lines the column-0 rule cuts short: parse the module
        tree = parse("".join(lines))
    return next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls.__name__)


def parse(source: str) -> ast.Module:
    """ast.parse with no garbage collection meanwhile: on CPython 3.11.7 a collection during parsing that runs Python
    finalizers (an asyncio future logging "exception was never retrieved", after a Pulumi program ran) fails the
    parse with "SystemError: AST constructor recursion depth mismatch"."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(source)
    finally:
        if enabled:
            gc.enable()
