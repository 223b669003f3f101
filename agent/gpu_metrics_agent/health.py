"""The agent's own health: what /metrics exports about the agent and what /healthz judges.

Each field has one writer: the sampler thread writes the collection fields, the CloudWatch publisher thread the
``cw_`` fields (the buffer keeps its own size and overflow count), the lifecycle thread the ``lc_`` fields. Scrapes
only read. Counters kept in dicts have a fixed set of keys, so a scrape iterating one never sees it change size.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from .snapshot import Snapshot

FAILURE_TIERS = ("device", "lifecycle")
"""Collection failures by tier: a device skipped for a cycle, or a whole cycle failed."""
PUBLISH_ERROR_REASONS = ("throttled", "server", "connection", "credentials", "client", "rejected", "discovery",
                         "other")
"""Why a PutMetricData call (after botocore's own retries), the node-identity discovery before it, or making the
client ("other": e.g. an endpoint botocore refuses) failed."""
DROP_REASONS = ("overflow", "expired", "rejected")
"""Why datapoints were given up: the buffer was full (oldest dropped), too old for CloudWatch, or refused by it."""
LIFECYCLE_CALLS = ("identity", "target_lifecycle_state", "set_instance_protection", "describe_lifecycle_hooks",
                   "complete_lifecycle_action")
"""What the lifecycle thread calls that can fail (after botocore's retries): each failure is counted under its call."""


log = logging.getLogger(__name__)


class Health:
    def __init__(self, sample_interval: float, stale_intervals: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s = sample_interval * stale_intervals
        self._clock = clock
        self.threads: dict[str, str | None] = {}
        """Each of the agent's threads by role: None while it runs (or has not started), else why it died. Written
        once at creation (before any scrape) and then only by the thread itself as it dies."""
        self.versions: dict[str, str] = {}
        """Driver and NVML versions of the current NVML session (written by the sampler thread)."""
        # --- written by the sampler thread ---
        self.collections = 0
        self.failures = dict.fromkeys(FAILURE_TIERS, 0)
        self.nvml_inits = 0
        self.overruns = 0
        """Sample deadlines missed because a collection ran past its interval."""
        self.last_ok = False
        self.last_duration_s = 0.0
        self.last_success_wall: float | None = None
        self.last_success_mono: float | None = None
        self.last_error = ""
        self.gpus = 0
        self.gpus_skipped = 0
        self.absent_fields = 0
        # --- written by the CloudWatch publisher thread ---
        self.cw_sent = 0
        self.cw_requests = 0
        self.cw_errors = dict.fromkeys(PUBLISH_ERROR_REASONS, 0)
        self.cw_given_up = {"expired": 0, "rejected": 0}
        self.cw_last_success_wall: float | None = None
        self.cw_early_flushes = 0
        """Flushes started before their time because the node's utilization moved (written by the sampler thread)."""
        # --- written by the pod-resources thread ---
        self.pr_reads = 0
        self.pr_errors = 0
        self.pr_last_success_wall: float | None = None
        # --- written by the lifecycle thread (scale-in protection and drain) ---
        self.lc_protected: bool | None = None
        """Scale-in protection as last set by the agent; None until it has set it once."""
        self.lc_protection_changes = 0
        self.lc_errors = dict.fromkeys(LIFECYCLE_CALLS, 0)
        self.lc_draining = False
        """True from the termination notice until the lifecycle action is completed."""
        self.lc_actions_completed = 0

    def collection_succeeded(self, snapshot: Snapshot) -> None:
        self.collections += 1
        self.last_ok = True
        self.last_duration_s = snapshot.duration_s
        self.last_success_wall = snapshot.timestamp
        self.last_success_mono = snapshot.monotonic
        self.gpus = len(snapshot.gpus)
        self.gpus_skipped = len(snapshot.skipped)
        self.absent_fields = sum(len(g.absent) for g in snapshot.gpus)

    def collection_failed(self, tier: str, error: str, duration_s: float) -> None:
        self.failures[tier] += 1
        self.last_error = error
        if tier == "lifecycle":
            self.last_ok = False
            self.last_duration_s = duration_s

    def thread(self, role: str, target: Callable[[], None]) -> threading.Thread:
        """A daemon thread for ``role`` whose death, by any exception, makes the agent unhealthy and shows in
        ``threads``: a thread that ends quietly would leave /healthz at 200 while its work stops."""
        self.threads[role] = None

        def run() -> None:
            try:
                target()
            except BaseException as exc:
                self.threads[role] = f"{type(exc).__name__}: {exc}"
                log.critical("the %s thread died; the agent reports unhealthy until restarted", role, exc_info=True)

        return threading.Thread(target=run, name=f"gpu-metrics-{role}", daemon=True)

    def fresh(self) -> bool:
        """A collection succeeded within the last ``stale_intervals`` intervals."""
        return self.last_success_mono is not None and self._clock() - self.last_success_mono <= self.max_age_s

    def status(self) -> tuple[bool, str]:
        """(healthy, why): healthy while a collection succeeded within the last ``stale_intervals`` intervals and
        none of the agent's threads has died."""
        dead = {role: why for role, why in self.threads.items() if why is not None}
        if dead:
            return False, "thread died: " + "; ".join(f"{role} ({why})" for role, why in sorted(dead.items()))
        if self.last_success_mono is None:
            detail = f": {self.last_error}" if self.last_error else ""
            return False, f"no successful collection yet{detail}"
        age = self._clock() - self.last_success_mono
        if age > self.max_age_s:
            return False, f"no successful collection for {age:.1f} s (limit {self.max_age_s:g} s): {self.last_error}"
        return True, f"last successful collection {age:.1f} s ago, {self.gpus} GPUs"


class ErrorLog:
    """Logs a recurring error when its cause starts or changes, and its recovery once, rather than every time."""

    def __init__(self, logger) -> None:
        self._logger = logger
        self._active: dict[object, str] = {}

    def failing(self, key: object, cause: str, detail: str = "") -> None:
        if self._active.get(key) != cause:
            self._active[key] = cause
            self._logger.warning("%s%s", cause, f": {detail}" if detail else "")

    def recovered(self, key: object, message: str) -> None:
        if self._active.pop(key, None) is not None:
            self._logger.info(message)
