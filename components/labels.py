"""Kubernetes labels gpuscale puts on GPU nodes. Pure data, so the stack config can reserve them without
importing Pulumi."""

GPU_CLASS_LABEL = "gpuscale.io/gpu-class"
CAPACITY_TYPE_LABEL = "gpuscale.io/capacity-type"
ACCELERATOR_LABEL = "k8s.amazonaws.com/accelerator"
"""cluster-autoscaler's GPU label on AWS: a node carrying it counts as a GPU node before its device plugin has
advertised the GPUs, so the autoscaler does not scale up a second time while drivers load."""
EKS_CAPACITY_TYPE_LABEL = "eks.amazonaws.com/capacityType"
"""Set by EKS on every managed node; repeated in the scale-from-zero template so selectors on it work at zero."""

LABELS_SET_BY_GPUSCALE = (GPU_CLASS_LABEL, CAPACITY_TYPE_LABEL, ACCELERATOR_LABEL, EKS_CAPACITY_TYPE_LABEL)
"""Labels derived from the group's spec; a user's own labels may not override them."""
