"""What `gpuscale plan` judges a planned stack by: the platform's settings, wherever the program keeps them, the
pre-apply checks run on them and on the plan, and the month's cost."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..config import PROJECT, StackConfig, load_stack_file, read_stack_values, stack_file_path
from ..config.namespace import in_namespace
from ..config.policy import KEY as POLICY_KEY
from ..config.policy import read_policy
from ..cost import StackCost, estimate
from ..prices import PriceBook
from .checks import Finding, policy_findings, run_checks
from .engine import PlanError
from .model import Plan


def checks_and_cost(project: Path, stack: str, result: Plan, prices: str,
                    namespace: str | None) -> tuple[bool, list[Finding], StackCost]:
    """Whether the stack holds the platform's settings, the pre-apply checks, and the month's cost.

    The checks and the cost read the platform's settings (groups, scaling, services) from the stack's config in
    `namespace` (`settings_namespace`: where the program reads them), validated by the same rules the program used;
    their findings name the keys as the stack file writes them. A program that declares the components from
    settings of its own has none (`namespace` None): its planned resources still get the policy rules, with the
    stack's `gpuscale:policy` if it has one (read by the same reader), and the cost says why it has no figure."""
    if namespace is None:
        values = read_stack_values(stack_file_path(project, stack))
        region = values.get("aws:region")
        cost = StackCost(region if isinstance(region, str) else "", error=f"the stack file holds no {PROJECT}: "
                         "settings, which the estimate reads the groups' sizes and instance types from")
        return False, policy_findings(result, read_policy(values.get(POLICY_KEY))), cost
    config = load_stack_file(project, stack, namespace=namespace)
    findings = [replace(f, settings=tuple(in_namespace(key, namespace) for key in f.settings))
                for f in run_checks(config, result)]
    return True, findings, estimate(config, result, price_book(prices, config))


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
