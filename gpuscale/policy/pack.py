"""The CrossGuard side: each rule of `rules.py` wrapped as a Pulumi policy, for `policy/__main__.py`.

Only the wrapping lives here; what a rule checks is the same function `gpuscale plan` runs. Resource rules become
`ResourceValidationPolicy` (they judge inputs before apply), stack rules `StackValidationPolicy`. A finding the
stack accepts (`accept` in the pack config) is not reported, as `gpuscale plan` lists it as accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pulumi_policy import (EnforcementLevel, Policy, PolicyConfigSchema, ReportViolation,
                           ResourceValidationArgs, ResourceValidationPolicy, StackValidationArgs,
                           StackValidationPolicy)

from . import CONFIG_SCHEMA, STACK_SCOPE, settings_from_pack_config
from .rules import RULES, Resource, Rule

PACK_NAME = "gpuscale"
DEFAULT_LEVEL = EnforcementLevel.MANDATORY
"""A rule the pack config does not name is mandatory, as in `gpuscale:policy`."""


def _options(opts: Any) -> tuple[str, ...]:
    return tuple(getattr(opts, "ignore_changes", None) or ())


def _resource_validation(rule: Rule) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        settings = settings_from_pack_config(rule.name, args.get_config())
        r = Resource(args.resource_type, args.name, args.urn, args.props, _options(args.opts))
        if settings.accepted_reason(rule.name, r.name) is not None:
            return
        for message in rule.check(r, settings):  # type: ignore[call-arg]
            report(message, None)
    return validate


def _stack_validation(rule: Rule) -> Callable[[StackValidationArgs, ReportViolation], None]:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        settings = settings_from_pack_config(rule.name, args.get_config())
        resources = [Resource(p.resource_type, p.name, p.urn, p.props, _options(p.opts),
                              tuple(d.urn for d in p.dependencies or ())) for p in args.resources]
        for r, message in rule.check(resources, settings):  # type: ignore[call-arg]
            if settings.accepted_reason(rule.name, r.name if r is not None else STACK_SCOPE) is None:
                report(message, r.urn if r is not None else None)
    return validate


def policies() -> list[Policy]:
    """One CrossGuard policy per rule, in the order of `RULES`."""
    schema = PolicyConfigSchema(properties=CONFIG_SCHEMA)
    out: list[Policy] = []
    for rule in RULES.values():
        if rule.stack:
            out.append(StackValidationPolicy(name=rule.name, description=rule.description,
                                             validate=_stack_validation(rule), config_schema=schema))
        else:
            out.append(ResourceValidationPolicy(name=rule.name, description=rule.description,
                                                validate=_resource_validation(rule), config_schema=schema))
    return out
