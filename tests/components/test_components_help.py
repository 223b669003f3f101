"""Discoverable API: help() on each component shows what it builds, every Args field with its type, whether it is
required and its default, the nested Args, and the outputs; typed optional keys are really optional, on this Python
and on the other supported ones (3.10 to 3.13) where an interpreter is found."""

from __future__ import annotations

import ast
import glob
import inspect
import json
import os
import pydoc
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typing_extensions
from typing_extensions import is_typeddict

from gpuscale.components import _docs
from gpuscale.components.gpu_node_group import GpuNodeGroupArgs
from gpuscale.provider import COMPONENT_MODULES, components

ROOT = Path(__file__).resolve().parents[2]


def args_of(component: type) -> type:
    return inspect.get_annotations(component.__init__)["args"]


def all_args_types() -> list[type]:
    return list(dict.fromkeys(t for c in components() for t in _docs.args_types(args_of(c))))


@pytest.mark.parametrize("component", components(), ids=lambda c: c.__name__)
def test_help_shows_what_it_builds_its_args_and_outputs(component):
    text = pydoc.render_doc(component, renderer=pydoc.plaintext)
    assert inspect.cleandoc(component.__dict__["__doc__"]).splitlines()[0] in text, "what it builds"
    assert ":param str t:" not in text, "ComponentResource's own parameters are not the component's"
    for typ in _docs.args_types(args_of(component)):
        assert f"{typ.__name__}" in text
        for f in _docs.fields(typ):
            line = f"{f.name}: {f.annotation} ({'required' if f.required else 'optional'})"
            assert line in text, line
            assert f.doc and _docs_in(f.doc, text), f"{typ.__name__}.{f.name} has no docstring"
            if not f.required:
                assert re.search(r"\bdefault\b", f.doc, re.I), \
                    f"{typ.__name__}.{f.name} is optional: its docstring must say its default"
    assert "Outputs (attributes of the component):" in text
    for o in _docs.outputs(component):
        assert f"{o.name}: {o.annotation}" in text and o.doc and _docs_in(o.doc, text), o.name


def _docs_in(doc: str, text: str) -> bool:
    # pydoc indents and prefixes lines (" |  "); compare the words.
    words = " ".join(doc.split())
    flat = " ".join(line.lstrip(" |").strip() for line in text.splitlines())
    return words in " ".join(flat.split())


def test_required_keys_are_only_the_required_ones():
    assert GpuNodeGroupArgs.__required_keys__ == {"cluster_name", "node_role_arn", "subnet_ids", "instance_types",
                                                  "gpu_count", "gpu_name", "min_size", "max_size"}
    assert "ami_type" in GpuNodeGroupArgs.__optional_keys__


def declared_required() -> dict[str, list[str]]:
    """Per TypedDict Args type: the keys its source does not wrap in NotRequired[...], read from the source alone."""
    return {t.__name__: sorted(name for name, annotation in _docs._annotations(t).items()
                               if not annotation.startswith("NotRequired["))
            for t in all_args_types() if is_typeddict(t)}


def test_every_args_typeddict_requires_exactly_what_its_source_declares():
    runtime = {t.__name__: sorted(t.__required_keys__) for t in all_args_types() if is_typeddict(t)}
    assert runtime == declared_required()


# --- the same on the other supported interpreters ----------------------------------------------------------------

STAND_INS = '''
from typing import Any


class _AnyOf:
    """Stands in for the Pulumi SDKs (pulumi.Input[...], aws.s3.Bucket): their wheels need a compiled grpcio built for
    that interpreter. Whether a key is required is decided by TypedDict and NotRequired alone."""

    def __class_getitem__(cls, item):
        return Any

    def __getattr__(self, name):
        return _AnyOf


pulumi = aws = k8s = _AnyOf()
'''

RUNNER = '''
import __future__, json, sys
namespace = {}
exec(STAND_INS, namespace)
for source, postponed in json.loads(sys.stdin.read()):
    flags = __future__.annotations.compiler_flag if postponed else 0
    exec(compile(source, "<args>", "exec", flags=flags, dont_inherit=True), namespace)
print(json.dumps({name: sorted(cls.__required_keys__) for name, cls in namespace.items()
                  if isinstance(cls, type) and hasattr(cls, "__required_keys__")}))
'''

TYPING_MODULES = {"typing", "typing_extensions", "collections.abc", "dataclasses", "__future__"}


def args_sources() -> list[tuple[str, bool]]:
    """Per module, in an order where each type is defined before its users: its imports from typing,
    typing_extensions, collections.abc and dataclasses and its Args classes (TypedDicts and the dataclasses they use),
    as written, and whether the module postpones annotations (`from __future__ import annotations`)."""
    wanted = {t.__name__ for t in all_args_types()}
    chunks = []
    # Modules holding only nested Args types (AgentSettings, StartupArgs) first: the components' Args use them.
    helpers = sorted({t.__module__.rsplit(".", 1)[-1] for t in all_args_types()} - set(COMPONENT_MODULES))
    for name in [*helpers, *COMPONENT_MODULES]:
        lines = (ROOT / "components" / f"{name}.py").read_text().splitlines()
        tree = _docs.parse("\n".join(lines))
        imports = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module in TYPING_MODULES]
        postponed = any(n.module == "__future__" for n in imports)
        parts = [ast.unparse(n) for n in imports if n.module != "__future__"]
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name in wanted:
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])  # with @dataclass(...)
                parts.append("\n".join(lines[first - 1:node.end_lineno]))
                wanted.discard(node.name)
        chunks.append(("\n\n".join(parts), postponed))
    assert not wanted, f"Args types not found in their modules: {wanted}"
    return chunks


def other_interpreters() -> list[str]:
    found = {}
    for minor in (10, 11, 12, 13):
        if (3, minor) == sys.version_info[:2]:
            continue
        candidates = [shutil.which(f"python3.{minor}") or ""]
        if shutil.which("pyenv"):  # pyenv's shims need a version chosen; its installs are plain interpreters
            root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
            candidates += sorted(glob.glob(f"{root}/versions/3.{minor}.*/bin/python3.{minor}"))
        for exe in candidates:
            if exe and subprocess.run([exe, "-c", "pass"], capture_output=True).returncode == 0:
                found[minor] = exe
                break
    return list(found.values())


def test_required_keys_agree_on_the_other_supported_pythons(tmp_path):
    pythons = other_interpreters()
    if not pythons:
        pytest.skip("no other Python 3.10-3.13 interpreter on this machine")
    # typing_extensions is pure Python; the interpreters get this environment's copy and nothing else of it.
    (tmp_path / "typing_extensions.py").write_text(Path(typing_extensions.__file__).read_text())
    program = f"import sys; sys.path.insert(0, {str(tmp_path)!r})\nSTAND_INS = {STAND_INS!r}\n" + RUNNER
    expected = declared_required()
    for exe in pythons:
        proc = subprocess.run([exe, "-I", "-c", program], input=json.dumps(args_sources()), capture_output=True,
                              text=True, timeout=60, env={"PATH": os.environ.get("PATH", "")})
        assert proc.returncode == 0, f"{exe}: {proc.stderr[-2000:]}"
        assert json.loads(proc.stdout) == expected, exe
