"""GpuAutoScalingGroup: launch template, least-privilege role, user data, mixed instances, warm pool, desired size."""

from __future__ import annotations

import base64
import json

import pytest

from gpu_metrics_agent.catalogue import NAMESPACE
from gpuscale.components.agent_user_data import DRAIN_HOOK, LIFECYCLE_HOOK, AgentSettings
from gpuscale.components.gpu_asg import GpuAutoScalingGroup, GpuAutoScalingGroupArgs
from gpuscale.config.groups import DEFAULT_AMI_PARAMETER

ASG = "aws:autoscaling/group:Group"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
BUCKET_ARN = "arn:aws:s3:::agent-bucket"


def asg_args(*types: str, **overrides) -> GpuAutoScalingGroupArgs:
    args: GpuAutoScalingGroupArgs = {
        "vpc_id": "vpc-1", "subnet_ids": ["subnet-1", "subnet-2"], "instance_types": list(types or ["g6e.xlarge"]),
        "min_size": 1, "max_size": 8, "agent_bucket_arn": BUCKET_ARN, "agent_bucket_name": "agent-bucket",
        "agent_object_key": "gpu-metrics-agent/abc.zip", "region": "us-west-2",
        "agent": AgentSettings(sample_interval_seconds=1, flush_interval_seconds=10, prometheus_port=9400)}
    args.update(overrides)  # type: ignore[typeddict-item]
    return args


def test_launch_template_imdsv2_with_instance_tags_encrypted_gp3_and_ssm_ami(harness):
    harness.run(lambda: GpuAutoScalingGroup("infer", asg_args(root_volume_gib=300)))
    lt = harness.one(LT, "infer-lt")
    assert lt.inputs["metadataOptions"] == {"httpEndpoint": "enabled", "httpTokens": "required",
                                            "httpPutResponseHopLimit": 2, "instanceMetadataTags": "enabled"}, \
        f"{lt.name}: IMDSv2 only, and instance tags readable by the agent"
    [disk] = lt.inputs["blockDeviceMappings"]
    assert disk == {"deviceName": "/dev/xvda", "ebs": {"volumeSize": 300, "volumeType": "gp3", "encrypted": "true",
                                                       "deleteOnTermination": "true"}}, lt.name
    assert lt.inputs["imageId"].startswith("ami-"), f"{lt.name}: AMI id from the public SSM parameter"
    assert lt.inputs["instanceType"] == "g6e.xlarge", f"{lt.name}: one type and no Spot: the template names it"
    assert ":instance-profile/infer-profile-" in lt.inputs["iamInstanceProfile"]["arn"], lt.name


def test_ami_comes_from_the_configured_public_parameter(harness):
    harness.run(lambda: GpuAutoScalingGroup("infer", asg_args()))
    assert [args["name"] for token, args in harness.invokes if token == "aws:ssm/getParameter:getParameter"] == \
        [DEFAULT_AMI_PARAMETER], "the Deep Learning Base AMI parameter by default"
    harness.run(lambda: GpuAutoScalingGroup("infer", asg_args(ami_parameter="/aws/service/x/ami-id")))
    assert ("aws:ssm/getParameter:getParameter", {"name": "/aws/service/x/ami-id"}) in harness.invokes


def test_instance_policy_is_scoped_to_our_namespace_and_the_agent_archive(harness):
    harness.run(lambda: GpuAutoScalingGroup("infer", asg_args()))
    policy = json.loads(harness.one("aws:iam/rolePolicy:RolePolicy", "infer-agent").inputs["policy"])
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert set(by_sid) == {"PublishGpuMetrics", "ReadAgentArchive", "ReportReady"}, "nothing else is granted"
    metrics = by_sid["PublishGpuMetrics"]
    assert metrics["Action"] == "cloudwatch:PutMetricData"
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": NAMESPACE}}, "only our namespace"
    archive = by_sid["ReadAgentArchive"]
    assert (archive["Action"], archive["Resource"]) == ("s3:GetObject", f"{BUCKET_ARN}/gpu-metrics-agent/abc.zip")
    ready = by_sid["ReportReady"]
    assert ready["Action"] == "autoscaling:CompleteLifecycleAction"
    assert ready["Condition"] == {"StringEquals": {"autoscaling:ResourceTag/gpuscale:group": "test/infer"}}
    group_tags = {t["key"]: t["value"] for t in harness.one(ASG).inputs["tags"]}
    assert group_tags["gpuscale:group"] == "test/infer", "the tag the lifecycle permission is scoped to"
    attached = [a.inputs["policyArn"] for a in harness.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")]
    assert attached == ["arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"]


def test_a_draining_agent_is_told_its_hook_and_needs_no_lookup_permission(harness):
    harness.run(lambda: GpuAutoScalingGroup("infer", asg_args(agent=AgentSettings(drain_timeout_seconds=300))))
    policy = json.loads(harness.one("aws:iam/rolePolicy:RolePolicy", "infer-agent").inputs["policy"])
    assert {s["Sid"] for s in policy["Statement"]} == {"PublishGpuMetrics", "ReadAgentArchive", "ReportReady"}
    env = AgentSettings(drain_timeout_seconds=300).environment()
    assert env["GPU_METRICS_AGENT_DRAIN_HOOK_NAME"] == DRAIN_HOOK


def test_group_waits_for_the_instance_permissions(harness):
    harness.run(lambda: GpuAutoScalingGroup("infer", asg_args()))
    permissions = {r.urn for r in harness.resources
                   if r.type in ("aws:iam/rolePolicy:RolePolicy", "aws:iam/rolePolicyAttachment:RolePolicyAttachment")}
    asg = harness.one(ASG)
    assert len(permissions) == 2 and permissions <= set(asg.dependencies), \
        f"{asg.name}: the first boot downloads the archive with these permissions"


def test_ssm_access_can_be_left_out(harness):
    harness.run(lambda: GpuAutoScalingGroup("infer", asg_args(ssm_access=False)))
    assert harness.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment") == []


def test_user_data_installs_the_archive_and_starts_the_service(harness):
    harness.run(lambda: GpuAutoScalingGroup("infer", asg_args()))
    script = base64.b64decode(harness.one(LT).inputs["userData"]).decode()
    assert script.startswith("#!/bin/bash\n")
    assert "aws s3 cp --only-show-errors --region us-west-2 s3://agent-bucket/gpu-metrics-agent/abc.zip" in script
    assert "/opt/gpu-metrics-agent/bin/pip install" in script
    assert "systemctl enable --now gpu-metrics-agent.service" in script
    assert "GPU_METRICS_AGENT_SAMPLE_INTERVAL=1\n" in script and "GPU_METRICS_AGENT_PROMETHEUS_PORT=9400\n" in script
    assert f"--lifecycle-hook-name {LIFECYCLE_HOOK}" in script


def test_group_leaves_desired_capacity_to_the_scaling_policies(harness):
    harness.run(lambda: GpuAutoScalingGroup("infer", asg_args()))
    asg = harness.one(ASG, "infer-asg")
    assert "desiredCapacity" not in asg.inputs, f"{asg.name}: AWS starts at min_size; policies own it afterwards"
    assert asg.ignore_changes == ("desiredCapacity",), f"{asg.name}: a second `pulumi up` must not reset it"
    assert (asg.inputs["minSize"], asg.inputs["maxSize"]) == (1, 8), asg.name
    assert asg.inputs["healthCheckGracePeriod"] == 600 and asg.inputs["defaultInstanceWarmup"] == 300, asg.name
    assert asg.inputs["instanceRefresh"]["strategy"] == "Rolling", asg.name
    # Launch before terminate; no auto rollback (it would relaunch the new version: terraform-provider-aws#34189).
    assert asg.inputs["instanceRefresh"]["preferences"] == {
        "minHealthyPercentage": 90, "maxHealthyPercentage": 200, "skipMatching": True, "autoRollback": False}, asg.name
    assert asg.inputs["initialLifecycleHooks"] == [{
        "name": LIFECYCLE_HOOK, "lifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
        "defaultResult": "CONTINUE", "heartbeatTimeout": 600}], f"{asg.name}: instances wait for the agent"


def test_one_on_demand_type_uses_the_template_directly(harness):
    harness.run(lambda: GpuAutoScalingGroup("infer", asg_args("g6e.xlarge")))
    asg = harness.one(ASG)
    assert "mixedInstancesPolicy" not in asg.inputs, asg.name
    assert asg.inputs["launchTemplate"]["version"] == "1", asg.name
    assert asg.inputs["capacityRebalance"] is False, f"{asg.name}: no Spot, nothing to rebalance"


def test_spot_and_several_types_get_a_mixed_instances_policy(harness):
    harness.run(lambda: GpuAutoScalingGroup("batch", asg_args(
        "g6.2xlarge", "g5.2xlarge", "g6.4xlarge", on_demand_base_capacity=1, on_demand_percentage_above_base=20,
        spot_allocation_strategy="capacity-optimized")))
    asg, lt = harness.one(ASG), harness.one(LT)
    assert "launchTemplate" not in asg.inputs, f"{asg.name}: the policy carries the template"
    policy = asg.inputs["mixedInstancesPolicy"]
    assert policy["instancesDistribution"] == {
        "onDemandBaseCapacity": 1, "onDemandPercentageAboveBaseCapacity": 20,
        "onDemandAllocationStrategy": "prioritized", "spotAllocationStrategy": "capacity-optimized"}, asg.name
    assert [o["instanceType"] for o in policy["launchTemplate"]["overrides"]] == ["g6.2xlarge", "g5.2xlarge",
                                                                                   "g6.4xlarge"], asg.name
    assert policy["launchTemplate"]["launchTemplateSpecification"]["version"] == "1", asg.name
    assert asg.inputs["capacityRebalance"] is True, f"{asg.name}: replace Spot instances at risk early"
    assert "instanceType" not in lt.inputs, f"{lt.name}: the overrides name the types"


def test_warm_pool(harness):
    harness.run(lambda: GpuAutoScalingGroup("infer", asg_args(warm_pool={
        "min_size": 2, "max_group_prepared_capacity": 4, "pool_state": "Hibernated", "reuse_on_scale_in": False})))
    asg = harness.one(ASG)
    assert asg.inputs["warmPool"] == {"minSize": 2, "maxGroupPreparedCapacity": 4, "poolState": "Hibernated",
                                      "instanceReusePolicy": {"reuseOnScaleIn": False}}, asg.name
    lt = harness.one(LT)
    assert lt.inputs["hibernationOptions"] == {"configured": True}, f"{lt.name}: instances must be able to hibernate"


def test_warm_pool_defaults(harness):
    harness.run(lambda: GpuAutoScalingGroup("infer", asg_args(warm_pool={})))
    assert harness.one(ASG).inputs["warmPool"] == {"minSize": 0, "poolState": "Stopped",
                                                   "instanceReusePolicy": {"reuseOnScaleIn": True}}
    assert "hibernationOptions" not in harness.one(LT).inputs


@pytest.mark.parametrize("types, percentage", [(("g6.xlarge", "g5.xlarge"), 100), (("g6.xlarge",), 50)])
def test_warm_pool_with_mixed_instances_or_spot_is_rejected(harness, types, percentage):
    with pytest.raises(ValueError, match=r"^warm_pool \(GpuAutoScalingGroup \"bad\"\): .*one instance type and only "
                                         r"on-demand capacity .*which AWS refuses"):
        harness.run(lambda: GpuAutoScalingGroup("bad", asg_args(
            *types, on_demand_percentage_above_base=percentage, warm_pool={"min_size": 1})))
    assert harness.of_type(ASG) == [], "rejected before any resource is declared"


@pytest.mark.parametrize("override, arg", [
    ({"instance_types": []}, "instance_types"), ({"min_size": 9}, "min_size"),
    ({"on_demand_percentage_above_base": 101}, "on_demand_percentage_above_base"),
    # The instances' tags are in their metadata (the agent reads its group there): EC2 refuses "/" in those keys.
    ({"tags": {"kubernetes.io/cluster/c1": "owned"}}, "tags"), ({"tags": {"cost center": "ml"}}, "tags"),
    ({"tags": {"_index": "1"}}, "tags")])
def test_bad_args_are_rejected_with_their_name(harness, override, arg):
    with pytest.raises(ValueError,
                       match=rf"^{arg}\b[^(]* \(GpuAutoScalingGroup \"bad\"\): .* is not allowed; allowed: "):
        harness.run(lambda: GpuAutoScalingGroup("bad", asg_args(**override)))


def test_security_group_opens_only_the_metrics_port_to_the_given_networks(harness):
    harness.run(lambda: GpuAutoScalingGroup("infer", asg_args(metrics_ingress_cidrs=["10.50.0.0/16"])))
    sg = harness.one("aws:ec2/securityGroup:SecurityGroup")
    [rule] = sg.inputs["ingress"]
    assert (rule["fromPort"], rule["toPort"], rule["protocol"], rule["cidrBlocks"]) == (9400, 9400, "tcp",
                                                                                        ["10.50.0.0/16"]), sg.name
    harness.run(lambda: GpuAutoScalingGroup("infer", asg_args()))
    assert harness.one("aws:ec2/securityGroup:SecurityGroup").inputs.get("ingress", []) == [], \
        "no inbound rule unless scrapers are named"


def test_outputs(harness):
    group = harness.run(lambda: GpuAutoScalingGroup("infer", asg_args()))
    assert harness.value(group.asg_name).startswith("infer-asg-")
    assert harness.value(group.asg_arn).startswith("arn:aws:autoscaling:us-west-2:123456789012:autoScalingGroup:")
    assert harness.value(group.launch_template_id).startswith("lt-")
    assert harness.value(group.instance_role_name).startswith("infer-role-")
    assert harness.value(group.security_group_id).startswith("sg-")
