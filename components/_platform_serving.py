"""GpuPlatform's serving layer: cert-manager, Knative Serving and/or KEDA, KServe, the model caches and the model
services, declared from the stack config's `gpuscale:kubernetes.serving` and `gpuscale:services` (issues 14, 15).

A part of GpuPlatform (components/platform.py), kept apart for its size: `ServingLayer` is a base class of the
component that reads what the component declared before it (the cluster, the node groups, the in-cluster
provider, the queues, the model buckets), named below with their types.
"""

from dataclasses import asdict
from typing import Any, Callable, Optional

import pulumi

from ..config import StackConfig
from ..config.caches import quantity_bytes
from ..config.pod_autoscalers import HpaScaling, KedaScaling, gpu_metric
from ..config.services import ServiceConfig, knative_installed
from .bucket_rules import bucket_of
from .cert_manager import CertManager
from .efs_model_cache import EfsModelCache, pvc_storage_uri
from .gpu_node_group import placement_labels
from .keda import Keda
from .knative_serving import KnativeServing
from .kserve import SERVICES_NAMESPACE, KServe
from .local_model_cache import LocalModelCache
from .model_bucket import ModelBucket
from .model_service import ModelService, ModelServiceArgs
from .vertical_pod_autoscaler import VerticalPodAutoscaler

EFS_CACHE = "model-cache-efs"
"""The EFS model cache's component name (and its claims' prefix, in the services' pvc:// URIs)."""


def group_node_selector(group: Any) -> dict[str, str]:
    """Labels a node group's nodes carry (and its scale-from-zero template too): its GPU class and capacity type."""
    return placement_labels(group.gpu.gpu_name, group.capacity_type)


class ServingLayer:
    """The serving layer's part of GpuPlatform (a base class of it: not a component of its own)."""

    # Declared by GpuPlatform before _declare_serving runs.
    _config: StackConfig
    _cluster: Any
    _node_groups: dict[str, Any]
    _tags: dict[str, str]
    _in_cluster: pulumi.ResourceOptions
    _queue_arns: dict[str, pulumi.Output[str]]
    _model_buckets: dict[str, ModelBucket]
    _child: Callable[..., pulumi.ResourceOptions]
    _system_nodes: dict[str, str]
    _after_cluster: list[Any]
    _queue_url: Callable[[str], pulumi.Output[str]]

    # --- the serving layer: cert-manager, Knative Serving or KEDA, KServe, and the model services ---
    def _declare_serving(self) -> None:
        config, cluster, node_groups, tags = self._config, self._cluster, self._node_groups, self._tags
        assert config.kubernetes is not None
        serving = config.kubernetes.serving
        # Like the other add-ons, only with GPU node groups to serve on (services must name one).
        if serving is None or not node_groups:
            return
        on_system = self._child(self._in_cluster, depends_on=self._after_cluster)
        platform: list[pulumi.Resource] = [
            CertManager("cert-manager", {"node_selector": self._system_nodes}, opts=on_system)]
        # Knative Serving where any service needs it: KServe's default mode, or a service scaled by the KPA in a
        # stack whose default is Standard (its InferenceService is annotated with Knative mode).
        knative = knative_installed(serving, config.services)
        if knative:
            platform.append(KnativeServing("knative-serving", {
                "autoscaler": asdict(serving.knative),  # the config's fields are the component's argument names
                "max_revision_timeout_seconds": max((s.request_timeout_seconds for s in config.services),
                                                    default=600)},
                opts=on_system))
        keda_scaled = [s for s in config.services if isinstance(s.scaling, (HpaScaling, KedaScaling))]
        if keda_scaled:
            reads_gpu = any(isinstance(s.scaling, HpaScaling) or s.scaling.gpu_utilization is not None
                            for s in keda_scaled)
            queues = sorted({s.scaling.wake.queue_name for s in keda_scaled if isinstance(s.scaling, KedaScaling)
                             and s.scaling.wake is not None and s.scaling.wake.kind == "sqs"})
            platform.append(Keda("keda", {
                "oidc_provider_arn": cluster.oidc_provider_arn, "oidc_issuer_url": cluster.oidc_issuer_url,
                "read_cloudwatch": reads_gpu and serving.metrics_source == "cloudwatch",
                "queue_arns": [self._queue_arns[q] for q in queues], "node_selector": self._system_nodes,
                "tags": tags}, opts=on_system))
        groups = {g.name: g for g in config.node_groups}
        # KServe's local model cache (issue 15, docs/cold-starts.md): its agent on the cached services' groups.
        cached = [s for s in config.services if s.model_cache is not None and s.model_cache.kind == "local"]
        cache_groups = sorted({s.node_group for s in cached})
        on_efs = [s for s in config.services if s.model_cache is not None and s.model_cache.kind == "efs"]
        # A service woken by the gateway's request count needs its Ingress through the gateway that counts it.
        wakes_on_requests = any(isinstance(s.scaling, KedaScaling) and s.scaling.wake is not None
                                and s.scaling.wake.kind == "requests" for s in config.services)
        kserve = KServe("kserve", {"mode": serving.mode, "node_selector": self._system_nodes,
                                   "ingress": wakes_on_requests, "knative": knative,
                                   **({"local_model_nodes": [group_node_selector(groups[n]) for n in cache_groups]}
                                      if cached else {})},
                        opts=self._child(self._in_cluster, depends_on=platform))
        # In-place vertical scaling (issue 15): the VPA once, when a service resizes in place; its services'
        # VerticalPodAutoscaler objects need its CRD, so they wait for it (KServe does not).
        if any(s.vertical_scaling is not None for s in config.services):
            platform.append(VerticalPodAutoscaler("vertical-pod-autoscaler", {
                "kubernetes_version": config.cluster.kubernetes_version,  # type: ignore[typeddict-item]
                "node_selector": self._system_nodes}, opts=on_system))
        if cached:
            platform.append(self._declare_model_cache(cached, groups, kserve))
        efs = self._declare_efs_model_cache(on_efs, kserve) if on_efs else None
        for s in config.services:
            m = s.model
            # An efs-cached model is read from the file system's claim; its copy Job runs first (depends_on below).
            uri = pvc_storage_uri(EFS_CACHE, str(m.storage_uri)) if s in on_efs else m.storage_uri
            service: ModelServiceArgs = {
                "name": s.name, "namespace": SERVICES_NAMESPACE, "serving_mode": s.serving_mode,
                "model": {"storage_uri": uri, "format": m.format, "runtime": m.runtime,
                          "container": asdict(m.container) if m.container else None},
                "gpus": s.gpus, "cpu": s.cpu, "memory": s.memory, "min_replicas": s.min_replicas,
                "max_replicas": s.max_replicas, "request_timeout_seconds": s.request_timeout_seconds,
                "progress_deadline_seconds": s.progress_deadline_seconds, "concurrency": s.concurrency,
                "node_selector": group_node_selector(groups[s.node_group]),
                "scaling_mode": s.scaling.mode, s.scaling.mode: self._scaling_args(s),  # type: ignore[misc]
                "metrics": {"kind": serving.metrics_source, "region": config.region,
                            "asg_name": node_groups[s.node_group].asg_name,
                            **({"prometheus_url": serving.prometheus_url} if serving.prometheus_url else {})},
                "oidc_provider_arn": cluster.oidc_provider_arn, "oidc_issuer_url": cluster.oidc_issuer_url,
                "tags": tags, "vertical_scaling": asdict(s.vertical_scaling) if s.vertical_scaling else None,
                # Model cache: every service names its own group, so KServe never mounts a copy on other nodes.
                **({"local_model_node_group": s.node_group} if cached else {})}
            ModelService(s.name, service, opts=self._child(
                self._in_cluster,
                depends_on=[kserve, *platform, node_groups[s.node_group], *self._buckets_holding([m.storage_uri]),
                            *([efs] if efs is not None and s in on_efs else [])]))

    def _buckets_holding(self, uris: Any) -> list[ModelBucket]:
        """The ModelBuckets the stack creates that hold these model URIs (none for an existing bucket, or a pvc://
        model), for what reads the models to wait for."""
        return [self._model_buckets[b] for b in sorted({bucket_of(str(uri)) or "" for uri in uris})
                if b in self._model_buckets]

    def _declare_model_cache(self, cached: list[ServiceConfig], groups: dict[str, Any],
                             kserve: KServe) -> LocalModelCache:
        """One LocalModelNodeGroup per group with a cached service (its storage limits summed), one LocalModelCache
        per model URI (KServe refuses two of one URI) on every group a service caches it on."""
        def storage_limit(group: str) -> str:
            total = sum(quantity_bytes(s.model_cache.storage_limit) for s in cached  # type: ignore[union-attr]
                        if s.node_group == group)
            return f"{-(-int(total) // 2**20)}Mi"
        by_uri: dict[str, list[ServiceConfig]] = {}
        for s in cached:
            by_uri.setdefault(str(s.model.storage_uri), []).append(s)
        return LocalModelCache("model-cache", {
            "node_groups": [{"name": n, "node_selector": group_node_selector(groups[n]),
                             "storage_limit": storage_limit(n)} for n in sorted({s.node_group for s in cached})],
            "models": [{"name": same[0].name, "storage_uri": uri,
                        "model_size": max((s.model_cache.model_size for s in same),  # type: ignore[union-attr]
                                          key=quantity_bytes),
                        "node_groups": sorted({s.node_group for s in same})} for uri, same in by_uri.items()],
            "oidc_provider_arn": self._cluster.oidc_provider_arn, "oidc_issuer_url": self._cluster.oidc_issuer_url,
            "tags": self._tags}, opts=self._child(self._in_cluster, depends_on=[kserve]))

    def _declare_efs_model_cache(self, on_efs: list[ServiceConfig], kserve: KServe) -> EfsModelCache:
        """One EFS file system for every efs-cached service, one copy per model URI (services of one model share
        it), mounted from every private subnet of the nodes."""
        cluster, c = self._cluster, self._config.cluster
        # One mount target per subnet, so their number must be known now: create mode makes one per zone; an existing
        # cluster's are listed in the config (gpuscale.config.caches.efs_subnets_refusal).
        count = c.availability_zone_count if c.mode == "create" else len(c.subnet_ids)
        subnets = [cluster.private_subnet_ids.apply(lambda ids, i=i: ids[i]) for i in range(count)]
        by_uri: dict[str, ServiceConfig] = {}
        for s in on_efs:
            by_uri.setdefault(str(s.model.storage_uri), s)
        buckets = self._buckets_holding(by_uri)
        return EfsModelCache(EFS_CACHE, {
            "vpc_id": cluster.vpc_id, "subnet_ids": subnets,
            # Managed node groups without security groups of their own (ours) get EKS's cluster security group.
            "node_security_group_id": cluster.cluster_security_group_id, "cluster_name": cluster.cluster_name,
            "oidc_provider_arn": cluster.oidc_provider_arn, "oidc_issuer_url": cluster.oidc_issuer_url,
            "region": self._config.region, "namespace": SERVICES_NAMESPACE,
            "models": [{"name": s.name, "storage_uri": uri} for uri, s in by_uri.items()],
            "node_selector": self._system_nodes, "tags": self._tags},
            # A copy Job reads its model's bucket: one the stack creates must exist before the Job runs.
            opts=self._child(self._in_cluster, depends_on=[kserve, *buckets]))

    def _scaling_args(self, s: ServiceConfig) -> dict[str, object]:
        """The service's scaling as ModelService's arguments: the config's field names, with the metric resolved for
        the metrics source and the queue's URL."""
        assert self._config.kubernetes is not None and self._config.kubernetes.serving is not None
        source = self._config.kubernetes.serving.metrics_source

        def gpu_trigger(metric: Optional[str], target: float, period_seconds: int) -> dict[str, object]:
            return {"metric": gpu_metric(metric, source), "target": target, "period_seconds": period_seconds}

        sc = s.scaling
        if isinstance(sc, HpaScaling):
            return {**gpu_trigger(sc.metric, sc.target, sc.period_seconds),
                    "behavior": asdict(sc.behavior) if sc.behavior else None}
        if isinstance(sc, KedaScaling):
            g, w = sc.gpu_utilization, sc.wake
            wake: Optional[dict[str, object]] = None
            if w is not None:
                # Unset: what one replica serves (concurrencyPerReplica messages), as the simulator reads it.
                wake = {"kind": w.kind, "per_replica": w.per_replica if w.per_replica is not None else s.concurrency,
                        "activation": w.activation}
                if w.queue_name is not None:
                    wake["queue_url"] = self._queue_url(w.queue_name)
                if w.kind == "requests":  # None: the component's default query, the serving section's server
                    wake.update({k: v for k, v in (("query", w.query), ("prometheus_url", w.prometheus_url),
                                                   ("period_seconds", w.period_seconds)) if v is not None})
            return {"gpu_utilization": gpu_trigger(g.metric, g.target, g.period_seconds) if g else None,
                    "wake": wake, "polling_interval_seconds": sc.polling_interval_seconds,
                    "cooldown_period_seconds": sc.cooldown_period_seconds,
                    "behavior": asdict(sc.behavior) if sc.behavior else None}
        return asdict(sc)
