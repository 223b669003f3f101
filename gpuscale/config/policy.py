"""`gpuscale:policy`: how the policy rules (`gpuscale.policy`) treat this stack.

One mapping per stack: the enforcement level of each rule, the GPU budget, the tags every taggable resource
carries, the metric namespaces instances may publish to, and the findings the stack accepts, each with its reason.
`gpuscale plan` reads it to run the rules offline; `gpuscale policy-config` turns it into the `--policy-pack-config`
file for `pulumi preview --policy-pack`, so both see the same settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gpu_metrics_agent.catalogue import NAMESPACE

from .reader import ConfigError, Section

KEY = "gpuscale:policy"
MANDATORY, ADVISORY, DISABLED = "mandatory", "advisory", "disabled"
ENFORCEMENT_LEVELS = (MANDATORY, ADVISORY, DISABLED)
DEFAULT_REQUIRED_TAGS = ("gpuscale:stack",)
"""Cost allocation by stack: the tag `__main__.py` puts on every resource."""
TAG_KEY_PATTERN = r"[A-Za-z0-9 _.:/=+@-]{1,128}"
NAMESPACE_PATTERN = r"[^:][^:]{0,254}"
MAX_GPU_HOURS = 100_000_000
HOURS_PER_MONTH = 730
"""AWS's convention for monthly figures (8,760 hours a year / 12)."""


@dataclass(frozen=True)
class AcceptedFinding:
    rule: str
    resource: str
    """The resource's logical name, as `gpuscale plan` lists it."""
    reason: str


@dataclass(frozen=True)
class PolicyConfig:
    enforcement: dict[str, str] = field(default_factory=dict)
    """Rule name to level; a rule not named here is mandatory."""
    gpu_hours_per_month: int | None = None
    """The GPU budget: GPU-hours a month with every group at its maxSize; None sets no budget."""
    required_tags: tuple[str, ...] = DEFAULT_REQUIRED_TAGS
    metric_namespaces: tuple[str, ...] = (NAMESPACE,)
    """CloudWatch namespaces a `cloudwatch:PutMetricData` grant may be scoped to."""
    accepted: tuple[AcceptedFinding, ...] = ()

    def level(self, rule: str) -> str:
        return self.enforcement.get(rule, MANDATORY)

    def accepted_reason(self, rule: str, resource: str) -> str | None:
        return next((a.reason for a in self.accepted if a.rule == rule and a.resource == resource), None)


def read_policy(value: Any, rule_names: tuple[str, ...] | None = None) -> PolicyConfig:
    """Validate `gpuscale:policy`; `rule_names` are the rules that exist (default: those of `gpuscale.policy`)."""
    if rule_names is None:
        from ..policy.rules import RULES  # the rule list lives with the rules; config only names them

        rule_names = tuple(RULES)
    s = Section(value if value is not None else {}, KEY)
    levels = s.str_map("enforcement", {}, key_pattern="|".join(rule_names),
                       describe="rule names (" + ", ".join(rule_names) + ") to " + " or ".join(ENFORCEMENT_LEVELS))
    for rule, level in levels.items():
        if level not in ENFORCEMENT_LEVELS:
            raise ConfigError(f"{KEY}.enforcement.{rule}", level, "one of " + ", ".join(ENFORCEMENT_LEVELS))
    budget = s.int("gpuHoursPerMonth", None, min=1, max=MAX_GPU_HOURS)
    tags = s.str_list("requiredTags", DEFAULT_REQUIRED_TAGS, pattern=TAG_KEY_PATTERN,
                      describe="AWS tag keys (1 to 128 characters)")
    namespaces = s.str_list("metricNamespaces", (NAMESPACE,), min_items=1, pattern=NAMESPACE_PATTERN,
                            describe="CloudWatch namespaces (1 to 255 characters, not starting with ':')")
    accepted = []
    for a in s.sections("accept", default=[]):
        rule = a.str("rule", choices=rule_names)
        resource = a.str("resource", describe="the logical name of a resource in the plan, e.g. gpuscale-prod-eks")
        reason = a.str("reason", describe="why the stack accepts this finding, in a sentence a reviewer can judge")
        a.finish()
        accepted.append(AcceptedFinding(rule, resource, reason))
    s.finish()
    return PolicyConfig(levels, budget, tags, namespaces, tuple(accepted))
