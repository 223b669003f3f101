"""The simulation loop: one second at a time, requests as fluid cohorts, one scaler deciding capacity.

Each second: capacity that finished starting begins serving, requests that finished leave, new requests arrive
(or, with a front end that refuses at zero capacity, get a 502 and retry later), waiting requests start in
arrival order while slots are free, and then the scaler looks at what it can see and sets the desired capacity.
Latency is the wait plus the service time; a request that waited longer than the client's timeout gives up.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .fleet import EPS, InstanceFleet
from .pods import PodCluster
from .service import ServiceModel


class Scaler(Protocol):
    def step(self, t: int, sim: Engine) -> None:
        """Look at the simulation after second `t` and set `sim.fleet`'s desired capacity."""


@dataclass
class Run:
    """What one simulation recorded, second by second."""

    svc: ServiceModel
    arrivals: np.ndarray
    queued: np.ndarray
    busy: np.ndarray
    ready_replicas: np.ndarray
    starting_replicas: np.ndarray
    billed_instances: np.ndarray
    wait_hist: np.ndarray
    """Requests (fluid) that started service after waiting each whole number of seconds."""
    total_requests: float
    completed: float
    timed_out: float
    refused: float
    """502 answers; a request refused on each of three tries counts three times."""
    first_arrival: int | None
    time_to_capacity: int | None
    """Seconds from the first request until ready capacity covered all outstanding work (up to the maximum)."""
    finished_at: int | None
    """Second in which the last request completed, once every request has completed or given up; None if some
    were still waiting at the end or none completed."""
    settled_at: int
    """Last second in which the billed capacity changed or a request completed."""


class Engine:
    """One run of one scaler over one trace. Scalers read the per-second series below, up to second `t`."""

    def __init__(self, svc: ServiceModel, fleet: InstanceFleet | PodCluster, scaler: Scaler, arrivals: np.ndarray,
                 horizon: int, at_zero_capacity: str | None = None):
        self.svc, self.fleet, self.scaler = svc, fleet, scaler
        self.horizon = horizon
        self.arrivals = np.zeros(horizon)
        n = min(horizon, len(arrivals))
        self.arrivals[:n] = arrivals[:n]
        self.refuse_at_zero = (at_zero_capacity or svc.at_zero_capacity) == "refuse"
        self.max_slots = _max_slots(fleet, svc)
        self.queued = self.busy = self.retrying = 0.0
        """Now: requests waiting, in service, and refused and waiting to retry."""
        self.received_now = 0.0
        """Requests that reached the front end this second: new ones and retries (what a load balancer counts)."""
        # Per second, for the scalers' metrics.
        self.util: list[float | None] = [None] * horizon
        """Mean GPU utilisation (%) over the replicas that report to the agent; None: none reports."""
        self.waiting: list[float] = [0.0] * horizon
        """Requests waiting (queue depth, retries included) after the second's starts."""
        self.outstanding_at: list[float] = [0.0] * horizon
        self.received: list[float] = [0.0] * horizon
        self.in_service: list[int] = [0] * horizon
        """Instances booted (EC2 InService) or ready pods."""
        self.desired: list[int] = [0] * horizon
        self.cum_outstanding: list[float] = [0.0] * (horizon + 1)
        """Running sum of outstanding requests, for windowed averages."""

    @property
    def outstanding(self) -> float:
        return self.queued + self.busy + self.retrying

    def run(self) -> Run:
        svc, fleet, scaler = self.svc, self.fleet, self.scaler
        horizon, c = self.horizon, svc.concurrency
        kernel = list(zip(svc.kernel_offsets.tolist(), svc.kernel_weights.tolist()))
        finishing = [0.0] * (horizon + svc.longest_service_seconds + 1)
        wait_hist = [0.0] * horizon
        arrivals = self.arrivals.tolist()
        queue: deque[list[float]] = deque()  # [arrival second, requests], oldest first
        retries: dict[int, list[tuple[int, float]]] = {}
        timeout, retry_after = svc.request_timeout_seconds, svc.client_retry_seconds
        rec_ready, rec_starting, rec_billed = [0] * horizon, [0] * horizon, [0] * horizon
        util, waiting, outstanding_at, received = self.util, self.waiting, self.outstanding_at, self.received
        in_service, desired, cum_outstanding = self.in_service, self.desired, self.cum_outstanding
        completed = timed_out = refused = 0.0
        total = float(self.arrivals.sum())
        first_arrival = next((int(i) for i in np.flatnonzero(self.arrivals)[:1]), None)
        time_to_capacity = finished_at = last_completion = None
        settled_at, last_billed, cum, seen = 0, -1, 0.0, None
        busy = queued = 0.0
        for t in range(horizon):
            done = finishing[t]
            if done:
                busy = max(0.0, busy - done)
                completed += done
                settled_at = last_completion = t
                fleet.busy = busy
            if t >= fleet.next_change:
                fleet.advance(t)
            if fleet.version != seen:
                seen = fleet.version
                ready, slots, util_share, billed, starting, booted, wanted = _capacity(fleet, c)
            arrived = arrivals[t]
            now_received = arrived
            if t in retries:
                # Retries are older than anything that arrived since, so they go ahead of it.
                for since, n in sorted(retries.pop(t), reverse=True):
                    self.retrying -= n
                    now_received += n
                    queue.appendleft([since, n])
                    queued += n
            if arrived:
                queue.append([t, arrived])
                queued += arrived
            if queued > EPS and ready == 0 and self.refuse_at_zero:
                self.queued = queued
                refused_now, gave_up = self._refuse(t, queue, retries, timeout, retry_after)
                queued = self.queued
                refused += refused_now
                timed_out += gave_up
            while queue and queue[0][0] < t - timeout:
                # The client gave up: oldest first (retries go to the front with their first arrival).
                gave_up = queue.popleft()[1]
                queued -= gave_up
                timed_out += gave_up
            if slots - busy > EPS and queued > EPS:
                queued, busy = _start(t, slots - busy, queued, busy, queue, kernel, finishing, wait_hist)
            fleet.busy = self.busy = busy
            self.queued = queued
            self.received_now = received[t] = now_received
            waiting[t] = queued + self.retrying
            outstanding = queued + busy + self.retrying
            outstanding_at[t] = outstanding
            cum += outstanding
            cum_outstanding[t + 1] = cum
            if util_share is not None:
                util[t] = 100.0 * util_share * (busy / slots if busy < slots else 1.0) if slots else 0.0
            if time_to_capacity is None and first_arrival is not None and t >= first_arrival and \
                    slots + EPS >= min(outstanding, self.max_slots):
                time_to_capacity = t - first_arrival
            if finished_at is None and first_arrival is not None and completed + timed_out >= total - 1e-6:
                finished_at = last_completion
            in_service[t], desired[t] = booted, wanted
            scaler.step(t, self)
            if fleet.version != seen:
                seen = fleet.version
                ready, slots, util_share, billed, starting, booted, wanted = _capacity(fleet, c)
                if slots - busy > EPS and queued > EPS:
                    # Capacity that serves at once (no cold start) takes waiting requests in the same second.
                    queued, busy = _start(t, slots - busy, queued, busy, queue, kernel, finishing, wait_hist)
                    fleet.busy = self.busy = busy
                    self.queued = queued
            if billed != last_billed:
                settled_at, last_billed = max(settled_at, t), billed
            rec_ready[t], rec_starting[t], rec_billed[t] = ready, starting, billed
        return Run(svc, self.arrivals, np.array(waiting), np.array(outstanding_at) - np.array(waiting),
                   np.array(rec_ready), np.array(rec_starting), np.array(rec_billed), np.array(wait_hist), total,
                   completed, timed_out, refused, first_arrival, time_to_capacity, finished_at, settled_at)

    def _refuse(self, t, queue, retries, timeout, retry_after) -> tuple[float, float]:
        """With nothing serving, the front end answers 502 to every waiting request; clients retry later, unless
        their deadline passes first."""
        refused = gave_up = 0.0
        for since, n in queue:
            refused += n
            if t + retry_after - since > timeout:
                gave_up += n
            else:
                retries.setdefault(t + retry_after, []).append((int(since), n))
                self.retrying += n
        queue.clear()
        self.queued = 0.0
        return refused, gave_up


def _start(t: int, free: float, queued: float, busy: float, queue: deque, kernel: list, finishing: list,
           wait_hist: list) -> tuple[float, float]:
    """Waiting requests take free slots, oldest first; each finishes over the service-time kernel."""
    start = free if free < queued else queued
    queued -= start
    busy += start
    for offset, weight in kernel:
        finishing[t + offset] += start * weight
    while start > EPS:
        head = queue[0]
        take = start if start < head[1] else head[1]
        wait_hist[t - int(head[0])] += take
        start -= take
        head[1] -= take
        if head[1] <= EPS:
            queue.popleft()
    if queued < EPS:
        queued = 0.0
        queue.clear()
    return queued, busy


def _capacity(fleet: Any, concurrency: int) -> tuple[int, int, float | None, int, int, int, int]:
    """What the engine reads from the fleet after it changed: ready replicas, their slots, the share of reporting
    replicas that are ready (None: none reports), billed instances, starting replicas, instances in service, and
    the desired count.

    GPU utilisation as the agent reports it is busy slots over the replicas that report. An EC2 instance inside
    its instance warmup does not count toward the group's metric (AWS); one past warmup whose model is still
    loading reports an idle GPU.
    """
    ready = fleet.ready_replicas
    if isinstance(fleet, InstanceFleet):
        share = None if fleet.counted == 0 else fleet.counted_ready / fleet.counted
    else:
        share = None if ready == 0 else 1.0
    return (ready, ready * concurrency, share, fleet.billed_instances, fleet.starting_replicas, fleet.in_service,
            fleet.desired)


def _max_slots(fleet: Any, svc: ServiceModel) -> int:
    if isinstance(fleet, InstanceFleet):
        return fleet.max_size * svc.slots_per_instance
    return fleet.max_pods * svc.concurrency
