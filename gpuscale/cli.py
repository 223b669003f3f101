"""`gpuscale`: offline plan, plan diff, pre-apply checks and the scaling simulator."""

from __future__ import annotations

import click

from . import plan_cli
from .sim import cli as sim_cli


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gpuscale")
def cli() -> None:
    """GPU autoscaling as code: see what a stack will create and how it will scale, before `pulumi up`."""


# Subcommands register here, one line each.
cli.add_command(plan_cli.plan)
cli.add_command(plan_cli.diff)
cli.add_command(sim_cli.simulate)


def main() -> None:
    cli()
