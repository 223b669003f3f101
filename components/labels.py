"""Kubernetes labels gpuscale puts on GPU nodes, and the cluster-autoscaler tag keys on their Auto Scaling groups.
Pure data, so the stack config and the pre-apply checks can use them without importing Pulumi."""

GPU_CLASS_LABEL = "gpuscale.io/gpu-class"
CAPACITY_TYPE_LABEL = "gpuscale.io/capacity-type"
AMI_FAMILY_LABEL = "gpuscale.io/ami-family"
"""`al2023` or `bottlerocket`: Bottlerocket's NVIDIA AMIs run their own device plugin, AL2023's need the chart's."""
ACCELERATOR_LABEL = "k8s.amazonaws.com/accelerator"
"""cluster-autoscaler's GPU label on AWS: a node carrying it counts as a GPU node before its device plugin has
advertised the GPUs, so the autoscaler does not scale up a second time while drivers load."""
EKS_CAPACITY_TYPE_LABEL = "eks.amazonaws.com/capacityType"
"""Set by EKS on every managed node; repeated in the scale-from-zero template so selectors on it work at zero."""
SYSTEM_NODE_LABEL = "gpuscale.io/node-role"
"""On the system node group (value `system`): where cluster add-ons such as cluster-autoscaler run."""

LABELS_SET_BY_GPUSCALE = (GPU_CLASS_LABEL, CAPACITY_TYPE_LABEL, AMI_FAMILY_LABEL, ACCELERATOR_LABEL,
                          EKS_CAPACITY_TYPE_LABEL)
"""Labels derived from the group's spec; a user's own labels may not override them."""

GPU_RESOURCE = "nvidia.com/gpu"
"""Extended resource the NVIDIA device plugin advertises; also the taint key keeping non-GPU pods off GPU nodes."""
GPU_TAINT_VALUE = "true"

# cluster-autoscaler's ASG tags (cloudprovider/aws/README.md, "Auto-Discovery Setup" and "Scaling a node group to
# 0"; cloudprovider/aws/aws_manager.go). The node groups write them and the autoscaler discovers by them: one source.
CA_TAG_PREFIX = "k8s.io/cluster-autoscaler"
CA_ENABLED_TAG = f"{CA_TAG_PREFIX}/enabled"
CA_AUTOSCALING_OPTIONS = "node-template/autoscaling-options"
"""Suffix under CA_TAG_PREFIX of per-group overrides: `.../autoscaling-options/<option>` = value."""
CA_AUTOSCALING_OPTION_KEYS = ("scaledownutilizationthreshold", "scaledowngpuutilizationthreshold",
                              "scaledownunneededtime", "scaledownunreadytime", "ignoredaemonsetsutilization")
"""The options the AWS provider reads from those tags (GetAsgOptions at the pinned version; tested against it)."""


def ca_cluster_tag(cluster_name: str) -> str:
    """The auto-discovery tag naming the cluster (value `owned`): keeps one cluster's autoscaler off another's groups."""
    return f"{CA_TAG_PREFIX}/{cluster_name}"


def ca_discovery_tags(cluster_name: str) -> list[str]:
    """The tag keys cluster-autoscaler's `--node-group-auto-discovery=asg:tag=...` looks for (any value)."""
    return [CA_ENABLED_TAG, ca_cluster_tag(cluster_name)]
