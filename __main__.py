"""The gpuscale Pulumi program: read the stack's config once, validate it, wire the components, export outputs."""

from __future__ import annotations

from dataclasses import asdict, replace

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from gpuscale.components._kubeconfig import eks_kubeconfig
from gpuscale.components.agent_bundle import AgentBundle
from gpuscale.components.agent_daemonset import AgentDaemonSet
from gpuscale.components.agent_image import AgentImage
from gpuscale.components.agent_user_data import AgentSettings
from gpuscale.components.eks_cluster import EksCluster
from gpuscale.components.existing_cluster import ExistingCluster
from gpuscale.components.gpu_alarms import GpuAlarms
from gpuscale.components.gpu_alert_topic import GpuAlertTopic
from gpuscale.components.gpu_asg import GpuAutoScalingGroup, GpuAutoScalingGroupArgs
from gpuscale.components.gpu_dashboard import DashboardGroupArgs, GpuDashboard
from gpuscale.components.gpu_headroom import GpuHeadroom
from gpuscale.components.gpu_node_group import GpuNodeGroup
from gpuscale.components.cluster_autoscaler import ClusterAutoscaler
from gpuscale.components.cert_manager import CertManager
from gpuscale.components.gpu_node_group import gpu_class
from gpuscale.components.keda import Keda
from gpuscale.components.knative_serving import KnativeServing
from gpuscale.components.kserve import SERVICES_NAMESPACE, KServe
from gpuscale.components.local_model_cache import LocalModelCache
from gpuscale.components.labels import CAPACITY_TYPE_LABEL, GPU_CLASS_LABEL
from gpuscale.components.model_service import ModelService, ModelServiceArgs
from gpuscale.components.gpu_scaling_policies import GpuScalingPolicies
from gpuscale.components.labels import SYSTEM_NODE_LABEL
from gpuscale.components.nvidia_device_plugin import NvidiaDevicePlugin
from gpuscale.components.signal_queue import SignalQueue
from gpuscale.config import PROJECT, ConfigError, load_stack_config
from gpuscale.config.caches import quantity_bytes
from gpuscale.config.kubernetes import asg_option_tags, expander_order
from gpuscale.config.services import HpaScaling, KedaScaling, ServiceConfig, gpu_metric
from gpuscale.config.stack import NodeGroupConfig
from gpuscale.instance_types import PulumiInstanceTypes


def read_config() -> dict[str, object]:
    """The stack's config as full keys to decoded values: every key of every namespace.

    Every key is passed on, known or not, so a misspelt key (`gpuscale:agnet`) or namespace (`gpuScale:agent`) is
    rejected by validation instead of being silently ignored. The runtime's config map is the only place that lists
    the keys that are set. Values encrypted in the stack file arrive decrypted (the engine decrypts them, nested
    ones too); their keys are secret keys, and the program marks what it takes from them as secret.
    """
    from pulumi.runtime.config import CONFIG, get_config_env

    values: dict[str, object] = {"aws:region": pulumi.Config("aws").get("region")}
    for key in sorted({*CONFIG.get(), *get_config_env()}):
        namespace, _, name = key.partition(":")
        bag = pulumi.Config(namespace)
        try:
            values[key] = bag.get_object(name)
        except pulumi.ConfigTypeError:  # a plain string that is not JSON: passed on for validation to judge
            values[key] = bag.get(name)
    return {k: v for k, v in values.items() if v is not None}


def secret_if_encrypted(key: str, value: object) -> object:
    """`value`, read from the config key `key`, as a secret when the stack file encrypts (part of) that key: it
    stays encrypted in the state and shows as [secret] in previews and in the offline plan."""
    from pulumi.runtime.config import is_config_secret

    return pulumi.Output.secret(value) if value is not None and is_config_secret(key) else value


# Every rule is checked here, before any resource is declared; GPU counts come from EC2's instance type data.
config = load_stack_config(read_config(), pulumi.get_stack(), PulumiInstanceTypes())
tags = {"gpuscale:stack": config.stack}

c = config.cluster
if c.mode == "existing" and c.kubernetes_version is not None:
    # The autoscaler's release is derived from the configured minor: compare it with the real cluster before
    # anything is declared (a blocking lookup), so a wrong version creates nothing.
    actual = aws.eks.get_cluster(name=c.name).version
    if actual != c.kubernetes_version:
        raise ConfigError(f"{PROJECT}:cluster.kubernetesVersion", c.kubernetes_version,
                          f"the version of cluster {c.name}, which runs {actual}")

if c.mode == "create":
    cluster: EksCluster | ExistingCluster = EksCluster(c.name, {
        "cluster_name": c.name, "kubernetes_version": c.kubernetes_version, "vpc_cidr": c.vpc_cidr,
        "availability_zone_count": c.availability_zone_count, "nat_gateway_per_zone": c.nat_gateway_per_zone,
        "endpoint_public_access": c.public_access,
        **({"public_access_cidrs": list(c.public_access_cidrs)} if c.public_access else {}),
        "system_nodes": {"instance_type": c.system_nodes.instance_type, "min_size": c.system_nodes.min_size,
                         "max_size": c.system_nodes.max_size, "desired_size": c.system_nodes.desired_size},
        "tags": tags, **({"preview_role_arn": c.preview_role_arn} if c.preview_role_arn else {})})
else:
    cluster = ExistingCluster(c.name, {"cluster_name": c.name, "subnet_ids": list(c.subnet_ids), "tags": tags})

node_groups: dict[str, GpuNodeGroup] = {
    g.name: GpuNodeGroup(g.name, {
        "cluster_name": cluster.cluster_name, "node_role_arn": cluster.node_role_arn,
        "subnet_ids": cluster.private_subnet_ids, "instance_types": list(g.instance_types),
        "gpu_count": g.gpu.gpu_count, "gpu_name": g.gpu.gpu_name, "ami_type": g.ami_type,
        "capacity_type": g.capacity_type, "min_size": g.min_size, "max_size": g.max_size,
        "root_volume_gib": g.root_volume_gib, "labels": g.labels,
        "autoscaling_options": asg_option_tags(g.autoscaler), "tags": tags,
        # Cold-start caches (issue 15, docs/cold-starts.md): only where configured.
        **({"image_cache": {"snapshot_id": g.image_cache.snapshot_id}} if g.image_cache else {}),
        **({"image_volume_throughput_mibps": g.image_volume_throughput_mibps}
           if g.image_volume_throughput_mibps else {})})
    for g in config.node_groups}

# --- the Kubernetes side: one explicit provider, built from the cluster, for every Kubernetes resource ---
kube = config.kubernetes
k8s_provider = k8s.Provider("k8s", kubeconfig=eks_kubeconfig(cluster.cluster_name, cluster.endpoint,
                                                             cluster.certificate_authority_data, config.region),
                            # Server-side apply: fields other controllers own (e.g. replicas) stay theirs.
                            enable_server_side_apply=True)
in_cluster = pulumi.ResourceOptions(providers={"kubernetes": k8s_provider})
if node_groups and kube.cluster_autoscaler.enabled:
    ca = kube.cluster_autoscaler
    ClusterAutoscaler("cluster-autoscaler", {
        "cluster_name": cluster.cluster_name, "kubernetes_version": c.kubernetes_version, "region": config.region,
        "oidc_provider_arn": cluster.oidc_provider_arn, "oidc_issuer_url": cluster.oidc_issuer_url,
        "settings": {"scan_interval_seconds": ca.scan_interval_seconds,
                     "scale_down_unneeded_seconds": ca.scale_down_unneeded_seconds,
                     "scale_down_delay_after_add_seconds": ca.scale_down_delay_after_add_seconds,
                     "scale_down_utilization_threshold": ca.scale_down_utilization_threshold,
                     "scale_down_gpu_utilization_threshold": ca.scale_down_gpu_utilization_threshold,
                     "max_node_provision_seconds": ca.max_node_provision_seconds,
                     "balance_similar_node_groups": ca.balance_similar_node_groups,
                     "skip_nodes_with_local_storage": ca.skip_nodes_with_local_storage},
        "priorities": [node_groups[n].asg_name for n in expander_order(kube, config.node_groups)],
        "resources": {"cpu": ca.resources.cpu, "memory": ca.resources.memory},
        "node_selector": {SYSTEM_NODE_LABEL: "system"} if isinstance(cluster, EksCluster) else {}, "tags": tags},
        # The release waits for its pod: in create mode that needs the system nodes.
        opts=pulumi.ResourceOptions.merge(in_cluster, pulumi.ResourceOptions(
            depends_on=[cluster] if isinstance(cluster, EksCluster) else [])))
al2023 = sorted({g.ami_type.split("_", 1)[0].lower() for g in config.node_groups} & {"al2023"})
if al2023:
    NvidiaDevicePlugin("nvidia-device-plugin", {
        "ami_families": al2023, "mig_strategy": kube.device_plugin.mig_strategy,
        "time_slicing_replicas": kube.device_plugin.time_slicing_replicas},
        # After the GPU node groups exist: the DaemonSet's only purpose is to schedule on them.
        opts=pulumi.ResourceOptions.merge(in_cluster, pulumi.ResourceOptions(depends_on=list(node_groups.values()))))
if node_groups:
    # The agent on every GPU node: the image from config, else built from agent/Dockerfile into the stack's ECR.
    agent_k8s = kube.agent
    agent_image = agent_k8s.image or AgentImage("agent-image", {
        "repository_name": f"gpuscale-{config.stack.lower()}/gpu-metrics-agent",
        "architectures": sorted({"arm64" if "_ARM_64_" in g.ami_type else "x86_64" for g in config.node_groups}),
        "tags": tags}).image_ref
    AgentDaemonSet("agent-daemonset", {
        "image": agent_image, "region": config.region,
        "node_groups": [{"key": g.name, "node_group_name": node_groups[g.name].node_group_name,
                         "asg_name": node_groups[g.name].asg_name, "ami_family": g.ami_type.split("_", 1)[0].lower()}
                        for g in config.node_groups],
        "sample_interval_seconds": config.agent.sample_interval_seconds,
        "flush_interval_seconds": config.agent.flush_interval_seconds,
        "prometheus_port": config.agent.prometheus_port,
        "requests": {"cpu": agent_k8s.resources.cpu, "memory": agent_k8s.resources.memory},
        "limits": {"cpu": agent_k8s.limits.cpu, "memory": agent_k8s.limits.memory},
        "oidc_provider_arn": cluster.oidc_provider_arn, "oidc_issuer_url": cluster.oidc_issuer_url,
        "service_monitor": agent_k8s.service_monitor, "tags": tags},
        # After the GPU node groups: the DaemonSets exist to schedule on them (forwarded to them by the component).
        opts=pulumi.ResourceOptions.merge(in_cluster, pulumi.ResourceOptions(depends_on=list(node_groups.values()))))

# --- end of the Kubernetes side ---

# --- SQS queues the wake and demand signals name: created (dead-letter queue, encryption) unless they exist ---
queue_arns: dict[str, pulumi.Output[str]] = {}
created_queues: dict[str, SignalQueue] = {}
for q in config.queues:
    if q.existing:
        queue_arns[q.name] = aws.sqs.get_queue_output(name=q.name).arn
    else:
        created_queues[q.name] = SignalQueue(q.name, {
            "queue_name": q.name, "visibility_timeout_seconds": q.visibility_timeout_seconds,
            "message_retention_seconds": q.message_retention_seconds, "max_receive_count": q.max_receive_count,
            "tags": tags})
        queue_arns[q.name] = created_queues[q.name].queue_arn
if queue_arns:
    pulumi.export("queues", {name: {"arn": arn, **({"url": created_queues[name].queue_url}
                                                   if name in created_queues else {})}
                             for name, arn in queue_arns.items()})
# --- end of SQS queues ---

# --- the serving layer (issue 14): cert-manager, Knative Serving or KEDA, KServe, and the model services ---
serving = kube.serving
# Like the other add-ons, only with GPU node groups to serve on (services must name one, so none exist without).
if serving is not None and node_groups:
    system_nodes = {SYSTEM_NODE_LABEL: "system"} if isinstance(cluster, EksCluster) else {}
    # Charts wait for their pods: in create mode those run on the system nodes.
    platform_opts = pulumi.ResourceOptions.merge(in_cluster, pulumi.ResourceOptions(
        depends_on=[cluster] if isinstance(cluster, EksCluster) else []))
    platform: list[pulumi.Resource] = [CertManager("cert-manager", {"node_selector": system_nodes}, opts=platform_opts)]
    if serving.mode == "knative":
        platform.append(KnativeServing("knative-serving", {
            "autoscaler": asdict(serving.knative),  # the config's fields are the component's argument names
            "max_revision_timeout_seconds": max((s.request_timeout_seconds for s in config.services), default=600)},
            opts=platform_opts))

    def queue_url(name: str) -> pulumi.Output[str]:
        """A wake queue is one of gpuscale:queues (the config says so): created above, or looked up."""
        return created_queues[name].queue_url if name in created_queues else \
            aws.sqs.get_queue_output(name=name).url

    keda_scaled = [s for s in config.services if isinstance(s.scaling, (HpaScaling, KedaScaling))]
    if keda_scaled:
        reads_gpu = any(isinstance(s.scaling, HpaScaling) or s.scaling.gpu_utilization is not None
                        for s in keda_scaled)
        queues = sorted({s.scaling.wake.queue_name for s in keda_scaled if isinstance(s.scaling, KedaScaling)
                         and s.scaling.wake is not None and s.scaling.wake.kind == "sqs"})
        platform.append(Keda("keda", {
            "oidc_provider_arn": cluster.oidc_provider_arn, "oidc_issuer_url": cluster.oidc_issuer_url,
            "read_cloudwatch": reads_gpu and serving.metrics_source == "cloudwatch",
            "queue_arns": [queue_arns[q] for q in queues], "node_selector": system_nodes, "tags": tags},
            opts=platform_opts))
    # --- model cache (issue 15, docs/cold-starts.md): KServe's local model cache on the cached services' groups ---
    groups_by_name = {g.name: g for g in config.node_groups}

    def service_nodes(g: NodeGroupConfig) -> dict[str, str]:
        """The labels a service on group `g` selects: its GPU class and capacity type."""
        return {GPU_CLASS_LABEL: gpu_class(g.gpu.gpu_name),
                CAPACITY_TYPE_LABEL: g.capacity_type.lower().replace("_", "-")}

    cached = [s for s in config.services if s.model_cache is not None]
    cache_groups = sorted({s.node_group for s in cached})
    kserve = KServe("kserve", {"mode": serving.mode, "node_selector": system_nodes,
                               **({"local_model_nodes": [service_nodes(groups_by_name[n]) for n in cache_groups]}
                                  if cached else {})},
                    opts=pulumi.ResourceOptions.merge(in_cluster, pulumi.ResourceOptions(depends_on=platform)))
    if cached:
        def storage_limit(group: str) -> str:
            """The group's cache: the services' storage limits on it, summed (in MiB, a whole quantity)."""
            total = sum(quantity_bytes(s.model_cache.storage_limit) for s in cached if s.node_group == group)
            return f"{-(-int(total) // 2**20)}Mi"
        # One LocalModelCache per model URI (KServe refuses two of one URI), on every group a service caches it on.
        by_uri: dict[str, list[ServiceConfig]] = {}
        for s in cached:
            by_uri.setdefault(s.model.storage_uri, []).append(s)
        platform.append(LocalModelCache("model-cache", {
            "node_groups": [{"name": n, "node_selector": service_nodes(groups_by_name[n]),
                             "storage_limit": storage_limit(n)} for n in cache_groups],
            "models": [{"name": same[0].name, "storage_uri": uri,
                        "model_size": max((s.model_cache.model_size for s in same), key=quantity_bytes),
                        "node_groups": sorted({s.node_group for s in same})} for uri, same in by_uri.items()],
            "oidc_provider_arn": cluster.oidc_provider_arn, "oidc_issuer_url": cluster.oidc_issuer_url, "tags": tags},
            opts=pulumi.ResourceOptions.merge(in_cluster, pulumi.ResourceOptions(depends_on=[kserve]))))
    # --- end of model cache ---

    def gpu_trigger(metric: str | None, target: float, period_seconds: int) -> dict[str, object]:
        return {"metric": gpu_metric(metric, serving.metrics_source), "target": target,
                "period_seconds": period_seconds}

    def scaling_args(s: ServiceConfig) -> dict[str, object]:
        """The service's scaling as the component's arguments: the config's field names, with the metric resolved
        for the metrics source and the queue's URL."""
        sc = s.scaling
        if isinstance(sc, HpaScaling):
            return {**gpu_trigger(sc.metric, sc.target, sc.period_seconds),
                    "behavior": asdict(sc.behavior) if sc.behavior else None}
        if isinstance(sc, KedaScaling):
            g, w = sc.gpu_utilization, sc.wake
            wake: dict[str, object] | None = None
            if w is not None:
                # Unset: what one replica serves (concurrencyPerReplica messages), as the simulator reads it.
                wake = {"kind": w.kind, "per_replica": w.per_replica if w.per_replica is not None else s.concurrency,
                        "activation": w.activation}
                if w.queue_name is not None:
                    wake["queue_url"] = queue_url(w.queue_name)
            return {"gpu_utilization": gpu_trigger(g.metric, g.target, g.period_seconds) if g else None,
                    "wake": wake, "polling_interval_seconds": sc.polling_interval_seconds,
                    "cooldown_period_seconds": sc.cooldown_period_seconds,
                    "behavior": asdict(sc.behavior) if sc.behavior else None}
        return asdict(sc)

    groups = {g.name: g for g in config.node_groups}
    for s in config.services:
        group = groups[s.node_group]
        m = s.model
        service: ModelServiceArgs = {
            "name": s.name, "namespace": SERVICES_NAMESPACE, "serving_mode": serving.mode,
            "model": {"storage_uri": m.storage_uri, "format": m.format, "runtime": m.runtime,
                      "container": asdict(m.container) if m.container else None},
            "gpus": s.gpus, "cpu": s.cpu, "memory": s.memory, "min_replicas": s.min_replicas,
            "max_replicas": s.max_replicas, "request_timeout_seconds": s.request_timeout_seconds,
            "progress_deadline_seconds": s.progress_deadline_seconds, "concurrency": s.concurrency,
            # The group's GPU class and capacity type: labels its nodes carry, and its scale-from-zero template too.
            "node_selector": {GPU_CLASS_LABEL: gpu_class(group.gpu.gpu_name),
                              CAPACITY_TYPE_LABEL: group.capacity_type.lower().replace("_", "-")},
            "scaling_mode": s.scaling.mode, "scaling": scaling_args(s),  # type: ignore[typeddict-item]
            "metrics": {"kind": serving.metrics_source, "region": config.region,
                        "asg_name": node_groups[s.node_group].asg_name,
                        **({"prometheus_url": serving.prometheus_url} if serving.prometheus_url else {})},
            "oidc_provider_arn": cluster.oidc_provider_arn, "oidc_issuer_url": cluster.oidc_issuer_url, "tags": tags,
            # Model cache (issue 15): every service names its own group, so KServe never mounts a copy on other nodes.
            **({"local_model_node_group": s.node_group} if cached else {})}
        ModelService(s.name, service, opts=pulumi.ResourceOptions.merge(in_cluster, pulumi.ResourceOptions(
            depends_on=[kserve, *platform, node_groups[s.node_group]])))
# --- end of the serving layer ---

# --- GPU headroom (issue 15): placeholders keeping whole nodes of a node group warm, preempted by real pods ---
for h in config.headroom:
    group = next(g for g in config.node_groups if g.name == h.node_group)
    GpuHeadroom(f"{h.node_group}-headroom", {
        "node_group": h.node_group, "nodes": h.nodes, "gpus_per_node": group.gpu.gpu_count, "priority": h.priority,
        "image": h.image,
        "node_selector": {GPU_CLASS_LABEL: gpu_class(group.gpu.gpu_name),
                          CAPACITY_TYPE_LABEL: group.capacity_type.lower().replace("_", "-")}},
        opts=pulumi.ResourceOptions.merge(in_cluster, pulumi.ResourceOptions(depends_on=[node_groups[h.node_group]])))
# --- end of GPU headroom ---

asgs: dict[str, GpuAutoScalingGroup] = {}
if config.auto_scaling_groups:
    bundle = AgentBundle("gpu-metrics-agent", {"tags": tags})
    agent = AgentSettings(sample_interval_seconds=config.agent.sample_interval_seconds,
                          flush_interval_seconds=config.agent.flush_interval_seconds,
                          prometheus_port=config.agent.prometheus_port, region=config.region)
    # In a VPC of our own, Prometheus inside it may scrape the agents; an existing VPC's range is not ours to open.
    scrapers = [c.vpc_cidr] if c.vpc_cidr else []
    for a in config.auto_scaling_groups:
        args: GpuAutoScalingGroupArgs = {
            "vpc_id": cluster.vpc_id, "subnet_ids": cluster.private_subnet_ids,
            "instance_types": list(a.instance_types), "min_size": a.min_size, "max_size": a.max_size,
            "agent_bucket_arn": bundle.bucket_arn, "agent_bucket_name": bundle.bucket_name,
            "agent_object_key": bundle.object_key, "region": config.region, "ami_parameter": a.ami_parameter,
            "on_demand_base_capacity": a.on_demand_base_capacity,
            "on_demand_percentage_above_base": a.on_demand_percentage_above_base,
            "spot_allocation_strategy": a.spot_allocation_strategy, "root_volume_gib": a.root_volume_gib,
            "health_check_grace_seconds": a.health_check_grace_seconds,
            "instance_warmup_seconds": a.instance_warmup_seconds,
            # With scaling, the group has a termination hook (and maybe protection) that the agent acts on.
            "agent": replace(agent, scale_in_protection=a.scaling.scale_in_protection,
                             drain_timeout_seconds=a.scaling.drain_timeout_seconds) if a.scaling else agent,
            "metrics_ingress_cidrs": scrapers, "tags": tags}
        if a.startup is not None:
            # The workload's published ports answer clients inside the VPC (a load balancer or gateway there).
            args["startup"] = a.startup  # type: ignore[typeddict-item]
            args["workload_ingress_cidrs"] = scrapers
        consumed = [queue_arns[q.name] for q in config.queues if a.name in q.consumer_groups]
        if consumed:
            args["request_queue_arns"] = consumed
        if a.warm_pool is not None:
            args["warm_pool"] = {"min_size": a.warm_pool.min_size, "pool_state": a.warm_pool.pool_state,
                                 "reuse_on_scale_in": a.warm_pool.reuse_on_scale_in}
            if a.warm_pool.max_prepared_capacity is not None:
                args["warm_pool"]["max_group_prepared_capacity"] = a.warm_pool.max_prepared_capacity
        asgs[a.name] = GpuAutoScalingGroup(a.name, args)

# --- GPU-metric scaling, alarms and dashboard (issue 5) ---
# Scaling policies, alarms and the dashboard attach to `asgs` (config name -> GpuAutoScalingGroup) here; the
# validated settings are in `config.auto_scaling_groups` (and `config.alerts`).
alerts = config.alerts
topic = GpuAlertTopic("alerts", {"topic_name": alerts.sns_topic_name,
                                 "email": secret_if_encrypted(f"{PROJECT}:alerts", alerts.email), "tags": tags}) \
    if alerts.sns_topic_name or alerts.email else None
panels: list[DashboardGroupArgs] = []
for a in config.auto_scaling_groups:
    group = asgs[a.name]
    # The scaling config's fields are the policies' argument names, so the validated settings pass straight through.
    scaling = asdict(a.scaling) if a.scaling is not None else {}
    alarm_lists = []
    if scaling:
        signal_queues = [created_queues[q.name] for q in config.queues
                         if q.name in created_queues and a.name in q.consumer_groups]
        alarm_lists.append(GpuScalingPolicies(f"{a.name}-scaling", {
            "asg_name": group.asg_name, "asg_arn": group.asg_arn, "instance_role_name": group.instance_role_name,
            "tags": tags, **scaling},
            # The alarms watch the queues by name: created after them, so they never report on a missing queue.
            opts=pulumi.ResourceOptions(depends_on=signal_queues)).alarm_arns)
    target = scaling["target"]["target_gpu_utilization"] if scaling else None
    alarm_lists.append(GpuAlarms(f"{a.name}-alarms", {
        "asg_name": group.asg_name, "target_gpu_utilization": target, "demand": scaling.get("demand"),
        "blind_after_seconds": a.health_check_grace_seconds,
        "sample_interval_seconds": config.agent.sample_interval_seconds,
        "throttle_minutes": alerts.throttle_minutes, "throttled_fraction": alerts.throttled_fraction,
        "alarm_topic_arn": topic.topic_arn if topic else None, "tags": tags}).alarm_arns)
    panels.append({"asg_name": group.asg_name, "target_gpu_utilization": target, "warm_pool": a.warm_pool is not None,
                   "alarm_arns": pulumi.Output.all(*alarm_lists).apply(lambda lists: [x for xs in lists for x in xs])})
if panels:
    dashboard = GpuDashboard(f"gpuscale-{config.stack}", {
        "dashboard_name": f"gpuscale-{config.stack}".replace(".", "-"), "region": config.region, "groups": panels})
    pulumi.export("dashboardName", dashboard.dashboard_name)
if topic is not None:
    pulumi.export("alertTopicArn", topic.topic_arn)
# --- end of GPU-metric scaling, alarms and dashboard ---

pulumi.export("clusterName", cluster.cluster_name)
pulumi.export("vpcId", cluster.vpc_id)
pulumi.export("privateSubnetIds", cluster.private_subnet_ids)
pulumi.export("nodeRoleArn", cluster.node_role_arn)
pulumi.export("oidcIssuerUrl", cluster.oidc_issuer_url)
pulumi.export("oidcProviderArn", cluster.oidc_provider_arn)
pulumi.export("nodeGroups", {name: {"nodeGroupName": g.node_group_name, "asgName": g.asg_name}
                             for name, g in node_groups.items()})
pulumi.export("autoScalingGroups", {name: {"asgName": g.asg_name, "asgArn": g.asg_arn,
                                           "launchTemplateId": g.launch_template_id,
                                           "instanceRoleName": g.instance_role_name}
                                    for name, g in asgs.items()})
