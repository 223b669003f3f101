"""`gpuscale`: offline plan, plan diff, pre-apply checks and the scaling simulator."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gpuscale")
def cli() -> None:
    """GPU autoscaling as code: see what a stack will create and how it will scale, before `pulumi up`."""


# Subcommands register here, one line each.
# (plan, diff: gpuscale/plan_cli.py; simulate: gpuscale/sim/cli.py)


def main() -> None:
    cli()
