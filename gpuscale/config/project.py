"""A Pulumi project as the offline tools see it: its `Pulumi.yaml` (name, runtime, main, stackConfigDir) and the
stack files in its config directory.

Any Python Pulumi program can be planned, not only this repository's: the project's name is its default config
namespace (what `pulumi.Config()` reads), `main` is where its program is, `stackConfigDir` where its
`Pulumi.<stack>.yaml` files are, and `runtime.options.virtualenv` the environment its packages are installed in.
The attributes are those of Pulumi's project file reference (https://www.pulumi.com/docs/iac/concepts/projects/
project-file/). A missing or invalid Pulumi.yaml, or a missing stack file, is an error naming the file and what
is expected there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .reader import ConfigError

PROJECT_FILES = ("Pulumi.yaml", "Pulumi.yml")
"""The project file's names: a capital P, either extension (Pulumi's project file reference)."""
PROJECT_NAME_PATTERN = r"[A-Za-z0-9_.-]+"
"""Pulumi's rule for a project name: alphanumeric characters, hyphens, underscores and periods."""
STACK_NAME_PATTERN = r"[A-Za-z0-9_.-]+"


MISSING = object()
"""The value of an attribute, or a file, that is not there."""


class ProjectError(ConfigError):
    """A project that cannot be planned as it stands: the file (and attribute), its value, and what is expected."""

    def __init__(self, where: str, value: Any, expected: str):
        self.key, self.value, self.allowed, self.where = where, value, expected, None
        found = "missing" if value is MISSING else f"{value!r} is not allowed"
        ValueError.__init__(self, f"{where}: {found}; expected: {expected}")


class YamlSyntaxError(ConfigError):
    """A Pulumi file (project or stack) that is not valid YAML: the file, the line and column, and what the parser
    expected, in words."""

    def __init__(self, path: Path, exc: yaml.YAMLError):
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        context_mark = getattr(exc, "context_mark", None)
        since = f" ({context} at line {context_mark.line + 1})" if context and context_mark is not None else ""
        line = ""
        if mark is not None:
            lines = path.read_text().splitlines()
            line = lines[mark.line] if mark.line < len(lines) else ""
        self.key, self.value, self.where = where, line, None
        self.allowed = "valid YAML"
        ValueError.__init__(self, f"{where}: the file is not valid YAML: {problem}{since}"
                                  + (f"\n    {line}\n    {' ' * mark.column}^" if line else ""))


@dataclass(frozen=True)
class PulumiProject:
    directory: Path
    """The directory holding Pulumi.yaml."""
    name: str
    """The project's name: the config namespace `pulumi.Config()` reads by default."""
    program: Path
    """What runs: `main`, a directory holding `__main__.py` (default: the project directory) or a `.py` file."""
    stack_config_dir: Path
    """Where `Pulumi.<stack>.yaml` lives: `stackConfigDir` (default: the project directory)."""
    virtualenv: Path | None = None
    """`runtime.options.virtualenv`: the environment the program's packages are installed in, if the project names
    one."""
    project_config: tuple[str, ...] = ()
    """Keys of Pulumi.yaml's project-level `config:` block, which the offline tools do not read (see `unread`)."""

    @property
    def unread(self) -> str | None:
        """What the offline tools leave out of this project, in words, or None."""
        if not self.project_config:
            return None
        keys = ", ".join(self.project_config)
        return (f"{self.directory / 'Pulumi.yaml'}: config: the project-level config ({keys}) is not read offline; "
                "a program that needs those values fails or plans differently here than under `pulumi up`: keep "
                "them in the stack file")

    @property
    def program_dir(self) -> Path:
        """The program's working directory: `main` when it is a directory, else the directory holding it."""
        return self.program if self.program.is_dir() else self.program.parent

    @property
    def entry_point(self) -> Path:
        """The file Python runs: `__main__.py` of a program directory, or the program file itself."""
        return self.program / "__main__.py" if self.program.is_dir() else self.program

    def stacks(self) -> list[str]:
        """The stacks that have a file in the config directory, by name."""
        return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in self.stack_config_dir.glob("Pulumi.*.yaml")
                      if p.name not in PROJECT_FILES)

    def stack_file(self, stack: str) -> Path:
        """`Pulumi.<stack>.yaml` in the config directory; an error naming the directory and the stacks there when
        there is none."""
        if not re.fullmatch(STACK_NAME_PATTERN, stack):
            raise ConfigError("--stack", stack, "a stack name of letters, digits, '_', '.' or '-'")
        path = self.stack_config_dir / f"Pulumi.{stack}.yaml"
        if not path.is_file():
            where = _shown(self.stack_config_dir, self.directory)
            raise ConfigError("--stack", stack, f"a stack with a file Pulumi.<stack>.yaml in {where} (the project's "
                              f"{'stackConfigDir' if self.stack_config_dir != self.directory else 'directory'}): "
                              + (", ".join(self.stacks()) or "none found"))
        return path


def find_project_dir(start: Path) -> Path:
    """The nearest directory at or above `start` holding a Pulumi.yaml, as Pulumi finds the current project."""
    for d in (start, *start.parents):
        if any((d / name).is_file() for name in PROJECT_FILES):
            return d
    raise ProjectError(f"{start / PROJECT_FILES[0]}", MISSING, f"a Pulumi project: a {PROJECT_FILES[0]} in {start} or "
                       "a directory above it; run from the project or pass --project-dir")


def read_project(directory: Path) -> PulumiProject:
    """The project in `directory`, from its Pulumi.yaml; every attribute the offline tools use is checked."""
    directory = directory.resolve()
    path = next((directory / name for name in PROJECT_FILES if (directory / name).is_file()), None)
    if path is None:
        raise ProjectError(f"{directory / PROJECT_FILES[0]}", MISSING, "a Pulumi project file (Pulumi.yaml) with at "
                           "least `name` and `runtime: python`; --project-dir names the directory holding it")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(path, exc) from None
    if not isinstance(doc, Mapping):
        raise ProjectError(str(path), doc, "a mapping of project attributes (name, runtime, main, stackConfigDir)")
    name = doc.get("name", MISSING)
    if not isinstance(name, str) or not re.fullmatch(PROJECT_NAME_PATTERN, name):
        raise ProjectError(f"{path}: name", name, "the project's name: alphanumeric characters, hyphens, "
                           "underscores and periods")
    runtime, options = _runtime(path, doc.get("runtime"))
    if runtime != "python":
        raise ProjectError(f"{path}: runtime", runtime, "python: the offline plan runs Python programs (under "
                           "Pulumi's Python mock engine)")
    program = _inside(path, directory, "main", doc.get("main"))
    if not program.exists():
        raise ProjectError(f"{path}: main", doc.get("main"), f"a path relative to {path.name} that exists: a "
                           "directory holding __main__.py, or a .py file")
    if program.is_dir() and not (program / "__main__.py").is_file():
        raise ProjectError(f"{path}: main", doc.get("main", "(default: the project directory)"),
                           f"a directory holding the program's __main__.py ({program / '__main__.py'} does not exist)")
    if program.is_file() and program.suffix != ".py":
        raise ProjectError(f"{path}: main", doc.get("main"), "a directory holding __main__.py, or a .py file")
    config_dir = _inside(path, directory, "stackConfigDir", doc.get("stackConfigDir"))
    if not config_dir.is_dir():
        raise ProjectError(f"{path}: stackConfigDir", doc.get("stackConfigDir"),
                           f"a directory relative to {path.name} that exists, holding the Pulumi.<stack>.yaml files")
    venv = options.get("virtualenv")
    if venv is not None and not isinstance(venv, str):
        raise ProjectError(f"{path}: runtime.options.virtualenv", venv, "a path to a virtual environment")
    project_config = doc.get("config") or {}
    keys = tuple(str(k) for k in project_config) if isinstance(project_config, Mapping) else ("config",)
    return PulumiProject(directory, name, program, config_dir, directory / venv if venv else None, keys)


def _runtime(path: Path, runtime: Any) -> tuple[Any, Mapping[str, Any]]:
    """`runtime: python`, or `runtime: {name: python, options: {...}}`."""
    if isinstance(runtime, Mapping):
        options = runtime.get("options") or {}
        if not isinstance(options, Mapping):
            raise ProjectError(f"{path}: runtime.options", options, "a mapping of runtime options, e.g. virtualenv")
        return runtime.get("name"), options
    if runtime is None:
        raise ProjectError(f"{path}: runtime", MISSING, "the language runtime: python, or {name: python, options: ...}")
    return runtime, {}


def _inside(path: Path, directory: Path, attribute: str, value: Any) -> Path:
    """A path attribute of Pulumi.yaml, relative to the project directory (default: the directory itself)."""
    if value is None:
        return directory
    if not isinstance(value, str) or not value:
        raise ProjectError(f"{path}: {attribute}", value, f"a path relative to {path.name}")
    return (directory / value).resolve() if not Path(value).is_absolute() else Path(value)


def _shown(path: Path, directory: Path) -> str:
    try:
        return f"{path.relative_to(directory.resolve()).as_posix() or '.'}/"
    except ValueError:
        return str(path)
