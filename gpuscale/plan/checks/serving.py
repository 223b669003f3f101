"""Pre-apply checks of the model services (`gpuscale:services`): timings that disagree across the layers a request
crosses (the agent, KEDA or the HPA, cluster-autoscaler, the node, the pod), two pod autoscalers on one service, and
a trigger on a metric the agent does not publish. `run_checks` (gpuscale/plan/checks/) calls `serving_findings`."""

from __future__ import annotations

from typing import Any

from ...config import PROJECT, StackConfig
from ...config.workload import UNSCHEDULABLE_GPU_POD_BUFFER_SECONDS
from ...config.pod_autoscalers import (DEFAULT_GPU_METRIC, HPA_SYNC_PERIOD_SECONDS, HpaScaling, KedaScaling, KpaScaling,
                                       agent_metric, gpu_metric)
from ...config.services import ServiceConfig
from ...sim.knative import ACTIVATION_TIMEOUT_BUFFER

ERROR, WARNING, INFO = "error", "warning", "info"
MISSED_SCRAPE_MARGIN = 3
"""Scrapes a requests wake's rate() range should hold: two samples are what rate() needs, one more survives a failed
scrape."""
SERVING_KEY = f"{PROJECT}:kubernetes.serving"
ISVC = "kubernetes:serving.kserve.io/v1beta1:InferenceService"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
HPA_TYPES = ("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "kubernetes:autoscaling/v1:HorizontalPodAutoscaler")
AUTOSCALER_CLASS = "serving.kserve.io/autoscalerClass"
DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
MODE_OF_DEPLOYMENT = {"Knative": "knative", "Serverless": "knative", "Standard": "standard",
                      "RawDeployment": "standard"}
"""An InferenceService's deploymentMode annotation -> its serving mode (KServe v0.16 names and the deprecated ones it
still reads: utils.GetDeploymentMode); without the annotation, KServe's default (the stack's serving mode)."""
CLASSES_THAT_SCALE = ("hpa", "keda", "kpa")
"""KServe autoscaler classes (v0.16) under which KServe creates the service's autoscaler itself; `external` and
`none` leave it to objects declared beside the InferenceService."""
DEFAULT_CLASS = {"knative": "kpa", "standard": "hpa"}
"""KServe's class when the annotation is absent: Knative mode scales with the KPA, Standard mode with an HPA on
CPU."""


def serving_findings(config: StackConfig, plan: Any | None, finding: type) -> list[Any]:
    """Findings (instances of `finding`, gpuscale.plan.checks.Finding) about every service; none without services."""
    services = getattr(config, "services", ())
    if not services:
        return []
    found: list[Any] = []
    for i, service in enumerate(services):
        key = f"{PROJECT}:services[{i}]"
        found += _timings(key, service, config, finding)
        found += _agent_metrics(key, service, config, finding)
        found += _time_to_capacity(key, service, config, finding)
    found += _group_room(config, finding)
    found += _shared_group_metric(config, finding)
    found += _prometheus_scrape(config, finding)
    if plan is not None:
        found += _autoscalers_per_service(config, plan, finding)
    return found


def wake_seconds(service: ServiceConfig) -> float:
    """From the first request at zero to the first pod created: Knative's activator pokes the autoscaler at once;
    KEDA notices at its next poll (at most one polling interval)."""
    if isinstance(service.scaling, KedaScaling):
        return service.scaling.polling_interval_seconds
    return 0.0


def cold_start_seconds(service: ServiceConfig, scan_interval_seconds: float) -> float:
    """From a new pod to its first answer when it needs a new node, at most: cluster-autoscaler's wait for GPU pods
    and its next scan, node provisioning, the device plugin, the image pull and the model load."""
    cs = service.workload.cold_start
    return cs.gpu_ready_seconds(scan_interval_seconds) + cs.image_pull_seconds + cs.model_load_seconds


def _stages(key: str) -> tuple[str, ...]:
    return tuple(f"{key}.workload.coldStart.{k}" for k in ("nodeProvisioningSeconds", "devicePluginReadySeconds",
                                                           "imagePullSeconds", "modelLoadSeconds"))


def _timings(key: str, service: ServiceConfig, config: StackConfig, finding: type) -> list[Any]:
    """Each layer's clock against the next one's: the agent's flush under a GPU metric's window, KEDA's poll against
    its cooldown, and the deadlines (progress, request) against the cold start they must cover."""
    found = []
    scaling, agent = service.scaling, config.agent
    scan = config.kubernetes.cluster_autoscaler.scan_interval_seconds
    flush_key = f"{PROJECT}:agent.flushIntervalSeconds"
    for period_key, period in _gpu_periods(key, scaling):
        if period < agent.flush_interval_seconds:
            found.append(finding(ERROR, "serving-timing", (period_key, flush_key),
                                 f"service {service.name}'s GPU metric is averaged over {period} s, less than the "
                                 f"agent's {agent.flush_interval_seconds:g} s flush: most queries end before their "
                                 "datapoints arrive and read nothing or a fraction, so the pod autoscaler acts on "
                                 "noise"))
        elif period < HPA_SYNC_PERIOD_SECONDS:
            found.append(finding(INFO, "serving-timing", (period_key,),
                                 f"service {service.name}'s GPU metric is averaged over {period} s, and its HPA reads "
                                 f"it every {HPA_SYNC_PERIOD_SECONDS} s: samples between two syncs are never seen"))
    wake = scaling.wake if isinstance(scaling, KedaScaling) else None
    if wake is not None and wake.kind == "requests" and \
            wake.period_seconds < MISSED_SCRAPE_MARGIN * wake.scrape_interval_seconds:
        # The config refuses fewer than two scrapes per range; with two, one failed scrape leaves a range with one.
        found.append(finding(WARNING, "serving-timing", (f"{key}.scaling.keda.wake.periodSeconds",
                                                         f"{key}.scaling.keda.wake.scrapeIntervalSeconds"),
                             f"service {service.name}'s wake rate() covers {wake.period_seconds} s, "
                             f"{wake.period_seconds / wake.scrape_interval_seconds:g} scrapes of "
                             f"{wake.scrape_interval_seconds} s: one failed scrape leaves a range with one sample, "
                             "rate() returns nothing and KEDA reads 0 (the service stays asleep or shrinks); a range "
                             f"of {MISSED_SCRAPE_MARGIN} scrapes or more rides one out"))
    if isinstance(scaling, KedaScaling) and scaling.cooldown_period_seconds < scaling.polling_interval_seconds:
        found.append(finding(WARNING, "serving-timing", (f"{key}.scaling.keda.cooldownPeriodSeconds",
                                                         f"{key}.scaling.keda.pollingIntervalSeconds"),
                             f"service {service.name}'s {scaling.cooldown_period_seconds} s cooldown is shorter than "
                             f"KEDA's {scaling.polling_interval_seconds} s polling interval: it goes to zero at the "
                             "first idle poll, whatever the cooldown says"))
    start = service.workload.cold_start.image_pull_seconds + service.workload.cold_start.model_load_seconds
    cold = cold_start_seconds(service, scan)
    deadline = service.progress_deadline_seconds
    deadline_keys = (f"{key}.progressDeadlineSeconds", *_stages(key))
    if deadline < start:
        found.append(finding(ERROR, "serving-timing", deadline_keys[:1] + deadline_keys[3:],
                             f"a {service.name} pod needs about {start:.0f} s (image pull and model load) to become "
                             f"ready on a node that is up, more than its {deadline} s progress deadline: every new "
                             "pod is failed before it serves"))
    elif deadline < cold:
        knative = isinstance(scaling, KpaScaling)
        consequence = (f"Knative gives up activating after the deadline plus {ACTIVATION_TIMEOUT_BUFFER} s and "
                       "scales the revision back to zero" if knative and deadline + ACTIVATION_TIMEOUT_BUFFER < cold
                       else "KServe reports the service failed while its pods are still starting")
        if not knative or deadline + ACTIVATION_TIMEOUT_BUFFER < cold:
            found.append(finding(ERROR if knative else WARNING, "serving-timing",
                                 (*deadline_keys, f"{PROJECT}:kubernetes.clusterAutoscaler.scanIntervalSeconds"),
                                 f"a {service.name} pod that needs a new node serves after about {cold:.0f} s "
                                 f"(cluster-autoscaler's {UNSCHEDULABLE_GPU_POD_BUFFER_SECONDS} s wait for GPU pods "
                                 f"and its scan, node, device plugin, image, model), longer than its {deadline} s "
                                 f"progress deadline: {consequence}"))
    if service.min_replicas == 0:
        from_zero = wake_seconds(service) + cold
        retry = service.workload.client_retry_seconds if service.workload.at_zero_capacity == "refuse" else 0
        if service.request_timeout_seconds < from_zero + retry:
            how = "wait" if not retry else f"are refused (502/503) and retry every {retry:g} s"
            found.append(finding(ERROR, "serving-timing", (f"{key}.requestTimeoutSeconds", f"{key}.minReplicas",
                                                           *_stages(key)),
                                 f"requests to {service.name} at zero {how} about {from_zero + retry:.0f} s for the "
                                 f"first pod (wake, then a new node's cold start), longer than its "
                                 f"{service.request_timeout_seconds} s request timeout: the first requests after "
                                 "idle time fail"))
    return found


def _gpu_periods(key: str, scaling: Any) -> list[tuple[str, int]]:
    if isinstance(scaling, HpaScaling):
        return [(f"{key}.scaling.hpa.periodSeconds", scaling.period_seconds)]
    if isinstance(scaling, KedaScaling) and scaling.gpu_utilization is not None:
        return [(f"{key}.scaling.keda.gpuUtilization.periodSeconds", scaling.gpu_utilization.period_seconds)]
    return []


def _gpu_metric_key(key: str, scaling: Any) -> tuple[str, str | None] | None:
    """(config key, configured name) of the service's GPU metric, if it scales on one."""
    if isinstance(scaling, HpaScaling):
        return f"{key}.scaling.hpa.metric", scaling.metric
    if isinstance(scaling, KedaScaling) and scaling.gpu_utilization is not None:
        return f"{key}.scaling.keda.gpuUtilization.metric", scaling.gpu_utilization.metric
    return None


def _agent_metrics(key: str, service: ServiceConfig, config: StackConfig, finding: type) -> list[Any]:
    """A trigger on a metric the agent does not publish where the pod autoscaler reads it never gets a value."""
    found = _gpu_metric_key(key, service.scaling)
    if found is None:
        return []
    metric_key, configured = found
    source = config.kubernetes.serving.metrics_source
    name = gpu_metric(configured, source)
    if agent_metric(name, source) is not None:
        return []
    where = ("in CloudWatch rolled up to the node group (NodeGpuUtilization, NodeGpuUtilizationSum, "
             "NodeGpuMemoryUtilizationMax, NodeGpuCount, NodeGpusRead, AgentHeartbeat)" if source == "cloudwatch"
             else "in Prometheus as gpuscale_* series (gpuscale_gpu_utilization_ratio carries the pod's labels)")
    return [finding(ERROR, "agent-metric", (metric_key, f"{SERVING_KEY}.metricsSource"),
                    f"service {service.name} scales on {name}, which the agent does not publish {where}: the "
                    f"trigger never gets a value and the service never scales (the default, "
                    f"{DEFAULT_GPU_METRIC[source]}, is)")]


def _group_room(config: StackConfig, finding: type) -> list[Any]:
    """The services on a node group, each at its maxReplicas, against the GPUs the group has at its maxSize: pods
    beyond them stay Pending, and the pod autoscaler's maximum is never reached."""
    found = []
    groups = {g.name: (i, g) for i, g in enumerate(config.node_groups)}
    for name, (i, group) in groups.items():
        on = [(j, s) for j, s in enumerate(config.services) if s.node_group == name]
        if not on:
            continue
        wanted = sum(s.max_replicas * s.gpus for _, s in on)
        room = group.max_size * group.gpu.gpu_count
        if wanted > room:
            keys = tuple(f"{PROJECT}:services[{j}].maxReplicas" for j, _ in on)
            found.append(finding(WARNING, "serving-capacity", (*keys, f"{PROJECT}:nodeGroups[{i}].maxSize"),
                                 f"node group {name}'s {room} GPUs at maxSize {group.max_size} hold fewer than the "
                                 f"{wanted} its services ask for at their maxReplicas "
                                 f"({', '.join(s.name for _, s in on)}): pods beyond them stay Pending"))
    return found


def _shared_group_metric(config: StackConfig, finding: type) -> list[Any]:
    """In CloudWatch the agent's GPU series are rolled up per node group, not per pod: a GPU trigger of a service
    sharing its node group reads the other services' GPUs too."""
    if config.kubernetes.serving.metrics_source != "cloudwatch":
        return []
    found = []
    for i, service in enumerate(config.services):
        metric = _gpu_metric_key(f"{PROJECT}:services[{i}]", service.scaling)
        others = [s.name for s in config.services if s.node_group == service.node_group and s is not service]
        if metric is not None and others:
            found.append(finding(WARNING, "agent-metric", (metric[0], f"{PROJECT}:services[{i}].nodeGroup"),
                                 f"service {service.name} scales on its node group {service.node_group}'s GPU "
                                 f"utilization, which {', '.join(others)} share: it scales on their load too. Give "
                                 "it a node group of its own, or read the agent's per-pod series from Prometheus"))
    return found


def _prometheus_scrape(config: StackConfig, finding: type) -> list[Any]:
    serving, agent = config.kubernetes.serving, config.kubernetes.agent
    if serving.metrics_source != "prometheus" or agent.service_monitor:
        return []
    return [finding(WARNING, "agent-metric", (f"{SERVING_KEY}.metricsSource", f"{PROJECT}:kubernetes.agent."
                                              "serviceMonitor"),
                    "pod autoscalers read the agent's metrics from Prometheus, but no ServiceMonitor asks Prometheus "
                    "to scrape the agent: unless your Prometheus has its own scrape job for it, every GPU trigger "
                    "stays empty")]


def _time_to_capacity(key: str, service: ServiceConfig, config: StackConfig, finding: type) -> list[Any]:
    """The simulator's answer for a burst of 100 requests onto the service idle at its minReplicas."""
    from ...sim.service import service_model
    from ...sim.serving import peak_rps, simulate_service
    from ...sim.traces import load

    trace = load("burst", peak_rps(service, service_model(service.workload)), None)
    result = simulate_service(service, config, trace, ["stack"]).results[0]
    onto = f"onto {service.name} idle at {service.min_replicas} pod(s)" if service.min_replicas \
        else f"onto {service.name} at zero"
    scan = config.kubernetes.cluster_autoscaler.scan_interval_seconds
    start = f"a pod on a new node serves after at most {cold_start_seconds(service, scan):.0f} s"
    if result.completion is None:
        text = f"a burst of 100 requests {onto} is not fully served ({start}); see `gpuscale simulate --service`"
    else:
        text = (f"a burst of 100 requests {onto} is served after {result.completion} s with its "
                f"{service.scaling.mode} and cluster-autoscaler ({start}); see `gpuscale simulate --stack "
                f"{config.stack} --service {service.name} --compare`")
    return [finding(INFO, "time-to-capacity", (f"{key}.scaling", f"{key}.workload"), text)]


def _autoscalers_per_service(config: StackConfig, plan: Any, finding: type) -> list[Any]:
    """Every pod autoscaler the plan gives a service: the one KServe creates for its InferenceService (by the
    autoscaler class), and HPAs or ScaledObjects declared beside it on its predictor. Two of them overwrite each
    other's replica count; none leaves it at its first size."""
    resources = tuple(plan.resources)
    mode = config.kubernetes.serving.mode
    found = []
    for i, service in enumerate(config.services):
        isvc = [r for r in resources if r.type == ISVC and _name(r) == service.name]
        if not isvc:
            continue
        annotations = ((isvc[0].inputs.get("metadata") or {}).get("annotations") or {})
        own_mode = MODE_OF_DEPLOYMENT.get(annotations.get(DEPLOYMENT_MODE, ""), mode)
        kserve_class = annotations.get(AUTOSCALER_CLASS, DEFAULT_CLASS[own_mode])
        scalers = [f"KServe's {kserve_class} (InferenceService {service.name}, {AUTOSCALER_CLASS}: {kserve_class})"] \
            if kserve_class in CLASSES_THAT_SCALE else []
        for r in resources:
            if (r.type == SCALED_OBJECT or r.type in HPA_TYPES) and _targets(r, service.name):
                scalers.append(f"{r.type.rsplit(':', 1)[-1]} {r.name}")
        key = f"{PROJECT}:services[{i}].scaling"
        if len(scalers) > 1:
            found.append(finding(ERROR, "two-autoscalers", (key,),
                                 f"service {service.name} has {len(scalers)} pod autoscalers: {'; '.join(scalers)}. "
                                 "They overwrite each other's replica count (a ScaledObject creates an HPA of its "
                                 "own: set the InferenceService's autoscaler class to external or keda, not both)"))
        elif not scalers and service.min_replicas != service.max_replicas:
            found.append(finding(ERROR, "two-autoscalers", (key,),
                                 f"service {service.name} has no pod autoscaler in the plan ({AUTOSCALER_CLASS}: "
                                 f"{kserve_class}, and no HPA or ScaledObject on its predictor): it stays at its first "
                                 "replica count"))
    return found


def _name(resource: Any) -> str | None:
    return (resource.inputs.get("metadata") or {}).get("name")


def _targets(resource: Any, service: str) -> bool:
    """An HPA or ScaledObject on the service's predictor (KServe names its Deployment <name>-predictor)."""
    ref = ((resource.inputs.get("spec") or {}).get("scaleTargetRef") or {})
    return ref.get("name") in (f"{service}-predictor", service)
