"""GpuScaleMocks answer like AWS, through the provider SDK's own result types, and the same way every time."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pytest

from gpuscale.components.gpu_node_group import GpuNodeGroup
from gpuscale.instance_types import PulumiInstanceTypes
from gpuscale.plan.mocks import ACCOUNT_ID, GpuScaleMocks, partition_of


def test_instance_type_invoke_answers_with_ec2_data(harness):
    result = harness.run(lambda: aws.ec2.get_instance_type(instance_type="p5.48xlarge"))
    assert [(g.count, g.manufacturer, g.name, g.memory_size) for g in result.gpuses] == \
        [(8, "NVIDIA", "H100", 81920)]
    assert (result.default_vcpus, result.memory_size, result.supported_architectures) == (192, 2097152, ["x86_64"])


def test_pulumi_instance_types_reads_the_invoke_and_reports_unknown_types(harness):
    catalog = PulumiInstanceTypes()
    info, missing = harness.run(lambda: (catalog.describe("g6.xlarge"), catalog.describe("g9.nonexistent")))
    assert (info.gpu_count, info.gpu_name, info.architectures) == (1, "L4", ("x86_64",))
    assert missing is None, "an unknown type is an invoke error the catalog turns into None, as with the provider"


def test_unknown_instance_type_fails_like_the_provider(harness):
    with pytest.raises(Exception, match="InvalidInstanceType"):
        harness.run(lambda: aws.ec2.get_instance_type(instance_type="g9.nonexistent"))


def test_unknown_invoke_fails_and_names_the_token(harness):
    with pytest.raises(Exception, match="aws:ec2/getVpc:getVpc"):
        harness.run(lambda: aws.ec2.get_vpc(default=True))


def test_invokes_fill_the_sdk_result_types(harness):
    def program():
        return (aws.get_availability_zones(state="available"), aws.get_caller_identity(), aws.get_partition(),
                aws.get_region(), aws.ssm.get_parameter(name="/aws/service/x/ami-id"),
                aws.eks.get_cluster(name="shared"))

    zones, identity, partition, region, parameter, cluster = harness.run(program)
    assert zones.names[:2] == ["us-west-2a", "us-west-2b"] and len(zones.zone_ids) == len(zones.names)
    assert identity.account_id == ACCOUNT_ID
    assert (partition.partition, partition.dns_suffix) == ("aws", "amazonaws.com")
    assert region.region == "us-west-2"
    assert parameter.value.startswith("ami-") and parameter.type == "String"
    assert cluster.vpc_config.vpc_id.startswith("vpc-") and len(cluster.vpc_config.subnet_ids) == 3
    assert cluster.identities[0].oidcs[0].issuer.startswith("https://oidc.eks.us-west-2.amazonaws.com/id/")
    assert cluster.certificate_authorities[0].data


def test_ids_and_names_are_deterministic(harness):
    def program():
        group = GpuNodeGroup("l4", {"cluster_name": "c", "node_role_arn": "arn:aws:iam::1:role/n",
                                    "subnet_ids": ["subnet-1"], "instance_types": ["g6.xlarge"], "gpu_count": 1,
                                    "gpu_name": "L4", "min_size": 0, "max_size": 1})
        return pulumi.Output.all(group.asg_name, group.node_group_name, group.launch_template_id)

    first = harness.value(harness.run(program))
    first_ids = sorted((r.name, r.id) for r in harness.resources)
    second = harness.value(harness.run(program))
    assert first == second and first_ids == sorted((r.name, r.id) for r in harness.resources), \
        "two runs of the same program get the same ids, names and ASG names (plans must diff cleanly)"
    assert first[0].startswith("eks-l4-ng-") and first[1].startswith("l4-ng-") and first[2].startswith("lt-")


def test_arns_use_the_configured_region_and_partition(harness):
    harness.region = "us-gov-west-1"
    role = harness.run(lambda: aws.iam.Role("r", assume_role_policy="{}"))
    assert harness.value(role.arn).startswith(f"arn:aws-us-gov:iam::{ACCOUNT_ID}:role/r-")
    group = harness.run(lambda: aws.autoscaling.Group("g", min_size=0, max_size=1))
    assert harness.value(group.arn).startswith(f"arn:aws-us-gov:autoscaling:us-gov-west-1:{ACCOUNT_ID}:")
    assert harness.value(group.desired_capacity) == 0, "AWS starts a group without desired capacity at min_size"


@pytest.mark.parametrize("region, partition", [("us-east-1", "aws"), ("cn-north-1", "aws-cn"),
                                               ("us-gov-east-1", "aws-us-gov")])
def test_partition_of(region, partition):
    assert partition_of(region) == partition


def test_explicit_region_wins_over_config():
    assert GpuScaleMocks(region="eu-central-1").region == "eu-central-1"
