"""`gpuscale policy-config`: a stack's `gpuscale:policy` as the CrossGuard pack's config file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..config import ConfigError, load_stack_file
from ..config.project import find_project_dir
from . import pack_config


@click.command("policy-config")
@click.option("--stack", "-s", required=True, help="Stack whose gpuscale:policy to write.")
@click.option("--project-dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Directory holding Pulumi.yaml (default: the nearest one at or above the current directory).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write it here (default: standard output).")
def policy_config(stack: str, project_dir: Path | None, output: Path | None) -> None:
    """Write the file for `pulumi preview --policy-pack policy --policy-pack-config FILE`: each rule's
    enforcement level, the accepted findings and the budget, from STACK's gpuscale:policy."""
    try:
        project = (project_dir or find_project_dir(Path.cwd())).resolve()
        config = load_stack_file(project, stack)
    except ConfigError as exc:
        click.echo(f"error: invalid config for stack {stack}: {exc}", err=True)
        sys.exit(2)
    text = json.dumps(pack_config(config.policy), indent=2, sort_keys=True) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
