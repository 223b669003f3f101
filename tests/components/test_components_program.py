"""The whole program (__main__.py) for both stacks under the mocks: config read once and validated before any
resource, GPU counts from EC2 data, desired sizes left alone, and the outputs other tools read."""

from __future__ import annotations

import copy
import json

import pulumi
import pytest
from components_harness import Harness, stack_values

from gpuscale.config import ConfigError
from gpuscale.instance_types import RecordedInstanceTypes

CA_GPU = "k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_node_group_advertises_its_gpus_from_ec2_data(stack_runs, stack):
    harness, outputs = stack_runs[stack]
    groups = stack_values(stack)["gpuscale:nodeGroups"]
    assert set(outputs["nodeGroups"]) == {g["name"] for g in groups}
    for g in groups:
        expected = RecordedInstanceTypes().describe(g["instanceTypes"][0]).gpu_count
        tags = {t.inputs["tag"]["key"]: t.inputs["tag"]["value"] for t in harness.of_type("aws:autoscaling/tag:Tag")
                if t.name.startswith(f"{g['name']}-ca-")}
        assert tags[CA_GPU] == str(expected), f"{g['name']}: {g['instanceTypes'][0]} has {expected} GPUs"
        assert all(t.inputs["autoscalingGroupName"] == outputs["nodeGroups"][g["name"]]["asgName"]
                   for t in harness.of_type("aws:autoscaling/tag:Tag") if t.name.startswith(f"{g['name']}-ca-"))


def test_prod_multi_gpu_groups(stack_runs):
    harness, _ = stack_runs["prod"]
    gpus = {t.name.removesuffix("-ca-resources-nvidia-com-gpu"): t.inputs["tag"]["value"]
            for t in harness.of_type("aws:autoscaling/tag:Tag") if t.name.endswith("-ca-resources-nvidia-com-gpu")}
    assert gpus == {"l4-ondemand": "1", "l4-spot": "1", "a10g-x4": "4", "h100-x8": "8"}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_no_group_size_is_reset_by_a_second_up(stack_runs, stack):
    harness, _ = stack_runs[stack]
    for ng in harness.of_type("aws:eks/nodeGroup:NodeGroup"):
        assert ng.ignore_changes == ("scalingConfig.desiredSize",), ng.name
    for asg in harness.of_type("aws:autoscaling/group:Group"):
        assert "desiredCapacity" in asg.ignore_changes and "desiredCapacity" not in asg.inputs, asg.name


def test_prod_groups_match_their_config(stack_runs):
    harness, outputs = stack_runs["prod"]
    assert set(outputs["autoScalingGroups"]) == {"infer-l40s", "batch-spot"}
    asgs = {a.name: a.inputs for a in harness.of_type("aws:autoscaling/group:Group")}
    infer, batch = asgs["infer-l40s-asg"], asgs["batch-spot-asg"]
    assert infer["warmPool"]["minSize"] == 2 and infer["warmPool"]["maxGroupPreparedCapacity"] == 4
    assert "mixedInstancesPolicy" not in infer, "one on-demand type: a warm pool, no mixed instances policy"
    assert (infer["healthCheckGracePeriod"], infer["defaultInstanceWarmup"]) == (900, 420)
    assert batch["mixedInstancesPolicy"]["instancesDistribution"]["onDemandPercentageAboveBaseCapacity"] == 0
    assert batch["capacityRebalance"] is True and "warmPool" not in batch


def test_outputs(stack_runs):
    _, outputs = stack_runs["prod"]
    assert outputs["clusterName"] == "gpuscale-prod"
    assert outputs["oidcProviderArn"].startswith("arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.")
    assert len(outputs["privateSubnetIds"]) == 3, "availabilityZoneCount: 3"
    assert outputs["autoScalingGroups"]["infer-l40s"]["asgName"].startswith("infer-l40s-asg-")


def test_runs_are_identical(stack_runs):
    harness, outputs = stack_runs["dev"]
    again = Harness()
    assert again.run_program("dev") == outputs
    def plan(h: Harness) -> list[tuple[str, str, str]]:
        return sorted((r.urn, r.id, json.dumps(r.inputs, sort_keys=True, default=_asset_json))
                      for r in h.resources)

    assert plan(harness) == plan(again), "plans must diff cleanly"


def test_existing_cluster_mode():
    values = copy.deepcopy(stack_values("dev"))
    values["gpuscale:cluster"] = {"mode": "existing", "name": "shared-eks", "kubernetesVersion": "1.33"}
    harness = Harness()
    outputs = harness.run_program("dev", values)
    assert harness.of_type("aws:ec2/vpc:Vpc") == [] and harness.of_type("aws:eks/cluster:Cluster") == []
    # The existing cluster's OIDC provider is looked up by its issuer: IRSA roles trust it.
    assert outputs["clusterName"] == "shared-eks"
    assert outputs["oidcProviderArn"].startswith("arn:aws:iam::123456789012:oidc-provider/oidc.eks.")
    ng = harness.one("aws:eks/nodeGroup:NodeGroup")
    assert ng.inputs["clusterName"] == "shared-eks" and ng.inputs["subnetIds"] == outputs["privateSubnetIds"]


@pytest.mark.parametrize("key, change, message", [
    ("gpuscale:autoScalingGroups", lambda gs: gs[0].update(warmPool={"minSize": 1}), "warmPool"),
    ("gpuscale:nodeGroups", lambda gs: gs[0].update(instanceTypes=["m5.large"]), "has no GPUs"),
    ("gpuscale:nodeGroups", lambda gs: gs[0].update(instanceTypes=["g9.nonexistent"]), "exists"),
])
def test_bad_config_fails_before_any_resource(key, change, message):
    values = copy.deepcopy(stack_values("dev"))
    change(values[key])
    harness = Harness()
    with pytest.raises(ConfigError, match=message):
        harness.run_program("dev", values)
    assert [r.type for r in harness.resources] == ["pulumi:pulumi:Stack"], "nothing declared before the config is valid"


def _asset_json(asset):
    """Assets and archives by what they hold: a file's path, or an archive's members."""
    if isinstance(asset, pulumi.AssetArchive):
        return {name: _asset_json(member) for name, member in asset.assets.items()}
    return asset.path


def test_existing_cluster_of_another_version_fails_before_any_resource():
    """The autoscaler's release follows the configured minor; the real cluster (the mocks' runs 1.33) decides."""
    values = copy.deepcopy(stack_values("dev"))
    values["gpuscale:cluster"] = {"mode": "existing", "name": "shared-eks", "kubernetesVersion": "1.31"}
    harness = Harness()
    with pytest.raises(ConfigError) as raised:
        harness.run_program("dev", values)
    assert str(raised.value) == ("gpuscale:cluster.kubernetesVersion: '1.31' is not allowed; allowed: the version "
                                 "of cluster shared-eks, which runs 1.33")
    assert [r.type for r in harness.resources] == ["pulumi:pulumi:Stack"], "nothing declared"


def test_the_program_refuses_a_misspelt_namespace_and_reports_every_mistake():
    """The program passes every key of every namespace to validation: `gpuScale:agent` is refused, not ignored, and
    it is reported with the other mistakes of the same run."""
    values = copy.deepcopy(stack_values("dev"))
    values["gpuScale:agent"] = {"prometheusPort": 9500}
    values["gpuscale:nodeGroups"][0]["maxSize"] = "lots"
    harness = Harness()
    with pytest.raises(ConfigError) as caught:
        harness.run_program("dev", values)
    message = str(caught.value)
    assert message.startswith("2 problems in the config of stack dev:"), message
    assert "gpuScale:agent: {'prometheusPort': 9500} is not allowed; allowed: a key in a known namespace" in message
    assert "did you mean gpuscale:agent?" in message
    assert "gpuscale:nodeGroups[0].maxSize (group \"l4-spot\"): 'lots' is not allowed" in message
    assert [r.type for r in harness.resources] == ["pulumi:pulumi:Stack"]


def test_numbers_set_as_strings_plan_as_numbers():
    """`pulumi config set --path` can store "4" (a value it wrote as a string); the program reads it as 4."""
    values = copy.deepcopy(stack_values("dev"))
    values["gpuscale:nodeGroups"][0]["maxSize"] = "1"
    harness = Harness()
    harness.run_program("dev", values)
    ng = harness.one("aws:eks/nodeGroup:NodeGroup", "l4-spot-ng")
    assert ng.inputs["scalingConfig"]["maxSize"] == 1
