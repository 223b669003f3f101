"""Kubernetes capacity: a pod scaler (HPA, KPA, KEDA) sets pods, the scheduler places them on GPU nodes, and the
cluster-autoscaler adds and removes nodes of one node group.

A new node serves pods after node provisioning (launch until the kubelet registers it Ready) and the device plugin
advertising its GPUs. A pod placed on a node first pulls the serving image (phase Pending), unless the node already
has it, then loads the model (Running, not Ready), then serves. The scheduler puts each pod on the node with the
most free GPUs (kube-scheduler's default NodeResourcesFit scoring, LeastAllocated); a scale-down removes unscheduled
pods first, then pods not ready yet (newest first), then idle ready pods from the node running the most of them
(ReplicaSet's ranking by co-located replicas), and busy pods only once they are idle (Knative's queue-proxy and a
preStop hook drain in-flight requests). In-flight requests are spread evenly over ready pods.
"""

from __future__ import annotations

import math

from .cluster_autoscaler import CaSettings, ClusterAutoscaler
from .fleet import busy_units
from .service import ServiceModel


class Node:
    __slots__ = ("launched", "registered", "gpu_ready", "image_at", "ready", "starting", "unneeded_since", "held")

    def __init__(self, launched: float, registered: float, gpu_ready: float, image_at: float | None = None,
                 ready: int = 0):
        self.launched, self.registered, self.gpu_ready, self.image_at = launched, registered, gpu_ready, image_at
        self.ready = ready
        """Pods serving here."""
        self.starting: list[tuple[float, float]] = []
        """(image pulled, ready) of each pod placed here that does not serve yet."""
        self.unneeded_since: float | None = None
        self.held = 0
        """GPU slots a headroom placeholder holds here (all of the node's, or none)."""

    @property
    def load(self) -> int:
        """Slots taken, the service's pods and a placeholder alike: what the scheduler and the autoscaler see."""
        return self.pods + self.held

    @property
    def pods(self) -> int:
        return self.ready + len(self.starting)


class PodCluster:
    def __init__(self, svc: ServiceModel, min_nodes: int, max_nodes: int, min_pods: int, max_pods: int,
                 settings: CaSettings, *, start_at_zero: bool = False, headroom: int = 0, prepulled: bool = False):
        self.svc, self.min_nodes, self.max_nodes = svc, min_nodes, max_nodes
        self.min_pods, self.max_pods = min_pods, max_pods
        self.per_node = svc.replicas_per_instance
        self.ca = ClusterAutoscaler(settings)
        cs = svc.cold_start
        self._provision = cs.node_provisioning_seconds
        self._plugin = cs.device_plugin_ready_seconds or 0
        self._pull, self._load = cs.image_pull_seconds, cs.model_load_seconds
        self.nodes: list[Node] = []
        self.pending: list[float] = []
        """Creation second of each pod no node has room for."""
        self.pending_placeholders: list[float] = []
        """Headroom placeholders (gpuscale:headroom) preempted and waiting for a node of their own."""
        self._prepulled = prepulled
        """The placeholders pull the service's image (init containers): a node they hold has it, or is pulling it."""
        self.desired = min_pods
        self._placed = 0
        """Pods on nodes (a count kept as they come and go: the engine asks every second)."""
        self._ready = 0
        self._watch: dict[Node, None] = {}
        """Nodes still booting or with pods not serving yet, in the order they got there: all the others are
        settled, and the per-second bookkeeping skips them."""
        self.busy = 0.0
        self.version = 0
        self.next_change = 0
        if start_at_zero:
            # The minimum pods are created at second 0 and wait for nodes like any other.
            self.pending = [0.0] * min_pods
        else:
            count = max(min_nodes, math.ceil(min_pods / self.per_node))
            self.nodes = [Node(-math.inf, -math.inf, -math.inf, -math.inf, min_pods // count + (i < min_pods % count))
                          for i in range(count)]
            self._placed = self._ready = min_pods
        # Headroom: nodes up before the trace, each held whole by a placeholder (gpuscale/config/headroom.py).
        for _ in range(headroom):
            node = Node(-math.inf, -math.inf, -math.inf, -math.inf if prepulled else None)
            node.held = self.per_node
            self.nodes.append(node)
        self._recount(0)

    # --- what the engine and scalers read --------------------------------------------------------------------
    @property
    def ready_replicas(self) -> int:
        return self._ready

    @property
    def starting_replicas(self) -> int:
        return self._loading + self._pulling + len(self.pending)

    @property
    def pod_phases(self) -> tuple[int, int, int]:
        """(ready, Running but not ready, Pending: unscheduled or pulling its image)."""
        return self._ready, self._loading, self._pulling + len(self.pending)

    @property
    def billed_instances(self) -> int:
        return len(self.nodes)

    @property
    def in_service(self) -> int:
        return self._registered

    @property
    def pods(self) -> int:
        return self._placed + len(self.pending)

    # --- decisions ---------------------------------------------------------------------------------------------
    def set_desired(self, t: int, n: int) -> None:
        n = min(self.max_pods, max(self.min_pods, n))
        if n == self.desired and self.pods == n:
            return
        self.desired = n
        total = self.pods
        if self.desired > total:
            self.pending.extend([float(t)] * (self.desired - total))
            self._schedule(t)
        elif self.desired < total:
            self._shrink(t)
        self._recount(t)

    def launch_nodes(self, t: int, count: int) -> None:
        for _ in range(count):
            registered = t + self._provision
            node = Node(t, registered, registered + self._plugin)
            self.nodes.append(node)
            self._watch[node] = None

    def remove_node(self, t: int, node: Node) -> None:
        """The node goes; its pods are evicted and recreated (pending until some node has room)."""
        self.nodes.remove(node)
        self._watch.pop(node, None)
        if node.held:
            self.pending_placeholders.append(float(t))
        self._placed -= node.pods
        self._ready -= node.ready
        self.pending.extend([float(t)] * node.pods)
        self._schedule(t)

    def _schedule(self, t: int) -> None:
        open_nodes = [n for n in self.nodes if n.gpu_ready <= t and n.load < self.per_node]
        if len(self.pending) > sum(self.per_node - n.load for n in open_nodes):
            # Preemption: a service pod (priority 0) with no room evicts a placeholder (negative priority, no grace
            # period) and takes its node at once; the placeholder is pending again.
            for node in [n for n in self.nodes if n.held and n.gpu_ready <= t]:
                if len(self.pending) <= sum(self.per_node - n.load for n in open_nodes):
                    break
                node.held = 0
                self.pending_placeholders.append(float(t))
                open_nodes.append(node)
        while self.pending and open_nodes:
            node = min(open_nodes, key=lambda n: n.pods)
            self.pending.pop(0)
            if node.image_at is None:
                node.image_at = t + self._pull
            pulled = max(t, node.image_at)
            node.starting.append((pulled, pulled + self._load))
            self._placed += 1
            self._watch[node] = None
            if node.pods >= self.per_node:
                open_nodes.remove(node)
        # Placeholders go to empty ready nodes only (each asks for all of a node's GPUs), after the service's pods.
        for node in self.nodes:
            if not self.pending_placeholders:
                break
            if node.gpu_ready <= t and node.load == 0:
                self.pending_placeholders.pop(0)
                node.held = self.per_node
                if self._prepulled and node.image_at is None:
                    node.image_at = t + self._pull

    def _shrink(self, t: int) -> None:
        excess = self.pods - self.desired
        take = min(excess, len(self.pending))
        if take:
            del self.pending[len(self.pending) - take:]
            excess -= take
        self._promote(t)
        if excess:
            starting = sorted(((pod[1], node, pod) for node in self._watch for pod in node.starting),
                              key=lambda x: -x[0])
            for _, node, pod in starting[:excess]:
                node.starting.remove(pod)
                self._placed -= 1
                excess -= 1
        idle = self._ready - busy_units(self.busy, self.svc.concurrency)
        for _ in range(min(excess, max(0, idle))):
            max(self.nodes, key=lambda n: n.ready).ready -= 1
            self._placed -= 1
            self._ready -= 1

    def _promote(self, t: int) -> None:
        """Pods whose model finished loading serve from now on; settled nodes leave the watch."""
        for node in list(self._watch):
            if node.starting:
                done = sum(1 for pod in node.starting if pod[1] <= t)
                if done:
                    node.ready += done
                    self._ready += done
                    node.starting = [pod for pod in node.starting if pod[1] > t]
            if not node.starting and node.gpu_ready <= t:
                del self._watch[node]

    # --- time ----------------------------------------------------------------------------------------------------
    def advance(self, t: int) -> None:
        if self.pending or self.pending_placeholders:
            self._schedule(t)
        if self.pods > self.desired:
            self._shrink(t)  # pods above the desired count leave as they go idle
        if t % self.ca.s.scan_interval == 0:
            self.ca.run(t, self)
        self._recount(t)

    def _recount(self, t: int) -> None:
        self._promote(t)
        loading = pulling = 0
        registered = len(self.nodes) - len(self._watch)
        upcoming = self.ca.next_scan(t)
        for node in self._watch:
            if node.registered <= t:
                registered += 1
            elif node.registered < upcoming:
                upcoming = node.registered
            if t < node.gpu_ready < upcoming:
                upcoming = node.gpu_ready
            for pulled, ready_at in node.starting:
                if pulled <= t:
                    loading += 1
                else:
                    pulling += 1
                    upcoming = min(upcoming, pulled)
                upcoming = min(upcoming, ready_at)
        self._loading, self._pulling, self._registered = loading, pulling, registered
        if self.pods > self.desired:
            upcoming = min(upcoming, t + 1)
        self.version += 1
        self.next_change = upcoming
