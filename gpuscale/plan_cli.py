"""`gpuscale plan` and `gpuscale diff`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .config import ConfigError
from .plan import PlanConfigError, PlanError, find_project_dir

EXIT_DIFFERENT = 1
EXIT_INVALID = 2
EXIT_CHECKS_FAILED = 3


@click.command()
@click.option("--stack", "-s", required=True, help="Stack to plan: its config is stacks/Pulumi.<stack>.yaml.")
@click.option("--project-dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Directory holding Pulumi.yaml (default: the nearest one at or above the current directory).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Also write the plan (type, name, parent, inputs, options) as JSON to this file.")
@click.option("--details", is_flag=True, help="Show every input of every resource, not only the key ones.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors (with --json, for machines).")
def plan(stack: str, project_dir: Path | None, json_path: Path | None, details: bool, quiet: bool) -> None:
    """Show what `pulumi up` would create for STACK, offline: the real program under Pulumi's mock engine.

    Then run the pre-apply checks on the stack's settings. Exit 0 when the plan holds and no check found an error,
    2 when the config is invalid, 3 when a check found an error.
    """
    from .checks import ERROR, run_checks
    from .config import load_stack_file
    from .plan import run_plan
    from .plan_render import render_tree

    try:
        project = (project_dir or find_project_dir(Path.cwd())).resolve()
        result = run_plan(project, stack)
        # The program validated the same file through the same rules; this copy feeds the checks.
        findings = run_checks(load_stack_file(project, stack), result)
    except (PlanConfigError, ConfigError) as exc:
        _fail(f"invalid config for stack {stack}: {exc}", EXIT_INVALID)
    except PlanError as exc:
        _fail(str(exc), EXIT_INVALID)
    if json_path is not None:
        doc = {**result.to_json(), "checks": [f.to_json() for f in findings]}
        json_path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    if not quiet:
        click.echo(render_tree(result, details=details))
        click.echo("\nPre-apply checks:")
        click.echo("\n".join(f"  {f}" for f in findings) or "  none")
        if json_path is not None:
            click.echo(f"Plan written to {json_path}")
    errors = [f for f in findings if f.severity == ERROR]
    if errors:
        _fail(f"{len(errors)} pre-apply check(s) found errors: " + "; ".join(f.message for f in errors),
              EXIT_CHECKS_FAILED)


@click.command()
@click.argument("old", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def diff(old: Path, new: Path) -> None:
    """Compare two plans written by `gpuscale plan --json`. Exit 0 when equal, 1 when they differ."""
    from .plan_diff import PlanFormatError, diff_plans, load_plan, render_diff

    try:
        plans = [load_plan(json.loads(p.read_text()), str(p)) for p in (old, new)]
    except json.JSONDecodeError as exc:
        _fail(f"not a JSON plan: {exc}", EXIT_INVALID)
    except PlanFormatError as exc:
        _fail(str(exc), EXIT_INVALID)
    result = diff_plans(*plans)
    click.echo(render_diff(result))
    sys.exit(0 if result.equal else EXIT_DIFFERENT)


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)
