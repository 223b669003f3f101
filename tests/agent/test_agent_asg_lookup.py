"""The Auto Scaling group dimension on EKS nodes, where instance metadata carries no tags: looked up from the
instance id with DescribeAutoScalingInstances (or given with --asg-name), against moto on loopback."""

from __future__ import annotations

import logging

import boto3
import pytest

from agent_support import FakeImds, stored_count, wait_until
from gpu_metrics_agent import catalogue as cat
from gpu_metrics_agent.fake_nvml import FakeNvml
from test_agent_lifecycle import RecordingProxy

GROUP = "eks-gpu-ng-1a2b3c"


@pytest.fixture
def eks_node(moto, moto_server, monkeypatch):
    """An instance of a moto Auto Scaling group, instance metadata without tags, Auto Scaling behind a recorder."""
    url, _cloudwatch = moto
    autoscaling = boto3.client("autoscaling", region_name="us-east-1", endpoint_url=url)
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=url)
    ec2.create_launch_template(LaunchTemplateName="eks-gpu", LaunchTemplateData={
        "ImageId": "ami-12c6146b", "InstanceType": "g6.xlarge"})
    autoscaling.create_auto_scaling_group(AutoScalingGroupName=GROUP, LaunchTemplate={"LaunchTemplateName": "eks-gpu"},
                                          MinSize=1, MaxSize=1, DesiredCapacity=1, AvailabilityZones=["us-east-1a"])
    instance_id = autoscaling.describe_auto_scaling_instances()["AutoScalingInstances"][0]["InstanceId"]
    # The region too comes from instance metadata, as on a node whose pod has no AWS_REGION.
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    imds = FakeImds({"/latest/meta-data/instance-id": instance_id,
                     "/latest/meta-data/instance-type": "g6.xlarge",
                     "/latest/meta-data/placement/region": "us-east-1"})
    recorder = RecordingProxy(moto_server, autoscaling)
    yield instance_id, imds, recorder
    recorder.close()
    imds.close()


def _agent(make_agent, url, imds, recorder, **options):
    unknown = dict(asg_name=None, instance_id=None, instance_type=None, region=None)
    agent = make_agent(FakeNvml(1), cloudwatch_endpoint=url, prometheus=False, imds_endpoint=imds.url,
                       autoscaling_endpoint=recorder.url, **{**unknown, **options})
    agent.start()
    return agent


def test_the_group_is_looked_up_from_the_instance_id_once(moto, eks_node, make_agent):
    url, client = moto
    instance_id, imds, recorder = eks_node
    agent = _agent(make_agent, url, imds, recorder, scale_in_protection=True)  # two threads need the identity
    wait_until(lambda: agent.health.cw_sent > 0, message="a flush")
    agent.stop()
    lookups = recorder.actions("DescribeAutoScalingInstances")
    assert [form["InstanceIds.member.1"] for form in lookups] == [instance_id], "one look-up serves every thread"
    assert ("GET", "/latest/meta-data/tags/instance/aws:autoscaling:groupName") in imds.requests, "metadata first"
    node = {cat.DIM_ASG: GROUP, cat.DIM_INSTANCE_ID: instance_id, cat.DIM_INSTANCE_TYPE: "g6.xlarge"}
    assert stored_count(client, cat.AGENT_HEARTBEAT.name, node) == agent.health.collections
    assert stored_count(client, cat.NODE_GPU_COUNT.name, {cat.DIM_ASG: GROUP}) >= agent.health.collections


def test_a_group_name_given_is_used_without_any_look_up(moto, eks_node, make_agent):
    url, client = moto
    instance_id, imds, recorder = eks_node
    agent = _agent(make_agent, url, imds, recorder, asg_name="named-by-the-daemonset")
    wait_until(lambda: agent.health.cw_sent > 0, message="a flush")
    agent.stop()
    assert recorder.actions("DescribeAutoScalingInstances") == []
    node = {cat.DIM_ASG: "named-by-the-daemonset", cat.DIM_INSTANCE_ID: instance_id,
            cat.DIM_INSTANCE_TYPE: "g6.xlarge"}
    assert stored_count(client, cat.AGENT_HEARTBEAT.name, node) == agent.health.collections


def test_a_refused_look_up_names_the_permission_and_publishing_waits_without_losing_data(moto, eks_node, make_agent,
                                                                                          caplog):
    url, client = moto
    instance_id, imds, recorder = eks_node
    recorder.fail["DescribeAutoScalingInstances"] = 3
    with caplog.at_level(logging.WARNING, logger="gpu_metrics_agent"):
        agent = _agent(make_agent, url, imds, recorder)
        wait_until(lambda: agent.health.cw_errors["discovery"] >= 3, message="three failed look-ups")
    assert "needs autoscaling:DescribeAutoScalingInstances, or set --asg-name" in caplog.text
    assert agent.health.cw_sent == 0
    wait_until(lambda: agent.health.cw_sent > 0 and len(agent.cloudwatch.buffer) < 100, message="publishing")
    agent.stop()
    node = {cat.DIM_ASG: GROUP, cat.DIM_INSTANCE_ID: instance_id, cat.DIM_INSTANCE_TYPE: "g6.xlarge"}
    assert stored_count(client, cat.AGENT_HEARTBEAT.name, node) == agent.health.collections, "nothing sampled lost"


def test_an_instance_in_no_group_is_told_to_set_the_name(moto, eks_node, make_agent, caplog):
    url, _client = moto
    _instance_id, imds, recorder = eks_node
    imds.items["/latest/meta-data/instance-id"] = "i-0000000000000beef"
    with caplog.at_level(logging.WARNING, logger="gpu_metrics_agent"):
        agent = _agent(make_agent, url, imds, recorder)
        wait_until(lambda: agent.health.cw_errors["discovery"] >= 1, message="a failed discovery")
    agent.stop()
    assert "instance i-0000000000000beef is in no Auto Scaling group" in caplog.text and "--asg-name" in caplog.text
    assert agent.health.cw_sent == 0
