"""The wake policy's step table: the capacity a wake from zero sets for each backlog on the queue.

One definition for the three places that need it: the config reader (gpuscale/config/scaling.py) validates the
inputs, the component (components/gpu_scaling_policies.py) renders the steps as PutScalingPolicy's
StepAdjustments, and the simulator (gpuscale/sim/ec2.py) applies them as AWS would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_STEP_ADJUSTMENTS = 20
"""Step adjustments per step scaling policy: 20, not adjustable (EC2 Auto Scaling user guide, "Quotas for Auto Scaling
resources and groups")."""
WAKE_THRESHOLD = 1
"""The wake alarm's threshold: one visible message at zero capacity."""


@dataclass(frozen=True)
class WakeStep:
    """One step adjustment of the wake policy: while the backlog is in [messages_from, messages_below), set capacity."""

    messages_from: int
    messages_below: int | None
    """None: no upper bound."""
    capacity: int


def wake_steps(warm_minimum: int, messages_per_instance: float | None, maximum: int | None) -> tuple[WakeStep, ...]:
    """The capacity the wake sets for each backlog, as the ExactCapacity steps of its policy (the component renders
    them, the simulator applies them).

    The capacity for m visible messages is ceil(m / messages_per_instance), at least warm_minimum and at most
    `maximum`. m is a count (SQS reports whole messages), so "needs more than c instances" is m >= floor(c x per
    instance) + 1, and the steps' half-open ranges [from, below) neither overlap nor leave a gap. A policy holds at
    most MAX_STEP_ADJUSTMENTS steps: with more, evenly spaced ones are kept and each backlog gets the next kept
    capacity up (a little more than it needs rather than a second wave a cold start later).
    """
    if messages_per_instance is None or maximum is None or maximum <= warm_minimum:
        return (WakeStep(WAKE_THRESHOLD, None, warm_minimum),)
    every, start = [], WAKE_THRESHOLD
    for level in range(warm_minimum, maximum):
        # 1e-9: 0.29 x 100 is 28.999999999999996 in floating point, and 29 messages still fit 100 instances.
        below = math.floor(level * messages_per_instance + 1e-9) + 1
        if below > start:  # a capacity no whole number of messages maps to gets no step
            every.append(WakeStep(start, below, level))
            start = below
    every.append(WakeStep(start, None, maximum))
    if len(every) <= MAX_STEP_ADJUSTMENTS:
        return tuple(every)
    kept = sorted({round(i * (len(every) - 1) / (MAX_STEP_ADJUSTMENTS - 1)) for i in range(MAX_STEP_ADJUSTMENTS)})
    steps, start = [], WAKE_THRESHOLD
    for i in kept:  # each kept step also covers the dropped ones below it
        steps.append(WakeStep(start, every[i].messages_below, every[i].capacity))
        start = every[i].messages_below
    return tuple(steps)


def wake_capacity(steps: tuple[WakeStep, ...], messages: float) -> int | None:
    """The capacity of the step whose range holds `messages` (as AWS picks it: lower bound inclusive, upper bound
    exclusive above the threshold); None below the threshold."""
    for step in steps:
        if step.messages_from <= messages and (step.messages_below is None or messages < step.messages_below):
            return step.capacity
    return None
