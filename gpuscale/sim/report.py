"""The simulator's output: a table per group, and the same figures as JSON."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from .results import GroupSimulation, Result

COLUMNS = (
    # header, width, how to show one result
    ("preset", 14, lambda r, g: r.preset),
    ("cost", 9, lambda r, g: f"{r.cost:.3f}"),
    ("inst-h", 7, lambda r, g: f"{r.instance_hours:.3f}"),
    ("P", 8, lambda r, g: f"{r.cost_p:.1f}"),
    ("p50 s", 6, lambda r, g: _num(r.latency_p50)),
    ("p95 s", 6, lambda r, g: _num(r.latency_p95)),
    ("p99 s", 6, lambda r, g: _num(r.latency_p99)),
    ("to cap s", 8, lambda r, g: _num(r.time_to_capacity)),
    (FIRST_POD := "1st pod s", 9, lambda r, g: _num(r.first_new_pod)),
    ("done s", 7, lambda r, g: _num(r.completion)),
    ("queued", 7, lambda r, g: f"{r.queued:.0f}"),
    ("502", 6, lambda r, g: f"{r.refused:.0f}"),
    ("gave up", 7, lambda r, g: f"{r.timed_out:.0f}"),
    ("cost/ideal", 10, lambda r, g: _ratio(r.cost_vs_ideal)),
    ("done/ideal", 10, lambda r, g: _ratio(r.completion_vs_ideal)),
)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def render_table(sim: GroupSimulation) -> str:
    """One group's results, one preset a row, with a header saying what the units are."""
    head = (f"{sim.kind} {sim.group}: trace {sim.trace.name} ({sim.trace.description}); cost in {sim.currency} over "
            f"{sim.window} s; P = one replica for one {sim.step_seconds:g} s step; times in seconds from the first "
            f"request")
    # A pod's start is a model service's figure; an instance group's runs have no pods to count.
    columns = [c for c in COLUMNS if sim.kind == "service" or c[0] != FIRST_POD]
    rows = [[name for name, _, _ in columns]] + [[show(r, sim) for _, _, show in columns] for r in sim.results]
    widths = [max(w, *(len(row[i]) for row in rows)) for i, (_, w, _) in enumerate(columns)]
    lines = [head, *sim.notes, ""]
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def result_json(result: Result) -> dict[str, Any]:
    data = asdict(result)
    data["instance_hours"] = result.instance_hours
    return data


def simulation_json(stack: str, sims: list[GroupSimulation]) -> dict[str, Any]:
    return {
        "stack": stack,
        "groups": [{
            "group": s.group,
            "kind": s.kind,
            "trace": {"name": s.trace.name, "description": s.trace.description, "seconds": s.trace.seconds,
                      "requests": s.trace.total_requests},
            "window_seconds": s.window,
            "step_seconds": s.step_seconds,
            "currency": s.currency,
            "results": [result_json(r) for r in s.results],
        } for s in sims],
    }
