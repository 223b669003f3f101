"""The node acting on its Auto Scaling group: scale-in protection while busy, and drain on termination.

One thread of its own reads the sampler's latest snapshot (a reference, swapped atomically), so a slow Auto Scaling
or instance metadata call never delays a sample, and sampling never waits for this thread.

- **Protection.** Busy means the node's mean GPU utilization above ``busy_utilization``; once busy for
  ``busy_hold`` seconds the instance is protected from scale-in, once idle for ``idle_hold`` the protection is
  removed. The API is called only when that held state differs from what the agent last set, so a steady node costs
  no calls. A failed call is counted and tried again one hold time later. A node whose readings are stale or that
  has no utilization (no GPU read, MIG only) is not judged: its protection stays as it is.
- **Drain.** The target lifecycle state in instance metadata reads ``Terminated`` while the instance waits in
  ``Terminating:Wait`` on the group's termination hook (``hook_name``, else the group's only EC2_INSTANCE_TERMINATING
  hook, found with DescribeLifecycleHooks when no name is given; gpuscale's user data passes its hook's name). The agent then waits until the GPUs have
  been idle for ``idle_hold`` (or ``drain_timeout`` passes), has CloudWatch flush what is buffered, and completes the
  lifecycle action with CONTINUE. An instance going into a warm pool (``Warmed:*``) is not drained: it is stopped
  or kept running, not terminated; one terminated out of the pool (``Warmed:Terminated``) runs no work, so it
  completes at once.
- **Warm pool.** With ``watch_state`` the state is read even without drain (the agent turns it on whenever it
  publishes to CloudWatch): while it reads ``Warmed:*``, :attr:`Lifecycle.warmed` tells the CloudWatch publisher to
  leave the node out of the group roll-up, whose SUM/SUM the scaling policies read as the fleet's utilization.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from . import catalogue as cat
from .health import ErrorLog, Health
from .imds import IdentityError, InstanceMetadata, NodeIdentity, TargetLifecycleState
from .snapshot import Snapshot

log = logging.getLogger(__name__)

TERMINATED = "Terminated"
TERMINATING_TRANSITION = "autoscaling:EC2_INSTANCE_TERMINATING"
WARMED_TERMINATED = "Warmed:Terminated"
_UTILIZATION = cat.NODE_GPU_UTILIZATION.name
_CALL_TIMEOUT_S = 5.0
_MAX_ATTEMPTS = 3
"""botocore standard retries within one call, as the CloudWatch publisher's default: the drain's completion must
land within the few seconds between the agent's deadline and the hook's own timeout."""


@dataclass(frozen=True)
class LifecycleSettings:
    protection: bool = False
    drain: bool = False
    watch_state: bool = False
    """Read the target lifecycle state even without drain, for :attr:`Lifecycle.warmed`."""
    hook_name: str | None = None
    busy_utilization: float = 10.0
    busy_hold: float = 10.0
    idle_hold: float = 60.0
    drain_timeout: float = 285.0
    poll_interval: float = 5.0
    tick: float = 1.0
    """How often the latest snapshot is judged: the sample interval."""
    flush_timeout: float = 5.0
    endpoint: str | None = None


def make_client(identity: NodeIdentity, endpoint: str | None):
    """An Auto Scaling client on its own boto3 session, with botocore's standard retry mode."""
    config = Config(retries={"mode": "standard", "max_attempts": _MAX_ATTEMPTS}, connect_timeout=_CALL_TIMEOUT_S,
                    read_timeout=_CALL_TIMEOUT_S)
    return boto3.session.Session().client("autoscaling", region_name=identity.region, endpoint_url=endpoint,
                                          config=config)


class BusyTracker:
    """Busy or idle, and since when, from successive snapshots; None while the node cannot be judged."""

    def __init__(self, threshold: float) -> None:
        self._threshold = threshold
        self._seen: Snapshot | None = None
        self.state: str | None = None
        self.since = 0.0

    def observe(self, snapshot: Snapshot | None, now: float, max_age: float) -> None:
        if snapshot is None or now - snapshot.monotonic > max_age or _UTILIZATION not in snapshot.node:
            self.state, self._seen = None, None
            return
        if snapshot is self._seen:
            return
        self._seen = snapshot
        state = "busy" if snapshot.node[_UTILIZATION] > self._threshold else "idle"
        if state != self.state:
            self.state, self.since = state, snapshot.monotonic

    def held(self, state: str, hold: float, now: float) -> bool:
        return self.state == state and now - self.since >= hold


class Lifecycle:
    def __init__(self, settings: LifecycleSettings, health: Health, latest: Callable[[], Snapshot | None],
                 identity: Callable[[], NodeIdentity], metadata: InstanceMetadata,
                 flush: Callable[[float], bool] | None = None,
                 client_factory: Callable[[NodeIdentity, str | None], object] = make_client,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._health, self._latest, self._identity_source = health, latest, identity
        self._state_reader = TargetLifecycleState(metadata, clock)
        self._flush, self._client_factory, self._clock = flush, client_factory, clock
        self._busy = BusyTracker(settings.busy_utilization)
        self._errors = ErrorLog(log)
        self._client = None
        self._identity: NodeIdentity | None = None
        self.target_state: str | None = None
        """The last target lifecycle state read from instance metadata (None: not read, or none there)."""
        self._next_poll = float("-inf")
        self._retry_at = float("-inf")
        self._drain_started: float | None = None
        self._drain_deadline: float | None = None
        self._hook: str | None = settings.hook_name
        self._flushed = False
        self._completed = False
        self._stop = threading.Event()
        self._thread = health.thread("lifecycle", self._run)

    @property
    def warmed(self) -> bool:
        """True while the last reading was ``Warmed:*`` (going into, or in, the warm pool); False when unknown."""
        state = self.target_state
        return state is not None and state.startswith("Warmed:")

    def start(self) -> None:
        if self._reads_state:
            # Read once before the thread (and the sampler) start, so a warm-pool instance's first samples are
            # already judged by a real reading. Instance metadata answers in milliseconds on EC2; off EC2 this
            # costs at most its timeout, once.
            now = self._clock()
            self._next_poll = now + self.settings.poll_interval
            self._poll(now)
        self._thread.start()

    @property
    def _reads_state(self) -> bool:
        return self.settings.drain or self.settings.watch_state

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.tick):
            try:
                self.step()
            except Exception:  # a defect here must not end the thread: protection and drain go on next tick
                log.exception("lifecycle step raised unexpectedly")

    def step(self) -> None:
        """Judge the latest snapshot, read the target lifecycle state when due, and act on both."""
        acts = self.settings.protection or self.settings.drain  # watch_state alone needs no Auto Scaling client
        if acts and self._client is None and self._clock() >= self._retry_at:
            # At start, not at the first need: a missing identity shows at once, and a termination notice (with
            # only seconds to spare) does not wait for botocore to load its service model.
            self._connect(self._clock())
        now = self._clock()  # after the connection, which can take a second: deadlines start from the real time
        self._busy.observe(self._latest(), now, self._health.max_age_s)
        if self._reads_state and now >= self._next_poll:
            self._next_poll = now + self.settings.poll_interval
            self._poll(now)
        if self._drain_deadline is not None:
            self._drain(now)
        elif self.settings.protection and self.target_state in (None, "InService"):
            self._protect(now)

    # --- drain ---------------------------------------------------------------------------------------------------
    def _poll(self, now: float) -> None:
        try:
            state = self._state_reader.read()
        except OSError as exc:  # urllib's errors, timeouts and refused connections are all OSErrors
            self._health.lc_errors["target_lifecycle_state"] += 1
            self._errors.failing("imds", "cannot read the target lifecycle state from instance metadata", str(exc))
            return
        self._errors.recovered("imds", "target lifecycle state readable again")
        if state == self.target_state:
            return
        log.info("target lifecycle state: %s (was %s)", state, self.target_state)
        self.target_state = state
        if self._drain_deadline is not None or not self.settings.drain:
            return  # once draining, the instance is going; nothing brings it back
        if state == TERMINATED:
            self._begin_drain(self._clock(), self.settings.drain_timeout)  # the read may have taken its timeout
        elif state == WARMED_TERMINATED:
            self._begin_drain(self._clock(), 0.0)
        elif state and state.startswith("Warmed:"):
            log.info("going into the warm pool (%s): nothing to drain; the instance is stopped or kept, not lost",
                     state)

    def _begin_drain(self, now: float, timeout: float) -> None:
        self._drain_started, self._drain_deadline = now, now + timeout
        self._retry_at = float("-inf")  # a protection call's back-off must not delay the drain
        self._health.lc_draining = True
        log.info("terminating: waiting up to %g s for the GPUs to be idle for %g s, then completing the lifecycle "
                 "action", timeout, self.settings.idle_hold)

    def _drain(self, now: float) -> None:
        if self._completed or now < self._retry_at:
            return
        client = self._connect(now)
        if client is None or not self._find_hook(client, now):
            return
        idle = self._busy.held("idle", self.settings.idle_hold, now)
        if not idle and now < self._drain_deadline:
            return
        if not self._flushed:
            self._flushed = True
            if self._flush is not None and not self._flush(self.settings.flush_timeout):
                log.warning("CloudWatch flush before termination did not finish within %g s; the rest is sent on "
                            "SIGTERM if CloudWatch allows", self.settings.flush_timeout)
        try:
            client.complete_lifecycle_action(
                LifecycleHookName=self._hook, AutoScalingGroupName=self._identity.asg_name,
                InstanceId=self._identity.instance_id, LifecycleActionResult="CONTINUE")
        except (ClientError, BotoCoreError) as exc:
            if _no_action_pending(exc):  # the hook timed out already, or someone else completed it: done either way
                log.info("no lifecycle action pending for %s on hook %s: %s", self._identity.instance_id,
                         self._hook, exc)
            else:
                self._failed("complete_lifecycle_action", now, self.settings.poll_interval, exc)
                return
        else:
            self._health.lc_actions_completed += 1
            log.info("completed lifecycle hook %s (CONTINUE) after %.1f s: %s", self._hook,
                     now - self._drain_started, "GPUs idle" if idle else "drain timeout reached")
        self._finish()

    def _find_hook(self, client, now: float) -> bool:
        """True once the hook to complete is known; the drain ends here if the group has none, or several."""
        if self._hook is not None:
            return True
        try:
            hooks = client.describe_lifecycle_hooks(AutoScalingGroupName=self._identity.asg_name)["LifecycleHooks"]
        except (ClientError, BotoCoreError) as exc:
            self._failed("describe_lifecycle_hooks", now, self.settings.poll_interval, exc)
            return False
        names = sorted(h["LifecycleHookName"] for h in hooks if h["LifecycleTransition"] == TERMINATING_TRANSITION)
        if len(names) == 1:
            self._hook = names[0]
            return True
        if names:  # completing someone else's hook would cut their drain short; which one is ours is not ours to guess
            self._health.lc_errors["describe_lifecycle_hooks"] += 1
            log.error("group %s has termination hooks %s: set --drain-hook-name; not draining",
                      self._identity.asg_name, ", ".join(names))
        else:
            log.info("group %s has no termination hook: nothing holds the instance, nothing to complete",
                     self._identity.asg_name)
        self._finish()
        return False

    def _finish(self) -> None:
        self._completed = True
        self._health.lc_draining = False

    # --- protection ----------------------------------------------------------------------------------------------
    def _protect(self, now: float) -> None:
        s = self.settings
        if self._busy.held("busy", s.busy_hold, now):
            want, hold = True, s.busy_hold
        elif self._busy.held("idle", s.idle_hold, now):
            want, hold = False, s.idle_hold
        else:
            return
        # The first decision is always sent: protection a previous run of the agent left behind is corrected.
        if want == self._health.lc_protected or now < self._retry_at:
            return
        client = self._connect(now)
        if client is None:
            return
        try:
            client.set_instance_protection(InstanceIds=[self._identity.instance_id],
                                           AutoScalingGroupName=self._identity.asg_name, ProtectedFromScaleIn=want)
        except (ClientError, BotoCoreError) as exc:
            self._failed("set_instance_protection", now, max(hold, s.poll_interval), exc)
            return
        self._errors.recovered("set_instance_protection", "SetInstanceProtection succeeds again")
        self._health.lc_protected = want
        self._health.lc_protection_changes += 1
        log.info("scale-in protection %s: GPUs %s for %g s", "set" if want else "removed",
                 "busy" if want else "idle", hold)

    # --- shared --------------------------------------------------------------------------------------------------
    def _connect(self, now: float):
        if self._client is None:
            try:
                identity = self._identity_source()
            except IdentityError as exc:
                self._failed("identity", now, self.settings.poll_interval, exc)
                return None
            self._identity, self._client = identity, self._client_factory(identity, self.settings.endpoint)
        return self._client

    def _failed(self, call: str, now: float, retry_after: float, exc: Exception) -> None:
        self._health.lc_errors[call] += 1
        self._retry_at = now + retry_after
        self._errors.failing(call, f"{call} failed; trying again in {retry_after:g} s", str(exc))


def _no_action_pending(exc: Exception) -> bool:
    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") == "ValidationError" \
        and "No active Lifecycle Action" in exc.response.get("Error", {}).get("Message", "")
