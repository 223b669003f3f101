"""Resource options that a component hands on to its children."""

from __future__ import annotations

import pulumi


def depends_on_of(opts: pulumi.ResourceOptions | None) -> list[pulumi.Resource]:
    """The component's own `depends_on`, for the children that act on what it waits for (the SDK does not pass a
    component's dependencies on to its children: a Helm release would otherwise install before the nodes exist)."""
    if opts is None or opts.depends_on is None:
        return []
    deps = opts.depends_on
    return list(deps) if isinstance(deps, (list, tuple)) else [deps]
