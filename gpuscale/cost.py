"""The monthly cost of a stack: each GPU group at its minimum and at its maximum, the fixed parts, and the
simulated typical month of the groups that describe their workload.

Figures are On-Demand Linux prices over AWS's 730-hour month (`gpuscale.prices`), instances plus their gp3 root
volumes. Spot capacity is priced On-Demand too, so for Spot groups the figures are an upper bound. The fixed parts
are counted from the plan by resource type (EKS clusters, NAT gateways, Elastic IPs), so whatever the program
declares is priced, and from config where the plan cannot say (warm-pool volumes, system nodes).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .config.policy import HOURS_PER_MONTH
from .prices import Price, PriceBook, PriceError

CLUSTER, NAT_GATEWAY, EIP = "aws:eks/cluster:Cluster", "aws:ec2/natGateway:NatGateway", "aws:ec2/eip:Eip"


@dataclass(frozen=True)
class CostLine:
    name: str
    kind: str
    """``gpu-group``, ``system-nodes`` or ``fixed``."""
    low: float
    """Monthly USD at the minimum (for a group: minSize instances of its cheapest type)."""
    high: float
    """Monthly USD at the maximum (maxSize instances of its dearest type)."""
    typical: float | None = None
    """Monthly USD of the simulated typical month (a group with a workload), else None."""
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "low": round(self.low, 2), "high": round(self.high, 2),
                "typical": None if self.typical is None else round(self.typical, 2), "note": self.note}


@dataclass(frozen=True)
class StackCost:
    region: str
    lines: tuple[CostLine, ...] = ()
    sources: tuple[str, ...] = ()
    error: str | None = None
    """Why there is no figure (a region or instance type the price list lacks); the plan still holds."""
    missing: tuple[str, ...] = ()
    """Every price the stack needs that the price list lacks ("g6.xlarge", "natGatewayHour"), when `error` is
    set for that reason: the plan names them all, never a guessed figure."""

    @property
    def low(self) -> float:
        return sum(line.low for line in self.lines)

    @property
    def high(self) -> float:
        return sum(line.high for line in self.lines)

    @property
    def typical(self) -> float | None:
        """Fixed parts and system nodes at their minimum, simulated groups' typical month, other groups at their
        minimum; None when no group has a workload to simulate."""
        if all(line.typical is None for line in self.lines):
            return None
        return sum(line.typical if line.typical is not None else line.low for line in self.lines)

    def to_json(self) -> dict[str, Any]:
        if self.error is not None:
            return {"region": self.region, "error": self.error, **({"missing": list(self.missing)}
                                                                   if self.missing else {})}
        return {"region": self.region, "currency": "USD", "hoursPerMonth": HOURS_PER_MONTH,
                "low": round(self.low, 2), "high": round(self.high, 2),
                "typical": None if self.typical is None else round(self.typical, 2),
                "lines": [line.to_json() for line in self.lines], "sources": list(self.sources)}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> StackCost:
        lines = tuple(CostLine(d["name"], d["kind"], d["low"], d["high"], d.get("typical"), d.get("note", ""))
                      for d in doc.get("lines", ()))
        return cls(doc.get("region", ""), lines, tuple(doc.get("sources", ())), doc.get("error"),
                   tuple(doc.get("missing", ())))


def estimate(config: Any, plan: Any, book: PriceBook | None = None) -> StackCost:
    """The stack's monthly cost from its validated config and its plan; when the price list lacks prices it
    needs, an error naming every one of them instead of a figure."""
    prices = _Lookups(book or PriceBook.from_file(), config.region)
    lines = [*_groups(config, prices), *_fixed(config, plan, prices)]
    if prices.missing:
        missing = tuple(sorted(set(prices.missing)))
        return StackCost(config.region, error=prices.book.missing_message(config.region, missing), missing=missing)
    return StackCost(config.region, tuple(lines), tuple(prices.book.cited(p.source for p in prices.used)))


class _Lookups:
    """The prices of one region, looked up one by one; a price the book lacks is noted (and counts as 0 until the
    estimate is dropped), so that one plan names every missing price rather than the first."""

    def __init__(self, book: PriceBook, region: str):
        self.book, self.region = book, region
        self.used: list[Price] = []
        self.missing: list[str] = []

    def instance(self, instance_type: str) -> float:
        return self._look(self.book.instance, instance_type)

    def fixed(self, part: str) -> float:
        return self._look(self.book.fixed, part)

    def _look(self, lookup: Any, key: str) -> float:
        try:
            price = lookup(self.region, key)
        except PriceError:
            self.missing.append(key)
            return 0.0
        self.used.append(price)
        return price.usd


def _instance_month(prices: _Lookups, instance_type: str, root_gib: int) -> float:
    """One instance running a month, with its gp3 root volume."""
    return prices.instance(instance_type) * HOURS_PER_MONTH + root_gib * prices.fixed("gp3GiBMonth")


def _groups(config: Any, prices: _Lookups) -> list[CostLine]:
    lines = []
    c = config.cluster
    if c.system_nodes is not None:
        month = _instance_month(prices, c.system_nodes.instance_type, 20)  # EKS's 20 GiB default disk
        lines.append(CostLine("system nodes", "system-nodes", c.system_nodes.min_size * month,
                              c.system_nodes.max_size * month, note=c.system_nodes.instance_type))
    for g in config.node_groups:
        months = [_instance_month(prices, t, g.root_volume_gib) for t in g.instance_types]
        lines.append(CostLine(g.name, "gpu-group", g.min_size * min(months), g.max_size * max(months),
                              note=_spot_note(g.capacity_type == "SPOT")))
    for g in config.auto_scaling_groups:
        months = [_instance_month(prices, t, g.root_volume_gib) for t in g.instance_types]
        typical = _typical(config, g, months[0]) if not prices.missing else None
        lines.append(CostLine(g.name, "gpu-group", g.min_size * min(months), g.max_size * max(months),
                              typical, _spot_note(g.on_demand_percentage_above_base < 100)))
        if g.warm_pool is not None:
            lines.append(_warm_pool(g, prices))
    return lines


def _spot_note(spot: bool) -> str:
    return "Spot priced On-Demand: an upper bound" if spot else ""


def _warm_pool(g: Any, prices: _Lookups) -> CostLine:
    """A warm pool holds max(minSize, maxPreparedCapacity (default maxSize) - desired) instances (AWS's sizing).
    Stopped or hibernated ones bill their volumes only; running ones bill like the group's instances."""
    wp = g.warm_pool
    prepared = wp.max_prepared_capacity if wp.max_prepared_capacity is not None else g.max_size
    at_min, at_max = (max(wp.min_size, prepared - desired) for desired in (g.min_size, g.max_size))
    if wp.pool_state == "Running":
        each = _instance_month(prices, g.instance_types[0], g.root_volume_gib)
    else:
        each = g.root_volume_gib * prices.fixed("gp3GiBMonth")
    return CostLine(f"{g.name} warm pool", "fixed", at_min * each, at_max * each,
                    note=f"{wp.pool_state.lower()} instances: " + ("billed running" if wp.pool_state == "Running"
                                                                   else "volumes only"))


def _typical(config: Any, group: Any, month: float) -> float | None:
    """A simulated day of the built-in diurnal trace (`gpuscale simulate --trace diurnal`: quiet nights at a
    tenth of the group's full-capacity rate, afternoons at all of it) under the group's own scaling, as a month."""
    if group.workload is None or group.scaling is None:
        return None
    from .sim.results import group_service, peak_rps, simulate_group
    from .sim.traces import diurnal

    sim = simulate_group(group, config.agent, diurnal(peak_rps(group, group_service(group))), ["stack"])
    mean_instances = sim.results[0].instance_seconds / sim.window
    return mean_instances * month


def _fixed(config: Any, plan: Any, prices: _Lookups) -> list[CostLine]:
    lines = []
    for type_, part, what in ((CLUSTER, "eksControlPlaneHour", "EKS control plane"),
                              (NAT_GATEWAY, "natGatewayHour", "NAT gateway"),
                              (EIP, "publicIpv4Hour", "public IPv4 address")):
        count = sum(1 for r in plan.resources if r.type == type_)
        if count:
            month = count * prices.fixed(part) * HOURS_PER_MONTH
            lines.append(CostLine(f"{count} {what}" + ("es" if what.endswith("address") and count > 1
                                                       else "s" if count > 1 else ""), "fixed", month, month))
    return lines


# --- text -----------------------------------------------------------------------------------------------------------

def money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def render_cost(cost: StackCost) -> str:
    if cost.error is not None:
        return f"Monthly cost: unavailable: {cost.error}"
    rows = [("", "at min", "at max", "typical")]
    rows += [(line.name + (f" ({line.note})" if line.note else ""), money(line.low), money(line.high),
              money(line.typical)) for line in cost.lines]
    rows.append(("total", money(cost.low), money(cost.high), money(cost.typical)))
    width = max(len(r[0]) for r in rows)
    lines = [f"Monthly cost in {cost.region} (USD, On-Demand, {HOURS_PER_MONTH} h; typical: a simulated diurnal "
             "day under the group's scaling):"]
    lines += [f"  {a:<{width}}  {b:>9}  {c:>9}  {d:>9}" for a, b, c, d in rows]
    lines += [f"  prices: {s}" for s in cost.sources]
    return "\n".join(lines)


@dataclass(frozen=True)
class CostChange:
    old: StackCost | None
    new: StackCost | None
    lines: list[tuple[str, CostLine | None, CostLine | None]] = field(default_factory=list)
    """(name, before, after) of every line that changed."""


def compare(old: StackCost | None, new: StackCost | None) -> CostChange:
    before = {line.name: line for line in (old.lines if old else ())}
    after = {line.name: line for line in (new.lines if new else ())}
    changed = [(name, before.get(name), after.get(name)) for name in _ordered(before, after)
               if before.get(name) != after.get(name)]
    return CostChange(old, new, changed)


def _ordered(*maps: dict[str, Any]) -> Iterable[str]:
    seen: dict[str, None] = {}
    for m in maps:
        seen.update(dict.fromkeys(m))
    return seen


def _delta(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "-"
    return f"{b - a:+,.0f}"


def render_change(change: CostChange) -> str:
    old, new = change.old, change.new
    for label, c in (("old", old), ("new", new)):
        if c is None:
            return f"Monthly cost: not in the {label} plan (written by a gpuscale without cost estimates)"
        if c.error is not None:
            return f"Monthly cost: unavailable in the {label} plan: {c.error}"
    assert old is not None and new is not None
    lines = [f"Monthly cost (USD): {money(old.low)}–{money(old.high)} => {money(new.low)}–{money(new.high)} "
             f"(at min {_delta(old.low, new.low)}, at max {_delta(old.high, new.high)}); typical "
             f"{money(old.typical)} => {money(new.typical)} ({_delta(old.typical, new.typical)})"]
    for name, a, b in change.lines:
        lines.append(f"  {name}: {_span(a)} => {_span(b)}")
    return "\n".join(lines)


def _span(line: CostLine | None) -> str:
    return "(absent)" if line is None else f"{money(line.low)}–{money(line.high)}"


def cost_of_plan_json(doc: dict[str, Any]) -> StackCost | None:
    return StackCost.from_json(doc["cost"]) if isinstance(doc.get("cost"), dict) else None


__all__ = ["CostChange", "CostLine", "StackCost", "compare", "cost_of_plan_json", "estimate", "money",
           "render_change", "render_cost"]
