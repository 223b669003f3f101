"""cluster-autoscaler on one GPU node group, as its RunOnce loop decides (cluster-autoscaler 1.33).

What the model follows, from the upstream sources at tag cluster-autoscaler-1.33.0:
- core/static_autoscaler.go: a loop every scan interval; unschedulable pods are helped only once the oldest is 2 s
  old, or 30 s for pods requesting GPUs (unschedulablePodWithGpuTimeBuffer: wait for more pods before buying
  expensive nodes); a loop that scaled up does not scale down; scale-down waits `scale-down-delay-after-add` after
  a scale-up and `scale-down-delay-after-delete` after a deletion, but nodes keep accruing unneeded time meanwhile.
- Upcoming nodes (requested, not yet registered, or registered with their GPU not yet advertised) count as capacity
  for pending pods, so the autoscaler does not buy nodes twice for the same pods. A GPU node counts as not ready
  until the device plugin advertises `nvidia.com/gpu`, provided it carries the provider's GPU label
  (processors/customresources/gpu_processor.go; on AWS `k8s.amazonaws.com/accelerator`). Without the label such a
  node looks ready and full, and the next scan buys another node for the same pods.
- clusterstate: a node not registered within `max-node-provision-time` is removed and the group backs off
  (initial 5 min, doubling to 30 min; flags.go `initial-node-group-backoff-duration`, `max-node-group-backoff-
  duration`).
- Scale-down (simulator/utilization/info.go, core/scaledown/eligibility): a GPU node's utilisation is its GPU
  requests over its GPUs, compared with `scale-down-gpu-utilization-threshold` (CPU and memory, and
  `scale-down-utilization-threshold`, are not looked at for GPU nodes); a node below it whose pods fit on the other
  nodes is unneeded; after `scale-down-unneeded-time` unneeded it is deleted (its pods evicted and recreated),
  at most `max-scale-down-parallelism` (10) at a time, never below the group's minimum.

The settings come from the stack's `gpuscale:kubernetes.clusterAutoscaler` with the node group's `autoscaler:`
overrides (gpuscale/config/kubernetes.py holds their upstream defaults); the constants below are the upstream flags
the config does not expose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config.workload import UNSCHEDULABLE_GPU_POD_BUFFER_SECONDS as UNSCHEDULABLE_GPU_POD_BUFFER

if TYPE_CHECKING:
    from .pods import Node, PodCluster

UNSCHEDULABLE_POD_BUFFER = 2
INITIAL_BACKOFF = 300
MAX_BACKOFF = 1800
SCALE_DOWN_DELAY_AFTER_DELETE = 0
MAX_SCALE_DOWN_PARALLELISM = 10


@dataclass(frozen=True)
class CaSettings:
    scan_interval: int
    scale_down_unneeded: int
    scale_down_delay_after_add: int
    gpu_utilization_threshold: float
    max_node_provision: int
    accelerator_label: bool = True
    """The node group labels its nodes with the provider's GPU label from their first moment (gpuscale's do)."""


def ca_settings(cluster_autoscaler: Any, overrides: Any = None) -> CaSettings:
    """The settings one node group runs under: the cluster-wide config, overridden where the group's `autoscaler:`
    sets a value (upstream reads those from the group's `autoscaling-options` tags)."""
    ca = cluster_autoscaler

    def pick(name: str, default: Any) -> Any:
        value = getattr(overrides, name, None) if overrides is not None else None
        return default if value is None else value

    return CaSettings(
        scan_interval=ca.scan_interval_seconds,
        scale_down_unneeded=pick("scale_down_unneeded_seconds", ca.scale_down_unneeded_seconds),
        scale_down_delay_after_add=ca.scale_down_delay_after_add_seconds,
        gpu_utilization_threshold=pick("scale_down_gpu_utilization_threshold",
                                       ca.scale_down_gpu_utilization_threshold),
        max_node_provision=ca.max_node_provision_seconds)


class ClusterAutoscaler:
    def __init__(self, settings: CaSettings):
        self.s = settings
        self.last_scale_up = -math.inf
        self.last_delete = -math.inf
        self.backoff_until = -math.inf
        self._backoff = INITIAL_BACKOFF
        self.gave_up = 0
        """Nodes removed for not registering within max-node-provision-time."""

    def next_scan(self, t: int) -> int:
        return (t // self.s.scan_interval + 1) * self.s.scan_interval

    def run(self, t: int, cluster: PodCluster) -> None:
        self._remove_unregistered(t, cluster)
        if self._scale_up(t, cluster):
            self.last_scale_up = t
            return
        self._scale_down(t, cluster)

    def _remove_unregistered(self, t: int, cluster: PodCluster) -> None:
        late = [n for n in cluster.nodes if n.registered > t and t >= n.launched + self.s.max_node_provision]
        if late:
            for node in late:
                cluster.remove_node(t, node)
            self.gave_up += len(late)
            self.backoff_until = t + self._backoff
            self._backoff = min(MAX_BACKOFF, 2 * self._backoff)

    def _scale_up(self, t: int, cluster: PodCluster) -> bool:
        # Pods created this very second are not considered yet (new-pod-scale-up-delay 0, compared strictly).
        pods = [created for created in cluster.pending if created < t]
        # Headroom placeholders sit at or above --expendable-pods-priority-cutoff (the config refuses lower), so
        # they trigger scale-ups like any pod; each needs a whole node.
        held = [created for created in getattr(cluster, "pending_placeholders", ()) if created < t]
        if not (pods or held) or t < self.backoff_until:
            return False
        oldest = min(pods + held)
        if oldest + UNSCHEDULABLE_POD_BUFFER > t or oldest + UNSCHEDULABLE_GPU_POD_BUFFER > t:
            return False
        per_node = cluster.per_node
        upcoming = sum(per_node - _load(n) for n in cluster.nodes if self._upcoming(t, n))
        need = len(pods) + per_node * len(held) - upcoming
        room = cluster.max_nodes - len(cluster.nodes)
        add = min(math.ceil(need / per_node), room) if need > 0 else 0
        if add <= 0:
            return False
        cluster.launch_nodes(t, add)
        return True

    def _upcoming(self, t: int, node: Node) -> bool:
        if node.registered > t:
            return True
        return self.s.accelerator_label and node.gpu_ready > t

    def _scale_down(self, t: int, cluster: PodCluster) -> None:
        if not cluster.nodes:
            return
        unneeded = self._unneeded(t, cluster)
        for node in cluster.nodes:
            if node in unneeded:
                if node.unneeded_since is None:
                    node.unneeded_since = t
            else:
                node.unneeded_since = None
        if t < self.last_scale_up + self.s.scale_down_delay_after_add or \
                t < self.last_delete + SCALE_DOWN_DELAY_AFTER_DELETE:
            return
        due = [n for n in unneeded if t - n.unneeded_since >= self.s.scale_down_unneeded]
        due.sort(key=lambda n: (n.pods, n.unneeded_since))  # empty nodes first, then the longest unneeded
        due = due[:max(0, min(MAX_SCALE_DOWN_PARALLELISM, len(cluster.nodes) - cluster.min_nodes))]
        if due:
            for node in due:
                cluster.remove_node(t, node)
            self.last_delete = t

    def _unneeded(self, t: int, cluster: PodCluster) -> list[Node]:
        """Nodes below the GPU utilisation threshold whose pods the other nodes can take, fewest pods first."""
        per_node = cluster.per_node
        ready = [n for n in cluster.nodes if n.gpu_ready <= t]
        candidates = sorted((n for n in ready if _load(n) / per_node < self.s.gpu_utilization_threshold),
                            key=lambda n: n.pods)
        if not candidates:
            return []
        free = {id(n): per_node - _load(n) for n in ready}
        total_free = sum(free.values())
        removable = len(cluster.nodes) - cluster.min_nodes
        chosen: list[Node] = []
        for node in candidates:
            if len(chosen) >= removable:
                break
            moving, own = node.pods, free[id(node)]
            if total_free - own < moving:
                continue  # its pods fit nowhere else
            total_free -= own + moving
            free[id(node)] = 0
            chosen.append(node)
            if not moving:
                continue
            for other in sorted(ready, key=lambda n: -free[id(n)]):
                if not moving:
                    break
                take = min(moving, free[id(other)])
                free[id(other)] -= take
                moving -= take
        return chosen


def _load(node: Node) -> int:
    """GPU slots taken on a node: the service's pods and a headroom placeholder (InstanceFleet nodes have none)."""
    return node.pods + getattr(node, "held", 0)
