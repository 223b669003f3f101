"""Snapshots to buffer rows, and buffer rows to PutMetricData requests within the API's limits.

PutMetricData limits (botocore's CloudWatch model, 2010-08-01): at most 1000 metrics a request, 1 MB a request,
150 unique values in one datum's ``Values`` (with ``Counts``), timestamps at most two weeks old. Datapoints of the
same series in the same second share one datum: the group roll-up of a per-GPU series (8 GPUs, one dimension set)
and samples faster than 1 Hz. With StorageResolution 1 CloudWatch keeps one-second buckets, so grouping by the
second loses nothing it would store.
"""

from __future__ import annotations

import json
from array import array
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import NamedTuple

from . import catalogue as cat
from .buffer import Cursor, Row
from .imds import NodeIdentity
from .snapshot import Snapshot

MAX_DATUMS = 1000
MAX_VALUES = 150
MAX_REQUEST_BYTES = 900_000
"""Estimated uncompressed JSON size per request, kept under the 1 MB limit with room for the envelope."""
MAX_AGE_S = 14 * 86400 - 600
"""CloudWatch refuses timestamps older than two weeks; ten minutes' margin for clock skew."""
_VALUE_BYTES = 48  # a double and its count in JSON, with separators


class Series(NamedTuple):
    """One CloudWatch series, relative to the node: its dimensions are the node's plus ``labels``, or only the
    group's when ``rollup``."""

    metric: str
    unit: str
    rollup: bool
    labels: tuple[tuple[str, str], ...]


class SeriesTable:
    """Flattens snapshots into rows. Keys are interned, so rows of a node whose GPUs and fields do not change
    share one keys tuple. Used by the sampler thread only."""

    def __init__(self) -> None:
        self._series: dict[tuple, tuple[Series, ...]] = {}
        """(metric, labels, rollup) to the series a reading goes to: its own, and the group's when rolled up."""
        self._labels: dict[tuple, tuple[tuple[str, str], ...]] = {}
        self._last_keys: tuple[Series, ...] = ()

    def flatten(self, snapshot: Snapshot, rollup: bool = True) -> tuple[tuple[Series, ...], array]:
        """The snapshot's rows; without ``rollup`` only the node's own series (no GROUP_DIMENSIONS copies)."""
        keys: list[Series] = []
        values = array("d")
        self._add(keys, values, snapshot.node, (), rollup)
        for gpu in snapshot.gpus:
            labels = self._label((cat.DIM_GPU_INDEX, str(gpu.index)), (cat.DIM_GPU_UUID, gpu.uuid))
            self._add(keys, values, gpu.values, labels, rollup)
            for mig in gpu.migs:
                self._add(keys, values, mig.values, self._label(*labels, (cat.DIM_MIG_INSTANCE, mig.instance)),
                          rollup)
        interned = tuple(keys)
        if interned == self._last_keys:
            interned = self._last_keys
        self._last_keys = interned
        return interned, values

    def _label(self, *pairs: tuple[str, str]) -> tuple[tuple[str, str], ...]:
        return self._labels.setdefault(pairs, pairs)

    def _add(self, keys: list, values: array, readings, labels: tuple, rollup: bool) -> None:
        for name, value in readings.items():
            series = self._series.get((name, labels, rollup))
            if series is None:
                spec = cat.BY_NAME[name]
                own = Series(spec.name, spec.cw_unit, False, labels)
                series = (own, Series(spec.name, spec.cw_unit, True, ())) if rollup and spec.group_rollup else (own,)
                if not spec.cloudwatch:
                    series = ()
                self._series[(name, labels, rollup)] = series
            for key in series:
                keys.append(key)
                values.append(value)


@dataclass
class _Datum:
    series: Series
    second: int
    values: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    index: dict[float, int] = field(default_factory=dict)


@dataclass
class Batch:
    """One PutMetricData request's worth, and how far into the buffer it reaches."""

    metric_data: list[dict]
    end: Cursor
    datapoints: int
    expired: int


class RequestBuilder:
    """Builds requests for one node identity. Used by the publisher thread only."""

    def __init__(self, identity: NodeIdentity, max_datums: int = MAX_DATUMS, max_values: int = MAX_VALUES,
                 max_bytes: int = MAX_REQUEST_BYTES) -> None:
        self._node_dims = [{"Name": cat.DIM_ASG, "Value": identity.asg_name},
                           {"Name": cat.DIM_INSTANCE_ID, "Value": identity.instance_id},
                           {"Name": cat.DIM_INSTANCE_TYPE, "Value": identity.instance_type}]
        self._group_dims = [{"Name": cat.DIM_ASG, "Value": identity.asg_name}]
        self._max_datums, self._max_values, self._max_bytes = max_datums, max_values, max_bytes
        self._dims: dict[Series, tuple[list[dict], int]] = {}

    def build(self, rows: list[Row], front_offset: int, now: float) -> Batch:
        """The next request from the oldest rows; stops at the first datapoint that would break a limit."""
        datums: list[_Datum] = []
        open_datums: dict[tuple[Series, int], _Datum] = {}
        size = points = expired = 0
        end = Cursor(rows[0].seq, front_offset) if rows else Cursor(0, 0)
        oldest = now - MAX_AGE_S
        for n, row in enumerate(rows):
            start = front_offset if n == 0 else 0
            if row.timestamp < oldest:
                expired += len(row.values) - start
                end = Cursor(row.seq, len(row.values))
                continue
            second = int(row.timestamp)
            keys, values = row.keys, row.values
            for i in range(start, len(values)):
                series, value = keys[i], values[i]
                datum = open_datums.get((series, second))
                if datum is None or (value not in datum.index and len(datum.values) >= self._max_values):
                    cost = self._dimensions(series)[1]
                    if len(datums) >= self._max_datums or size + cost > self._max_bytes:
                        return self._batch(datums, Cursor(row.seq, i), points, expired)
                    datum = open_datums[(series, second)] = _Datum(series, second)
                    datums.append(datum)
                    size += cost
                slot = datum.index.get(value)
                if slot is None:
                    datum.index[value] = len(datum.values)
                    datum.values.append(value)
                    datum.counts.append(1)
                    size += _VALUE_BYTES
                else:
                    datum.counts[slot] += 1
                points += 1
            end = Cursor(row.seq, len(values))
        return self._batch(datums, end, points, expired)

    def _dimensions(self, series: Series) -> tuple[list[dict], int]:
        """The series' dimension list and the estimated JSON size of a datum carrying it, cached per series."""
        cached = self._dims.get(series)
        if cached is None:
            if series.rollup:
                dims = self._group_dims
            else:
                dims = self._node_dims + [{"Name": name, "Value": value} for name, value in series.labels]
            skeleton = {"MetricName": series.metric, "Dimensions": dims, "Timestamp": 1.7e9, "Unit": series.unit,
                        "StorageResolution": 1, "Values": [], "Counts": []}
            cached = self._dims[series] = (dims, len(json.dumps(skeleton)) + 2)
        return cached

    def _batch(self, datums: list[_Datum], end: Cursor, points: int, expired: int) -> Batch:
        metric_data = []
        for datum in datums:
            series = datum.series
            entry = {"MetricName": series.metric, "Dimensions": self._dimensions(series)[0],
                     "Timestamp": datetime.fromtimestamp(datum.second, timezone.utc), "Unit": series.unit,
                     "StorageResolution": 1}
            if len(datum.values) == 1 and datum.counts[0] == 1:
                entry["Value"] = datum.values[0]
            else:
                entry["Values"], entry["Counts"] = datum.values, datum.counts
            metric_data.append(entry)
        return Batch(metric_data, end, points, expired)
