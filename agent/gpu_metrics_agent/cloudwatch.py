"""The CloudWatch publisher: snapshots into the bounded buffer, the buffer out to PutMetricData on its own thread.

A flush falls due every ``flush_interval`` and is started by the first snapshot at or past that time, so a flush
always carries a fresh sample (a changed reading is sent at most one sample plus one flush interval later). A
snapshot whose node utilization has moved by ``flush_on_change`` points since the last flush starts one at once
(and the next regular one a whole interval later), so a burst reaches the scaling alarms within about a sample
interval, while a steady node flushes no more often than before. If the sampler stalls, the thread still flushes on
a timer. Within one call botocore retries (its standard or adaptive
mode); a call that still fails leaves its datapoints at the front of the buffer for the next flush. Only a request
CloudWatch refuses as invalid is dropped, counted, because sending it again would block everything behind it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

import boto3
from botocore.config import Config
from botocore.exceptions import (BotoCoreError, ClientError, ConnectionError as BotoConnectionError,
                                 HTTPClientError, NoCredentialsError, PartialCredentialsError)

from . import catalogue as cat
from .buffer import DatapointBuffer
from .cloudwatch_batch import MAX_DATUMS, Batch, RequestBuilder, SeriesTable
from .health import ErrorLog, Health
from .imds import IdentityError, NodeIdentity
from .snapshot import Snapshot

log = logging.getLogger(__name__)

_THROTTLING = {"Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
               "RequestThrottledException", "TooManyRequestsException", "RequestLimitExceeded", "SlowDown"}
_INVALID = {"InvalidParameterValue", "InvalidParameterCombination", "MissingParameter",
            "InvalidParameterValueException", "InvalidParameterCombinationException",
            "MissingRequiredParameterException", "RequestEntityTooLarge"}
_UTILIZATION = cat.NODE_GPU_UTILIZATION.name
_PEEK_POINTS = MAX_DATUMS * 4  # enough datapoints to fill a request even when the roll-ups merge several into one


@dataclass(frozen=True)
class CloudWatchSettings:
    flush_interval: float = 10.0
    flush_on_change: float = 0.0
    """Node utilization move, in percentage points, that starts a flush at once (0: never early)."""
    buffer_datapoints: int = 640_800
    endpoint: str | None = None
    timeout: float = 5.0
    retry_mode: str = "standard"
    max_attempts: int = 3


def make_client(identity: NodeIdentity, settings: CloudWatchSettings):
    """A CloudWatch client on its own boto3 session (not boto3's module-level default one)."""
    # Requests are built by code whose output the tests check against the service model; validating a thousand
    # datums again on every call cost 40% of the publisher's CPU, so botocore's validation is off.
    config = Config(retries={"mode": settings.retry_mode, "max_attempts": settings.max_attempts},
                    connect_timeout=settings.timeout, read_timeout=settings.timeout, parameter_validation=False)
    return boto3.session.Session().client("cloudwatch", region_name=identity.region,
                                          endpoint_url=settings.endpoint, config=config)


def classify(exc: Exception) -> str:
    """The health reason for a failed PutMetricData call (see health.PUBLISH_ERROR_REASONS)."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _THROTTLING:
            return "throttled"
        if code in _INVALID or status == 413:
            return "rejected"
        return "server" if status >= 500 else "client"
    if isinstance(exc, (BotoConnectionError, HTTPClientError)):
        return "connection"
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return "credentials"
    return "other"


class CloudWatchPublisher:
    def __init__(self, settings: CloudWatchSettings, health: Health, identity: Callable[[], NodeIdentity],
                 client_factory: Callable[[NodeIdentity, CloudWatchSettings], object] = make_client,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 rollup: Callable[[], bool] = lambda: True) -> None:
        self.settings = settings
        self._rollup = rollup
        """Asked for each snapshot: publish the GROUP_DIMENSIONS copies too (False while in a warm pool)."""
        self.buffer = DatapointBuffer(settings.buffer_datapoints)
        self._health = health
        self._identity = identity
        self._client_factory = client_factory
        self._clock, self._wall = clock, wall
        self._table = SeriesTable()
        self._client = None
        self._builder: RequestBuilder | None = None
        self._errors = ErrorLog(log)
        self._next_due = float("-inf")  # the first snapshot flushes at once: a new node shows up immediately
        self._flushed_utilization: float | None = None
        """Node utilization in the snapshot that started the last flush: the reference for an early one."""
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._deadline: float | None = None
        self._flushes = threading.Condition()
        self._flush_requested = self._flushed = 0
        """flush_now() requests, and the last request the publisher thread saw through to an empty buffer."""
        self._thread = health.thread("cloudwatch", self._run)

    # --- sampler thread ----------------------------------------------------------------------------------------
    def offer(self, snapshot: Snapshot) -> None:
        # Decided when sampled, not when sent: buffered datapoints keep the roll-up they were taken with.
        keys, values = self._table.flatten(snapshot, self._rollup())
        self.buffer.append(snapshot.timestamp, keys, values)
        utilization = snapshot.node.get(_UTILIZATION)
        reference, step = self._flushed_utilization, self.settings.flush_on_change
        if snapshot.monotonic >= self._next_due:
            # Flushes stay on a fixed grid; it is re-anchored only when sampling fell a whole interval behind.
            due = self._next_due + self.settings.flush_interval
            if due <= snapshot.monotonic:
                due = snapshot.monotonic + self.settings.flush_interval
            self._next_due = due
        elif step and utilization is not None and reference is not None and abs(utilization - reference) >= step:
            # The grid moves to start from this flush: a burst costs one request more, not one more each interval.
            self._next_due = snapshot.monotonic + self.settings.flush_interval
            self._health.cw_early_flushes += 1
        else:
            return
        self._flushed_utilization = utilization
        self._wake.set()

    # --- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> int:
        """Flush what is buffered for at most ``timeout`` seconds; returns the datapoints left unsent."""
        self._deadline = self._clock() + timeout
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        elif self._health.threads.get("cloudwatch") is None:  # never started: flush from here
            self.flush(self._deadline)
        # A publisher thread that died is not run again here: what killed it would end the shutdown in a traceback.
        return len(self.buffer)

    def _run(self) -> None:
        while not self._stopping.is_set():
            # The sampler wakes this thread when a flush is due; the timeout only matters if sampling stalls.
            self._wake.wait(2 * self.settings.flush_interval)
            self._wake.clear()
            if not self._stopping.is_set():
                with self._flushes:
                    requested = self._flush_requested
                if self.flush():
                    with self._flushes:
                        self._flushed = requested
                        self._flushes.notify_all()
        self.flush(self._deadline)

    def flush_now(self, timeout: float) -> bool:
        """From another thread: have the publisher thread send what is buffered now; True once the buffer was empty.

        The send stays on the publisher thread (the buffer has one reader); a node about to be terminated uses this
        so its last minutes reach CloudWatch before the instance goes.
        """
        with self._flushes:
            self._flush_requested += 1
            wanted = self._flush_requested
        self._wake.set()
        with self._flushes:
            return self._flushes.wait_for(lambda: self._flushed >= wanted, timeout)

    # --- publisher thread --------------------------------------------------------------------------------------
    def flush(self, deadline: float | None = None) -> bool:
        """Send the buffer, oldest first, until it is empty (True) or a call fails or the deadline passes."""
        while True:
            deadline = self._deadline if deadline is None else deadline
            if deadline is not None and self._clock() >= deadline:
                return False
            if not self._connect():
                return False
            rows, offset = self.buffer.peek(_PEEK_POINTS)
            if not rows:
                return True
            batch = self._builder.build(rows, offset, now=self._wall())
            if batch.metric_data and not self._send(batch):
                self.buffer.release()
                return False
            self._health.cw_given_up["expired"] += batch.expired
            self.buffer.commit(batch.end)

    def _connect(self) -> bool:
        if self._client is not None:
            return True
        try:
            identity = self._identity()
            self._client = self._client_factory(identity, self.settings)
        except IdentityError as exc:
            self._health.cw_errors["discovery"] += 1
            self._errors.failing("identity", f"CloudWatch publishing waits for the node's identity: {exc}")
            return False
        except Exception as exc:  # botocore refusing the endpoint or region: counted and retried, never fatal
            self._health.cw_errors["other"] += 1
            self._errors.failing("client", f"cannot make a CloudWatch client: {type(exc).__name__}: {exc}")
            return False
        self._builder = RequestBuilder(identity)
        self._errors.recovered("identity", "node identity resolved")
        log.info("publishing to CloudWatch namespace %s as %s", cat.NAMESPACE, identity)
        return True

    def _send(self, batch: Batch) -> bool:
        """True when the batch is done with: stored, or refused as invalid (dropped and counted)."""
        health = self._health
        try:
            self._client.put_metric_data(Namespace=cat.NAMESPACE, MetricData=batch.metric_data)
        except (ClientError, BotoCoreError) as exc:
            reason = classify(exc)
            health.cw_errors[reason] += 1
            if reason == "rejected":
                health.cw_given_up["rejected"] += batch.datapoints
                log.error("CloudWatch refused %d datapoints as invalid; dropped them: %s", batch.datapoints, exc)
                return True
            self._errors.failing("send", f"PutMetricData failed ({reason}); datapoints stay buffered for the "
                                         f"next flush", f"{len(self.buffer)} buffered: {exc}")
            return False
        health.cw_requests += 1
        health.cw_sent += batch.datapoints
        health.cw_last_success_wall = self._wall()
        self._errors.recovered("send", "PutMetricData succeeds again")
        return True
