"""Running presets on a group and summarising each run: cost, latency, time to capacity, queued and refused."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config.kubernetes import read_kubernetes
from ..config.reader import Section
from .engine import Engine, Run
from .presets import PRESETS, StackEnv
from .service import ServiceModel, service_model
from .traces import Trace

SETTLE_TAIL_SECONDS = 3600
"""Simulated after the trace ends unless --duration says otherwise: the slowest preset (a 30 min grace to zero,
then the cluster-autoscaler's 10 min) has settled by then."""


class SimulationError(ValueError):
    """A simulation that cannot run as asked; the message names the input."""


@dataclass(frozen=True)
class Result:
    preset: str
    source: str
    instance_seconds: float
    cost: float
    cost_p: float
    """Replica-steps: one replica for one step (the source articles' unit P)."""
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None
    time_to_capacity: int | None
    completion: int | None
    """Seconds from the first request until every request was served; None when some gave up or still waited."""
    served: float
    queued: float
    """Requests that waited at least a second before service."""
    refused: float
    timed_out: float
    cost_vs_ideal: float | None = None
    completion_vs_ideal: float | None = None
    first_new_pod: int | None = None
    """Services: seconds from the first request until the first pod the burst added serves (the time to first
    response of a burst onto zero); None for groups, or when no pod was added."""

    @property
    def instance_hours(self) -> float:
        return self.instance_seconds / 3600


@dataclass
class GroupSimulation:
    group: str
    trace: Trace
    svc: ServiceModel
    step_seconds: float
    window: int
    results: list[Result]
    runs: dict[str, Run] = field(repr=False, default_factory=dict)
    kind: str = "group"
    """What was simulated: ``group`` (a node group or Auto Scaling group) or ``service`` (a model service)."""
    notes: tuple[str, ...] = ()
    """Lines the report prints under its heading (a service's node group, cold-start stages, front end at zero)."""

    @property
    def currency(self) -> str:
        return self.svc.currency


def simulate_group(group: Any, agent: Any, trace: Trace, presets: list[str], *, duration: int | None = None,
                   step_seconds: float | None = None, static_replicas: int | None = None,
                   kubernetes: Any = None) -> GroupSimulation:
    """Run each preset on one group (an Auto Scaling group or an EKS node group); costs are over one window common
    to all of them. `kubernetes`: the stack's gpuscale.config.kubernetes.KubernetesConfig (None: every key at its
    default), whose cluster-autoscaler sizes the Kubernetes presets' nodes."""
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        raise SimulationError(f"preset {unknown[0]!r}: not one of {', '.join(PRESETS)}")
    svc = group_service(group)
    horizon = duration if duration is not None else trace.seconds + SETTLE_TAIL_SECONDS
    if kubernetes is None:
        kubernetes = read_kubernetes(Section({}, "gpuscale:kubernetes"))
    env = StackEnv(agent, kubernetes.cluster_autoscaler)
    runs = {}
    for name in presets:
        setup = PRESETS[name].build(svc, group, env, static_replicas, trace.starts_at_zero)
        runs[name] = Engine(svc, setup.fleet, setup.scaler, trace.arrivals, horizon, setup.at_zero_capacity).run()
    window = duration if duration is not None else \
        max(trace.seconds, *(r.settled_at + 1 for r in runs.values()))
    step = step_seconds or svc.mean_service_seconds
    results = [summarise(name, run, window, step) for name, run in runs.items()]
    if "ideal" in runs:
        results = [with_ratios(r, next(i for i in results if i.preset == "ideal")) for r in results]
    return GroupSimulation(group.name, trace, svc, step, window, results, runs)


def group_service(group: Any) -> ServiceModel:
    """The service model of a group's `workload:` section."""
    if group.workload is None:
        raise SimulationError(f"group {group.name!r} has no workload: section; the simulator needs its service time, "
                              "concurrency, cold start and price (see docs/simulate.md)")
    return service_model(group.workload)


def peak_rps(group: Any, svc: ServiceModel) -> float:
    """Requests per second the group serves with every instance up: what built-in traces are sized to."""
    return group.max_size * svc.slots_per_instance / svc.mean_service_seconds


def summarise(name: str, run: Run, window: int, step_seconds: float, source: str | None = None) -> Result:
    """One run's figures over `window` seconds; `source`: what the preset is (default: the group preset's)."""
    svc = run.svc
    instance_seconds = float(run.billed_instances[:window].sum())
    p50, p95, p99 = latency_percentiles(run, (0.5, 0.95, 0.99))
    completion = None
    if run.finished_at is not None and run.first_arrival is not None and run.timed_out < 0.5:
        completion = run.finished_at - run.first_arrival
    served = float(run.wait_hist.sum())
    return Result(
        preset=name, source=source if source is not None else PRESETS[name].source, instance_seconds=instance_seconds,
        cost=instance_seconds / 3600 * svc.price_per_instance_hour,
        cost_p=instance_seconds * svc.replicas_per_instance / step_seconds,
        latency_p50=p50, latency_p95=p95, latency_p99=p99, time_to_capacity=run.time_to_capacity,
        completion=completion, served=served, queued=float(run.wait_hist[1:].sum()), refused=run.refused,
        timed_out=run.timed_out)


def latency_percentiles(run: Run, quantiles: tuple[float, ...]) -> tuple[float | None, ...]:
    """Percentiles of wait + service time over the requests served (the fluid cohorts' full distribution)."""
    waits = run.wait_hist
    served = waits.sum()
    if served <= 0:
        return tuple(None for _ in quantiles)
    last = int(np.flatnonzero(waits)[-1])
    kernel = np.zeros(int(run.svc.kernel_offsets[-1]) + 1)
    kernel[run.svc.kernel_offsets] = run.svc.kernel_weights
    cumulative = np.cumsum(np.convolve(waits[:last + 1], kernel)) / served
    return tuple(float(np.searchsorted(cumulative, q - 1e-9)) for q in quantiles)


def with_ratios(result: Result, ideal: Result) -> Result:
    from dataclasses import replace

    cost = result.cost / ideal.cost if ideal.cost > 0 else None
    completion = None
    if result.completion is not None and ideal.completion:
        completion = result.completion / ideal.completion
    elif result.completion is not None and ideal.completion == 0:
        completion = math.inf if result.completion else 1.0
    return replace(result, cost_vs_ideal=cost, completion_vs_ideal=completion)
