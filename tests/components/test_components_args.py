"""Every public component checks its own Args with the stack config's rules, before it declares anything.

Through the components' public interface, under the mocks: a library user who never passes through the stack
config gets the same refusals, each naming the argument, its value and what is allowed, all at once; an argument
the component does not declare is refused (a misspelt key never ends in a raw KeyError).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gpuscale.components.agent_bundle import AgentBundle
from gpuscale.components.agent_daemonset import AgentDaemonSet
from gpuscale.components.agent_image import AgentImage
from gpuscale.components.cluster_autoscaler import ClusterAutoscaler
from gpuscale.components.eks_cluster import EksCluster
from gpuscale.components.existing_cluster import ExistingCluster
from gpuscale.components.gpu_alarms import GpuAlarms
from gpuscale.components.gpu_alert_topic import GpuAlertTopic
from gpuscale.components.gpu_asg import GpuAutoScalingGroup
from gpuscale.components.gpu_dashboard import GpuDashboard
from gpuscale.components.gpu_node_group import GpuNodeGroup
from gpuscale.components.gpu_scaling_policies import GpuScalingPolicies
from gpuscale.components.irsa_role import IrsaRole
from gpuscale.components.network import Network
from gpuscale.components.node_role import EksNodeRole
from gpuscale.components.nvidia_device_plugin import NvidiaDevicePlugin
from gpuscale.components.signal_queue import SignalQueue
from gpuscale.components.cert_manager import CertManager
from gpuscale.components.gpu_headroom import GpuHeadroom
from gpuscale.components.keda import Keda
from gpuscale.components.knative_serving import KnativeServing
from gpuscale.components.kserve import KServe
from gpuscale.components.local_model_cache import LocalModelCache
from gpuscale.components.efs_model_cache import EfsModelCache
from gpuscale.components.model_bucket import ModelBucket
from gpuscale.components.model_service import ModelService
from gpuscale.components.platform import GpuPlatform
from gpuscale.components.vertical_pod_autoscaler import VerticalPodAutoscaler
from gpuscale.config.serving import KnativeAutoscalerConfig
from gpuscale.config.reader import ConfigErrors
from test_components_platform import minimal_config

OIDC = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/X"
ISSUER = "https://oidc.eks.us-west-2.amazonaws.com/id/X"
SETTINGS = {"scan_interval_seconds": 10, "scale_down_unneeded_seconds": 300, "scale_down_delay_after_add_seconds": 600,
            "scale_down_utilization_threshold": 0.5, "scale_down_gpu_utilization_threshold": 0.3,
            "max_node_provision_seconds": 1200, "balance_similar_node_groups": True,
            "skip_nodes_with_local_storage": False}

# Every public component (components/*.py) with the fewest arguments it accepts.
MINIMAL: dict[type, Callable[[], dict[str, Any]]] = {
    GpuPlatform: lambda: {"config": minimal_config()},
    GpuNodeGroup: lambda: {"cluster_name": "c1", "node_role_arn": "arn:aws:iam::123456789012:role/n",
                           "subnet_ids": ["subnet-1"], "instance_types": ["g6.xlarge"], "gpu_count": 1,
                           "gpu_name": "L4", "min_size": 0, "max_size": 2},
    GpuAutoScalingGroup: lambda: {"vpc_id": "vpc-1", "subnet_ids": ["subnet-1"], "instance_types": ["g6e.xlarge"],
                                  "min_size": 0, "max_size": 2, "agent_bucket_arn": "arn:aws:s3:::b",
                                  "agent_bucket_name": "b", "agent_object_key": "k.zip", "region": "us-west-2"},
    GpuScalingPolicies: lambda: {"asg_name": "g", "asg_arn": "arn:aws:autoscaling:us-west-2:1:g",
                                 "target": {"target_gpu_utilization": 60}},
    GpuAlarms: lambda: {"asg_name": "g"},
    GpuAlertTopic: lambda: {"topic_name": "alerts"},
    GpuDashboard: lambda: {"dashboard_name": "d", "region": "us-west-2", "groups": [{"asg_name": "g"}]},
    EksCluster: lambda: {"cluster_name": "c1", "kubernetes_version": "1.33", "vpc_cidr": "10.0.0.0/16",
                         "availability_zone_count": 2, "system_nodes": {"instance_type": "t3.large", "min_size": 1,
                                                                        "max_size": 2, "desired_size": 1}},
    ExistingCluster: lambda: {"cluster_name": "c1"},
    Network: lambda: {"cidr_block": "10.0.0.0/16", "availability_zone_count": 2, "cluster_name": "c1"},
    EksNodeRole: lambda: {},
    IrsaRole: lambda: {"oidc_provider_arn": OIDC, "oidc_issuer_url": ISSUER, "namespace": "kube-system",
                       "service_account": "sa", "statements": [{"Effect": "Allow", "Action": "s3:ListBucket",
                                                                "Resource": "*"}]},
    ClusterAutoscaler: lambda: {"cluster_name": "c1", "kubernetes_version": "1.33", "region": "us-west-2",
                                "oidc_provider_arn": OIDC, "oidc_issuer_url": ISSUER, "settings": dict(SETTINGS),
                                "priorities": [], "resources": {"cpu": "100m", "memory": "600Mi"}},
    NvidiaDevicePlugin: lambda: {"ami_families": ["al2023"]},
    AgentDaemonSet: lambda: {"image": "registry.example/agent:1", "region": "us-west-2",
                             "node_groups": [{"key": "l4", "node_group_name": "l4", "asg_name": "eks-l4",
                                              "ami_family": "al2023"}],
                             "sample_interval_seconds": 1, "flush_interval_seconds": 10, "prometheus_port": 9410,
                             "requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "100m", "memory": "128Mi"},
                             "oidc_provider_arn": OIDC, "oidc_issuer_url": ISSUER},
    AgentImage: lambda: {"repository_name": "gpuscale-test/agent", "architectures": ["x86_64"]},
    AgentBundle: lambda: {},
    SignalQueue: lambda: {"queue_name": "jobs"},
    ModelBucket: lambda: {"bucket_name": "gpuscale-test-models"},
    CertManager: lambda: {},
    KServe: lambda: {"mode": "standard"},
    KnativeServing: lambda: {"autoscaler": dict(vars(KnativeAutoscalerConfig()))},
    Keda: lambda: {"oidc_provider_arn": OIDC, "oidc_issuer_url": ISSUER, "read_cloudwatch": True, "queue_arns": []},
    GpuHeadroom: lambda: {"node_group": "l4", "nodes": 1, "gpus_per_node": 1, "priority": -10,
                          "node_selector": {"gpuscale.io/gpu-class": "l4"}},
    LocalModelCache: lambda: {
        "node_groups": [{"name": "l4", "node_selector": {"gpuscale.io/gpu-class": "l4"}, "storage_limit": "100Gi"}],
        "models": [{"name": "chat", "storage_uri": "s3://models/chat", "model_size": "16Gi", "node_groups": ["l4"]}],
        "oidc_provider_arn": OIDC, "oidc_issuer_url": ISSUER},
    EfsModelCache: lambda: {
        "vpc_id": "vpc-1", "subnet_ids": ["subnet-1"], "node_security_group_id": "sg-1", "cluster_name": "c",
        "oidc_provider_arn": OIDC, "oidc_issuer_url": ISSUER, "region": "us-west-2", "namespace": "serving",
        "models": [{"name": "chat", "storage_uri": "s3://models/chat"}]},
    ModelService: lambda: {
        "name": "chat", "namespace": "serving", "serving_mode": "knative",
        "model": {"storage_uri": "s3://models/chat", "format": "huggingface", "runtime": None, "container": None},
        "gpus": 1, "cpu": "2", "memory": "12Gi", "min_replicas": 0, "max_replicas": 2,
        "request_timeout_seconds": 600, "progress_deadline_seconds": 900, "concurrency": 4,
        "node_selector": {"gpuscale.io/gpu-class": "l4"}, "scaling_mode": "kpa",
        "kpa": {"metric": "concurrency", "target": None, "target_utilization_percentage": None,
                    "window_seconds": None, "panic_window_percentage": None, "panic_threshold_percentage": None,
                    "initial_scale": None, "scale_to_zero_retention_seconds": None, "activation_scale": None,
                    "scale_down_delay_seconds": None},
        "metrics": {"kind": "cloudwatch", "region": "us-west-2", "asg_name": "eks-l4"},
        "oidc_provider_arn": OIDC, "oidc_issuer_url": ISSUER},
    VerticalPodAutoscaler: lambda: {"kubernetes_version": "1.33"},
}


def test_every_public_component_is_covered():
    """A component added to components/ joins this table (and so the checks below)."""
    import importlib
    import inspect
    import pkgutil

    import gpuscale.components as package

    found = set()
    for module in pkgutil.iter_modules(package.__path__):
        if module.name.startswith("_"):
            continue
        for _, cls in inspect.getmembers(importlib.import_module(f"gpuscale.components.{module.name}"),
                                         inspect.isclass):
            if issubclass(cls, __import__("pulumi").ComponentResource) and cls.__module__.endswith(module.name):
                found.add(cls)
    assert found == set(MINIMAL), f"not covered: {sorted(c.__name__ for c in found - set(MINIMAL))}"


def declared(harness) -> list[str]:
    return [r.type for r in harness.resources if r.type != "pulumi:pulumi:Stack"]


@pytest.mark.parametrize("component", list(MINIMAL), ids=lambda c: c.__name__)
def test_the_minimal_arguments_are_accepted(harness, component):
    harness.run(lambda: component("x", MINIMAL[component]()))
    assert f"gpuscale:index:{component.__name__}" in declared(harness)


@pytest.mark.parametrize("component", list(MINIMAL), ids=lambda c: c.__name__)
def test_an_unknown_argument_is_refused_naming_the_real_ones(harness, component):
    args = {**MINIMAL[component](), "colour": "blue"}
    with pytest.raises(ConfigErrors) as caught:
        harness.run(lambda: component("x", args))
    message = str(caught.value)
    assert message.startswith(f"colour ({component.__name__} \"x\"): 'blue' is not allowed; allowed: the arguments "
                              f"of {component.__name__}Args: "), message
    assert declared(harness) == [], "nothing declared"


def test_a_misspelt_argument_is_named_with_the_right_one_not_a_key_error(harness):
    args = MINIMAL[GpuNodeGroup]()
    args["min_sise"] = args.pop("min_size")
    with pytest.raises(ConfigErrors) as caught:
        harness.run(lambda: GpuNodeGroup("l4", args))
    keys = {e.key: e.allowed for e in caught.value.errors}
    assert keys["min_sise"].startswith("min_size (an argument of GpuNodeGroupArgs)")
    assert keys["min_size"] == "a value is required here"


def test_the_issues_example_fails_with_every_mistake(harness):
    """min_size above max_size and a type without GPUs: both named, nothing planned."""
    args = {**MINIMAL[GpuNodeGroup](), "min_size": 5, "max_size": 3, "instance_types": ["t3.large"]}
    with pytest.raises(ConfigErrors) as caught:
        harness.run(lambda: GpuNodeGroup("l4", args))
    errors = {e.key: e for e in caught.value.errors}
    assert errors["min_size"].allowed == "min_size <= max_size (3)"
    assert "t3.large has no GPUs" in errors["instance_types[0]"].allowed
    assert str(caught.value).startswith('2 problems in the arguments of GpuNodeGroup "l4":')
    assert declared(harness) == []


# One test per family of rules the components share with the stack config: each refusal names the argument, its
# value and what is allowed, in the same words the stack config uses.
FAMILIES = [
    ("group sizes", GpuAutoScalingGroup, {"min_size": 3, "max_size": 2}, "min_size", "min_size <= max_size (2)"),
    ("instance types from EC2", GpuNodeGroup, {"instance_types": ["g6.xlarge", "g6.12xlarge"]}, "instance_types[1]",
     "the same GPUs as g6.xlarge"),
    ("GPU facts match EC2", GpuNodeGroup, {"gpu_count": 8}, "gpu_count", "1, the GPUs of a g6.xlarge"),
    ("node group choices", GpuNodeGroup, {"capacity_type": "PREEMPTIBLE"}, "capacity_type", "one of ON_DEMAND, SPOT"),
    ("reserved labels", GpuNodeGroup, {"labels": {"gpuscale.io/gpu-class": "x"}}, "labels.gpuscale.io/gpu-class",
     "labels other than the ones gpuscale sets"),
    ("purchase options", GpuAutoScalingGroup, {"spot_allocation_strategy": "cheapest"}, "spot_allocation_strategy",
     "price-capacity-optimized"),
    ("warm pools", GpuAutoScalingGroup, {"warm_pool": {"max_group_prepared_capacity": 1, "min_size": 2}},
     "warm_pool.max_group_prepared_capacity", "max_group_prepared_capacity >= min_size (2)"),
    ("regions", GpuAutoScalingGroup, {"region": "us-west2"}, "region", "did you mean us-west-2?"),
    ("cluster", EksCluster, {"vpc_cidr": "10.0.0.0/8"}, "vpc_cidr", "/16 to /24"),
    ("system nodes", EksCluster, {"system_nodes": {"instance_type": "t3.large", "min_size": 1, "max_size": 2,
                                                   "desired_size": 3}}, "system_nodes.desired_size", "[1, 2]"),
    ("existing cluster", ExistingCluster, {"subnet_ids": ["sub-1"]}, "subnet_ids[0]", "subnet ids"),
    ("network", Network, {"availability_zone_count": 5}, "availability_zone_count", "[2, 4]"),
    ("scaling target", GpuScalingPolicies, {"target": {"target_gpu_utilization": 120}},
     "target.target_gpu_utilization", "(0, 100]"),
    ("alarm periods", GpuScalingPolicies, {"burst": {"period_seconds": 15, "steps": [
        {"lower_bound_above_target": 10, "adjustment_percent": 50}]}}, "burst.period_seconds", "10, 20, 30"),
    ("policies that fight", GpuScalingPolicies, {"target": {"target_gpu_utilization": 60}, "scale_to_zero": {
        "idle_minutes": 5, "idle_gpu_utilization": 70, "wake": {"kind": "sqs", "queue_name": "q"}}},
     "scale_to_zero.idle_gpu_utilization", "policies that do not fight"),
    ("alerts", GpuAlertTopic, {"email": "not-an-address"}, "email", "an email address"),
    ("throttle alarms", GpuAlarms, {"throttled_fraction": 0}, "throttled_fraction", "(0, 1]"),
    ("dashboards", GpuDashboard, {"groups": [{"asg_name": "g", "target_gpu_utilization": 0}]},
     "groups[0].target_gpu_utilization", "(0, 100]"),
    ("autoscaler flags", ClusterAutoscaler, {"settings": {**SETTINGS, "scan_interval_seconds": 0}},
     "settings.scan_interval_seconds", "[1, 600]"),
    ("autoscaler releases", ClusterAutoscaler, {"kubernetes_version": "1.27"}, "kubernetes_version",
     "cluster-autoscaler release"),
    ("device plugin", NvidiaDevicePlugin, {"mig_strategy": "mixed", "time_slicing_replicas": 4},
     "time_slicing_replicas", "1 with mig_strategy: mixed"),
    ("agent settings", AgentDaemonSet, {"sample_interval_seconds": 5, "flush_interval_seconds": 2},
     "flush_interval_seconds", ">= sample_interval_seconds (5)"),
    ("agent image", AgentDaemonSet, {"image": "registry.example/agent"}, "image", "a tag or digest"),
    ("Kubernetes quantities", AgentDaemonSet, {"requests": {"cpu": "lots", "memory": "64Mi"}}, "requests.cpu",
     "a Kubernetes CPU quantity"),
    ("service accounts", IrsaRole, {"service_account": "Agent_SA"}, "service_account", "DNS-1123"),
    ("startup size", GpuAutoScalingGroup, {"startup": {"user_data": "#!/bin/bash\n" + "#" * 16_000 + "\n"}},
     "startup", "at most 16384"),
    ("queues", SignalQueue, {"visibility_timeout_seconds": 50000}, "visibility_timeout_seconds", "an integer in ["),
    ("model buckets", ModelBucket, {"bucket_name": "Models_Bucket"}, "bucket_name", "an S3 bucket name"),
    ("API endpoint", EksCluster, {"endpoint_public_access": False, "public_access_cidrs": ["1.2.3.4/32"]},
     "public_access_cidrs", "no public CIDRs with the public endpoint off"),
    ("ECR names", AgentImage, {"repository_name": "Gpuscale/Agent"}, "repository_name", "ECR repository name"),
    ("in-place resize needs 1.33", VerticalPodAutoscaler, {"kubernetes_version": "1.32"}, "kubernetes_version",
     "1.33 or later"),
    ("vertical scaling", ModelService, {"vertical_scaling": {
        "min_cpu": "1", "max_cpu": "4", "min_memory": "8Gi", "max_memory": "16Gi",
        "controlled_resources": ["nvidia.com/gpu"], "memory_restart_policy": "NotRequired"}},
     "vertical_scaling", "only with KServe's standard serving mode"),
]


@pytest.mark.parametrize("family, component, change, key, allowed", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_each_rule_family_is_the_stack_configs(harness, family, component, change, key, allowed):
    args = {**MINIMAL[component](), **change}
    with pytest.raises(ConfigErrors) as caught:
        harness.run(lambda: component("x", args))
    error = {e.key: e for e in caught.value.errors}.get(key)
    assert error is not None, f"{family}: no error on {key}: {caught.value}"
    assert allowed in error.allowed, f"{family}: {error}"
    assert str(error).startswith(f"{key} ({component.__name__} \"x\"): {error.value!r} is not allowed; allowed: ")
    assert declared(harness) == [], f"{family}: nothing declared"


def test_deferred_inputs_pass_unchecked(harness):
    """An Input known only at deploy time (another resource's output) is the cloud's to judge; the same argument
    as a plain value is checked."""
    def program():
        topic = GpuAlertTopic("t", {"topic_name": "alerts"})
        return GpuDashboard("d", {"dashboard_name": topic.topic_arn, "region": "us-west-2",
                                  "groups": [{"asg_name": topic.topic_arn}]})
    harness.run(program)
    assert "gpuscale:index:GpuDashboard" in declared(harness)
    with pytest.raises(ConfigErrors, match=r"dashboard_name \(GpuDashboard \"d\"\): 'arn:aws:sns:x' is not allowed"):
        harness.run(lambda: GpuDashboard("d", {**MINIMAL[GpuDashboard](), "dashboard_name": "arn:aws:sns:x"}))
