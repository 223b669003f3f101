"""GpuPlatform: the whole GPU platform of one stack, from its typed config, as one component.

What `pulumi up` builds for this repository's stacks, for a user's own program too: the cluster (created, or an
existing one), the EKS GPU node groups, the in-cluster side (cluster-autoscaler, NVIDIA device plugin, the agent's
DaemonSet), the SQS queues the signals name, the serving layer (cert-manager, Knative Serving or KEDA, KServe, the
model services), GPU headroom, the self-managed GPU Auto Scaling groups with their agent, their GPU-metric scaling,
alarms and dashboard. Data flows one way: a `StackConfig` (read and validated by `gpuscale.config`, from any config
namespace, or built in code) -> each child's Args -> resources; every child checks its own Args as well.

Moving from a program that declared these children at its top level: each direct child carries an alias to its old
place (parented by the stack), so an existing stack keeps its resources instead of replacing them.
"""

from dataclasses import asdict, replace
from typing import Any, Optional

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired, TypedDict

from ..config import ConfigError, StackConfig
from ..config.args import validate_args
from ..config.kubernetes import asg_option_tags, expander_order
from ..config.reader import Section
from ._docs import documented
from ._platform_serving import ServingLayer, group_node_selector
from ._kubeconfig import eks_kubeconfig
from .agent_bundle import AgentBundle
from .agent_daemonset import AgentDaemonSet
from .agent_image import AgentImage
from .agent_user_data import AgentSettings
from .cluster_autoscaler import ClusterAutoscaler
from .eks_cluster import EksCluster
from .existing_cluster import ExistingCluster
from .gpu_alarms import GpuAlarms
from .gpu_alert_topic import GpuAlertTopic
from .gpu_asg import GpuAutoScalingGroup, GpuAutoScalingGroupArgs
from .gpu_dashboard import DashboardGroupArgs, GpuDashboard
from .gpu_headroom import GpuHeadroom
from .gpu_node_group import GpuNodeGroup
from .gpu_scaling_policies import GpuScalingPolicies
from .labels import SYSTEM_NODE_LABEL
from .nvidia_device_plugin import NvidiaDevicePlugin
from .signal_queue import SignalQueue
from .model_bucket import ModelBucket

"""The EfsModelCache's name: its claim, `model-cache-efs-models`, is in the services' pvc:// storageUri."""


class GpuPlatformArgs(TypedDict):
    config: StackConfig
    """The stack's validated config: `gpuscale.config.load_stack_config(values, stack, instance_types,
    namespace=...)` over the program's config, or a StackConfig built in code (each child still checks its own
    Args)."""
    secret_alert_email: NotRequired[bool]
    """Keep the alert e-mail address secret in the state and in previews (set it when the stack file encrypts the
    alerts key). Default false."""


def check_args(s: Section) -> None:
    """The rules of GpuPlatformArgs: the config is a StackConfig (its own rules ran where it was read)."""
    config = s.input("config")
    if not isinstance(config, StackConfig):
        s.report("config", config, "a gpuscale.config.StackConfig (from gpuscale.config.load_stack_config)")
    s.bool("secret_alert_email", False)


@documented
class GpuPlatform(ServingLayer, pulumi.ComponentResource):
    """Everything a stack config describes, declared in dependency order: cluster, GPU node groups, in-cluster
    add-ons, queues, serving layer, headroom, GPU Auto Scaling groups with their scaling, alarms and dashboard.
    For an existing cluster whose config names its Kubernetes version, the real cluster's version is compared
    first (a blocking look-up), so a wrong version creates nothing."""

    cluster_name: pulumi.Output[str]
    """The EKS cluster's name."""
    vpc_id: pulumi.Output[str]
    """The VPC the cluster and the GPU groups run in."""
    private_subnet_ids: pulumi.Output[list[str]]
    """The private subnets of the GPU nodes."""
    node_role_arn: pulumi.Output[str]
    """The IAM role of the EKS nodes."""
    oidc_issuer_url: pulumi.Output[str]
    """The cluster's OIDC issuer (IRSA)."""
    oidc_provider_arn: pulumi.Output[str]
    """The IAM OIDC provider of the cluster (IRSA)."""
    node_groups: pulumi.Output[dict[str, Any]]
    """Per config node group name: nodeGroupName and asgName."""
    auto_scaling_groups: pulumi.Output[dict[str, Any]]
    """Per config Auto Scaling group name: asgName, asgArn, launchTemplateId, instanceRoleName."""
    queues: Optional[pulumi.Output[dict[str, Any]]]
    """Per SQS queue the signals name: its arn, and its url where the stack created it; None without queues."""
    dashboard_name: Optional[pulumi.Output[str]]
    """The CloudWatch dashboard of the GPU Auto Scaling groups; None without any group."""
    alert_topic_arn: Optional[pulumi.Output[str]]
    """The SNS topic the alarms notify; None when the config names no topic or address."""
    model_buckets: Optional[pulumi.Output[dict[str, Any]]]
    """Per model bucket of the config: existing, and its arn where the stack created it; None without buckets."""

    def __init__(self, name: str, args: GpuPlatformArgs, opts: Optional[pulumi.ResourceOptions] = None):
        validate_args("GpuPlatform", name, args, GpuPlatformArgs, check_args)
        config = args["config"]
        _check_existing_cluster_version(config)
        super().__init__("gpuscale:index:GpuPlatform", name, None, opts)
        self._config, self._tags = config, {"gpuscale:stack": config.stack}
        self._secret_alert_email = args.get("secret_alert_email", False)
        self._cluster = self._declare_cluster()
        self._node_groups = self._declare_node_groups()
        self._in_cluster = self._declare_kubernetes()
        self._queue_arns, self._created_queues, self._existing_queues = self._declare_queues()
        self._model_buckets = self._declare_model_buckets()
        self._declare_serving()
        self._declare_headroom()
        self._asgs = self._declare_auto_scaling_groups()
        dashboard_name, alert_topic_arn = self._declare_scaling_and_alarms()

        c = self._cluster
        self.cluster_name, self.vpc_id = c.cluster_name, c.vpc_id
        self.private_subnet_ids, self.node_role_arn = c.private_subnet_ids, c.node_role_arn
        self.oidc_issuer_url, self.oidc_provider_arn = c.oidc_issuer_url, c.oidc_provider_arn
        self.node_groups = pulumi.Output.from_input(
            {name: {"nodeGroupName": g.node_group_name, "asgName": g.asg_name}
             for name, g in self._node_groups.items()})
        self.auto_scaling_groups = pulumi.Output.from_input(
            {name: {"asgName": g.asg_name, "asgArn": g.asg_arn, "launchTemplateId": g.launch_template_id,
                    "instanceRoleName": g.instance_role_name} for name, g in self._asgs.items()})
        self.queues = pulumi.Output.from_input(
            {name: {"arn": arn, **({"url": self._created_queues[name].queue_url}
                                   if name in self._created_queues else {})}
             for name, arn in self._queue_arns.items()}) if self._queue_arns else None
        self.dashboard_name, self.alert_topic_arn = dashboard_name, alert_topic_arn
        self.model_buckets = pulumi.Output.from_input(
            {b.name: {"existing": b.existing, **({"arn": self._model_buckets[b.name].bucket_arn}
                                                 if b.name in self._model_buckets else {})}
             for b in config.model_buckets}) if config.model_buckets else None
        self.register_outputs({
            "cluster_name": self.cluster_name, "vpc_id": self.vpc_id, "private_subnet_ids": self.private_subnet_ids,
            "node_role_arn": self.node_role_arn, "oidc_issuer_url": self.oidc_issuer_url,
            "oidc_provider_arn": self.oidc_provider_arn, "node_groups": self.node_groups,
            "auto_scaling_groups": self.auto_scaling_groups, "queues": self.queues,
            "dashboard_name": self.dashboard_name, "alert_topic_arn": self.alert_topic_arn,
            "model_buckets": self.model_buckets})

    def _child(self, *more: Optional[pulumi.ResourceOptions], depends_on: Optional[list[Any]] = None) \
            -> pulumi.ResourceOptions:
        """Options of a direct child: parented here, aliased to the stack's root where programs declared it before
        this component existed (an existing stack keeps the resource), merged with `more` and `depends_on`."""
        opts = pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)],
                                      depends_on=depends_on or [])
        for extra in more:
            opts = pulumi.ResourceOptions.merge(opts, extra)
        return opts

    # --- the cluster and its GPU node groups ---
    def _declare_cluster(self) -> "EksCluster | ExistingCluster":
        c, tags = self._config.cluster, self._tags
        if c.mode == "create":
            return EksCluster(c.name, {
                "cluster_name": c.name, "kubernetes_version": c.kubernetes_version, "vpc_cidr": c.vpc_cidr,
                "availability_zone_count": c.availability_zone_count,
                "nat_gateway_per_zone": c.nat_gateway_per_zone, "endpoint_public_access": c.public_access,
                **({"public_access_cidrs": list(c.public_access_cidrs)} if c.public_access else {}),
                "system_nodes": {"instance_type": c.system_nodes.instance_type,
                                 "min_size": c.system_nodes.min_size, "max_size": c.system_nodes.max_size,
                                 "desired_size": c.system_nodes.desired_size},
                "tags": tags, **({"preview_role_arn": c.preview_role_arn} if c.preview_role_arn else {})},
                opts=self._child())
        return ExistingCluster(c.name, {"cluster_name": c.name, "subnet_ids": list(c.subnet_ids), "tags": tags},
                               opts=self._child())

    def _declare_node_groups(self) -> dict[str, GpuNodeGroup]:
        cluster = self._cluster
        return {g.name: GpuNodeGroup(g.name, {
            "cluster_name": cluster.cluster_name, "node_role_arn": cluster.node_role_arn,
            "subnet_ids": cluster.private_subnet_ids, "instance_types": list(g.instance_types),
            "gpu_count": g.gpu.gpu_count, "gpu_name": g.gpu.gpu_name, "ami_type": g.ami_type,
            "capacity_type": g.capacity_type, "min_size": g.min_size, "max_size": g.max_size,
            "root_volume_gib": g.root_volume_gib, "labels": g.labels,
            "autoscaling_options": asg_option_tags(g.autoscaler), "tags": self._tags,
            # Cold-start caches (issue 15, docs/cold-starts.md): only where configured.
            **({"image_cache": {"snapshot_id": g.image_cache.snapshot_id}} if g.image_cache else {}),
            **({"image_volume_throughput_mibps": g.image_volume_throughput_mibps}
               if g.image_volume_throughput_mibps else {})}, opts=self._child())
            for g in self._config.node_groups}

    @property
    def _system_nodes(self) -> dict[str, str]:
        """Where cluster-wide add-ons run: the system node group we create; an existing cluster's are unknown."""
        return {SYSTEM_NODE_LABEL: "system"} if isinstance(self._cluster, EksCluster) else {}

    @property
    def _after_cluster(self) -> list[Any]:
        """Charts wait for their pods: in create mode those run on the system nodes, so after the cluster."""
        return [self._cluster] if isinstance(self._cluster, EksCluster) else []

    # --- the Kubernetes side: one explicit provider, built from the cluster, for every Kubernetes resource ---
    def _declare_kubernetes(self) -> pulumi.ResourceOptions:
        config, cluster, node_groups, tags = self._config, self._cluster, self._node_groups, self._tags
        kube = config.kubernetes
        assert kube is not None, "load_stack_config always reads gpuscale:kubernetes"
        provider = k8s.Provider("k8s", kubeconfig=eks_kubeconfig(
            cluster.cluster_name, cluster.endpoint, cluster.certificate_authority_data, config.region),
            # Server-side apply: fields other controllers own (e.g. replicas) stay theirs.
            enable_server_side_apply=True, opts=self._child())
        in_cluster = pulumi.ResourceOptions(providers={"kubernetes": provider})
        if node_groups and kube.cluster_autoscaler.enabled:
            ca = kube.cluster_autoscaler
            ClusterAutoscaler("cluster-autoscaler", {
                "cluster_name": cluster.cluster_name, "kubernetes_version": config.cluster.kubernetes_version,
                "region": config.region, "oidc_provider_arn": cluster.oidc_provider_arn,
                "oidc_issuer_url": cluster.oidc_issuer_url,
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
                "node_selector": self._system_nodes, "tags": tags},
                # The release waits for its pod: in create mode that needs the system nodes.
                opts=self._child(in_cluster, depends_on=self._after_cluster))
        al2023 = sorted({g.ami_type.split("_", 1)[0].lower() for g in config.node_groups} & {"al2023"})
        if al2023:
            NvidiaDevicePlugin("nvidia-device-plugin", {
                "ami_families": al2023, "mig_strategy": kube.device_plugin.mig_strategy,
                "time_slicing_replicas": kube.device_plugin.time_slicing_replicas},
                # After the GPU node groups exist: the DaemonSet's only purpose is to schedule on them.
                opts=self._child(in_cluster, depends_on=list(node_groups.values())))
        if node_groups:
            # The agent on every GPU node: the image from config, else built from agent/Dockerfile into ECR.
            agent_k8s = kube.agent
            agent_image = agent_k8s.image or AgentImage("agent-image", {
                "repository_name": f"gpuscale-{config.stack.lower()}/gpu-metrics-agent",
                "architectures": sorted({"arm64" if "_ARM_64_" in g.ami_type else "x86_64"
                                         for g in config.node_groups}),
                "tags": tags}, opts=self._child()).image_ref
            AgentDaemonSet("agent-daemonset", {
                "image": agent_image, "region": config.region,
                "node_groups": [{"key": g.name, "node_group_name": node_groups[g.name].node_group_name,
                                 "asg_name": node_groups[g.name].asg_name,
                                 "ami_family": g.ami_type.split("_", 1)[0].lower()} for g in config.node_groups],
                "sample_interval_seconds": config.agent.sample_interval_seconds,
                "flush_interval_seconds": config.agent.flush_interval_seconds,
                "prometheus_port": config.agent.prometheus_port,
                "requests": {"cpu": agent_k8s.resources.cpu, "memory": agent_k8s.resources.memory},
                "limits": {"cpu": agent_k8s.limits.cpu, "memory": agent_k8s.limits.memory},
                "oidc_provider_arn": cluster.oidc_provider_arn, "oidc_issuer_url": cluster.oidc_issuer_url,
                "service_monitor": agent_k8s.service_monitor, "tags": tags},
                # After the GPU node groups: the DaemonSets exist to schedule on them.
                opts=self._child(in_cluster, depends_on=list(node_groups.values())))
        return in_cluster

    # --- SQS queues the wake and demand signals name: created (dead-letter queue, encryption) unless they exist ---
    def _declare_queues(self) -> tuple[dict[str, pulumi.Output[str]], dict[str, SignalQueue], dict[str, Any]]:
        """Each queue's ARN by name, the queues created here, and the existing ones as looked up (once: for the ARN
        here and the URL where a wake names the queue)."""
        arns: dict[str, pulumi.Output[str]] = {}
        created: dict[str, SignalQueue] = {}
        existing: dict[str, Any] = {}
        for q in self._config.queues:
            if q.existing:
                existing[q.name] = aws.sqs.get_queue_output(name=q.name, opts=pulumi.InvokeOptions(parent=self))
                arns[q.name] = existing[q.name].arn
            else:
                created[q.name] = SignalQueue(q.name, {
                    "queue_name": q.name, "visibility_timeout_seconds": q.visibility_timeout_seconds,
                    "message_retention_seconds": q.message_retention_seconds,
                    "max_receive_count": q.max_receive_count, "tags": self._tags}, opts=self._child())
                arns[q.name] = created[q.name].queue_arn
        return arns, created, existing

    # --- model buckets (issue 14): the buckets of gpuscale:modelBuckets, created unless they exist ---
    def _declare_model_buckets(self) -> dict[str, ModelBucket]:
        return {b.name: ModelBucket(b.name, {"bucket_name": b.name, "tags": self._tags}, opts=self._child())
                for b in self._config.model_buckets if not b.existing}

    def _queue_url(self, name: str) -> pulumi.Output[str]:
        """A wake queue is one of the config's queues (the config says so): created here, or looked up."""
        if name in self._created_queues:
            return self._created_queues[name].queue_url
        return self._existing_queues[name].url

    # --- GPU headroom: placeholders keeping whole nodes of a node group warm, preempted by real pods ---
    def _declare_headroom(self) -> None:
        groups = {g.name: g for g in self._config.node_groups}
        for h in self._config.headroom:
            group = groups[h.node_group]
            GpuHeadroom(f"{h.node_group}-headroom", {
                "node_group": h.node_group, "nodes": h.nodes, "gpus_per_node": group.gpu.gpu_count,
                "priority": h.priority, "image": h.image, "node_selector": group_node_selector(group),
                "prepull_images": list(h.prepull_images)},
                opts=self._child(self._in_cluster, depends_on=[self._node_groups[h.node_group]]))

    # --- self-managed GPU Auto Scaling groups with the agent on each instance ---
    def _declare_auto_scaling_groups(self) -> dict[str, GpuAutoScalingGroup]:
        config, cluster = self._config, self._cluster
        asgs: dict[str, GpuAutoScalingGroup] = {}
        if not config.auto_scaling_groups:
            return asgs
        bundle = AgentBundle("gpu-metrics-agent", {"tags": self._tags}, opts=self._child())
        agent = AgentSettings(sample_interval_seconds=config.agent.sample_interval_seconds,
                              flush_interval_seconds=config.agent.flush_interval_seconds,
                              prometheus_port=config.agent.prometheus_port, region=config.region)
        # In a VPC of our own, Prometheus inside it may scrape the agents; an existing VPC's range is not ours.
        scrapers = [config.cluster.vpc_cidr] if config.cluster.vpc_cidr else []
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
                "metrics_ingress_cidrs": scrapers, "tags": self._tags}
            if a.startup is not None:
                # The workload's published ports answer clients inside the VPC (a load balancer or gateway there).
                args["startup"] = a.startup  # type: ignore[typeddict-item]
                args["workload_ingress_cidrs"] = scrapers
            consumed = [self._queue_arns[q.name] for q in config.queues if a.name in q.consumer_groups]
            if consumed:
                args["request_queue_arns"] = consumed
            if a.warm_pool is not None:
                args["warm_pool"] = {"min_size": a.warm_pool.min_size, "pool_state": a.warm_pool.pool_state,
                                     "reuse_on_scale_in": a.warm_pool.reuse_on_scale_in}
                if a.warm_pool.max_prepared_capacity is not None:
                    args["warm_pool"]["max_group_prepared_capacity"] = a.warm_pool.max_prepared_capacity
            asgs[a.name] = GpuAutoScalingGroup(a.name, args, opts=self._child())
        return asgs

    # --- GPU-metric scaling, alarms and dashboard of the Auto Scaling groups ---
    def _declare_scaling_and_alarms(self) -> tuple[Optional[pulumi.Output[str]], Optional[pulumi.Output[str]]]:
        """Declares the alert topic, each group's scaling policies and alarms, and the dashboard; returns the
        dashboard's name and the topic's ARN (None where not declared)."""
        config, tags = self._config, self._tags
        alerts = config.alerts
        assert alerts is not None, "load_stack_config always reads gpuscale:alerts"
        email = pulumi.Output.secret(alerts.email) if self._secret_alert_email and alerts.email else alerts.email
        topic = GpuAlertTopic("alerts", {"topic_name": alerts.sns_topic_name, "email": email, "tags": tags},
                              opts=self._child()) if alerts.sns_topic_name or alerts.email else None
        panels: list[DashboardGroupArgs] = []
        for a in config.auto_scaling_groups:
            group = self._asgs[a.name]
            # The scaling config's fields are the policies' argument names: the validated settings pass through.
            scaling = asdict(a.scaling) if a.scaling is not None else {}
            alarm_lists = []
            if scaling:
                signal_queues = [self._created_queues[q.name] for q in config.queues
                                 if q.name in self._created_queues and a.name in q.consumer_groups]
                alarm_lists.append(GpuScalingPolicies(f"{a.name}-scaling", {
                    "asg_name": group.asg_name, "asg_arn": group.asg_arn,
                    "instance_role_name": group.instance_role_name, "tags": tags, **scaling},  # type: ignore
                    # The alarms watch the queues by name: after them, so they never report on a missing queue.
                    opts=self._child(depends_on=signal_queues)).alarm_arns)
            target = scaling["target"]["target_gpu_utilization"] if scaling else None
            alarm_lists.append(GpuAlarms(f"{a.name}-alarms", {
                "asg_name": group.asg_name, "target_gpu_utilization": target, "demand": scaling.get("demand"),
                "blind_after_seconds": a.health_check_grace_seconds,
                "sample_interval_seconds": config.agent.sample_interval_seconds,
                "throttle_minutes": alerts.throttle_minutes, "throttled_fraction": alerts.throttled_fraction,
                "alarm_topic_arn": topic.topic_arn if topic else None, "tags": tags}, opts=self._child()).alarm_arns)
            panels.append({"asg_name": group.asg_name, "target_gpu_utilization": target,
                           "warm_pool": a.warm_pool is not None,
                           "alarm_arns": pulumi.Output.all(*alarm_lists).apply(
                               lambda lists: [x for xs in lists for x in xs])})
        dashboard_name = None
        if panels:
            dashboard = GpuDashboard(f"gpuscale-{config.stack}", {
                "dashboard_name": f"gpuscale-{config.stack}".replace(".", "-"), "region": config.region,
                "groups": panels}, opts=self._child())
            dashboard_name = dashboard.dashboard_name
        return dashboard_name, topic.topic_arn if topic else None


def _check_existing_cluster_version(config: StackConfig) -> None:
    """An existing cluster whose config names its Kubernetes version: the autoscaler's release is derived from that
    minor, so compare it with the real cluster before anything is declared (a blocking look-up)."""
    c = config.cluster
    if c.mode == "existing" and c.kubernetes_version is not None:
        actual = aws.eks.get_cluster(name=c.name).version
        if actual != c.kubernetes_version:
            raise ConfigError(f"{config.namespace}:cluster.kubernetesVersion", c.kubernetes_version,
                              f"the version of cluster {c.name}, which runs {actual}")
