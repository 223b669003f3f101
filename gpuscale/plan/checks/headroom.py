"""Pre-apply check of GPU headroom (`gpuscale:headroom`): a node group whose maxSize cannot hold the headroom's
nodes beside the nodes its services fill at their maxReplicas. `run_checks` (gpuscale/plan/checks/) calls it."""

from __future__ import annotations

from typing import Any

from ...config import PROJECT, StackConfig
from ...config.headroom import service_nodes


def headroom_findings(config: StackConfig, finding: type) -> list[Any]:
    found: list[Any] = []
    if not getattr(config, "headroom", ()):
        return found
    groups = {g.name: (i, g) for i, g in enumerate(config.node_groups)}
    for j, h in enumerate(config.headroom):
        i, group = groups[h.node_group]
        busy = service_nodes(group, config.services)
        if h.nodes + busy > group.max_size:
            found.append(finding(
                "warning", "headroom-room", (f"{PROJECT}:headroom[{j}].nodes", f"{PROJECT}:nodeGroups[{i}].maxSize"),
                f"node group {group.name}'s maxSize {group.max_size} holds fewer than the headroom's {h.nodes} "
                f"node(s) plus the {busy} its services fill at maxReplicas: at the services' peak the preempted "
                "placeholders stay Pending (no warm node for the next burst), or the services stop short of "
                "maxReplicas while placeholders hold the group's last nodes"))
    return found
