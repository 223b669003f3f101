"""Metrics as a scaler sees them: aggregated into periods, published late, and judged by alarms.

A `PeriodMetric` turns a per-second series into one datapoint per period (CloudWatch statistics Average, Sum,
Maximum, Minimum, or a gauge sampled once a period) that becomes visible only `delay` seconds after the period
closes: the agent's sample plus flush interval for the GPU metrics it publishes, zero for metrics AWS services
publish themselves (SQS, Auto Scaling group) — real delivery of those adds seconds to minutes, so the simulator
is optimistic there. An `Alarm` is CloudWatch's "M out of N datapoints" rule; missing datapoints are skipped
(treatMissingData: missing, the default).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

STATISTICS = ("avg", "sum", "max", "min", "last")
"""CloudWatch's Average, Sum, Maximum, Minimum; `last` is a gauge sampled once a period (SQS queue depth)."""

NO_DATAPOINT = object()
"""`PeriodMetric.poll` has no new datapoint this second."""


class PeriodMetric:
    def __init__(self, series: Sequence[float | None], period: int, delay: int, statistic: str = "avg"):
        if statistic not in STATISTICS:
            raise ValueError(f"unknown statistic {statistic!r}")
        self.series, self.period, self.delay, self.statistic = series, period, delay, statistic
        self._index = 0
        self.due = period + delay
        """Second at which the next datapoint becomes visible."""

    def poll(self, t: int) -> object:
        """The datapoint that became visible at second `t` (None: the period had no samples), or NO_DATAPOINT."""
        if t < self.due:
            return NO_DATAPOINT
        lo = self._index * self.period
        self._index += 1
        self.due += self.period
        if self.statistic == "last":
            return self.series[lo + self.period - 1]
        samples = [v for v in self.series[lo:lo + self.period] if v is not None]
        if not samples:
            return None
        if self.statistic == "avg":
            return sum(samples) / len(samples)
        return {"sum": sum, "max": max, "min": min}[self.statistic](samples)


class Alarm:
    """ALARM while at least `datapoints` of the last `periods` present datapoints breach."""

    def __init__(self, periods: int, datapoints: int, breaching: Callable[[float], bool]):
        self.breaching = breaching
        self.datapoints = datapoints
        self._window: deque[bool] = deque(maxlen=periods)
        self.in_alarm = False

    def update(self, value: float | None) -> bool:
        if value is not None:
            self._window.append(self.breaching(value))
            self.in_alarm = len(self._window) == self._window.maxlen and sum(self._window) >= self.datapoints
        return self.in_alarm
