"""Values the SDK passes through unchecked (enums, metric names) against the AWS API reference, and every input
property name against the SDK's own input types.

The API reference is botocore's service models (installed with boto3): the same definitions the AWS APIs are
documented from. An enum value AWS does not know would otherwise only fail during `pulumi up`.
"""

from __future__ import annotations

import re
import sys
import typing
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import botocore.loaders
import pulumi_aws as aws
import pytest
from pulumi import _types

from gpuscale.components.gpu_asg import GROUP_METRICS
from gpuscale.config.groups import AMI_TYPES, CAPACITY_TYPES, SPOT_ALLOCATION_STRATEGIES, WARM_POOL_STATES


@cache
def shapes(service: str) -> dict[str, Any]:
    return botocore.loaders.Loader().load_service_model(service, "service-2")["shapes"]


def enum(service: str, shape: str) -> set[str]:
    return set(shapes(service)[shape]["enum"])


def documented(service: str, shape: str, member: str) -> set[str]:
    """Values a free-text member lists in its documentation (as <dt> terms or <code> literals)."""
    doc = shapes(service)[shape]["members"][member]["documentation"]
    return set(re.findall(r"<dt>([\w:-]+)", doc)) | set(re.findall(r"<code>([\w:-]+)</code>", doc))


def test_config_choices_are_api_values():
    assert set(AMI_TYPES) <= enum("eks", "AMITypes")
    assert set(CAPACITY_TYPES) <= enum("eks", "CapacityTypes")
    assert set(WARM_POOL_STATES) <= enum("autoscaling", "WarmPoolState")
    assert set(SPOT_ALLOCATION_STRATEGIES) <= documented("autoscaling", "InstancesDistribution",
                                                         "SpotAllocationStrategy")


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_eks_values(stack_runs, stack):
    harness, _ = stack_runs[stack]
    for ng in harness.of_type("aws:eks/nodeGroup:NodeGroup"):
        assert ng.inputs["amiType"] in enum("eks", "AMITypes"), ng.name
        assert ng.inputs["capacityType"] in enum("eks", "CapacityTypes"), ng.name
        for taint in ng.inputs.get("taints", []):
            assert taint["effect"] in enum("eks", "TaintEffect"), ng.name
    for cluster in harness.of_type("aws:eks/cluster:Cluster"):
        assert cluster.inputs["accessConfig"]["authenticationMode"] in enum("eks", "AuthenticationMode")
        assert set(cluster.inputs["enabledClusterLogTypes"]) <= enum("eks", "LogType"), cluster.name
    assert {ng.inputs["amiType"] for ng in stack_runs["prod"][0].of_type("aws:eks/nodeGroup:NodeGroup")} >= \
        {"AL2023_x86_64_NVIDIA", "BOTTLEROCKET_x86_64_NVIDIA"}, "prod exercises both GPU AMI families"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_launch_template_values(stack_runs, stack):
    harness, _ = stack_runs[stack]
    for lt in harness.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        md = lt.inputs["metadataOptions"]
        assert md["httpTokens"] in enum("ec2", "LaunchTemplateHttpTokensState"), lt.name
        assert md["httpEndpoint"] in enum("ec2", "LaunchTemplateInstanceMetadataEndpointState"), lt.name
        assert md.get("instanceMetadataTags", "disabled") in enum("ec2", "LaunchTemplateInstanceMetadataTagsState")
        assert 1 <= md["httpPutResponseHopLimit"] <= 64, lt.name
        for disk in lt.inputs["blockDeviceMappings"]:
            assert disk["ebs"]["volumeType"] in enum("ec2", "VolumeType"), lt.name
        for spec in lt.inputs["tagSpecifications"]:
            assert spec["resourceType"] in enum("ec2", "ResourceType"), lt.name
    for eip in harness.of_type("aws:ec2/eip:Eip"):
        assert eip.inputs["domain"] in enum("ec2", "DomainType"), eip.name


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_auto_scaling_group_values(stack_runs, stack):
    harness, _ = stack_runs[stack]
    groups = harness.of_type("aws:autoscaling/group:Group")
    assert groups, stack
    for asg in groups:
        i = asg.inputs
        assert i["instanceRefresh"]["strategy"] in enum("autoscaling", "RefreshStrategy"), asg.name
        assert set(i["enabledMetrics"]) <= documented("autoscaling", "EnableMetricsCollectionQuery", "Metrics")
        assert i["metricsGranularity"] in documented("autoscaling", "EnableMetricsCollectionQuery", "Granularity")
        assert i["healthCheckType"] in documented("autoscaling", "CreateAutoScalingGroupType", "HealthCheckType")
        for hook in i["initialLifecycleHooks"]:
            assert hook["lifecycleTransition"] in documented("autoscaling", "LifecycleHookSpecification",
                                                             "LifecycleTransition"), asg.name
            assert hook["defaultResult"] in documented("autoscaling", "LifecycleHookSpecification",
                                                       "DefaultResult"), asg.name
        if "warmPool" in i:
            assert i["warmPool"]["poolState"] in enum("autoscaling", "WarmPoolState"), asg.name
        if "mixedInstancesPolicy" in i:
            dist = i["mixedInstancesPolicy"]["instancesDistribution"]
            assert dist["spotAllocationStrategy"] in documented("autoscaling", "InstancesDistribution",
                                                                "SpotAllocationStrategy"), asg.name
            assert dist["onDemandAllocationStrategy"] in documented("autoscaling", "InstancesDistribution",
                                                                    "OnDemandAllocationStrategy"), asg.name
    assert set(GROUP_METRICS) <= documented("autoscaling", "EnableMetricsCollectionQuery", "Metrics")


# --- property names ---------------------------------------------------------------------------------------------

def args_class(token: str) -> type:
    """`aws:ec2/launchTemplate:LaunchTemplate` -> pulumi_aws.ec2.LaunchTemplateArgs."""
    module, name = token.split(":")[1].split("/")[0], token.split(":")[2]
    resource = getattr(aws if module == "index" else getattr(aws, module), name)
    # From the resource's own module. When an input type of another resource has the same name, the SDK calls the
    # resource's own `<Name>InitArgs`.
    module_ns = sys.modules[resource.__module__]
    return getattr(module_ns, f"{name}InitArgs", None) or getattr(module_ns, f"{name}Args")


def element_type(declared: Any) -> Any:
    """The input type inside Sequence[Union[T, Awaitable[T], Output[T]]] and similar wrappers."""
    args = [a for a in typing.get_args(declared) if a is not type(None)]
    if typing.get_origin(declared) is typing.Union:
        return element_type(args[0])
    if typing.get_origin(declared) in (Sequence, list, typing.Sequence) and args:
        return element_type(args[0])
    return declared


def unknown_properties(cls: type, value: Mapping[str, Any], path: str) -> list[str]:
    """Camel-case keys in `value` that the SDK input type `cls` does not have, recursively."""
    declared = _types.input_type_types(cls)
    problems = []
    for key, item in value.items():
        if key not in declared:
            problems.append(f"{path}.{key}")
            continue
        inner = element_type(declared[key])
        for i, element in enumerate(item if isinstance(item, list) else [item]):
            if isinstance(element, dict) and isinstance(inner, type) and _types.is_input_type(inner):
                problems += unknown_properties(inner, element, f"{path}.{key}[{i}]")
    return problems


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_input_property_is_one_the_sdk_knows(stack_runs, stack):
    """Catches a misspelled key in a plain dict passed where the SDK expects a typed Args object."""
    harness, _ = stack_runs[stack]
    problems = []
    for r in harness.resources:
        if r.type.startswith("aws:"):
            problems += unknown_properties(args_class(r.type), r.inputs, f"{r.name} ({r.type})")
    assert problems == []


def test_property_check_catches_a_misspelled_key():
    inputs = {"metadataOptions": {"httpTokens": "required", "httpToken": "required"},
              "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"volumeSize": 1, "encrypt": "true"}}]}
    assert unknown_properties(aws.ec2.LaunchTemplateArgs, inputs, "lt") == [
        "lt.metadataOptions[0].httpToken", "lt.blockDeviceMappings[0].ebs[0].encrypt"]
