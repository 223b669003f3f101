"""EC2 Auto Scaling as the stack configures it (components/gpu_scaling_policies.py), plus the fixed and ideal fleets.

What the model follows, from the EC2 Auto Scaling and CloudWatch documentation:
- Target tracking: scale out when the metric is above the target for 3 consecutive datapoints, scale in when it is
  below the scale-in threshold for 15 (the low alarm target tracking creates sits about 10% under the target);
  the new capacity is proportional, ceil(capacity x metric / target). With two target tracking policies, out when either
  asks, in only when every policy that may scale in agrees. We apply the same datapoint counts at 10 s and 30 s
  periods (high-resolution target tracking); AWS does not publish those counts.
- Instance warmup: an instance in warmup does not count toward the group's metric nor as current capacity when
  a policy computes a scale-out, so repeated alarms in one step add capacity once.
- Step scaling (PercentChangeInCapacity): below 1 instance rounds up to MinAdjustmentMagnitude 1, above it rounds
  down.
- An alarm with an Auto Scaling action invokes the policy when it enters ALARM and again every minute it stays
  there (CloudWatch: "Alarm actions").
- Scale to zero and wake (the stack's own alarms): the group goes to zero after `idleMinutes` one-minute periods
  with the queue empty, nothing in flight and GPU utilisation at or below the idle level. The wake alarm reads the
  queue's visible messages while the desired capacity was zero all minute (one datapoint of one minute: SQS
  publishes its metrics once a minute, "Monitoring Amazon SQS queues using CloudWatch"), and its ExactCapacity
  policy sets the capacity of the step that backlog falls in (gpuscale.config.wake.wake_steps, the steps the
  component deploys). SQS and group datapoints count as visible when their minute closes: real delivery adds
  seconds, and a queue inactive for six hours (no API call) publishes again only up to 15 minutes after it is
  used (same page), which the simulator does not model; it is optimistic there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..config.scaling import AWS_METRIC_PERIOD
from ..config.wake import WAKE_THRESHOLD, wake_capacity, wake_steps
from .engine import Engine
from .fleet import InstanceFleet, busy_units
from .service import ServiceModel
from .signals import NO_DATAPOINT, Alarm, PeriodMetric

SCALE_OUT_DATAPOINTS = 3
SCALE_IN_DATAPOINTS = 15
SCALE_IN_THRESHOLD = 0.9
ALARM_REINVOKE_SECONDS = 60


def agent_delay(agent: Any) -> int:
    """Seconds from a GPU sample until CloudWatch has it: the sample interval plus a flush."""
    return int(math.ceil(agent.sample_interval_seconds + agent.flush_interval_seconds))


def instance_fleet(svc: ServiceModel, group: Any, *, scaling: Any = None, ideal: bool = False) -> InstanceFleet:
    """The group's instances, its minimum size serving at second 0: its bounds, warm pool and warmup; protection and
    drain from its scaling section."""
    protect = ideal or bool(scaling and scaling.scale_in_protection)
    drain = scaling.drain_timeout_seconds if scaling is not None else 0
    return InstanceFleet(svc, group.min_size, group.max_size, group.min_size,
                         warmup=0 if ideal else group.instance_warmup_seconds, warm_pool=group.warm_pool,
                         protect=protect, drain_seconds=drain)


class _Invoker:
    """An alarm driving a policy: invoked on entering ALARM, then once a minute while it stays there."""

    def __init__(self, alarm: Alarm):
        self.alarm, self._last = alarm, None

    def update(self, t: int, value: float | None) -> bool:
        was = self.alarm.in_alarm
        now = self.alarm.update(value)
        if now and (not was or self._last is None or t - self._last >= ALARM_REINVOKE_SECONDS):
            self._last = t
            return True
        if not now:
            self._last = None
        return False


class _TargetTracking:
    def __init__(self, metric: PeriodMetric, target: float, scale_in: bool):
        self.metric, self.target, self.scale_in = metric, target, scale_in
        self.out = _Invoker(Alarm(SCALE_OUT_DATAPOINTS, SCALE_OUT_DATAPOINTS, lambda v: v > target))
        self.low = _Invoker(Alarm(SCALE_IN_DATAPOINTS, SCALE_IN_DATAPOINTS, lambda v: v < SCALE_IN_THRESHOLD * target))
        self.wants_in: int | None = None
        """Capacity this policy's scale-in alarm last asked for, while it is in ALARM."""

    def poll(self, t: int, capacity: int) -> int | None:
        """A scale-out proposal when the policy fires at second `t`; `capacity` is what the metric averages over."""
        value = self.metric.poll(t)
        if value is NO_DATAPOINT:
            return None
        proposal = None if value is None else math.ceil(capacity * value / self.target - 1e-9)
        out = self.out.update(t, value)
        fired_in = self.low.update(t, value)
        if not self.low.alarm.in_alarm:
            self.wants_in = None
        elif fired_in and proposal is not None:
            self.wants_in = proposal
        return proposal if out else None


class _PerInstance(Sequence):
    """Demand per in-service instance, second by second (None with no instance in service: the metric math
    divides by zero and yields no datapoint)."""

    def __init__(self, demand: list[float], in_service: list[int]):
        self.demand, self.in_service = demand, in_service

    def __len__(self) -> int:
        return len(self.demand)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = self.in_service[index]
        return self.demand[index] / n if n else None


class StackScaler:
    """The group's `scaling:` section (gpuscale.config.scaling.ScalingConfig) as EC2 Auto Scaling runs it."""

    def __init__(self, group: Any, scaling: Any, agent: Any):
        self.group, self.scaling, self.delay = group, scaling, agent_delay(agent)
        self._due = 0
        self._metrics: list[PeriodMetric] = []

    def _bind(self, sim: Engine) -> None:
        """Alarms over the simulation's series, as the component defines them."""
        s, delay = self.scaling, self.delay
        target = s.target
        self.gpu = _TargetTracking(PeriodMetric(sim.util, target.period_seconds, delay),
                                   target.target_gpu_utilization, not target.disable_scale_in)
        self.demand = None
        if s.demand is not None:
            # SQS: queue depth per in-service instance, a gauge SQS samples once a minute. ALB: requests per target
            # summed over the minute.
            sqs = s.demand.signal.kind == "sqs"
            per_instance = _PerInstance(sim.waiting if sqs else sim.received, sim.in_service)
            self.demand = _TargetTracking(PeriodMetric(per_instance, AWS_METRIC_PERIOD, 0, "last" if sqs else "sum"),
                                          s.demand.target_per_instance, not s.demand.disable_scale_in)
        self.burst = None
        if s.burst is not None:
            threshold = target.target_gpu_utilization + s.burst.steps[0].lower_bound_above_target
            self.burst = PeriodMetric(sim.util, s.burst.period_seconds, delay)
            periods = s.burst.evaluation_periods
            self.burst_alarm = _Invoker(Alarm(periods, periods, lambda v: v >= threshold))
        self.zero = s.scale_to_zero
        if self.zero is not None:
            # Idle, per minute: the queue's visible and in-flight samples (SQS gauges) are zero and the mean GPU
            # utilisation over the minute is at or below the idle level.
            self.idle_queue = PeriodMetric(sim.outstanding_at, AWS_METRIC_PERIOD, delay, "last")
            self.idle_util = PeriodMetric(sim.util, AWS_METRIC_PERIOD, delay, "avg")
            self.idle_alarm = _Invoker(Alarm(self.zero.idle_minutes, self.zero.idle_minutes, lambda v: v >= 1))
            # Wake: IF(desired == 0, visible, 0) over one minute, the queue's depth a gauge SQS samples once a
            # minute and the desired capacity its Maximum; the policy's steps size the capacity to that backlog.
            self.wake_queue = PeriodMetric(sim.waiting, AWS_METRIC_PERIOD, 0, "last")
            self.wake_desired = PeriodMetric(sim.desired, AWS_METRIC_PERIOD, 0, "max")
            self.wake_alarm = _Invoker(Alarm(1, 1, lambda v: v >= WAKE_THRESHOLD))
            self.wake_steps = wake_steps(self.zero.warm_minimum, self.zero.wake_messages_per_instance,
                                         self.zero.wake_maximum)
        self._metrics = [m for m in (self.gpu.metric, self.demand and self.demand.metric, self.burst) if m]
        if self.zero is not None:
            self._metrics += [self.idle_queue, self.idle_util, self.wake_queue, self.wake_desired]

    def step(self, t: int, sim: Engine) -> None:
        if t < self._due:
            return  # no datapoint becomes visible before then
        if not self._metrics:
            self._bind(sim)
        fleet: InstanceFleet = sim.fleet
        desired = fleet.desired
        proposals = [self.gpu.poll(t, fleet.counted)]
        if self.demand is not None:
            proposals.append(self.demand.poll(t, fleet.in_service))
        out = [p for p in proposals if p is not None]
        if out:
            desired = max(desired, max(out))
        else:
            voters = [p for p in (self.gpu, self.demand) if p is not None and p.scale_in]
            if voters and all(p.wants_in is not None for p in voters):
                desired = min(desired, max(p.wants_in for p in voters))
                for p in voters:
                    p.wants_in = None
        if self.burst is not None:
            value = self.burst.poll(t)
            if value is not NO_DATAPOINT and self.burst_alarm.update(t, value):
                desired = max(desired, self._burst_capacity(fleet.counted, value))
        if self.zero is not None:
            desired = self._idle_and_wake(t, fleet, desired)
        if desired != fleet.desired:
            fleet.set_desired(t, desired)
        self._due = min(m.due for m in self._metrics)

    def _burst_capacity(self, counted: int, value: float) -> int:
        over = value - self.scaling.target.target_gpu_utilization
        steps = [s for s in self.scaling.burst.steps if over >= s.lower_bound_above_target]
        percent = steps[-1].adjustment_percent if steps else self.scaling.burst.steps[0].adjustment_percent
        change = counted * percent / 100
        return counted + (1 if change < 1 else int(change))

    def _idle_and_wake(self, t: int, fleet: InstanceFleet, desired: int) -> int:
        queue, mean_util = self.idle_queue.poll(t), self.idle_util.poll(t)
        if queue is not NO_DATAPOINT:
            # FILL(util_sum, 0): silent agents (no instance) count as idle GPUs.
            idle = queue < 1 - 1e-9 and (mean_util or 0.0) <= self.zero.idle_gpu_utilization
            if self.idle_alarm.update(t, 1.0 if idle else 0.0):
                desired = 0
        waiting, was_desired = self.wake_queue.poll(t), self.wake_desired.poll(t)
        if waiting is not NO_DATAPOINT:
            backlog = waiting if was_desired == 0 else 0.0
            if self.wake_alarm.update(t, backlog):
                # ExactCapacity; nothing else raised a group that was at zero all minute (its GPU metrics are
                # empty), so setting the step's capacity and taking the largest proposal agree.
                desired = max(desired, wake_capacity(self.wake_steps, backlog))
        return desired


class FixedScaler:
    """No scaling policy: the group stays where it is (the `static` preset, or a group without `scaling:`)."""

    def step(self, t: int, sim: Engine) -> None:
        return None


class IdealScaler:
    """Instant, perfect decisions with the same cold start: a bound on what any scaler can do.

    It knows the trace. Every second it launches what the outstanding work can use — an instance (warm pool first,
    then cold) only if it will be serving before the work would be done without it — and, ahead of time, what the
    arrivals one cold start from now will need, so that capacity is ready when they come. An idle instance stays
    only while arrivals within one cold start will need it (relaunching would cost more); busy ones leave the
    moment they are idle.
    """

    def __init__(self) -> None:
        self._launch_ahead: list[int] = []
        self._keep_ahead: list[int] = []

    def _prepare(self, sim: Engine) -> None:
        svc, fleet = sim.svc, sim.fleet
        # Instances busy at each second if every request were served on arrival: arrivals convolved with the
        # probability that a request is still in service d seconds after it starts.
        survival = np.ones(svc.longest_service_seconds + 1)
        for offset, weight in zip(svc.kernel_offsets, svc.kernel_weights):
            survival[offset:] -= weight
        in_service = np.convolve(sim.arrivals, np.clip(survival, 0, 1))[:sim.horizon]
        need = np.minimum(np.ceil(in_service / svc.slots_per_instance - 1e-9), fleet.max_size)
        lead = svc.cold_start.cold_seconds
        padded = np.concatenate([need, np.zeros(lead + 1)])
        self._launch_ahead = padded[lead:lead + sim.horizon].astype(int).tolist()
        self._keep_ahead = sliding_window_view(padded, lead + 1)[:sim.horizon].max(axis=1).astype(int).tolist()

    def step(self, t: int, sim: Engine) -> None:
        if not self._launch_ahead:
            self._prepare(sim)
        fleet: InstanceFleet = sim.fleet
        outstanding = sim.queued + sim.busy + sim.retrying
        launch = max(self._launch_ahead[t], min(fleet.max_size, busy_units(outstanding, sim.svc.slots_per_instance)))
        if launch > fleet.ready and launch > self._launch_ahead[t]:
            launch = max(self._launch_ahead[t], self._useful(t, fleet, sim.svc, outstanding, launch))
        desired = max(launch, min(fleet.total, self._keep_ahead[t]))
        if desired != fleet.desired:
            fleet.set_desired(t, desired)

    @staticmethod
    def _useful(t: int, fleet: InstanceFleet, svc: ServiceModel, outstanding: float, need: int) -> int:
        """Of `need` instances, how many can serve before the outstanding work would be done without them."""
        per = svc.slots_per_instance
        cs = svc.cold_start
        starts = sorted(r - t for r in fleet.launch_ready_times(t))
        warm = fleet.warm if cs.warm_seconds is not None else 0
        starts += [cs.warm_seconds] * warm + [cs.cold_seconds] * max(0, need - fleet.ready - len(starts) - warm)
        work = outstanding * svc.mean_service_seconds  # request-seconds still to serve
        useful, slots, clock = fleet.ready, fleet.ready * per, 0.0
        for start in starts[:need - fleet.ready]:
            if start >= clock + (work / slots if slots else math.inf):
                break  # the work is done before this instance could serve
            work -= slots * (start - clock)
            clock, slots, useful = start, slots + per, useful + 1
        return useful
