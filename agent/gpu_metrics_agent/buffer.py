"""The bounded buffer between sampling and CloudWatch: nothing sampled is lost while it stays within its bound.

A row is one snapshot's datapoints: its timestamp, the series keys and an ``array('d')`` of values. Rows of a node
whose series do not change share one keys tuple, so an hour of 8 GPUs at 1 Hz costs about 8 bytes a datapoint.
The publisher peeks at the oldest rows, sends, and commits how far it got; what failed stays at the front and is
sent again, oldest first, with its original timestamps. When the bound is hit the oldest rows are dropped and
counted, never silently. Rows of the request in flight are never dropped while it is in flight (they may be
delivered a moment later, and would then be counted twice); the oldest rows behind them go instead, and if the
request fails the buffer is trimmed, oldest first, back to its bound.
"""

from __future__ import annotations

import threading
from array import array
from collections import deque
from typing import NamedTuple


class Row(NamedTuple):
    seq: int
    timestamp: float
    keys: tuple
    values: array


class Cursor(NamedTuple):
    """A position in the buffer: everything before ``offset`` in row ``seq`` (and all older rows) is done."""

    seq: int
    offset: int


class DatapointBuffer:
    """Thread-safe: the sampler thread appends, the publisher thread peeks, then commits or releases."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1 datapoint")
        self.capacity = capacity
        self.dropped = 0
        """Datapoints dropped, never sent, because the buffer was full."""
        self._rows: deque[Row] = deque()
        self._front_offset = 0
        self._size = 0
        self._next_seq = 0
        self._pinned = 0
        """How many rows at the front are in flight (handed out by peek, not yet committed or released)."""
        self._pinned_points = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Datapoints waiting to be sent."""
        return self._size

    def append(self, timestamp: float, keys: tuple, values: array) -> None:
        if not values:
            return
        with self._lock:
            self._rows.append(Row(self._next_seq, timestamp, keys, values))
            self._next_seq += 1
            self._size += len(values)
            self._trim()

    def peek(self, points: int) -> tuple[list[Row], int]:
        """The oldest rows holding at least ``points`` unsent datapoints (or all), and the offset into the first.

        They stay in flight until commit() or release(). Rows are immutable, so the caller reads them without the
        lock while the sampler keeps appending.
        """
        rows: list[Row] = []
        with self._lock:
            offset = self._front_offset
            covered = -offset
            for row in self._rows:
                rows.append(row)
                covered += len(row.values)
                if covered >= points:
                    break
            self._pinned, self._pinned_points = len(rows), max(covered, 0)
        return rows, offset

    def commit(self, cursor: Cursor) -> None:
        """The request in flight is done with: forget everything before ``cursor``."""
        with self._lock:
            rows = self._rows
            while rows and rows[0].seq < cursor.seq:
                self._size -= len(rows.popleft().values) - self._front_offset
                self._front_offset = 0
            if rows and rows[0].seq == cursor.seq and cursor.offset > self._front_offset:
                self._size -= cursor.offset - self._front_offset
                self._front_offset = cursor.offset
                if self._front_offset >= len(rows[0].values):
                    rows.popleft()
                    self._front_offset = 0
            self._release()

    def release(self) -> None:
        """The request in flight failed: its rows stay, oldest first, to be sent again."""
        with self._lock:
            self._release()

    def _release(self) -> None:
        self._pinned = self._pinned_points = 0
        self._trim()

    def _trim(self) -> None:
        rows = self._rows
        while self._size - self._pinned_points > self.capacity:
            if self._pinned == 0:
                lost = len(rows.popleft().values) - self._front_offset
                self._front_offset = 0
            elif len(rows) > self._pinned:
                lost = len(rows[self._pinned].values)
                del rows[self._pinned]
            else:
                return  # everything is in flight; the bound is enforced again when it lands
            self._size -= lost
            self.dropped += lost
