"""GpuNodeGroup: an EKS managed node group of GPU instances that cluster-autoscaler can scale up from zero."""

import re
from collections.abc import Mapping, Sequence

import pulumi
import pulumi_aws as aws
from typing_extensions import NotRequired, TypedDict

from gpuscale.config.args import validate_args
from gpuscale.config.caches import read_image_cache_settings, read_image_volume_throughput
from gpuscale.config.reader import Section
from gpuscale.config.groups import AMI_TYPES, DEFAULT_AMI_TYPE, read_gpu_instance_types, read_node_group_settings
from gpuscale.instance_types import PulumiInstanceTypes

from ._docs import documented
from .labels import (ACCELERATOR_LABEL, AMI_FAMILY_LABEL, CA_AUTOSCALING_OPTION_KEYS, CA_AUTOSCALING_OPTIONS,
                     CA_TAG_PREFIX, CAPACITY_TYPE_LABEL, EKS_CAPACITY_TYPE_LABEL, GPU_CLASS_LABEL, GPU_RESOURCE,
                     GPU_TAINT_VALUE, ca_cluster_tag)

# Which EBS device holds container images: AL2023's root volume, or Bottlerocket's separate data volume (its root
# volume is a small, read-only OS image, encrypted too but left at the size the AMI gives it).
ROOT_DEVICE = "/dev/xvda"
IMAGE_VOLUME_DEVICE = {"AL2023": ROOT_DEVICE, "BOTTLEROCKET": "/dev/xvdb"}


class ImageCacheArgs(TypedDict):
    snapshot_id: str
    """EBS snapshot of a Bottlerocket data volume holding the images (docs/cold-starts.md says how to make one); at
    most root_volume_gib in size."""


class GpuNodeGroupArgs(TypedDict):
    cluster_name: pulumi.Input[str]
    """EKS cluster the group joins."""
    node_role_arn: pulumi.Input[str]
    """IAM role of the nodes (EksNodeRole)."""
    subnet_ids: pulumi.Input[Sequence[str]]
    """Private subnets the nodes launch in."""
    instance_types: Sequence[str]
    """GPU instance types, most preferred first, all with the same GPUs, e.g. ["g6.xlarge", "g6.2xlarge"]."""
    gpu_count: int
    """GPUs per instance, from EC2's instance type description (p5.48xlarge: 8). Tells cluster-autoscaler what a
    node will offer while the group is at zero."""
    gpu_name: str
    """GPU model as EC2 names it ("L4", "A10G", "H100"); the GPU class label is its lowercase form."""
    min_size: int
    """Floor of the group; 0 lets it scale to zero."""
    max_size: int
    """Ceiling of the group."""
    ami_type: NotRequired[str]
    """EKS AMI type with the NVIDIA driver: AL2023_x86_64_NVIDIA, AL2023_ARM_64_NVIDIA, BOTTLEROCKET_x86_64_NVIDIA or
    BOTTLEROCKET_ARM_64_NVIDIA. Default "AL2023_x86_64_NVIDIA"."""
    capacity_type: NotRequired[str]
    """"ON_DEMAND" or "SPOT". Default "ON_DEMAND"."""
    root_volume_gib: NotRequired[int]
    """Size of the volume holding container images (GPU images are often 10-30 GB each). Default 200."""
    labels: NotRequired[Mapping[str, str]]
    """Extra Kubernetes labels on the nodes (and in the scale-from-zero template). Default none."""
    autoscaling_options: NotRequired[Mapping[str, str]]
    """Per-group cluster-autoscaler overrides by the AWS provider's option name (`scaledownunneededtime`: "20m0s",
    `scaledowngpuutilizationthreshold`: "0.3", ...), written as `autoscaling-options` tags on the group's ASG.
    Default none: the autoscaler's cluster-wide settings."""
    tags: NotRequired[dict[str, str]]
    """Tags on the node group, launch template and the instances and volumes it launches. Default none."""
    image_volume_throughput_mibps: NotRequired[int]
    """The gp3 image volume's provisioned throughput, 125-1000 MiB/s (it also holds KServe's local model cache).
    Default gp3's baseline, 125."""
    image_cache: NotRequired[ImageCacheArgs]
    """Bottlerocket only: the data volume (container images) restored from an EBS snapshot that holds the serving
    images, so new nodes start without pulling them. Default none."""


def check_args(s: Section) -> None:
    """The rules of GpuNodeGroupArgs: the stack config's node group rules, and the GPU facts it derives."""
    for key in ("cluster_name", "node_role_arn", "subnet_ids"):
        s.input(key)
    ami_type = read_node_group_settings(s)[0]
    # EC2's own description of each type (a blocking lookup, as the stack config makes): GPUs, NVIDIA, the AMI's
    # architecture, the same GPUs in every type; then the GPU facts the caller passed must be EC2's.
    gpus = read_gpu_instance_types(s, PulumiInstanceTypes(), AMI_TYPES.get(ami_type), same_gpus=True)
    count = s.int("gpu_count", min=1)
    model = s.str("gpu_name", describe="the GPU model as EC2 names it, e.g. L4, A10G, H100")
    if gpus and count != gpus[0].gpu_count:
        s.report("gpu_count", count, f"{gpus[0].gpu_count}, the GPUs of a {gpus[0].instance_type} (cluster-autoscaler "
                                     "pictures a node of the group at zero with this count)")
    if gpus and model != gpus[0].gpu_name:
        s.report("gpu_name", model, f"{gpus[0].gpu_name!r}, the GPU model of a {gpus[0].instance_type}")
    s.str_map("autoscaling_options", {}, key_pattern="|".join(CA_AUTOSCALING_OPTION_KEYS),
              describe="options cluster-autoscaler's AWS provider reads (" + ", ".join(CA_AUTOSCALING_OPTION_KEYS)
                       + ") to string values")
    s.input("tags", {})
    read_image_volume_throughput(s)
    cache = s.optional_section("image_cache")
    if cache is not None:
        read_image_cache_settings(cache, s.key("ami_type"), ami_type)
        cache.finish()


def _volumes(image_device: str, image_gib: int, snapshot_id: str | None = None,
             throughput: int | None = None) -> list[aws.ec2.LaunchTemplateBlockDeviceMappingArgs]:
    """Encrypted gp3 volumes: the image volume at `image_gib` (from the image-cache snapshot when given), and a
    separate root (Bottlerocket) at the AMI's size."""
    sizes = {ROOT_DEVICE: None, image_device: image_gib}  # one entry on AL2023, where the root holds the images
    return [aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
        device_name=device, ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
            volume_size=size, volume_type="gp3", encrypted="true", delete_on_termination="true",
            # Only the data volume: the root (the OS image) stays the AMI's own.
            snapshot_id=snapshot_id if device == image_device and device != ROOT_DEVICE else None,
            throughput=throughput if device == image_device else None))
        for device, size in sizes.items()]


def image_volume_device(ami_type: str) -> str:
    family = ami_type.split("_", 1)[0]
    if family not in IMAGE_VOLUME_DEVICE:
        raise ValueError(f"ami_type: {ami_type!r} is not allowed; allowed: an AL2023_* or BOTTLEROCKET_* NVIDIA type")
    return IMAGE_VOLUME_DEVICE[family]


def gpu_class(gpu_name: str) -> str:
    """The GPU class label value of a GPU model as EC2 names it: "L4" -> "l4", "A10G" -> "a10g"."""
    return re.sub(r"[^a-z0-9]+", "-", gpu_name.lower()).strip("-")


def placement_labels(gpu_name: str, capacity_type: str) -> dict[str, str]:
    """The labels a pod selects a group's nodes by: GPU class and capacity type (`l4`, `on-demand`). Its nodes carry
    them, and so does its scale-from-zero template."""
    return {GPU_CLASS_LABEL: gpu_class(gpu_name), CAPACITY_TYPE_LABEL: capacity_type.lower().replace("_", "-")}


def node_labels(gpu_name: str, capacity_type: str, ami_type: str, extra: Mapping[str, str]) -> dict[str, str]:
    """Labels EKS puts on the nodes: GPU class, capacity type and AMI family from the spec, then the caller's.

    `k8s.amazonaws.com/accelerator` is among them from the node's first moment (EKS applies node group labels at
    registration), so cluster-autoscaler treats a new node as a GPU node that is not ready until the device plugin
    advertises `nvidia.com/gpu`, instead of adding more nodes for the same pending pods.
    """
    family = ami_type.split("_", 1)[0].lower()
    return {**placement_labels(gpu_name, capacity_type), ACCELERATOR_LABEL: f"nvidia-{gpu_class(gpu_name)}",
            AMI_FAMILY_LABEL: family, **extra}


def scale_from_zero_tags(gpu_count: int, labels: Mapping[str, str], capacity_type: str) -> dict[str, str]:
    """cluster-autoscaler node-template tags (key suffix after the prefix -> value) describing a node of the group.

    Formats from cluster-autoscaler's AWS provider: `node-template/resources/<resource>` = amount,
    `node-template/label/<label>` = value, `node-template/taint/<key>` = `<value>:<Effect>`.
    """
    tags = {f"node-template/resources/{GPU_RESOURCE}": str(gpu_count),
            f"node-template/taint/{GPU_RESOURCE}": f"{GPU_TAINT_VALUE}:NoSchedule"}
    for key, value in {**labels, EKS_CAPACITY_TYPE_LABEL: capacity_type}.items():
        tags[f"node-template/label/{key}"] = value
    return tags


@documented
class GpuNodeGroup(pulumi.ComponentResource):
    """GPU nodes, tainted for GPU pods only, with IMDSv2 and encrypted gp3 storage, tagged for scale from zero."""

    node_group_name: pulumi.Output[str]
    """Name of the EKS managed node group."""
    node_group_arn: pulumi.Output[str]
    """ARN of the EKS managed node group."""
    asg_name: pulumi.Output[str]
    """Name of the Auto Scaling group EKS created under the node group (tagged here for scale from zero)."""
    launch_template_id: pulumi.Output[str]
    """ID of the node group's launch template (IMDSv2, encrypted gp3 root volume)."""

    def __init__(self, name: str, args: GpuNodeGroupArgs, opts: pulumi.ResourceOptions | None = None):
        validate_args("GpuNodeGroup", name, args, GpuNodeGroupArgs, check_args)
        super().__init__("gpuscale:index:GpuNodeGroup", name, None, opts)
        ami_type = args.get("ami_type", DEFAULT_AMI_TYPE)
        capacity_type = args.get("capacity_type", "ON_DEMAND")
        tags = dict(args.get("tags") or {})
        labels = node_labels(args["gpu_name"], capacity_type, ami_type, args.get("labels") or {})
        options = dict(args.get("autoscaling_options") or {})

        template = aws.ec2.LaunchTemplate(
            f"{name}-lt",
            description=f"GPU node group {name}",
            # IMDSv2 only. Hop limit 2: pods (one network hop further) still reach IMDS, e.g. the NVIDIA
            # device plugin or SDKs that fall back to node credentials.
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=2,
                # Instance tags stay out of metadata: EKS propagates tags whose keys hold "/" to the instances
                # (k8s.io/cluster-autoscaler/enabled, kubernetes.io/cluster/<name>), and with metadata tags on,
                # EC2 refuses such keys and the node group never launches a node. An agent on these nodes must
                # be given its group's name (GPU_METRICS_AGENT_ASG_NAME; see docs/agent.md).
                instance_metadata_tags="disabled"),
            block_device_mappings=_volumes(image_volume_device(ami_type), args.get("root_volume_gib", 200),
                                           (args.get("image_cache") or {}).get("snapshot_id"),
                                           args.get("image_volume_throughput_mibps")),
            tag_specifications=[aws.ec2.LaunchTemplateTagSpecificationArgs(
                resource_type=kind, tags={**tags, "Name": name}) for kind in ("instance", "volume")],
            tags=tags,
            # A changed template becomes a new version that the node group rolls out; keep it the default one.
            update_default_version=True,
            opts=pulumi.ResourceOptions(parent=self))

        group = aws.eks.NodeGroup(
            f"{name}-ng",
            cluster_name=args["cluster_name"],
            node_role_arn=args["node_role_arn"],
            subnet_ids=args["subnet_ids"],
            ami_type=ami_type,
            instance_types=list(args["instance_types"]),
            capacity_type=capacity_type,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=args["min_size"], max_size=args["max_size"], desired_size=args["min_size"]),
            labels=labels,
            taints=[aws.eks.NodeGroupTaintArgs(key=GPU_RESOURCE, value=GPU_TAINT_VALUE, effect="NO_SCHEDULE")],
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=template.id, version=template.latest_version.apply(str)),
            # Replace GPU nodes one at a time on updates: they are few and expensive to have missing.
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            tags=tags,
            # cluster-autoscaler owns the desired size once the group exists: it starts at min_size, and a later
            # `pulumi up` must not reset it (that would drain running GPU nodes or undo a scale-up).
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["scalingConfig.desiredSize"]))

        # Managed node groups do not copy their tags to the Auto Scaling group EKS creates, and cluster-autoscaler
        # reads the ASG's tags to discover the group and to picture its nodes while it has none: tag the ASG itself.
        asg_name = group.resources.apply(lambda rs: rs[0].autoscaling_groups[0].name)
        ca_tags: dict[str, pulumi.Input[str]] = {"enabled": "true"}
        ca_tags.update(scale_from_zero_tags(args["gpu_count"], labels, capacity_type))
        ca_tags.update({f"{CA_AUTOSCALING_OPTIONS}/{key}": value for key, value in options.items()})
        self.ca_tags: list[aws.autoscaling.Tag] = []
        seen: set[str] = set()
        for suffix, value in ca_tags.items():
            child_name = f"{name}-ca-{_slug(suffix)}"
            if child_name in seen:
                raise ValueError(f"labels: {suffix!r} reads like another label in resource names; rename one")
            seen.add(child_name)
            self.ca_tags.append(aws.autoscaling.Tag(
                child_name, autoscaling_group_name=asg_name,
                # Not propagated: these describe the group to the autoscaler, not the instances.
                tag=aws.autoscaling.TagTagArgs(key=f"{CA_TAG_PREFIX}/{suffix}", value=value, propagate_at_launch=False),
                opts=pulumi.ResourceOptions(parent=self)))
        # The auto-discovery tag naming the cluster (`--node-group-auto-discovery=asg:tag=...,k8s.io/
        # cluster-autoscaler/<cluster>`) keeps one cluster's autoscaler off another cluster's groups.
        self.ca_tags.append(aws.autoscaling.Tag(
            f"{name}-ca-cluster", autoscaling_group_name=asg_name,
            tag=aws.autoscaling.TagTagArgs(key=pulumi.Output.from_input(args["cluster_name"]).apply(ca_cluster_tag),
                                           value="owned", propagate_at_launch=False),
            opts=pulumi.ResourceOptions(parent=self)))

        self.node_group_name = group.node_group_name
        self.node_group_arn = group.arn
        self.asg_name = asg_name
        self.launch_template_id = template.id
        self.register_outputs({"node_group_name": self.node_group_name, "node_group_arn": self.node_group_arn,
                               "asg_name": self.asg_name, "launch_template_id": self.launch_template_id})


def _slug(text: str) -> str:
    """A resource-name-safe form of a tag key suffix: `node-template/label/gpuscale.io/gpu-class` ->
    `label-gpuscale-io-gpu-class`."""
    text = text.removeprefix("node-template/")
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
