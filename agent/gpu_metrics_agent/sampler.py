"""The background sampler: one collection in flight, on a monotonic deadline, each snapshot handed on.

Subscribers are called on the sampler thread and must only hand the snapshot over (the CloudWatch publisher
appends to its buffer, Prometheus reads ``latest`` when scraped); neither waits on the network here, so a stuck
publisher never delays a sample. A scrape reads ``latest``, a reference swapped atomically, so it never waits
for a collection either.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Callable, Sequence

from .collector import Collector
from .health import Health
from .snapshot import Snapshot

log = logging.getLogger(__name__)

Subscriber = Callable[[Snapshot], None]


class Sampler:
    def __init__(self, collector: Collector, health: Health, interval: float,
                 subscribers: Sequence[Subscriber] = (), clock: Callable[[], float] = time.monotonic) -> None:
        self._collector = collector
        self._health = health
        self._interval = interval
        self._subscribers = tuple(subscribers)
        self._clock = clock
        self._stop = threading.Event()
        self._thread = health.thread("sampler", self._run)
        self.latest: Snapshot | None = None
        """The most recent successful snapshot, or None before the first."""

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the collection in flight (if any); NVML is shut down on the sampler's own thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def run_once(self) -> Snapshot | None:
        """One collection on the caller's thread, handed to the subscribers like any other."""
        try:
            snapshot = self._collector.collect()
        except Exception as exc:  # a defect in a reader must not end sampling: count it, log it, start afresh
            log.exception("collection raised unexpectedly")
            self._collector.reset()
            self._health.collection_failed("lifecycle", f"{type(exc).__name__}: {exc}", 0.0)
            return None
        if snapshot is None:
            return None
        self.latest = snapshot
        for subscriber in self._subscribers:
            try:
                subscriber(snapshot)
            except Exception:  # one publisher's defect must not starve the others or stop sampling
                log.exception("snapshot subscriber %r failed", subscriber)
        return snapshot

    def _run(self) -> None:
        interval, clock = self._interval, self._clock
        due = clock()
        try:
            while not self._stop.is_set():
                self.run_once()
                due += interval
                now = clock()
                if now > due:  # the collection overran: skip the missed deadlines rather than run back to back
                    missed = math.ceil((now - due) / interval)
                    self._health.overruns += missed
                    due += missed * interval
                self._stop.wait(due - now)
        finally:
            self._collector.close()
