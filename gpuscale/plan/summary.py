"""What a reviewer of a plan reads first: the capacity groups (sizes, instance types, warm pools), the scaling
targets, and every tag key with its values. Read from the planned resources by type, so it holds for whatever
program is planned, not only gpuscale's own stacks."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from .model import Plan, PlannedResource

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
ASG = "aws:autoscaling/group:Group"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
SCALING_POLICY = "aws:autoscaling/policy:Policy"
ASG_TAG = "aws:autoscaling/tag:Tag"


TAG_VALUES_SHOWN = 5
"""Values listed per tag key in the default view (a `Name` tag has one per resource); `details` lists all."""


def render_summary(plan: Plan, details: bool = False) -> str:
    lines = ["What changes capacity and cost (details in the tree below):", ""]
    lines += _groups(plan)
    lines += ["", *_scaling(plan)]
    lines += ["", *_tags(plan, details)]
    return "\n".join(lines)


def _table(rows: list[tuple[str, ...]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def _groups(plan: Plan) -> list[str]:
    templates = {r.urn: r for r in plan.by_type(LAUNCH_TEMPLATE)}
    rows: list[tuple[str, ...]] = [("group", "kind", "instance types", "purchase", "min / desired / max",
                                    "warm pool")]
    for r in plan.by_type(NODE_GROUP):
        scaling = r.inputs.get("scalingConfig", {})
        rows.append((r.name, f"EKS node group, {r.inputs.get('amiType', 'AMI type unset')}",
                     ", ".join(r.inputs.get("instanceTypes", [])) or "from its launch template",
                     r.inputs.get("capacityType", "ON_DEMAND"), _sizes(scaling.get("minSize"),
                                                                     scaling.get("desiredSize"),
                                                                     scaling.get("maxSize")), "-"))
    for r in plan.by_type(ASG):
        rows.append((r.name, "Auto Scaling group", ", ".join(_asg_types(r, templates)), _purchase(r),
                     _sizes(r.inputs.get("minSize"), r.inputs.get("desiredCapacity"), r.inputs.get("maxSize")),
                     _warm_pool(r.inputs.get("warmPool"))))
    if len(rows) == 1:
        return ["Capacity groups: none"]
    return ["Capacity groups (desired \"-\": left to the group's scaler):", *_table(rows)]


def _sizes(lo: Any, desired: Any, hi: Any) -> str:
    return " / ".join("-" if v is None else str(v) for v in (lo, desired, hi))


def _asg_types(r: PlannedResource, templates: dict[str, PlannedResource]) -> list[str]:
    overrides = r.inputs.get("mixedInstancesPolicy", {}).get("launchTemplate", {}).get("overrides", [])
    if overrides:
        return [o["instanceType"] for o in overrides if "instanceType" in o]
    # A single launch template: the instance type is the template's, a sibling under the same component.
    siblings = [t for t in templates.values() if t.parent == r.parent]
    return [t.inputs["instanceType"] for t in siblings if "instanceType" in t.inputs] or ["from its launch template"]


def _purchase(r: PlannedResource) -> str:
    dist = r.inputs.get("mixedInstancesPolicy", {}).get("instancesDistribution")
    if dist is None:
        return "on-demand"
    above = dist.get("onDemandPercentageAboveBaseCapacity", 100)
    return (f"{dist.get('onDemandBaseCapacity', 0)} on-demand, then {100 - above}% Spot "
            f"({dist.get('spotAllocationStrategy', 'default strategy')})")


def _warm_pool(pool: Any) -> str:
    if not pool:
        return "-"
    size = f"{pool.get('minSize', 0)} to {pool.get('maxGroupPreparedCapacity', 'maxSize')}"
    reuse = pool.get("instanceReusePolicy", {}).get("reuseOnScaleIn")
    return f"{size} {pool.get('poolState', 'Stopped')}" + (", reused on scale-in" if reuse else "")


def _scaling(plan: Plan) -> list[str]:
    policies = plan.by_type(SCALING_POLICY)
    if not policies:
        return ["Scaling policies: none (node groups scale by the cluster-autoscaler)"]
    lines = ["Scaling policies:"]
    for p in policies:
        lines.append(f"  {p.name}: {_policy(p.inputs)}")
    return lines


def _policy(inputs: dict[str, Any]) -> str:
    kind = inputs.get("policyType", "SimpleScaling")
    if kind == "TargetTrackingScaling":
        tt = inputs.get("targetTrackingConfiguration", {})
        text = f"target tracking: keep {_metric(tt)} at {tt.get('targetValue')}"
        return text + (" (adds only: scale-in disabled)" if tt.get("disableScaleIn") else "")
    if kind == "StepScaling":
        adjustment = inputs.get("adjustmentType", "ChangeInCapacity")
        exact, unit = adjustment == "ExactCapacity", "%" if adjustment == "PercentChangeInCapacity" else ""
        steps = [f"[{s.get('metricIntervalLowerBound', '-inf')}, {s.get('metricIntervalUpperBound', '+inf')}): "
                 f"{'' if exact else '+' if s.get('scalingAdjustment', 0) >= 0 else ''}"
                 f"{s.get('scalingAdjustment')}{unit}" for s in inputs.get("stepAdjustments", [])]
        what = "capacity set to" if exact else "capacity changed by"
        return f"steps ({what}), by how far the alarm's metric is over its threshold: " + "; ".join(steps)
    return kind


def _metric(tt: dict[str, Any]) -> str:
    predefined = tt.get("predefinedMetricSpecification")
    if predefined:
        return predefined.get("predefinedMetricType", "a predefined metric")
    custom = tt.get("customizedMetricSpecification", {})
    returned = [m for m in custom.get("metrics", []) if m.get("returnData", True)]
    if returned:
        m = returned[0]
        return m.get("label") or m.get("expression") or m.get("metricStat", {}).get("metric", {}).get("metricName", "?")
    return custom.get("metricName", "a custom metric")


def _tags(plan: Plan, details: bool) -> list[str]:
    """Every tag key with its values and how many resources carry each: resource tags, an Auto Scaling group's
    tags, and tags set on groups by `aws:autoscaling/tag:Tag` (the node groups' cluster-autoscaler tags)."""
    seen: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in plan.resources:
        tags = r.inputs.get("tags")
        if isinstance(tags, dict):
            for key, value in tags.items():
                seen[key][str(value)] += 1
        elif isinstance(tags, list):
            for tag in tags:
                if isinstance(tag, dict) and "key" in tag:
                    seen[tag["key"]][str(tag.get("value", ""))] += 1
        if r.type == ASG_TAG and isinstance(r.inputs.get("tag"), dict):
            seen[r.inputs["tag"]["key"]][str(r.inputs["tag"].get("value", ""))] += 1
    if not seen:
        return ["Tags: none"]
    lines = ["Tags (key = value, on how many resources):"]
    for key in sorted(seen):
        values = [f"{v} ({n})" for v, n in sorted(seen[key].items())]
        more = len(values) - TAG_VALUES_SHOWN
        if more > 0 and not details:
            values = values[:TAG_VALUES_SHOWN] + [f"… {more} more (--details shows all)"]
        lines.append(f"  {key} = {', '.join(values)}")
    return lines
