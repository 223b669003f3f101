"""Capacity on EC2: what a scaler's decision turns into, and when it serves.

`InstanceFleet` is an EC2 Auto Scaling group (also a hosted platform's replicas): an instance serves after its
cold start (node provisioning, image pull, model load) or, taken from a warm pool, after resume plus model load.
Kubernetes capacity (pods on the nodes of a node group) is `gpuscale.sim.pods.PodCluster`.

Busy capacity is never killed: where the fleet is protected (scale-in protection, or a pod's graceful drain)
an instance or pod above the desired count leaves once it is idle. In-flight requests are spread evenly
(perfect packing), so the busy instances are ceil(in flight / slots per instance).
"""

from __future__ import annotations

import math
from typing import Any

from .service import ServiceModel

EPS = 1e-9

def busy_units(busy_requests: float, slots_per_unit: int) -> int:
    return max(0, math.ceil(busy_requests / slots_per_unit - EPS))


class InstanceFleet:
    def __init__(self, svc: ServiceModel, min_size: int, max_size: int, initial: int, *, warmup: int = 0,
                 warm_pool: Any = None, protect: bool = True, drain_seconds: int = 0):
        self.svc, self.min_size, self.max_size = svc, min_size, max_size
        self.warmup, self.protect = warmup, protect
        self.drain_seconds = min(drain_seconds, svc.longest_service_seconds)
        self.desired = initial
        self._settled = initial  # serving and past warmup
        self._batches: list[list[int]] = []  # [in_service_t, counted_t, ready_t, n]: starting or warming up
        self._draining: list[list[int]] = []  # [until_t, n]: scaled in without protection, finishing work
        self._next_event = math.inf
        self.next_change = math.inf
        """The engine calls `advance` from this second on; nothing changes before it."""
        self.version = 0
        """Bumped on every change the engine must read (capacity, billing)."""
        self.busy = 0.0
        self.ready = self.counted = self.counted_ready = self.in_service = initial
        """in_service: booted (AWS InService), serving or not; counted: past the instance warmup as well."""
        self.launching = self.draining = 0
        self.warm_pool = warm_pool
        self.warm = self._pool_target() if warm_pool else 0
        self._warm_refills: list[int] = []  # second each instance being prepared for the pool is ready

    # --- what the engine and scalers read --------------------------------------------------------------------
    @property
    def total(self) -> int:
        """Instances the group counts toward its desired capacity."""
        return self.ready + self.launching

    @property
    def ready_replicas(self) -> int:
        return self.ready * self.svc.replicas_per_instance

    @property
    def starting_replicas(self) -> int:
        return self.launching * self.svc.replicas_per_instance

    @property
    def billed_instances(self) -> int:
        # Stopped or hibernated warm-pool instances pay only for their volumes, which the model leaves out.
        warm_billed = self.warm if self.warm_pool is not None and self.warm_pool.pool_state == "Running" else 0
        return self.ready + self.launching + self.draining + warm_billed

    def launch_ready_times(self, t: int) -> list[int]:
        """The second each launching instance will serve."""
        return [b[2] for b in self._batches if b[2] > t for _ in range(b[3])]

    # --- decisions ---------------------------------------------------------------------------------------------
    def set_desired(self, t: int, n: int) -> None:
        self.desired = min(self.max_size, max(self.min_size, n))
        self.version += 1
        if self.desired > self.total:
            self._launch(t, self.desired - self.total)
        elif self.desired < self.total:
            self._shrink(t)

    def _launch(self, t: int, count: int) -> None:
        cs = self.svc.cold_start
        from_pool = min(count, self.warm)
        if from_pool:
            self.warm -= from_pool
            booted = t + (cs.warm_pool_resume_seconds or 0)
            self._batches.append([booted, booted + self.warmup, t + (cs.warm_seconds or 0), from_pool])
        if count > from_pool:
            booted = t + cs.node_provisioning_seconds
            self._batches.append([booted, booted + self.warmup, t + cs.cold_seconds, count - from_pool])
        if self.warm_pool is not None:
            missing = self._pool_target() - self.warm - len(self._warm_refills)
            # A pool instance is launched, initialised (image pulled) and stopped before it counts as warm.
            self._warm_refills.extend([t + cs.node_provisioning_seconds + cs.image_pull_seconds] * max(0, missing))
        self._recount(t)

    def _pool_target(self) -> int:
        # AWS: the pool holds MaxGroupPreparedCapacity (default: the group's maximum) minus desired, at least MinSize.
        wp = self.warm_pool
        prepared = wp.max_prepared_capacity if wp.max_prepared_capacity is not None else self.max_size
        return max(wp.min_size, prepared - self.desired)

    def _shrink(self, t: int) -> None:
        excess = self.total - self.desired
        # Launches not yet serving go first, newest first: cancelling them loses no work.
        for batch in sorted((b for b in self._batches if b[2] > t), key=lambda b: -b[0]):
            take = min(excess, batch[3])
            batch[3] -= take
            excess -= take
            if not excess:
                break
        idle = self.ready - busy_units(self.busy, self.svc.slots_per_instance)
        released = min(excess, max(0, idle))
        if not self.protect and excess > released:
            # Without scale-in protection busy instances go too; the termination lifecycle hook holds each while
            # it drains (up to the drain timeout) and it takes no new requests meanwhile.
            draining = excess - released
            self._draining.append([t + self.drain_seconds, draining])
            self.draining += draining
            released += draining
        self._remove_ready(t, released)
        if self.warm_pool is not None and self.warm_pool.reuse_on_scale_in:
            # ReuseOnScaleIn: instances scaled in are stopped into the pool instead of terminated.
            self.warm += max(0, min(released, self._pool_target() - self.warm - len(self._warm_refills)))
        self._recount(t)

    def _remove_ready(self, t: int, count: int) -> None:
        for batch in sorted((b for b in self._batches if b[2] <= t), key=lambda b: -b[0]):
            take = min(count, batch[3])
            batch[3] -= take
            count -= take
        self._settled -= count

    # --- time ----------------------------------------------------------------------------------------------------
    def advance(self, t: int) -> None:
        if self._draining and self._draining[0][0] <= t:
            self.draining -= sum(n for until, n in self._draining if until <= t)
            self._draining = [d for d in self._draining if d[0] > t]
        if self._warm_refills and self._warm_refills[0] <= t:
            self.warm += sum(1 for r in self._warm_refills if r <= t)
            self._warm_refills = [r for r in self._warm_refills if r > t]
        if self.total > self.desired:
            self._shrink(t)  # protected instances above the desired count leave as they go idle
        else:
            self._recount(t)

    def _recount(self, t: int) -> None:
        ready = counted = counted_ready = launching = in_service = 0
        upcoming = math.inf
        kept = []
        for batch in self._batches:
            in_service_t, counted_t, ready_t, n = batch
            if n <= 0:
                continue
            if ready_t <= t and counted_t <= t:
                self._settled += n
                continue
            kept.append(batch)
            if in_service_t <= t:
                in_service += n
            else:
                upcoming = min(upcoming, in_service_t)
            if ready_t <= t:
                ready += n
                counted_ready += n if counted_t <= t else 0
            else:
                launching += n
                upcoming = min(upcoming, ready_t)
            if counted_t <= t:
                counted += n
            else:
                upcoming = min(upcoming, counted_t)
        self._batches = kept
        self.ready = self._settled + ready
        self.counted = self._settled + counted
        self.counted_ready = self._settled + counted_ready
        self.in_service = self._settled + in_service
        self.launching = launching
        self._next_event = upcoming
        self.version += 1
        self.next_change = min(upcoming, self._draining[0][0] if self._draining else math.inf,
                               self._warm_refills[0] if self._warm_refills else math.inf,
                               t + 1 if self.total > self.desired else math.inf)
