"""`gpuscale simulate --service`: one model service on the EKS path, end to end, from its config.

Requests reach the front end; the service's pod autoscaler (Knative's KPA, an HPA, or KEDA, as configured in
`gpuscale:services`) sets a replica count; new pods wait Pending until a node has a free GPU; cluster-autoscaler
(after its 30 s wait for GPU pods, at its next scan) adds nodes to the service's node group; each node registers
after node provisioning and advertises its GPUs once the device plugin has reported; a pod placed on a node pulls
the image (once per node) and loads the model, then serves (gpuscale/sim/pods.py). At zero the front end queues or
refuses: Knative's activator holds requests, a KEDA service woken from an SQS queue finds its requests on the queue,
and any other Standard-mode service has no endpoint, so the gateway answers 502/503 and clients retry.

The autoscaler models are the upstream-faithful ones (knative.py, hpa.py, keda.py), built here from the service's
config dataclasses (gpuscale/config/pod_autoscalers.py); the presets are values of the same dataclasses, so a preset here
is exactly what the service would deploy with `scaling: {preset: NAME}`. Each stage of a cold start is its own
number (ServiceModel.cold_start), so levers that shorten one (a model cache, an image cache, GPU headroom) change
that number only.

What the model assumes, beyond the autoscalers' own documentation:
- The service is alone on its node group (the group's nodes serve only its pods); its nodes are the group's, from
  the group's minSize up to as many as its maxReplicas need.
- A GPU metric is the mean over the service's pods holding a GPU, the agent's sample interval plus one flush late,
  averaged over the trigger's period; pods still loading their model read an idle GPU.
- KEDA's and the HPA's metrics are read at each 15 s HPA sync; KEDA's activation at each polling interval. An
  `hpa` service's GPU metric is the same mean with a `Value` target (ceil(ready pods x mean / target)), which is
  also what a per-pod `AverageValue` through a metrics adapter proposes when every pod reports.
- Pods are removed only once idle (a preStop hook or the queue-proxy drains in-flight requests).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

from ..config.pod_autoscalers import HpaScaling, KedaScaling, KpaScaling, PRESETS, Scaling, at_zero_behaviour
from ..config.services import ServiceConfig
from ..config.serving import KNATIVE_KEYS, KnativeAutoscalerConfig
import numpy as np

from .cluster_autoscaler import ca_settings
from .ec2 import IdealScaler, agent_delay, instance_fleet
from .engine import Engine
from .hpa import HorizontalController, listed_pods
from .keda import GpuUtilizationTrigger, KedaScaler, QueueTrigger, RequestRateTrigger, ScaledObject
from .knative import PROGRESS_DEADLINE, DeciderSpec, KpaScaler, kpa_config, kpa_target
from .pods import PodCluster
from .results import SETTLE_TAIL_SECONDS, GroupSimulation, SimulationError, summarise, with_ratios
from .service import ServiceModel, service_model
from .traces import Trace

STACK, IDEAL = "stack", "ideal"
SERVICE_PRESETS = (STACK, *PRESETS, IDEAL)
"""What `--compare` runs on a service: its own scaling, every preset, and the ideal bound."""

SOURCES = {STACK: "the service's own scaling: section, as configured",
           IDEAL: "instant, perfect decisions, same cold start (node, device plugin, image, model): the bound",
           **{name: p.source for name, p in PRESETS.items()}}


@dataclass(frozen=True)
class ServicePlan:
    """One way to scale the service: its scaling, its floor of replicas and the cluster-wide Knative settings."""

    name: str
    scaling: Scaling
    min_replicas: int
    knative: KnativeAutoscalerConfig


def service_plans(service: ServiceConfig, knative: KnativeAutoscalerConfig, names: list[str]) -> list[ServicePlan]:
    """The service's own scaling (`stack`) and the named presets on the same service: each preset keeps the service's
    minReplicas (a latency choice) unless it has a floor of its own, and brings the cluster-wide values it needs."""
    plans = []
    for name in names:
        if name == STACK:
            plans.append(ServicePlan(name, service.scaling, service.min_replicas, knative))
        elif name in PRESETS:
            p = PRESETS[name]
            floor = min(service.max_replicas, max(service.min_replicas, p.min_replicas or 0))
            needs = {KNATIVE_KEYS[key][0]: value for key, value in p.knative}
            plans.append(ServicePlan(name, p.scaling, floor, replace(knative, **needs)))
    return plans


def service_bounds(service: ServiceConfig, group: Any) -> tuple[int, int, int, int]:
    """(min nodes, max nodes, min pods, max pods): the group's nodes as far as the service can use them."""
    per = service.workload.replicas_per_instance
    max_nodes = min(group.max_size, -(-service.max_replicas // per))
    max_pods = min(service.max_replicas, max_nodes * per)
    return min(group.min_size, max_nodes), max_nodes, min(service.min_replicas, max_pods), max_pods


def pod_cluster(svc: ServiceModel, service: ServiceConfig, group: Any, cluster_autoscaler: Any, min_pods: int,
                start_at_zero: bool, headroom: int = 0, prepulled: bool = False) -> PodCluster:
    """`headroom`: nodes held warm by placeholders (gpuscale:headroom), up before the trace, beyond the service's;
    `prepulled`: the placeholders pull the service's image, so a pod placed on their node pays no image pull."""
    min_nodes, max_nodes, _, max_pods = service_bounds(service, group)
    settings = ca_settings(cluster_autoscaler, group.autoscaler)
    headroom = min(headroom, max(0, group.max_size - min_nodes))
    # The group's floor is up before the trace begins; pods above it start from nothing on a burst.
    return PodCluster(svc, min_nodes, min(group.max_size, max_nodes + headroom), min(min_pods, max_pods), max_pods,
                      settings, start_at_zero=start_at_zero and not min_nodes, headroom=headroom,
                      prepulled=prepulled and headroom > 0)


def headroom_nodes(config: Any, service: ServiceConfig) -> int:
    """The warm nodes gpuscale:headroom keeps on the service's node group (0 without)."""
    return next((h.nodes for h in getattr(config, "headroom", ()) if h.node_group == service.node_group), 0)


def headroom_prepulls(config: Any, service: ServiceConfig) -> bool:
    """Whether the service's node group's headroom pre-pulls the service's image (HeadroomConfig.prepulls)."""
    return any(h.prepulls(service) for h in getattr(config, "headroom", ()) if h.node_group == service.node_group)


def first_new_pod_seconds(run: Any) -> int | None:
    """Seconds from the first request until the first pod the burst added serves (ready pods above those ready at
    the first request); None when no pod was added."""
    if run.first_arrival is None:
        return None
    ready = run.ready_replicas
    later = np.flatnonzero(ready[run.first_arrival:] > ready[run.first_arrival])
    return int(later[0]) if len(later) else None


def build_scaler(scaling: Scaling, svc: ServiceModel, cluster: PodCluster, agent: Any,
                 knative: KnativeAutoscalerConfig, progress_deadline: int = PROGRESS_DEADLINE) -> Any:
    """The pod autoscaler model of a service's scaling dataclass; `progress_deadline`: the service's (Knative gives
    up activating a revision after it)."""
    if isinstance(scaling, KpaScaling):
        config = kpa_config(scaling, knative, progress_deadline)
        target, total = kpa_target(scaling, knative, svc.concurrency)
        spec = DeciderSpec(target, total, config.target_burst_capacity, config.panic_threshold_percentage / 100,
                           config.max_scale_up_rate, config.max_scale_down_rate, config.stable_window,
                           config.scale_down_delay, config.activation_scale)
        return KpaScaler(svc.concurrency, cluster.min_pods, cluster.max_pods, config, spec=spec,
                         rps=scaling.metric == "rps")
    delay, floor = agent_delay(agent), cluster.ready_replicas
    if isinstance(scaling, HpaScaling):
        trigger = GpuUtilizationTrigger(scaling.target, period=scaling.period_seconds, delay=delay, idle_pods=floor)
        hpa = HorizontalController(max(1, cluster.min_pods), cluster.max_pods, (trigger.metric,),
                                   behavior=scaling.behavior)
        _idle_history(hpa, floor)
        return HpaTriggerScaler(hpa, trigger)
    if isinstance(scaling, KedaScaling):
        triggers = []
        if scaling.wake is not None:
            triggers.append(wake_trigger(scaling.wake, svc))
        if scaling.gpu_utilization is not None:
            g = scaling.gpu_utilization
            triggers.append(GpuUtilizationTrigger(g.target, period=g.period_seconds, delay=delay, idle_pods=floor))
        so = ScaledObject(min_replica_count=cluster.min_pods, max_replica_count=cluster.max_pods,
                          polling_interval=scaling.polling_interval_seconds,
                          cooldown_period=scaling.cooldown_period_seconds, behavior=scaling.behavior)
        keda = KedaScaler(so, *triggers)
        _idle_history(keda.hpa, floor)
        return keda
    raise SimulationError(f"no model for scaling {scaling!r}")


def _idle_history(hpa: HorizontalController, floor: int) -> None:
    """A service idle at its floor before the trace: its HPA recommended the floor at its last sync, so a
    scale-up stabilization window holds from the start (a new HPA, with no history, would scale up at once)."""
    if floor:
        hpa.record_recommendation(0, floor)


def wake_trigger(wake: Any, svc: ServiceModel) -> Any:
    """A KEDA demand trigger; without a per-replica target, what one replica serves."""
    if wake.kind == "sqs":
        per = wake.per_replica if wake.per_replica is not None else svc.concurrency
        return QueueTrigger(queue_length=per, activation_queue_length=wake.activation)
    per = wake.per_replica if wake.per_replica is not None else svc.concurrency / svc.mean_service_seconds
    # The rate moves only when Prometheus next scrapes the gateway: seen up to a scrape interval late.
    return RequestRateTrigger(per, period=wake.period_seconds, delay=wake.scrape_interval_seconds,
                              activation=wake.activation)


class HpaTriggerScaler:
    """A plain HPA (no KEDA) on the service's mean GPU utilisation, synced every 15 s; never at zero."""

    def __init__(self, hpa: HorizontalController, trigger: GpuUtilizationTrigger, sync_period: int = 15):
        self.hpa, self.trigger, self.period = hpa, trigger, sync_period

    def step(self, t: int, sim: Any) -> None:
        self.trigger.observe(t, sim)
        if t % self.period:
            return
        cluster = sim.fleet
        phases = cluster.pod_phases
        value = self.trigger.value(t, sim)
        reading = None if value is None else (int(value * 1000),)
        desired = self.hpa.sync(t, cluster.desired, sum(phases), listed_pods(*phases), [reading])
        if desired != cluster.desired:
            cluster.set_desired(t, desired)


MODEL_CACHE, IMAGE_CACHE, HEADROOM, PREPULL = "model cache", "image cache", "headroom", "headroom pre-pull"
LEVERS = (MODEL_CACHE, IMAGE_CACHE, HEADROOM, PREPULL)
"""The cold-start levers of issue 15 a service may have on; `--compare` runs the service without each one it has."""


def without(lever: str) -> str:
    """The `--compare` row of the service's own scaling with one of its levers off."""
    return f"no {lever}"


def levers_of(service: ServiceConfig, config: Any) -> tuple[str, ...]:
    """The levers configured for the service: its model cache, its node group's image cache and headroom."""
    group = next(g for g in config.node_groups if g.name == service.node_group)
    on = {MODEL_CACHE: service.model_cache is not None, IMAGE_CACHE: getattr(group, "image_cache", None) is not None,
          HEADROOM: headroom_nodes(config, service) > 0, PREPULL: headroom_prepulls(config, service)}
    return tuple(lever for lever in LEVERS if on[lever])


def lever_workload(service: ServiceConfig, group: Any, levers: tuple[str, ...]) -> Any:
    """The service's workload with the given levers on: a model cache makes the model load the cache's read time
    (the model's size at the cache's throughput); an image cache leaves of the image pull what its config says
    (0 when the snapshot holds the image)."""
    cold = service.workload.cold_start
    if MODEL_CACHE in levers and service.model_cache is not None:
        cold = replace(cold, model_load_seconds=service.model_cache.read_seconds)
    if IMAGE_CACHE in levers and getattr(group, "image_cache", None) is not None:
        cold = replace(cold, image_pull_seconds=group.image_cache.pull_seconds)
    return replace(service.workload, cold_start=cold)


def simulate_service(service: ServiceConfig, config: Any, trace: Trace, presets: list[str], *,
                     duration: int | None = None, step_seconds: float | None = None,
                     lever_rows: bool = False) -> GroupSimulation:
    """Run the service's own scaling and the named presets (and `ideal`) on one trace; costs over one common
    window. `config`: the validated StackConfig (agent, cluster-autoscaler, serving, node groups). `lever_rows`
    (`--compare`): also the service's own scaling without each of its levers, one row each (`no model cache`, ...)."""
    unknown = [p for p in presets if p not in SERVICE_PRESETS]
    if unknown:
        raise SimulationError(f"preset {unknown[0]!r}: not one for a service ({', '.join(SERVICE_PRESETS)})")
    group = next(g for g in config.node_groups if g.name == service.node_group)
    levers = levers_of(service, config)
    svc = service_model(lever_workload(service, group, levers))
    serving = config.kubernetes.serving
    knative = serving.knative if serving is not None else KnativeAutoscalerConfig()
    horizon = duration if duration is not None else trace.seconds + SETTLE_TAIL_SECONDS
    # Each row: (name, scaling plan, service model, warm headroom nodes, pre-pulled by them). The lever rows are the
    # stack's own plan with one lever off, through the same engine.
    rows = [(plan.name, plan, svc, headroom_nodes(config, service), PREPULL in levers)
            for plan in service_plans(service, knative, presets)]
    if lever_rows and STACK in presets:
        (stack_plan,) = service_plans(service, knative, [STACK])
        for lever in levers:
            rest = tuple(x for x in levers if x != lever)
            rows.append((without(lever), stack_plan, service_model(lever_workload(service, group, rest)),
                         headroom_nodes(config, service) if HEADROOM in rest else 0, PREPULL in rest))
    runs, sources = {}, dict(SOURCES)
    for name, plan, model, headroom, prepulled in rows:
        cluster = pod_cluster(model, service, group, config.kubernetes.cluster_autoscaler, plan.min_replicas,
                              trace.starts_at_zero, headroom, prepulled)
        scaler = build_scaler(plan.scaling, model, cluster, config.agent, plan.knative,
                              service.progress_deadline_seconds)
        runs[name] = Engine(model, cluster, scaler, trace.arrivals, horizon, at_zero_behaviour(plan.scaling)).run()
        if name not in sources:
            sources[name] = f"the service's own scaling with its {name.removeprefix('no ')} off"
    if IDEAL in presets:
        min_nodes, max_nodes, min_pods, _ = service_bounds(service, group)
        per = service.workload.replicas_per_instance
        bounds = SimpleNamespace(min_size=max(min_nodes, -(-min_pods // per)), max_size=max_nodes, warm_pool=None)
        runs[IDEAL] = Engine(svc, instance_fleet(svc, bounds, ideal=True), IdealScaler(), trace.arrivals,
                             horizon).run()
    order = [*presets, *(without(lever) for lever in levers)]
    runs = {name: runs[name] for name in order if name in runs}
    window = duration if duration is not None else max(trace.seconds, *(r.settled_at + 1 for r in runs.values()))
    step = step_seconds or svc.mean_service_seconds
    results = [replace(summarise(name, run, window, step, sources[name]), first_new_pod=first_new_pod_seconds(run))
               for name, run in runs.items()]
    if IDEAL in runs:
        ideal = next(r for r in results if r.preset == IDEAL)
        results = [with_ratios(r, ideal) for r in results]
    return GroupSimulation(service.name, trace, svc, step, window, results, runs, kind="service",
                           notes=service_notes(service, svc, levers))


def service_notes(service: ServiceConfig, svc: ServiceModel, levers: tuple[str, ...] = ()) -> tuple[str, ...]:
    """What the table's reader needs to know of the service: where it runs, each cold-start stage, the front end."""
    cs = svc.cold_start
    if isinstance(service.scaling, KpaScaling):
        front = "Knative's activator holds requests until a pod is ready"
    elif svc.at_zero_capacity == "queue":
        front = "requests wait on the SQS queue the service consumes"
    else:
        front = "the gateway has no endpoint and answers 502/503; clients retry"
    return (f"node group {service.node_group}; {service.scaling.mode} in KServe's {service.serving_mode} mode, "
            f"{service.min_replicas}-{service.max_replicas} replicas of {svc.concurrency} concurrent requests",
            f"cold start: node {cs.node_provisioning_seconds} s + device plugin {cs.device_plugin_ready_seconds or 0} s"
            f" + image {cs.image_pull_seconds} s + model {cs.model_load_seconds} s (after cluster-autoscaler's 30 s "
            f"wait for GPU pods and its scan); at zero: {front}",
            *([f"levers on: {', '.join(levers)} (each `no ...` row is the service without that one)"
               + (model_cache_note(service) if MODEL_CACHE in levers else "")] if levers else []))


def model_cache_note(service: ServiceConfig) -> str:
    """What the model cache's load assumes, per kind (docs/cold-starts.md)."""
    cache = service.model_cache
    if cache is not None and cache.kind == "efs":
        return (f"; the efs cache's load is {cache.model_size} at one node's {cache.read_mib_per_second:g} MiB/s over "
                "NFS (the copy from S3 ran once, at deploy)")
    return ("; the model cache's load assumes the node already holds the model (a node added by the burst fetches it "
            "first: docs/cold-starts.md)")


def peak_rps(service: ServiceConfig, svc: ServiceModel) -> float:
    """Requests per second the service serves at maxReplicas: what built-in traces are sized to."""
    return service.max_replicas * svc.concurrency / svc.mean_service_seconds


@dataclass(frozen=True)
class HeadroomSuggestion:
    nodes: int | None
    """The smallest headroom whose run meets the target; None when none up to the group's room does."""
    target_p95: float
    tried: tuple[tuple[int, float | None, float], ...]
    """(headroom nodes, p95 wait in seconds, cost of the run) for each headroom tried, from 0."""
    cost_per_day: float | None
    """What the suggested headroom's warm nodes cost a day, idle (its nodes x the node's price x 24 h)."""
    currency: str


def suggest_headroom(service: ServiceConfig, config: Any, trace: Trace, target_p95: float) -> HeadroomSuggestion:
    """The smallest gpuscale:headroom on the service's node group (0, 1, ... up to the room its maxSize leaves
    above the group's floor) whose simulated p95 wait on `trace` is at most `target_p95` seconds."""
    from ..config.headroom import HeadroomConfig, default_prepull

    if not target_p95 > 0:
        raise SimulationError(f"--target-p95 {target_p95!r}: seconds > 0")
    group = next(g for g in config.node_groups if g.name == service.node_group)
    others = tuple(h for h in getattr(config, "headroom", ()) if h.node_group != service.node_group)
    # The stack's own entry for the group, if any, with only its node count varied (its pre-pulled images kept);
    # else the entry the suggestion prints, as the config reads it (pre-pulling where the images are known).
    own = next((h for h in getattr(config, "headroom", ()) if h.node_group == service.node_group),
               HeadroomConfig(group.name, 1, prepull_images=default_prepull(
                   [s for s in config.services if s.node_group == group.name])))
    tried = []
    for n in range(0, max(0, group.max_size - group.min_size) + 1):
        trial = replace(config, headroom=others + ((replace(own, nodes=n),) if n else ()))
        (result,) = simulate_service(service, trial, trace, [STACK]).results
        tried.append((n, result.latency_p95, result.cost))
        if result.latency_p95 is not None and result.latency_p95 <= target_p95:
            w = service.workload
            return HeadroomSuggestion(n, target_p95, tuple(tried), n * w.price_per_instance_hour * 24, w.currency)
    return HeadroomSuggestion(None, target_p95, tuple(tried), None, service.workload.currency)


def render_suggestion(service: ServiceConfig, s: HeadroomSuggestion) -> str:
    lines = [f"Headroom for service {service.name} (node group {service.node_group}), target p95 wait "
             f"{s.target_p95:g} s:"]
    lines += [f"  {n} node(s): p95 wait {'-' if p95 is None else f'{p95:g} s'}, run cost {cost:.2f} {s.currency}"
              for n, p95, cost in s.tried]
    if s.nodes is None:
        lines.append("  no headroom the group's maxSize allows meets the target")
    else:
        lines.append(f"  suggested: gpuscale:headroom [{{nodeGroup: {service.node_group}, nodes: {s.nodes}}}], "
                     f"{s.cost_per_day:.2f} {s.currency} a day for its warm nodes")
    return "\n".join(lines)
