"""Request traces: how many requests arrive in each second.

Built-in traces are sized to the group they run against (its peak throughput), so one name means the same shape
on a two-instance dev group and a twelve-instance prod fleet; `burst` is the exception, it is always the source
articles' scenario of 100 requests arriving at once onto an idle service: at zero, or idle at its minimum size where
a group keeps one. A CSV file gives either one request per row (``timestamp``) or a rate per second
(``second,requests``).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

BURST_REQUESTS = 100
"""The spike in the cost scenario of the source articles: 100 requests onto a service at zero (here: at its
minimum size, which is zero unless the group keeps a floor)."""
DAY_SECONDS = 86400
SEED = 20240601
"""Built-in traces draw Poisson arrivals from a fixed seed, so every run of a trace is the same trace."""
MAX_TRACE_SECONDS = 7 * DAY_SECONDS

BUILTIN_TRACES = ("burst", "diurnal", "spiky")


class TraceError(ValueError):
    """A trace that cannot be read; the message names the file or trace, and the line where there is one."""


@dataclass(frozen=True)
class Trace:
    name: str
    arrivals: np.ndarray
    """Requests arriving in each second, from second 0."""
    description: str
    starts_at_zero: bool = False
    """Nothing above the group's minimum size is up when the trace begins (the burst scenario), not even a preset's
    own minimum replicas; otherwise each preset starts at its own minimum."""

    @property
    def seconds(self) -> int:
        return len(self.arrivals)

    @property
    def total_requests(self) -> float:
        return float(self.arrivals.sum())


def burst() -> Trace:
    arrivals = np.zeros(1)
    arrivals[0] = BURST_REQUESTS
    return Trace("burst", arrivals, f"{BURST_REQUESTS} requests at once onto an idle service at its minimum size",
                 starts_at_zero=True)


def diurnal(peak_rps: float, seconds: int = DAY_SECONDS) -> Trace:
    """A day of traffic: a quiet night at 10% of the peak, the peak in the afternoon, Poisson arrivals."""
    t = np.arange(seconds)
    # Trough at 04:00, peak at 16:00: a cosine over 24 h between 10% and 100% of the peak rate.
    shape = 0.1 + 0.9 * (1 - np.cos(2 * math.pi * (t - 4 * 3600) / DAY_SECONDS)) / 2
    arrivals = np.random.default_rng(SEED).poisson(peak_rps * shape).astype(float)
    return Trace("diurnal", arrivals, f"daily cycle from {0.1 * peak_rps:.2f} to {peak_rps:.2f} requests/s")


def spiky(base_rps: float, spike_rps: float, seconds: int = 2 * 3600) -> Trace:
    """A low baseline with spikes of one to five minutes at random times, about three an hour."""
    rng = np.random.default_rng(SEED)
    rate = np.full(seconds, base_rps)
    start = int(rng.integers(300, 900))
    while start < seconds:
        length = int(rng.integers(60, 301))
        rate[start:start + length] = spike_rps
        start += length + int(rng.exponential(1200)) + 60
    arrivals = rng.poisson(rate).astype(float)
    return Trace("spiky", arrivals, f"{base_rps:.2f} requests/s with spikes to {spike_rps:.2f} requests/s")


def builtin(name: str, peak_rps: float, seconds: int | None = None) -> Trace:
    """A built-in trace; `peak_rps` is the group's throughput with every instance serving."""
    if name == "burst":
        return burst()
    if name == "diurnal":
        # 70% of the peak throughput: a fleet sized for its busiest hour with headroom.
        return diurnal(0.7 * peak_rps, seconds or DAY_SECONDS)
    if name == "spiky":
        # Spikes above what the fleet can serve (120%), so queueing and the maximum size show.
        return spiky(0.15 * peak_rps, 1.2 * peak_rps, seconds or 2 * 3600)
    raise TraceError(f"trace {name!r}: not a built-in trace ({', '.join(BUILTIN_TRACES)}) or a CSV file path")


def read_csv(path: Path) -> Trace:
    """A trace from a CSV file with a header row: ``timestamp`` or ``second,requests``."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"{path}: cannot read the trace file ({exc})") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        raise TraceError(f"{path}: empty file; expected a header row `timestamp` or `second,requests`")
    header = [h.strip().lower() for h in rows[0]]
    body = [(i, r) for i, r in enumerate(rows[1:], start=2) if any(c.strip() for c in r)]
    if not body:
        raise TraceError(f"{path}: no data rows after the header")
    if header == ["timestamp"]:
        arrivals = _from_timestamps(path, body)
    elif header == ["second", "requests"]:
        arrivals = _from_rates(path, body)
    else:
        raise TraceError(f"{path}:1: header {','.join(rows[0])!r} not recognised; expected `timestamp` (one request "
                         "per row: seconds from the start, or an ISO 8601 time) or `second,requests`")
    return Trace(path.name, arrivals, f"{arrivals.sum():.0f} requests over {len(arrivals)} s from {path}")


def _from_timestamps(path: Path, body: list[tuple[int, list[str]]]) -> np.ndarray:
    times = []
    for line, row in body:
        if len(row) != 1:
            raise TraceError(f"{path}:{line}: expected one column (a timestamp), found {len(row)}")
        times.append(_timestamp(path, line, row[0].strip()))
    kinds = {type(t) for t in times}
    if len(kinds) > 1:
        raise TraceError(f"{path}: mixes numeric and ISO 8601 timestamps; use one kind throughout")
    if kinds == {datetime}:
        first = min(times)
        try:
            times = [(t - first).total_seconds() for t in times]
        except TypeError:
            raise TraceError(f"{path}: mixes timestamps with and without a time zone") from None
    offsets = np.asarray(times, dtype=float)
    if offsets.min() < 0:
        raise TraceError(f"{path}: negative timestamp {offsets.min()}; seconds count from 0")
    seconds = _length(path, int(offsets.max()) + 1)
    return np.bincount(offsets.astype(np.int64), minlength=seconds).astype(float)


def _timestamp(path: Path, line: int, cell: str) -> float | datetime:
    try:
        value = float(cell)
    except ValueError:
        try:
            return datetime.fromisoformat(cell.replace("Z", "+00:00"))
        except ValueError:
            raise TraceError(f"{path}:{line}: {cell!r} is neither seconds from the start nor an ISO 8601 time") \
                from None
    if not math.isfinite(value):
        raise TraceError(f"{path}:{line}: {cell!r} is not a finite number of seconds")
    return value


def _from_rates(path: Path, body: list[tuple[int, list[str]]]) -> np.ndarray:
    pairs = []
    for line, row in body:
        if len(row) != 2:
            raise TraceError(f"{path}:{line}: expected two columns (second, requests), found {len(row)}")
        try:
            second, rate = int(row[0]), float(row[1])
        except ValueError:
            raise TraceError(f"{path}:{line}: {','.join(row)!r}: second must be a whole number and requests a "
                             "number") from None
        if second < 0 or not math.isfinite(rate) or rate < 0:
            raise TraceError(f"{path}:{line}: second must be >= 0 and requests a finite number >= 0")
        pairs.append((second, rate))
    seconds = np.array([s for s, _ in pairs])
    if len(np.unique(seconds)) != len(seconds):
        raise TraceError(f"{path}: second {int(seconds[np.argmax(np.bincount(seconds))])} appears more than once")
    arrivals = np.zeros(_length(path, int(seconds.max()) + 1))
    arrivals[seconds] = [r for _, r in pairs]
    return arrivals


def _length(path: Path, seconds: int) -> int:
    if seconds > MAX_TRACE_SECONDS:
        raise TraceError(f"{path}: spans {seconds} s; at most {MAX_TRACE_SECONDS} s (7 days) can be simulated")
    return seconds


def load(name: str, peak_rps: float, seconds: int | None = None) -> Trace:
    """A built-in trace by name, or a CSV file by path."""
    if name in BUILTIN_TRACES:
        return builtin(name, peak_rps, seconds)
    path = Path(name)
    if path.suffix.lower() == ".csv" or path.exists():
        if not path.is_file():
            raise TraceError(f"trace {name!r}: no such file")
        return read_csv(path)
    return builtin(name, peak_rps, seconds)
