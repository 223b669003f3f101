"""GpuNodeGroup: taint, labels, IMDSv2, encrypted gp3 storage, desired size left alone, scale-from-zero tags."""

from __future__ import annotations

import pytest

from gpuscale.components.gpu_node_group import GpuNodeGroup, GpuNodeGroupArgs
from gpuscale.instance_types import RecordedInstanceTypes

CA = "k8s.io/cluster-autoscaler"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
NG = "aws:eks/nodeGroup:NodeGroup"
TAG = "aws:autoscaling/tag:Tag"


def group_args(instance_type: str = "p5.48xlarge", **overrides) -> GpuNodeGroupArgs:
    info = RecordedInstanceTypes().describe(instance_type)
    assert info is not None
    args: GpuNodeGroupArgs = {
        "cluster_name": "c1", "node_role_arn": "arn:aws:iam::123456789012:role/nodes",
        "subnet_ids": ["subnet-1", "subnet-2"], "instance_types": [instance_type],
        "gpu_count": info.gpu_count, "gpu_name": info.gpu_name, "min_size": 0, "max_size": 2,
        "capacity_type": "ON_DEMAND", "root_volume_gib": 500, "labels": {"team": "ml"}}
    args.update(overrides)  # type: ignore[typeddict-item]
    return args


def asg_tags(harness) -> dict[str, str]:
    return {t.inputs["tag"]["key"]: t.inputs["tag"]["value"] for t in harness.of_type(TAG)}


def test_scale_from_zero_tags_describe_an_h100_node_from_ec2_data(harness):
    group = harness.run(lambda: GpuNodeGroup("h100", group_args("p5.48xlarge")))
    tags = asg_tags(harness)
    assert tags[f"{CA}/node-template/resources/nvidia.com/gpu"] == "8", "p5.48xlarge carries 8 H100s (EC2 data)"
    assert tags[f"{CA}/enabled"] == "true"
    assert tags[f"{CA}/c1"] == "owned", "auto-discovery tag naming the cluster"
    assert tags[f"{CA}/node-template/taint/nvidia.com/gpu"] == "true:NoSchedule"
    assert tags[f"{CA}/node-template/label/gpuscale.io/gpu-class"] == "h100"
    assert tags[f"{CA}/node-template/label/k8s.amazonaws.com/accelerator"] == "nvidia-h100"
    assert tags[f"{CA}/node-template/label/gpuscale.io/capacity-type"] == "on-demand"
    assert tags[f"{CA}/node-template/label/eks.amazonaws.com/capacityType"] == "ON_DEMAND"
    assert tags[f"{CA}/node-template/label/team"] == "ml", "the caller's labels are in the template too"

    asg_name = harness.value(group.asg_name)
    assert asg_name.startswith("eks-"), "the managed node group's own Auto Scaling group"
    for tag in harness.of_type(TAG):
        assert tag.inputs["autoscalingGroupName"] == asg_name, f"{tag.name} tags the node group's ASG"
        assert tag.inputs["tag"]["propagateAtLaunch"] is False, f"{tag.name} describes the group, not instances"


@pytest.mark.parametrize("instance_type, gpus", [("g6.xlarge", "1"), ("g5.12xlarge", "4"), ("p4d.24xlarge", "8")])
def test_gpu_count_tag_follows_the_instance_type(harness, instance_type, gpus):
    harness.run(lambda: GpuNodeGroup("g", group_args(instance_type)))
    assert asg_tags(harness)[f"{CA}/node-template/resources/nvidia.com/gpu"] == gpus, instance_type


def test_node_group_taint_labels_capacity_and_desired_size(harness):
    harness.run(lambda: GpuNodeGroup("l4", group_args("g6.xlarge", capacity_type="SPOT", min_size=1, max_size=5)))
    ng = harness.one(NG, "l4-ng")
    assert ng.inputs["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}], ng.name
    assert ng.inputs["labels"]["gpuscale.io/gpu-class"] == "l4", ng.name
    assert ng.inputs["labels"]["gpuscale.io/capacity-type"] == "spot", ng.name
    assert ng.inputs["capacityType"] == "SPOT", ng.name
    assert ng.inputs["amiType"] == "AL2023_x86_64_NVIDIA", ng.name
    assert ng.inputs["scalingConfig"] == {"minSize": 1, "maxSize": 5, "desiredSize": 1}, ng.name
    assert ng.ignore_changes == ("scalingConfig.desiredSize",), f"{ng.name}: a second `pulumi up` keeps the size"
    assert "diskSize" not in ng.inputs, f"{ng.name}: the launch template sizes the disk (EKS rejects both)"


def test_launch_template_requires_imdsv2_and_encrypts_a_gp3_root(harness):
    harness.run(lambda: GpuNodeGroup("h100", group_args()))
    lt = harness.one(LT, "h100-lt")
    # Metadata tags off: EKS and cluster-autoscaler tag keys hold "/", which EC2 refuses on such instances.
    assert lt.inputs["metadataOptions"] == {"httpEndpoint": "enabled", "httpTokens": "required",
                                            "httpPutResponseHopLimit": 2, "instanceMetadataTags": "disabled"}, lt.name
    [disk] = lt.inputs["blockDeviceMappings"]
    assert disk["deviceName"] == "/dev/xvda", f"{lt.name}: AL2023 keeps images on its root volume"
    assert disk["ebs"] == {"volumeSize": 500, "volumeType": "gp3", "encrypted": "true",
                           "deleteOnTermination": "true"}, lt.name
    assert "imageId" not in lt.inputs and "userData" not in lt.inputs, f"{lt.name}: EKS picks the AMI and bootstrap"


def test_bottlerocket_sizes_its_data_volume(harness):
    harness.run(lambda: GpuNodeGroup("a10g", group_args("g5.12xlarge", ami_type="BOTTLEROCKET_x86_64_NVIDIA")))
    lt = harness.one(LT, "a10g-lt")
    root, data = lt.inputs["blockDeviceMappings"]
    assert data == {"deviceName": "/dev/xvdb", "ebs": {"volumeSize": 500, "volumeType": "gp3", "encrypted": "true",
                                                       "deleteOnTermination": "true"}}, \
        f"{lt.name}: Bottlerocket keeps container images on /dev/xvdb"
    # Its root is the small OS image: encrypted like everything else, at the size the AMI gives it.
    assert root == {"deviceName": "/dev/xvda", "ebs": {"volumeType": "gp3", "encrypted": "true",
                                                       "deleteOnTermination": "true"}}, lt.name


def test_node_group_uses_the_latest_launch_template_version(harness):
    harness.run(lambda: GpuNodeGroup("l4", group_args("g6.xlarge")))
    ng = harness.one(NG)
    assert ng.inputs["launchTemplate"]["version"] == "1", f"{ng.name}: an explicit version, not $Latest"
    assert ng.inputs["launchTemplate"]["id"].startswith("lt-"), ng.name


@pytest.mark.parametrize("override, arg", [({"gpu_count": 0}, "gpu_count"), ({"instance_types": []}, "instance_types"),
                                           ({"ami_type": "AL2_x86_64_GPU"}, "ami_type")])
def test_bad_args_are_rejected_with_their_name(harness, override, arg):
    with pytest.raises(ValueError, match=arg):
        harness.run(lambda: GpuNodeGroup("bad", group_args("g6.xlarge", **override)))


def test_accelerator_label_is_on_the_nodes_and_in_the_scale_from_zero_template(harness):
    """cluster-autoscaler treats a node with this label as a GPU node that is not ready until the device plugin
    advertises nvidia.com/gpu: on a real node (EKS applies the group's labels at registration) and on the node it
    pictures for a group at zero (the template tags)."""
    harness.run(lambda: GpuNodeGroup("l4", group_args("g6.xlarge")))
    labels = harness.one(NG).inputs["labels"]
    assert labels["k8s.amazonaws.com/accelerator"] == "nvidia-l4"
    template = asg_tags(harness)
    assert template[f"{CA}/node-template/label/k8s.amazonaws.com/accelerator"] == labels[
        "k8s.amazonaws.com/accelerator"]
    for key, value in labels.items():
        assert template[f"{CA}/node-template/label/{key}"] == value, f"{key} pictured at zero too"
    assert labels["gpuscale.io/ami-family"] == "al2023"


def test_autoscaling_options_become_tags_the_aws_provider_reads(harness):
    harness.run(lambda: GpuNodeGroup("l4", group_args("g6.xlarge", autoscaling_options={
        "scaledownunneededtime": "1200s", "scaledowngpuutilizationthreshold": "0.25"})))
    tags = asg_tags(harness)
    assert tags[f"{CA}/node-template/autoscaling-options/scaledownunneededtime"] == "1200s"
    assert tags[f"{CA}/node-template/autoscaling-options/scaledowngpuutilizationthreshold"] == "0.25"


def test_unknown_autoscaling_option_is_refused(harness):
    with pytest.raises(ValueError, match=r"^autoscaling_options.maxnodeprovisiontime \(GpuNodeGroup \"l4\"\): '600s' "
                                         r"is not allowed; allowed: options cluster-autoscaler's AWS provider reads"):
        harness.run(lambda: GpuNodeGroup("l4", group_args("g6.xlarge", autoscaling_options={
            "maxnodeprovisiontime": "600s"})))
    assert harness.of_type(NG) == []


def test_an_image_cache_restores_bottlerocket_data_volume_from_its_snapshot(harness):
    snap = "snap-0123456789abcdef0"
    harness.run(lambda: GpuNodeGroup("l4", group_args("g6.xlarge", ami_type="BOTTLEROCKET_x86_64_NVIDIA",
                                                      image_cache={"snapshot_id": snap})))
    root, data = harness.one(LT, "l4-lt").inputs["blockDeviceMappings"]
    assert data == {"deviceName": "/dev/xvdb", "ebs": {"volumeSize": 500, "volumeType": "gp3", "encrypted": "true",
                                                       "deleteOnTermination": "true", "snapshotId": snap}}
    assert "snapshotId" not in root["ebs"], "the OS volume stays the AMI's"


@pytest.mark.parametrize("overrides, message", [
    ({"image_cache": {"snapshot_id": "snap-0123456789abcdef0"}},
     "image_cache.snapshot_id (GpuNodeGroup \"bad\"): 'snap-0123456789abcdef0' is not allowed; allowed: an image "
     "cache only on a Bottlerocket AMI type"),
    ({"ami_type": "BOTTLEROCKET_x86_64_NVIDIA", "image_cache": {"snapshot_id": "vol-1"}},
     "image_cache.snapshot_id (GpuNodeGroup \"bad\"): 'vol-1' is not allowed; allowed: an EBS snapshot id"),
    ({"ami_type": "BOTTLEROCKET_x86_64_NVIDIA", "image_cache": {"snapshot": "snap-0123456789abcdef0"}},
     "image_cache.snapshot"),
], ids=["al2023", "not-a-snapshot", "misspelt"])
def test_a_bad_image_cache_is_refused_before_anything_is_declared(harness, overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        harness.run(lambda: GpuNodeGroup("bad", group_args("g6.xlarge", **overrides)))
    assert not harness.of_type(LT)


def test_image_volume_throughput_is_provisioned_on_the_image_volume_only(harness):
    harness.run(lambda: GpuNodeGroup("l4", group_args("g6.xlarge", ami_type="BOTTLEROCKET_x86_64_NVIDIA",
                                                      image_volume_throughput_mibps=1000)))
    root, data = harness.one(LT, "l4-lt").inputs["blockDeviceMappings"]
    assert data["ebs"]["throughput"] == 1000 and "throughput" not in root["ebs"]
    with pytest.raises(ValueError, match=r"image_volume_throughput_mibps .*an integer in \[125, 1000\]"):
        harness.run(lambda: GpuNodeGroup("bad", group_args("g6.xlarge", image_volume_throughput_mibps=2000)))
