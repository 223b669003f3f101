"""`gpuscale plan` and `gpuscale diff`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..config import PROJECT, ConfigError
from ..config.project import ProjectError, find_project_dir, read_project
from .engine import PlanConfigError, PlanError

EXIT_DIFFERENT = 1
EXIT_INVALID = 2
EXIT_CHECKS_FAILED = 3


def _explain_secrets(project: Path, stack: str) -> None:
    """Values encrypted in the stack file: the plan cannot decrypt them and says so, instead of showing a mapping."""
    from ..config import read_stack_values, secret_paths, stack_file_path

    paths = secret_paths(read_stack_values(stack_file_path(project, stack)))
    if paths:
        click.echo("\nSecrets (encrypted in the stack file): " + ", ".join(paths) + ". The plan shows each as "
                   "[secret] and cannot check its value offline; `pulumi up` decrypts it, checks it like any value, "
                   "and keeps it secret.")


@click.command()
@click.option("--stack", "-s", required=True,
              help="Stack to plan: its config is Pulumi.<stack>.yaml in the project's stackConfigDir.")
@click.option("--project-dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Directory holding the Pulumi.yaml of the project to plan, this one or any Python Pulumi program "
                   "(default: the nearest one at or above the current directory).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Also write the plan (type, name, parent, inputs, options) as JSON to this file.")
@click.option("--details", is_flag=True,
              help="Show every input of every resource whole, JSON documents (IAM policies) pretty-printed.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors (with --json, for machines).")
@click.option("--prices", type=click.Choice(["file", "api"]), default="file", show_default=True,
              help="Price the stack from the dated price list in the package, or ask the AWS Pricing API "
                   "(needs AWS credentials).")
@click.option("--config-namespace", "namespace", metavar="NAMESPACE",
              help="The config namespace the program reads the platform's settings from (what it passes to "
                   "load_program_config), where it is not the project's name. Default: the project's name if the "
                   f"stack file holds settings there, else {PROJECT}.")
def plan(stack: str, project_dir: Path | None, json_path: Path | None, details: bool, quiet: bool,
         prices: str, namespace: str | None) -> None:
    """Show what `pulumi up` would create for STACK, offline: the real program under Pulumi's mock engine.

    Then run the pre-apply checks and the policy rules, and price the stack's month. Exit 0 when the plan holds and no check found an error,
    2 when the config is invalid, 3 when a check found an error.
    """
    from ..cost import render_cost
    from ..config.files import settings_namespace
    from .assessment import checks_and_cost
    from .checks import ERROR
    from .engine import run_plan
    from .render import render_plan

    try:
        project = (project_dir or find_project_dir(Path.cwd())).resolve()
        _in_project_environment(project, ["--stack", stack, *(["--json", str(json_path.resolve())] if json_path else
                                          []), *(["--details"] if details else []), *(["--quiet"] if quiet else []),
                                          "--prices", prices, *(["--config-namespace", namespace] if namespace else [])])
        if (unread := read_project(project).unread) is not None:
            click.echo(f"warning: {unread}", err=True)
        # Where the settings are, before the program runs: a namespace named wrong stops here.
        settings = settings_namespace(project, stack, namespace)
        result = run_plan(project, stack)
        platform, findings, cost = checks_and_cost(project, stack, result, prices, settings)
    except ProjectError as exc:
        _fail(str(exc), EXIT_INVALID)
    except (PlanConfigError, ConfigError) as exc:
        _fail(f"invalid config for stack {stack}: {exc}", EXIT_INVALID)
    except PlanError as exc:
        _fail(str(exc), EXIT_INVALID)
    if json_path is not None:
        doc = {**result.to_json(), "checks": [f.to_json() for f in findings], "cost": cost.to_json()}
        json_path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    if not quiet:
        click.echo(render_plan(result, details=details))
        _explain_secrets(project, stack)
        click.echo("\nPre-apply checks:" if platform else f"\nPre-apply checks (the policy rules only: the stack "
                   f"file holds no {PROJECT}: settings of groups for the others to read):")
        click.echo("\n".join(f"  {f}" for f in findings) or "  none")
        click.echo("\n" + render_cost(cost))
        if json_path is not None:
            click.echo(f"Plan written to {json_path}")
    errors = [f for f in findings if f.severity == ERROR]
    if errors:
        _fail(f"{len(errors)} pre-apply check(s) found errors: "
              + "; ".join((f"group {f.group}: " if f.group else "") + f.message for f in errors),
              EXIT_CHECKS_FAILED)


@click.command()
@click.argument("old", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def diff(old: Path, new: Path) -> None:
    """Compare two plans written by `gpuscale plan --json`. Exit 0 when equal, 1 when they differ."""
    from ..cost import compare, cost_of_plan_json, render_change
    from .diff import PlanFormatError, diff_plans, load_plan, render_diff

    try:
        docs = [json.loads(p.read_text()) for p in (old, new)]
        plans = [load_plan(doc, str(p)) for doc, p in zip(docs, (old, new))]
    except json.JSONDecodeError as exc:
        _fail(f"not a JSON plan: {exc}", EXIT_INVALID)
    except PlanFormatError as exc:
        _fail(str(exc), EXIT_INVALID)
    result = diff_plans(*plans)
    cost = compare(*(cost_of_plan_json(doc) for doc in docs))
    click.echo(render_diff(result))
    click.echo(render_change(cost))
    sys.exit(0 if result.equal and not cost.lines else EXIT_DIFFERENT)


def _in_project_environment(project: Path, options: list[str]) -> None:
    """Plan in the project's own Python environment: where its Pulumi.yaml names a `runtime.options.virtualenv` that
    exists and is not the running one, run this command again with that environment's Python and exit with its
    status. `pulumi up` runs the program there, so its packages (its own, and the gpuscale it imports) come from
    there; a plan from another environment could plan other code."""
    import subprocess

    venv = read_project(project).virtualenv
    if venv is None or not venv.is_dir() or Path(sys.prefix).resolve() == venv.resolve():
        return
    python = venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    where = f"{project / 'Pulumi.yaml'}: runtime.options.virtualenv"
    if not python.is_file():
        raise ProjectError(where, str(venv), f"a virtual environment with a Python ({python} does not exist)")
    if subprocess.run([str(python), "-c", "import gpuscale"], capture_output=True).returncode != 0:
        raise ProjectError(where, str(venv), "a virtual environment with gpuscale installed, as the program imports "
                           f"it: {python} -m pip install gpuscale")
    sys.exit(subprocess.call([str(python), "-m", "gpuscale", "plan", "--project-dir", str(project), *options]))


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)
