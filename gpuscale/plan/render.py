"""Rendering a Plan for people: what a reviewer reads first (`summary`), a preview-like tree with key inputs
(every value whole with `details`), a count per resource type, and the stack's outputs."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

from .model import Plan

KEY_INPUTS_SHOWN = 6
"""Inputs shown under a resource in the default view; `details=True` shows every one."""
VALUE_WIDTH = 72
REVIEWED_INPUTS = {"kubernetes:helm.sh/v3:Release": ("chart", "version", "namespace", "values")}
"""Inputs shown whole in the default view, by type: a chart's pin and every value set, which is what a reviewer of
an add-on change reads."""


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Leaves of a JSON value as (dotted.path[index], value) pairs, in key order."""
    if isinstance(value, dict) and value:
        for key in sorted(value):
            yield from flatten(value[key], f"{prefix}.{key}" if prefix else key)
    elif isinstance(value, list) and value:
        for i, item in enumerate(value):
            yield from flatten(item, f"{prefix}[{i}]")
    else:
        yield prefix, value


def short(value: Any, width: int = VALUE_WIDTH) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 1] + "…"


def render_tree(plan: Plan, details: bool = False) -> str:
    """The resources in the plan's order (depth first from the stack), each indented under its parent."""
    lines = [f"Plan of stack {plan.stack} (project {plan.project}), under the mock engine:", ""]
    depth: dict[str, int] = {}
    for r in plan.resources:
        # A resource whose parent is not in the plan (none in a complete plan) is shown at the top, not dropped.
        depth[r.urn] = level = depth[r.parent] + 1 if r.parent in depth else 0
        pad = "    " * level
        lines.append(f"{pad}+ {r.type}  {r.name}")
        leaves = [(k, v) for k, v in flatten(r.inputs) if k]
        reviewed = REVIEWED_INPUTS.get(r.type)
        if details or reviewed:
            shown = leaves if details else [(k, v) for k, v in leaves if k.split(".", 1)[0].split("[", 1)[0]
                                            in reviewed]
            limit = len(shown)
        else:
            shown = [(k, v) for k, v in leaves if len(short(v, 10_000)) <= VALUE_WIDTH]
            limit = KEY_INPUTS_SHOWN
        for key, value in shown[:limit]:
            lines += whole(key, value, f"{pad}      ") if details else [f"{pad}      {key}: {short(value)}"]
        hidden = len(leaves) - min(limit, len(shown))
        if hidden > 0:
            lines.append(f"{pad}      … {hidden} more input(s) (--details shows all)")
        for opt, value in r.options.items():
            if opt == "provider":  # its URN's last part is the provider's name, which is what a reader looks for
                lines.append(f"{pad}      [provider: {value.rsplit('::', 1)[-1]}]")
            elif opt not in ("dependsOn", "aliases"):  # where a resource was: for `gpuscale diff`, not the reader
                lines.append(f"{pad}      [{opt}: {short(value)}]")
    lines += ["", render_counts(plan)]
    return "\n".join(lines)


def whole(key: str, value: Any, pad: str) -> list[str]:
    """`key: value` with nothing cut: a JSON document held in a string (an IAM policy, a dashboard body) is
    pretty-printed under its key, a multi-line string (user data) keeps its lines."""
    if isinstance(value, str):
        doc = _json_document(value)
        if doc is not None:
            return [f"{pad}{key}: (JSON)"] + [f"{pad}    {line}" for line in json.dumps(doc, indent=2).splitlines()]
        if "\n" in value:
            return [f"{pad}{key}: |"] + [f"{pad}    {line}" for line in value.splitlines()]
        return [f"{pad}{key}: {value}"]
    return [f"{pad}{key}: {json.dumps(value)}"]


def _json_document(text: str) -> Any:
    if not text.lstrip().startswith(("{", "[")):
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, (dict, list)) else None


def render_outputs(plan: Plan) -> str:
    """The stack's outputs (`pulumi stack output`) whole, as the mock engine resolves them."""
    if not plan.outputs:
        return "Outputs: none"
    lines = ["Outputs:"]
    for key, value in flatten(plan.outputs):
        lines += whole(key, value, "  ")
    return "\n".join(lines)


def render_plan(plan: Plan, details: bool = False) -> str:
    """The whole text plan: the reviewer's summary first, then the tree with the counts, then the outputs."""
    from .summary import render_summary

    tree = render_tree(plan, details)
    header, _, body = tree.partition("\n\n")
    return "\n\n".join((header, render_summary(plan, details), body, render_outputs(plan)))


def render_counts(plan: Plan) -> str:
    counts = Counter(r.type for r in plan.resources if r.parent is not None)
    components = sum(1 for r in plan.resources if r.parent is not None and not r.custom)
    width = max((len(t) for t in counts), default=10)
    lines = ["Resources by type:"]
    lines += [f"  {t:<{width}}  {n:>4}" for t, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    total = sum(counts.values())
    lines.append(f"{total} to create: {total - components} cloud resources in {components} components")
    return "\n".join(lines)
