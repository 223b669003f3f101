"""What `gpuscale plan` judges a planned stack by: the platform's settings, wherever the program keeps them, the
pre-apply checks run on them and on the plan, and the month's cost."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..config import PROJECT, StackConfig, load_stack_file, read_stack_values, stack_file_path
from ..config.namespace import check_namespace, in_namespace
from ..config.reader import ConfigErrors
from ..config.policy import KEY as POLICY_KEY
from ..config.policy import read_policy
from ..config.project import read_project
from ..config.stack import TOP_LEVEL_KEYS
from ..cost import StackCost, estimate
from ..prices import PriceBook
from .checks import Finding, policy_findings, run_checks
from .engine import PlanError
from .model import Plan


def checks_and_cost(project: Path, stack: str, result: Plan, prices: str,
                    namespace: str | None = None) -> tuple[bool, list[Finding], StackCost]:
    """Whether the stack holds the platform's settings, the pre-apply checks, and the month's cost.

    The checks and the cost read the platform's settings (groups, scaling, services) from the stack's config in the
    namespace that holds them (`platform_namespace`), validated by the same rules the program used; their findings
    name the keys as the stack file writes them. A program that declares the components from settings of its own
    has none: its planned resources still get the policy rules, with the stack's `gpuscale:policy` if it has one
    (read by the same reader), and the cost says why it has no figure. `namespace`: the one the program passes to
    `load_program_config` where it is not the project's name (`--config-namespace`); the stack file must hold
    settings there."""
    values = read_stack_values(stack_file_path(project, stack))
    if namespace is None:
        namespace = platform_namespace(values, read_project(project).name)
    else:
        check_namespace_holds_settings(values, namespace, stack)
    if namespace is None:
        region = values.get("aws:region")
        cost = StackCost(region if isinstance(region, str) else "", error=f"the stack file holds no {PROJECT}: "
                         "settings, which the estimate reads the groups' sizes and instance types from")
        return False, policy_findings(result, read_policy(values.get(POLICY_KEY))), cost
    config = load_stack_file(project, stack, namespace=namespace)
    findings = [replace(f, settings=tuple(in_namespace(key, namespace) for key in f.settings))
                for f in run_checks(config, result)]
    return True, findings, estimate(config, result, price_book(prices, config))


def platform_namespace(values: dict, project_name: str) -> str | None:
    """The config namespace holding the platform's settings: the program's own (its project name) where it holds a
    section of them (`fleet:nodeGroups`, read by `load_program_config("fleet")`), else this project's where the
    stack has `gpuscale:` keys besides `gpuscale:policy`; None where neither does."""
    own = {key.partition(":")[2] for key in values if key.partition(":")[0] == project_name}
    if project_name != PROJECT and own & (set(TOP_LEVEL_KEYS) - {"policy"}):
        return project_name
    if any(key.partition(":")[0] == PROJECT and key != POLICY_KEY for key in values):
        return PROJECT
    return None


def check_namespace_holds_settings(values: dict, namespace: str, stack: str) -> None:
    """A namespace named on the command line must be a config namespace holding a section of the platform's
    settings in the stack file: otherwise the checks would silently read nothing."""
    try:
        check_namespace(namespace)
    except ConfigErrors as exc:
        raise PlanError(f"--config-namespace {namespace!r}: {exc}") from None
    sections = set(TOP_LEVEL_KEYS) - {"policy"}
    if not {key.partition(":")[2] for key in values if key.partition(":")[0] == namespace} & sections:
        spaces = sorted({key.partition(":")[0] for key in values if ":" in key})
        raise PlanError(f"--config-namespace {namespace}: stack {stack}'s file holds no {namespace}: settings of the "
                        f"platform ({namespace}:nodeGroups, {namespace}:cluster, ...); the namespaces it holds: "
                        f"{', '.join(spaces) or 'none'}")


def price_book(source: str, config: StackConfig) -> PriceBook:
    """The price list to use: the package's file, or the Pricing API for the types and region the stack uses."""
    if source == "file":
        return PriceBook.from_file()
    import botocore.exceptions

    types = {t for g in (*config.node_groups, *config.auto_scaling_groups) for t in g.instance_types}
    if config.cluster.system_nodes is not None:
        types.add(config.cluster.system_nodes.instance_type)
    try:
        return PriceBook.from_api([config.region], types)
    except (botocore.exceptions.NoCredentialsError, botocore.exceptions.ClientError) as exc:
        raise PlanError(f"--prices api: the AWS Pricing API cannot be asked ({exc}); use --prices file") from None
