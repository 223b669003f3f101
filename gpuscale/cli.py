"""`gpuscale`: offline plan, plan diff, pre-apply checks, policy, review of a change and the scaling simulator."""

from __future__ import annotations

import importlib

import click

# Subcommands by name, as "module:attribute". Each loads only when it runs: the plan must not pay for the
# simulator's imports, nor the simulator for Pulumi's (click's documented lazy-loading pattern).
SUBCOMMANDS = {
    "plan": "gpuscale.plan.cli:plan",
    "diff": "gpuscale.plan.cli:diff",
    "simulate": "gpuscale.sim.cli:simulate",
    "review": "gpuscale.plan.review:review",
    "policy-config": "gpuscale.policy.cli:policy_config",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in SUBCOMMANDS:
            return None
        module, attr = SUBCOMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gpuscale")
def cli() -> None:
    """GPU autoscaling as code: see what a stack will create and how it will scale, before `pulumi up`."""


def main() -> None:
    cli()
