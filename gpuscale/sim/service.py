"""The service model the simulator runs: one group's workload in whole seconds.

Requests are simulated as fluid cohorts, not one by one: a cohort that starts service at second t finishes spread
over the following seconds by the service-time distribution, discretised into equal-probability bins (the
``kernel``). That keeps a simulated day at one-second resolution cheap while latency percentiles still come out of
the full distribution of waiting plus service time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from ..config.workload import ColdStartConfig

KERNEL_BINS = 20
"""Equal-probability bins of the service-time distribution; the slowest bin is its 97.5th percentile."""


@dataclass(frozen=True)
class ServiceModel:
    concurrency: int
    """Requests one replica serves at once."""
    replicas_per_instance: int
    mean_service_seconds: float
    kernel_offsets: np.ndarray
    """Seconds after its start at which a share of a cohort finishes (ascending, >= 1)."""
    kernel_weights: np.ndarray
    """The share finishing at each offset; sums to 1."""
    cold_start: ColdStartConfig
    """The workload's cold start in whole seconds."""
    price_per_instance_hour: float
    currency: str
    request_timeout_seconds: int
    at_zero_capacity: str
    """``queue`` or ``refuse`` (the front end answers 502 while no replica is ready)."""
    client_retry_seconds: int

    @property
    def slots_per_instance(self) -> int:
        return self.concurrency * self.replicas_per_instance

    @property
    def longest_service_seconds(self) -> int:
        return int(self.kernel_offsets[-1])


def service_kernel(mean: float, distribution: str, cv: float) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (s) and weights of the service-time distribution in KERNEL_BINS equal-probability bins."""
    if distribution == "fixed":
        quantiles = [mean]
    else:
        probabilities = [(i + 0.5) / KERNEL_BINS for i in range(KERNEL_BINS)]
        if distribution == "exponential":
            quantiles = [-mean * math.log1p(-p) for p in probabilities]
        elif distribution == "lognormal":
            # cv^2 = exp(sigma^2) - 1, and the mean exp(mu + sigma^2 / 2) is the configured mean.
            sigma = math.sqrt(math.log1p(cv * cv))
            mu = math.log(mean) - sigma * sigma / 2
            normal = NormalDist()
            quantiles = [math.exp(mu + sigma * normal.inv_cdf(p)) for p in probabilities]
        else:
            raise ValueError(f"unknown service time distribution {distribution!r}")
    seconds = np.maximum(1, np.rint(quantiles)).astype(np.int64)
    offsets, counts = np.unique(seconds, return_counts=True)
    return offsets, counts / counts.sum()


def service_model(workload: Any) -> ServiceModel:
    """The simulator's view of a group's `workload:` (gpuscale.config.workload.WorkloadConfig)."""
    st, cs = workload.service_time, workload.cold_start
    offsets, weights = service_kernel(st.mean_seconds, st.distribution, st.cv)
    resume = None if cs.warm_pool_resume_seconds is None else _whole(cs.warm_pool_resume_seconds)
    plugin = None if cs.device_plugin_ready_seconds is None else _whole(cs.device_plugin_ready_seconds)
    cold_start = ColdStartConfig(_whole(cs.node_provisioning_seconds), _whole(cs.image_pull_seconds),
                                 _whole(cs.model_load_seconds), resume, plugin)
    return ServiceModel(
        concurrency=workload.concurrency_per_replica,
        replicas_per_instance=workload.replicas_per_instance,
        mean_service_seconds=st.mean_seconds,
        kernel_offsets=offsets,
        kernel_weights=weights,
        cold_start=cold_start,
        price_per_instance_hour=workload.price_per_instance_hour,
        currency=workload.currency,
        request_timeout_seconds=_whole(workload.request_timeout_seconds),
        at_zero_capacity=workload.at_zero_capacity,
        client_retry_seconds=max(1, _whole(workload.client_retry_seconds)),
    )


def _whole(seconds: float) -> int:
    return int(math.ceil(seconds))
