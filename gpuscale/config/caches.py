"""Cold-start caches (issue 15): a model cache per service (`modelCache:` on a `gpuscale:services` entry) and an
image cache per EKS node group (`imageCache:` on a `gpuscale:nodeGroups` entry). Both cost money (disk on every node
of the group, a snapshot), so both are off unless configured.

Model cache, kind `local`: KServe's local model cache (v0.16 CRDs LocalModelNodeGroup and LocalModelCache, the
chart's `kserve.localmodel`). KServe's node agent downloads the model onto every node of the group (a local
PersistentVolume on the node's disk); an InferenceService whose storageUri equals, or lies under, a
LocalModelCache's sourceModelUri is labelled by KServe's defaulting webhook (`setLocalModelLabel`,
pkg/apis/serving/v1beta1/inference_service_defaults.go at v0.16.0) and its pod mounts the node's copy instead of
downloading from S3 (`InjectStorageInitializer`, pkg/webhook/admission/pod/storage_initializer_injector.go). The model
load then reads the model from the node's disk: model size / the disk's read throughput.

Model cache, kind `efs`: one encrypted EFS file system (Elastic throughput) the stack creates, with a mount target in
each private subnet of the cluster and the aws-efs-csi-driver add-on (components/efs_model_cache.py). A Job copies
each cached model from S3 into it once; the InferenceService's storageUri becomes `pvc://<claim>/<path>`, which KServe
mounts read-only at /mnt/models instead of downloading (`CommonStorageInitialization`,
pkg/webhook/admission/pod/storage_initializer_injector.go at v0.16.0). The model load then reads the model over NFS:
model size / one client's read throughput.

Image cache: Bottlerocket keeps container images on its data volume (/dev/xvdb); a data volume restored from an EBS
snapshot that already holds the serving image needs no pull (AWS's "Reduce container startup time on Amazon EKS with
Bottlerocket data volume", 2023-10-19, and aws-samples/bottlerocket-images-cache, whose snapshot.sh makes the
snapshot). AL2023 keeps its images on the root volume with the OS, so a snapshot of it is an AMI, not a data volume:
refused there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .reader import REQUIRED, ConfigError, Section

MODEL_CACHE_KINDS = ("local", "efs")
"""`local`: KServe's local model cache on the GPU nodes' own disk; `efs`: a shared EFS file system the stack creates,
mounted as a claim (docs/cold-starts.md)."""
EFS_ELASTIC_CLIENT_MIB_PER_SECOND = 1500.0
"""What one client (one node) reads from an EFS file system in Elastic throughput: AWS's "Amazon EFS performance
specifications" (docs.aws.amazon.com/efs/latest/ug/performance.html), table "Performance specifications for file
systems using General Purpose performance mode", row Regional / Elastic: per-client read/write 1,500 MiBps (its
footnote 4), per-file-system read 20-60 GiBps. The node's own network bandwidth caps it too (efs_client_mib_per_second):
a g6.xlarge's "up to" 10 Gbit/s is about 1,192 MiB/s, in bursts."""
LOCAL_MODEL_HOST_PATH = "/mnt/models"
"""Where KServe's node agent keeps models on each node: the chart's `kserve.localmodel.agent.hostPath` default at
v0.16.0, which the agent mounts; the PersistentVolume KServe creates from the node group's spec must name the same
path, or the agent and the predictor see different directories."""
GP3_BASELINE_MIB_PER_SECOND = 125.0
"""A gp3 volume's throughput unless more is provisioned (EC2 CreateVolume `Throughput`: "Valid Range: Minimum value of
125", the default; at most 1,000 MiB/s on a launch template's block device). The node's image volume is gp3 at the
default, so a cached model is read at this rate."""
GP3_MAX_LAUNCH_TEMPLATE_MIB_PER_SECOND = 1000
"""The most a launch template's gp3 block device may provision (pulumi_aws LaunchTemplateBlockDeviceMappingEbs
`throughput`: "with a maximum of 1,000 MiB/s")."""
MAX_CACHE_MIB_PER_SECOND = 100_000.0
"""A bound of ours: instance-store NVMe of the largest GPU instances reads at tens of GB/s; more is a typo."""
QUANTITY = r"(\d+(\.\d+)?)(Ki|Mi|Gi|Ti)"
QUANTITY_RULE = "a Kubernetes storage quantity in Ki, Mi, Gi or Ti, e.g. 16Gi"
SNAPSHOT_ID_PATTERN = r"snap-([0-9a-f]{8}|[0-9a-f]{17})"
_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity_bytes(quantity: str) -> float:
    """Bytes of a storage quantity QUANTITY allows ("16Gi" -> 17179869184)."""
    match = re.fullmatch(QUANTITY, quantity)
    if match is None:
        raise ValueError(f"{quantity!r} is not {QUANTITY_RULE}")
    return float(match.group(1)) * _UNITS[match.group(3)]


@dataclass(frozen=True)
class ModelCacheConfig:
    kind: str
    """`local` or `efs` (MODEL_CACHE_KINDS)."""
    model_size: str
    """The model's size on disk (LocalModelCache.spec.modelSize; for efs the simulator's alone: the claims have a
    nominal capacity, components/efs_model_cache.py NOMINAL_CAPACITY), a storage quantity."""
    storage_limit: str
    """local: disk per node the group's cache may fill (LocalModelNodeGroup.spec.storageLimit), at least model_size;
    efs: model_size (the file system is shared, no node keeps a copy)."""
    read_mib_per_second: float
    """How fast a pod reads the cached model, MiB/s. local: from the node's disk (default: the node group's
    imageVolumeThroughputMibps, else GP3_BASELINE_MIB_PER_SECOND); efs: over NFS (default
    efs_client_mib_per_second: EFS's per-client limit, or the node's network bandwidth where lower)."""

    @property
    def read_seconds(self) -> float:
        """The model load with the cache: the model's size at the cache's read throughput."""
        return quantity_bytes(self.model_size) / (self.read_mib_per_second * 2**20)


@dataclass(frozen=True)
class ImageCacheConfig:
    snapshot_id: str
    """EBS snapshot of a Bottlerocket data volume that holds the serving images (snap-...)."""
    pull_seconds: float = 0.0
    """What is left of the image pull with the cache: 0 when the snapshot holds the exact image digests the pods run
    (containerd finds them in its content store); more when a new tag must still be pulled."""


def read_image_volume_throughput(s: Section) -> int | None:
    """`imageVolumeThroughputMibps` of a node group (and GpuNodeGroupArgs): the gp3 image volume's provisioned
    throughput, 125-1000 MiB/s; None keeps gp3's baseline (125 MiB/s, no extra charge). The volume holds the
    container images and KServe's local model cache: a cached model is read at this rate."""
    return s.int("imageVolumeThroughputMibps", None, min=int(GP3_BASELINE_MIB_PER_SECOND),
                 max=GP3_MAX_LAUNCH_TEMPLATE_MIB_PER_SECOND)


def efs_client_mib_per_second(network_gbps: float | None) -> float:
    """What one node reads from EFS: EFS Elastic's per-client limit, or the node's network bandwidth (EC2's stated,
    "up to", figure) where that is lower; the limit alone where EC2 states none."""
    if network_gbps is None:
        return EFS_ELASTIC_CLIENT_MIB_PER_SECOND
    return min(EFS_ELASTIC_CLIENT_MIB_PER_SECOND, round(network_gbps * 1e9 / 8 / 2**20, 1))


def read_model_cache_settings(s: Section, default_rate: float = GP3_BASELINE_MIB_PER_SECOND,
                              network_gbps: float | None = None) -> tuple[str, str, str, float]:
    """kind, modelSize, storageLimit, readMibPerSecond: the rules of a service's `modelCache:` and of the model cache
    component's Args (one home for each rule)."""
    kind = s.str("kind", choices=MODEL_CACHE_KINDS)
    size = s.str("modelSize", pattern=QUANTITY, describe=QUANTITY_RULE)
    if kind == "efs":
        if s.has("storageLimit"):
            s.report("storageLimit", s.raw("storageLimit"), "storageLimit only with kind local (an efs file system "
                                                            "is shared and grows with what it holds)")
        s.input("storageLimit", None)  # marked read: the refusal above is its only error
        rate = s.float("readMibPerSecond", efs_client_mib_per_second(network_gbps), min=1,
                       max=MAX_CACHE_MIB_PER_SECOND)
        return kind, size, size, rate
    limit = s.str("storageLimit", size, pattern=QUANTITY, describe=QUANTITY_RULE)
    if re.fullmatch(QUANTITY, size) and re.fullmatch(QUANTITY, limit) and quantity_bytes(limit) < quantity_bytes(size):
        s.report("storageLimit", limit, f"at least modelSize ({size}): the node's cache must hold the model")
    rate = s.float("readMibPerSecond", float(default_rate), min=1, max=MAX_CACHE_MIB_PER_SECOND)
    return kind, size, limit, rate


def cacheable_uri_refusal(storage_uri: str | None) -> str | None:
    """Why a model's storageUri cannot be cached (None when it can): KServe's node agent and the efs copy Job download
    from S3; a pvc:// model is already a volume, and a container carries its own model."""
    if storage_uri is None:
        return "a model with a storageUri (a container that carries its model has nothing to cache)"
    if not storage_uri.startswith("s3://"):
        return ("an s3:// storageUri (a pvc:// model is already on a volume; KServe's node agent and the efs copy Job "
                "download from S3)")
    return None


def efs_subnets_refusal(cluster_mode: str, subnet_ids: tuple[str, ...]) -> str | None:
    """Why an efs cache cannot be placed (None when it can): the stack declares one mount target per subnet of the
    cluster's nodes, so it must know how many there are before anything exists; an existing cluster's own subnets are
    only known once it is looked up."""
    if cluster_mode == "existing" and not subnet_ids:
        return ("kind efs on an existing cluster only with gpuscale:cluster.subnetIds: the subnets of the GPU nodes, "
                "one per availability zone, each of which gets an EFS mount target")
    return None


def check_efs_caches(services: Any, cluster_mode: str, subnet_ids: tuple[str, ...], services_key: str) -> None:
    """Across sections: every efs cache of the stack can get its mount targets (efs_subnets_refusal)."""
    for i, service in enumerate(services):
        cache = service.model_cache
        refusal = efs_subnets_refusal(cluster_mode, subnet_ids) if cache and cache.kind == "efs" else None
        if refusal is not None:
            raise ConfigError(f"{services_key}[{i}].modelCache.kind", "efs", f"{refusal} (service {service.name})")


def efs_model_path(storage_uri: str) -> str:
    """Where the copy Job puts an s3:// model on the file system, and the path of its pvc:// URI: bucket and prefix,
    so services of one model share one copy ("s3://models/chat-8b/" -> "models/chat-8b")."""
    return storage_uri.removeprefix("s3://").strip("/")


def read_model_cache(s: Section | None, storage_uri: str | None, uri_key: str,
                     volume_mib_per_second: int | None = None,
                     network_gbps: float | None = None) -> ModelCacheConfig | None:
    """A service's `modelCache:` (None without one); read at its node group's image volume throughput (local) or
    at EFS's per-client rate within the node's network bandwidth (efs) unless `readMibPerSecond` says otherwise."""
    if s is None:
        return None
    kind, size, limit, rate = read_model_cache_settings(s, volume_mib_per_second or GP3_BASELINE_MIB_PER_SECOND,
                                                        network_gbps)
    refusal = cacheable_uri_refusal(storage_uri)
    if refusal is not None:
        s.report("kind", kind, f"a cache only for {refusal}; {uri_key} is {storage_uri!r}")
    s.finish()
    return ModelCacheConfig(kind, size, limit, rate)


def image_cache_refusal(ami_type: str) -> str | None:
    """Why a node group's AMI type cannot take an image-cache snapshot (None when it can)."""
    if not ami_type.startswith("BOTTLEROCKET_"):
        return (f"an image cache only on a Bottlerocket AMI type (BOTTLEROCKET_x86_64_NVIDIA, "
                f"BOTTLEROCKET_ARM_64_NVIDIA): {ami_type} keeps container images on its root volume, which a "
                f"data-volume snapshot cannot replace")
    return None


def read_image_cache_settings(s: Section, ami_type_key: str, ami_type: str) -> str:
    """snapshotId: the rule of a node group's `imageCache:` and of GpuNodeGroupArgs' `image_cache`."""
    snapshot = s.str("snapshotId", REQUIRED, pattern=SNAPSHOT_ID_PATTERN,
                     describe="an EBS snapshot id, snap- and 8 or 17 hex digits")
    refusal = image_cache_refusal(ami_type)
    if refusal is not None:
        s.report("snapshotId", snapshot, f"{refusal} ({ami_type_key} is {ami_type})")
    return snapshot


def read_image_cache(s: Section | None, ami_type_key: str, ami_type: str) -> ImageCacheConfig | None:
    """A node group's `imageCache:` (None without one)."""
    if s is None:
        return None
    snapshot = read_image_cache_settings(s, ami_type_key, ami_type)
    pull = s.float("pullSeconds", 0.0, min=0, max=3600)
    s.finish()
    return ImageCacheConfig(snapshot, pull)
