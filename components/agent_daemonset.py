"""AgentDaemonSet: the GPU metrics agent on every EKS GPU node, publishing to CloudWatch through its own IAM role
(IRSA) and serving Prometheus, in a namespace of its own."""

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired, TypedDict

from gpu_metrics_agent import catalogue

from gpuscale.config.args import validate_args
from gpuscale.config.kubernetes import read_agent_image, read_resources
from gpuscale.config.reader import Section
from gpuscale.config.agent import read_agent_settings
from gpuscale.config.cluster import read_region

from ._docs import documented
from ._options import depends_on_of
from .irsa_role import IrsaRole
from .kube_values import DNS_LABEL_PATTERN
from .labels import GPU_CLASS_LABEL, GPU_RESOURCE, GPU_TAINT_VALUE

NAMESPACE = "gpuscale-system"
"""Not kube-system: that namespace belongs to EKS and its add-ons. Ours holds the agent's objects as one unit (its
service account, Service and ServiceMonitor), so RBAC, quotas and `kubectl -n` see exactly gpuscale's node agent."""
SERVICE_ACCOUNT = "gpu-metrics-agent"
APP = "gpu-metrics-agent"
PORT_NAME = "metrics"
NODE_GROUP_LABEL = "eks.amazonaws.com/nodegroup"
"""Set by EKS on every node of a managed node group: which group a node belongs to."""
POD_RESOURCES_DIR = "/var/lib/kubelet/pod-resources"
"""The kubelet's pod-resources API socket directory: which pod holds which GPU, for per-pod GPU metrics."""
VOLUME_MOUNT_DEVICES = "/var/run/nvidia-container-devices"
"""nvidia-container-toolkit reads device requests from mounts of /dev/null below this path
(image.DeviceListAsVolumeMountsRoot) where it is set to `visible-devices-as-volume-mounts`, as on Bottlerocket."""
NVML_CAPABILITIES = "utility"
"""NVIDIA_DRIVER_CAPABILITIES: `utility` mounts nvidia-smi and libnvidia-ml only, all NVML needs (no CUDA)."""
AMI_FAMILIES = ("al2023", "bottlerocket")
PUT_METRIC_DATA = "cloudwatch:PutMetricData"
DESCRIBE_INSTANCES = "autoscaling:DescribeAutoScalingInstances"


class AgentNodeGroup(TypedDict):
    """One EKS managed node group the agent runs on; each gets a DaemonSet of its own."""

    key: str
    """Short name of the group (the stack config's `name`): names its DaemonSet `gpu-metrics-agent-<key>`."""
    node_group_name: pulumi.Input[str]
    """The EKS node group's name: its nodes carry it as `eks.amazonaws.com/nodegroup`."""
    asg_name: pulumi.Input[str]
    """The group's Auto Scaling group: the `AutoScalingGroupName` dimension of every datapoint its agents send."""
    ami_family: str
    """"al2023" or "bottlerocket": how the NVIDIA container runtime is told to expose all GPUs differs."""


class AgentDaemonSetArgs(TypedDict):
    image: pulumi.Input[str]
    """The agent's image, with a tag or digest (AgentImage `image_ref`, or one given in config)."""
    node_groups: Sequence[AgentNodeGroup]
    """The GPU node groups to run on, at least one."""
    region: str
    """AWS region the agent publishes to (`--region`)."""
    sample_interval_seconds: float
    """Seconds between GPU collections (`--sample-interval`), > 0."""
    flush_interval_seconds: float
    """Seconds between CloudWatch flushes (`--flush-interval`), >= the sample interval; also the scrape interval."""
    prometheus_port: int
    """Port of `/metrics` and `/healthz` (`--prometheus-port`), 1024-65535."""
    requests: Mapping[str, str]
    """The container's requests: {"cpu": "50m", "memory": "64Mi"}."""
    limits: Mapping[str, str]
    """The container's limits, at least the requests: {"cpu": "100m", "memory": "128Mi"}."""
    oidc_provider_arn: pulumi.Input[str]
    """The cluster's IAM OIDC provider, trusted by the agent's role."""
    oidc_issuer_url: pulumi.Input[str]
    """The cluster's OIDC issuer URL."""
    service_monitor: NotRequired[bool]
    """Also declare a ServiceMonitor (monitoring.coreos.com/v1): only where the Prometheus operator is installed,
    since its CRD must exist. Default False."""
    tags: NotRequired[dict[str, str]]
    """Tags on the IAM role. Default none."""


def agent_policy() -> list[dict[str, Any]]:
    """The agent's IAM statements: metrics into its own namespace only, and the one read that names its group."""
    return [
        # PutMetricData has no resource-level permissions; the namespace condition key is how IAM scopes it.
        {"Effect": "Allow", "Action": [PUT_METRIC_DATA], "Resource": "*",
         "Condition": {"StringEquals": {"cloudwatch:namespace": catalogue.NAMESPACE}}},
        # EKS node metadata carries no tags: the group is found from the instance id. IAM cannot scope this read.
        {"Effect": "Allow", "Action": [DESCRIBE_INSTANCES], "Resource": "*"},
    ]


def _seconds(value: float) -> str:
    """A duration as Go and Prometheus write it: whole seconds ("10s") or milliseconds ("2500ms")."""
    millis = round(value * 1000)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def _number(value: float) -> str:
    return f"{value:g}"


def check_args(args: AgentDaemonSetArgs, name: str = "agent") -> None:
    """Every argument's rule, before anything is declared (the stack config's agent rules where it has them): one
    ValueError naming each bad argument and what is allowed."""
    validate_args("AgentDaemonSet", name, args, AgentDaemonSetArgs, _rules)


def _rules(s: Section) -> None:
    for key in ("oidc_provider_arn", "oidc_issuer_url"):
        s.input(key)
    s.require("image")
    s.input("image", read=lambda name, default: read_agent_image(s, default))
    keys: list[str] = []
    for g in s.sections("node_groups", min_items=1):
        key = g.str("key", pattern=DNS_LABEL_PATTERN, describe="lowercase letters, digits and hyphens")
        if len(APP) + 1 + len(key) > 63 or key in keys:
            g.report("key", key, f"unique lowercase letters, digits and hyphens, at most {62 - len(APP)} characters")
        keys.append(key)
        g.input("node_group_name")
        g.input("asg_name")
        g.str("ami_family", choices=AMI_FAMILIES)
        g.finish()
    read_region(s)
    s.require("sampleIntervalSeconds", "flushIntervalSeconds", "prometheusPort", "requests", "limits")
    read_agent_settings(s)
    for field in ("requests", "limits"):
        s.section(field).require("cpu", "memory")
        read_resources(s, field, "", "")
    s.bool("service_monitor", False)
    s.input("tags", {})


def agent_env(args: AgentDaemonSetArgs, group: AgentNodeGroup) -> list[dict[str, Any]]:
    """The container's environment: the agent's own options (GPU_METRICS_AGENT_*, each one an option the agent has),
    then what the NVIDIA container runtime and the Kubernetes node give it."""
    options: dict[str, pulumi.Input[str]] = {
        "REGION": args["region"],
        "SAMPLE_INTERVAL": _number(args["sample_interval_seconds"]),
        "FLUSH_INTERVAL": _number(args["flush_interval_seconds"]),
        "PROMETHEUS_PORT": str(args["prometheus_port"]),
        # Told, not looked up: EKS nodes expose no instance tags, and a name given needs no Auto Scaling API call
        # on every agent start (the agent falls back to DescribeAutoScalingInstances when it is not given).
        "ASG_NAME": group["asg_name"],
        # Which pod holds which GPU (kubelet pod-resources API), as labels on the per-GPU series.
        "POD_RESOURCES_SOCKET": f"{POD_RESOURCES_DIR}/kubelet.sock",
    }
    return [*({"name": f"GPU_METRICS_AGENT_{k}", "value": v} for k, v in options.items()),
            # What the NVIDIA container runtime reads (nvidia-container-toolkit, image.CUDA): every GPU of the
            # node, without requesting any from the device plugin (as dcgm-exporter does), NVML only.
            {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"},
            {"name": "NVIDIA_DRIVER_CAPABILITIES", "value": NVML_CAPABILITIES},
            # The node's name as the agent's hostname label (the pod's own hostname is the pod name).
            {"name": "GPU_METRICS_AGENT_HOSTNAME",
             "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}}]


def pod_spec(args: AgentDaemonSetArgs, group: AgentNodeGroup) -> dict[str, Any]:
    port = args["prometheus_port"]
    probe = {"httpGet": {"path": "/healthz", "port": PORT_NAME, "scheme": "HTTP"}, "timeoutSeconds": 2}
    volumes: list[dict[str, Any]] = [
        {"name": "pod-resources", "hostPath": {"path": POD_RESOURCES_DIR, "type": "Directory"}}]
    mounts: list[dict[str, Any]] = [{"name": "pod-resources", "mountPath": POD_RESOURCES_DIR, "readOnly": True}]
    if group["ami_family"] == "bottlerocket":
        # Bottlerocket honours NVIDIA_VISIBLE_DEVICES=all for privileged containers only
        # (`visible-devices-envvar-when-unprivileged = false`): unprivileged ones name devices as /dev/null mounts.
        volumes.append({"name": "all-gpus", "hostPath": {"path": "/dev/null", "type": "CharDevice"}})
        mounts.append({"name": "all-gpus", "mountPath": f"{VOLUME_MOUNT_DEVICES}/all", "readOnly": True})
    return {
        "serviceAccountName": SERVICE_ACCOUNT,
        # No Kubernetes API calls: no API token in the pod. The IRSA webhook still projects its own AWS token.
        "automountServiceAccountToken": False,
        # Blind GPU nodes stall scaling and alarms: evicted last, like other per-node agents.
        "priorityClassName": "system-node-critical",
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [
                {"key": GPU_CLASS_LABEL, "operator": "Exists"},
                {"key": NODE_GROUP_LABEL, "operator": "In", "values": [group["node_group_name"]]}]}]}}},
        # Exactly the taint the GPU node groups set, nothing broader.
        "tolerations": [{"key": GPU_RESOURCE, "operator": "Equal", "value": GPU_TAINT_VALUE, "effect": "NoSchedule"}],
        # uid 0, but with every capability dropped (below): NVML needs only the device nodes the runtime adds (mode
        # 0666), while the kubelet's pod-resources socket is root's and writable by its owner only, and connecting
        # to a unix socket needs write permission. As root without CAP_DAC_OVERRIDE the agent reaches exactly what
        # root owns, as dcgm-exporter does for the same socket.
        "securityContext": {"runAsNonRoot": False, "runAsUser": 0, "runAsGroup": 0,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        # The agent flushes CloudWatch within --shutdown-timeout (5 s) of SIGTERM.
        "terminationGracePeriodSeconds": 30,
        "containers": [{
            "name": "agent",
            "image": args["image"],
            "imagePullPolicy": "IfNotPresent",
            "env": agent_env(args, group),
            "ports": [{"name": PORT_NAME, "containerPort": port, "protocol": "TCP"}],
            "resources": {"requests": dict(args["requests"]), "limits": dict(args["limits"])},
            # Ready once a GPU read succeeded recently (/healthz); restarted after a minute of failed reads that the
            # agent's own NVML re-initialization did not cure.
            "readinessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 3},
            "livenessProbe": {**probe, "initialDelaySeconds": 30, "periodSeconds": 20, "failureThreshold": 3},
            "securityContext": {"allowPrivilegeEscalation": False, "privileged": False,
                                "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": mounts,
        }],
        "volumes": volumes,
    }


def labels(group_key: str | None = None) -> dict[str, str]:
    base = {"app.kubernetes.io/name": APP, "app.kubernetes.io/part-of": "gpuscale"}
    return {**base, "app.kubernetes.io/instance": group_key} if group_key else base


def daemonset_spec(args: AgentDaemonSetArgs, group: AgentNodeGroup) -> dict[str, Any]:
    own = labels(group["key"])
    return {
        "selector": {"matchLabels": {"app.kubernetes.io/name": APP, "app.kubernetes.io/instance": group["key"]}},
        # One node at a time, none surged: a node is blind for one restart at most, the group never all at once.
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
        "template": {"metadata": {"labels": own}, "spec": pod_spec(args, group)},
    }


def service_spec(port: int) -> dict[str, Any]:
    # Headless: Prometheus (annotations or ServiceMonitor) scrapes every agent, not one behind a virtual IP.
    return {"clusterIP": "None", "selector": labels(),
            "ports": [{"name": PORT_NAME, "port": port, "targetPort": PORT_NAME, "protocol": "TCP"}]}


def scrape_annotations(port: int) -> dict[str, str]:
    """The `prometheus.io/*` annotations Prometheus' common kubernetes_sd relabelling reads."""
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(port), "prometheus.io/path": "/metrics",
            "prometheus.io/scheme": "http"}


def service_monitor_spec(flush_interval_seconds: float) -> dict[str, Any]:
    """The ServiceMonitor's spec (monitoring.coreos.com/v1; checked against the pinned CRD's schema in tests)."""
    return {"selector": {"matchLabels": labels()}, "namespaceSelector": {"matchNames": [NAMESPACE]},
            # The agent's Prometheus service label names (app.kubernetes.io/instance is the group's key).
            "jobLabel": "app.kubernetes.io/name", "podTargetLabels": ["app.kubernetes.io/instance"],
            # Scraped as often as CloudWatch is fed: both see the same freshness.
            "endpoints": [{"port": PORT_NAME, "path": "/metrics", "scheme": "http",
                           "interval": _seconds(flush_interval_seconds)}]}


@documented
class AgentDaemonSet(pulumi.ComponentResource):
    """The agent's namespace, IRSA service account, one DaemonSet per GPU node group, a headless Service with scrape
    annotations and optionally a ServiceMonitor. Pass the stack's Kubernetes provider in `opts.providers`, and the
    node groups in `opts.depends_on` (forwarded to the DaemonSets)."""

    role_arn: pulumi.Output[str]
    """ARN of the agent's IRSA role (CloudWatch PutMetricData in the agent's namespace)."""
    namespace: pulumi.Output[str]
    """Kubernetes namespace the agent runs in."""
    daemonset_names: pulumi.Output[list[str]]
    """Names of the DaemonSets, one per GPU node group."""

    def __init__(self, name: str, args: AgentDaemonSetArgs, opts: pulumi.ResourceOptions | None = None):
        check_args(args, name)
        super().__init__("gpuscale:index:AgentDaemonSet", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        role = IrsaRole(f"{name}-irsa", {
            "oidc_provider_arn": args["oidc_provider_arn"], "oidc_issuer_url": args["oidc_issuer_url"],
            "namespace": NAMESPACE, "service_account": SERVICE_ACCOUNT, "statements": agent_policy(),
            "description": f"gpu-metrics-agent: metrics into {catalogue.NAMESPACE} only", "tags": args.get("tags")},
            opts=child)
        namespace = k8s.core.v1.Namespace(f"{name}-ns", metadata={"name": NAMESPACE, "labels": labels()}, opts=child)
        in_namespace = pulumi.ResourceOptions(parent=self, depends_on=[namespace])
        account = k8s.core.v1.ServiceAccount(f"{name}-sa", metadata={
            "name": SERVICE_ACCOUNT, "namespace": NAMESPACE, "labels": labels(),
            "annotations": {"eks.amazonaws.com/role-arn": role.role_arn}},
            automount_service_account_token=False, opts=in_namespace)
        daemonsets = [k8s.apps.v1.DaemonSet(
            f"{name}-{g['key']}",
            metadata={"name": f"{APP}-{g['key']}", "namespace": NAMESPACE, "labels": labels(g["key"])},
            spec=daemonset_spec(args, g),
            # After the node groups (they are what it schedules on) and its service account (pods need its role).
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*depends_on_of(opts), namespace, account]))
            for g in args["node_groups"]]
        k8s.core.v1.Service(f"{name}-svc", metadata={
            "name": APP, "namespace": NAMESPACE, "labels": labels(),
            "annotations": scrape_annotations(args["prometheus_port"])},
            spec=service_spec(args["prometheus_port"]), opts=in_namespace)
        if args.get("service_monitor", False):
            k8s.apiextensions.CustomResource(
                f"{name}-monitor", api_version="monitoring.coreos.com/v1", kind="ServiceMonitor",
                metadata={"name": APP, "namespace": NAMESPACE, "labels": labels()},
                spec=service_monitor_spec(args["flush_interval_seconds"]), opts=in_namespace)
        self.role_arn = role.role_arn
        self.namespace = namespace.metadata.name
        self.daemonset_names = pulumi.Output.all(*(d.metadata.name for d in daemonsets))
        self.register_outputs({"role_arn": self.role_arn, "namespace": self.namespace,
                               "daemonset_names": self.daemonset_names})
