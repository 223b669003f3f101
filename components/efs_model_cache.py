"""EfsModelCache: a shared EFS file system that holds the stack's cached models (`modelCache.kind: efs`), mounted by
KServe as a `pvc://` claim instead of downloading each model from S3 on every cold start.

AWS side: one encrypted file system in Elastic throughput (reads scale with demand, no provisioned rate to size), an
access point every mount goes through (files owned by uid/gid 1000, the user KServe's storage initializer and model
servers run as), a mount target in each of the nodes' private subnets (EFS allows one per availability zone: the
subnets must lie in distinct zones, as the stack's own do), a security group that lets NFS (TCP 2049) in from the
nodes' security group alone, and the `aws-efs-csi-driver` EKS add-on with its IRSA role (AWS managed policy
AmazonEFSCSIDriverPolicy; service accounts `efs-csi-controller-sa` and `efs-csi-node-sa` in kube-system, as AWS's
"Amazon EFS CSI driver" add-on page has eksctl create them).

Kubernetes side (static provisioning, no StorageClass: nothing is provisioned dynamically): two PersistentVolumes of
the one file system and their claims in the services' namespace, `<name>-models` ReadOnlyMany for the predictors
(KServe mounts a pvc:// model read-only at /mnt/models unless the InferenceService opts out, `storage.kserve.io/
readonly`; many pods on many nodes read it at once) and `<name>-loader` ReadWriteMany for the copy Jobs, both of
one nominal capacity (NOMINAL_CAPACITY); and one Job per model that copies it from S3 into `<bucket>/<prefix>` on the
file system once, with KServe's own storage initializer (the image and entrypoint KServe runs for an s3:// model, at
the pinned KServe version, so the copy holds exactly what /mnt/models would) and an IRSA role that reads the models' S3
prefixes, nothing else.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired, TypedDict

from ..config.args import validate_args
from ..config.caches import efs_model_path
from ..config.reader import Section, is_deferred
from ._docs import documented
from ._iam import attach_managed_policies
from ._options import depends_on_of
from .charts import CHARTS
from .irsa_role import IrsaRole, web_identity_trust
from .kube_values import DNS_LABEL_PATTERN
from .local_model_cache import read_cached_model
from .model_service import IRSA_ROLE_ARN, S3_REGION, s3_statements

CSI_DRIVER = "efs.csi.aws.com"
"""The EFS CSI driver's name, a PersistentVolume's `csi.driver`."""
ADDON_NAME = "aws-efs-csi-driver"
"""The EKS add-on of the EFS CSI driver (AWS's "Amazon EFS CSI driver" add-on page)."""
ADDON_POLICY = "service-role/AmazonEFSCSIDriverPolicy"
"""The AWS managed policy the add-on's role needs (arn:aws:iam::aws:policy/service-role/AmazonEFSCSIDriverPolicy)."""
ADDON_NAMESPACE = "kube-system"
ADDON_SERVICE_ACCOUNTS = ("efs-csi-controller-sa", "efs-csi-node-sa")
"""The add-on's controller and node service accounts, both trusted by its role (AWS's trust policy for the add-on
widens the controller's to `efs-csi-*`; these two are what that pattern matches)."""
NFS_PORT = 2049
MODEL_UID = 1000
"""The user of KServe's storage-initializer image (python/storage-initializer.Dockerfile at v0.16.0: `USER 1000`)
and of its model servers: the access point makes every file on the file system theirs."""
ROOT_DIRECTORY = "/models"
"""The access point's root on the file system; KServe's claim path (pvc://<claim>/<bucket>/<prefix>) lies under it."""
LOADER_MOUNT = "/mnt/efs"
"""Where a copy Job mounts its model's directory (the loader claim with `subPath: <bucket>/<prefix>`), and the
destination it passes KServe's storage initializer: a directory that exists when the container starts."""
NOMINAL_CAPACITY = "5Gi"
"""The capacity of the PersistentVolumes and the request of their claims, the same whatever the stack caches. EFS
ignores it (the file system grows with what it holds; the EFS CSI driver never reads the capacity, which Kubernetes
only uses to bind a claim to a volume); Kubernetes requires one, and the aws-efs-csi-driver's static provisioning
example (examples/kubernetes/static_provisioning) writes 5Gi. It must never change with the models: a statically
bound claim (storageClassName "") cannot grow (the PersistentVolumeClaimResize admission plugin: "only dynamically
provisioned pvc can be resized") nor shrink (validation forbids a request below the bound capacity), so a size derived
from the models would fail `pulumi up` as soon as a model is added or resized. The models' sizes stay the
simulator's (modelCache.modelSize)."""
COPY_TIMEOUT = "60m"
"""How long `pulumi up` waits for a copy Job (pulumi-kubernetes awaits a Job until it succeeds, 10 minutes unless
told otherwise): 100 GiB at a conservative 50 MiB/s from S3 is about 35 minutes."""


def storage_initializer_image() -> str:
    """KServe's storage initializer at the pinned KServe chart's version (the chart's `kserve.storage.image` and
    `tag` default to kserve/storage-initializer at the chart's version)."""
    return f"kserve/storage-initializer:{CHARTS['kserve'].version}"


def claim_name(name: str) -> str:
    """The predictors' claim of the EfsModelCache named `name`."""
    return f"{name}-models"


def pvc_storage_uri(name: str, storage_uri: str) -> str:
    """The InferenceService's storageUri for an s3:// model the EfsModelCache named `name` holds."""
    return f"pvc://{claim_name(name)}/{efs_model_path(storage_uri)}"


class EfsCachedModelArgs(TypedDict):
    name: str
    """The model's name (a DNS-1123 label; the service's name): its copy Job is `efs-copy-<name>`."""
    storage_uri: str
    """The model's s3:// URI, copied to `<bucket>/<prefix>` on the file system."""


class EfsModelCacheArgs(TypedDict):
    vpc_id: pulumi.Input[str]
    """The cluster's VPC (the security group's)."""
    subnet_ids: Sequence[pulumi.Input[str]]
    """The GPU nodes' private subnets, one per availability zone, at least one: each gets a mount target."""
    node_security_group_id: pulumi.Input[str]
    """The security group of the cluster's nodes (EKS's cluster security group, which managed node groups without
    their own get): the only source NFS is let in from."""
    cluster_name: pulumi.Input[str]
    """The EKS cluster the CSI driver add-on is installed on."""
    oidc_provider_arn: pulumi.Input[str]
    """The cluster's IAM OIDC provider, trusted by the add-on's and the copy Jobs' roles."""
    oidc_issuer_url: pulumi.Input[str]
    """The cluster's OIDC issuer URL, the condition of those roles' trust policies."""
    region: str
    """The models' bucket region, for the copy Jobs' S3 client."""
    namespace: str
    """Namespace of the claims and copy Jobs: the model services' (kserve.SERVICES_NAMESPACE)."""
    models: Sequence[EfsCachedModelArgs]
    """The models kept, at least one, each storage_uri once."""
    node_selector: NotRequired[Mapping[str, str]]
    """Where the copy Jobs run (the system nodes; never the GPU nodes, which they would keep up). Default none."""
    tags: NotRequired[dict[str, str]]
    """Tags on the AWS resources. Default none."""


def check_args(s: Section) -> None:
    """The rules of EfsModelCacheArgs: models as the stack config's `modelCache:` reads them (s3:// only, sizes as
    quantities), each URI once and none under another's path (its copy would land inside the other's directory)."""
    s.input("vpc_id")
    subnets = s.input("subnet_ids")
    if not is_deferred(subnets) and (isinstance(subnets, (str, Mapping)) or not isinstance(subnets, Sequence)
                                     or not subnets):
        s.report("subnet_ids", subnets, "a list of at least 1 subnet id (one mount target each)")
    for key in ("node_security_group_id", "cluster_name", "oidc_provider_arn", "oidc_issuer_url"):
        s.input(key)
    s.str("region", pattern=r"[a-z]{2}(-[a-z]+)+-\d", describe="an AWS region, e.g. us-west-2")
    s.str("namespace", pattern=DNS_LABEL_PATTERN, describe="a Kubernetes namespace name")
    names: set[str] = set()
    paths: dict[str, tuple[str, str]] = {}
    for m in s.sections("models", min_items=1):
        name, uri = read_cached_model(m, names)
        if uri is not None:
            path = efs_model_path(uri)
            clash = next((held for p, held in paths.items()
                          if p == path or p.startswith(path + "/") or path.startswith(p + "/")), None)
            if clash is not None:
                m.report("storage_uri", uri, f"each storage_uri once and none under another's ({clash[0]} has "
                                             f"{clash[1]}): one copy serves every service of a model")
            paths.setdefault(path, (name, uri))
        m.finish()
    s.input("node_selector", {})
    s.input("tags", {})


def persistent_volume(name: str, namespace: str, volume_handle: Any, access_mode: str, size: str) -> dict[str, Any]:
    """A static PersistentVolume of the file system through the access point, reserved for its claim."""
    read_only = access_mode == "ReadOnlyMany"
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}, "spec": {
        "capacity": {"storage": size}, "accessModes": [access_mode], "volumeMode": "Filesystem",
        # Empty class: bound only to the claim named here, never to a default StorageClass's provisioner (EKS's
        # gp2 would create an EBS volume for a claim that names no class).
        "storageClassName": "", "claimRef": {"namespace": namespace, "name": name},
        # The models outlive a claim deleted by mistake; the file system is the stack's to delete.
        "persistentVolumeReclaimPolicy": "Retain",
        # Access-point mounts need TLS (aws-efs-csi-driver examples/kubernetes/access_points).
        "mountOptions": ["tls"],
        "csi": {"driver": CSI_DRIVER, "volumeHandle": volume_handle, **({"readOnly": True} if read_only else {})}}}


def persistent_volume_claim(name: str, namespace: str, access_mode: str, size: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": namespace},
            "spec": {"accessModes": [access_mode], "storageClassName": "", "volumeName": name,
                     "resources": {"requests": {"storage": size}}}}


def copy_job(name: str, namespace: str, model: EfsCachedModelArgs, claim: str, service_account: str,
             region: str, node_selector: Mapping[str, str]) -> dict[str, Any]:
    """The Job that copies one model from S3 onto the file system (checked against Kubernetes' schema in tests).

    The model's directory is the mount's subPath and the mount path the destination: KServe's Storage.download
    (python/storage/kserve_storage/kserve_storage.py at v0.16.0) only `os.mkdir`s a missing destination, one level,
    so `<bucket>/<prefix>` below a fresh file system's root would fail; the kubelet creates a missing subPath with
    its parents, and through the access point it is owned by the access point's user (MODEL_UID)."""
    pod: dict[str, Any] = {
        "serviceAccountName": service_account, "restartPolicy": "Never",
        "securityContext": {"runAsNonRoot": True, "runAsUser": MODEL_UID, "runAsGroup": MODEL_UID},
        "containers": [{
            "name": "copy", "image": storage_initializer_image(),
            # The image's entrypoint: initializer-entrypoint SRC_URI DEST_PATH (what KServe runs for /mnt/models).
            "args": [model["storage_uri"], LOADER_MOUNT],
            "env": [{"name": "AWS_DEFAULT_REGION", "value": region}],
            "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": [{"name": "efs", "mountPath": LOADER_MOUNT,
                              "subPath": efs_model_path(model["storage_uri"])}]}],
        "volumes": [{"name": "efs", "persistentVolumeClaim": {"claimName": claim}}]}
    if node_selector:
        pod["nodeSelector"] = dict(node_selector)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": namespace},
            "spec": {"backoffLimit": 3, "template": {"spec": pod}}}


@documented
class EfsModelCache(pulumi.ComponentResource):
    """A shared EFS model cache: an encrypted file system (Elastic throughput) with an access point, a mount target
    per node subnet, a security group letting NFS in from the nodes only, the aws-efs-csi-driver add-on and its role,
    the predictors' ReadOnlyMany claim and the copy Jobs' ReadWriteMany claim, and a Job per model copying it from S3
    once. A service reads its model as `pvc_storage_uri(name, storage_uri)`; pass this component in the service's
    `opts.depends_on` (its model is copied first) and the stack's Kubernetes provider in `opts.providers`."""

    file_system_id: pulumi.Output[str]
    """The EFS file system's id."""
    claim_name: pulumi.Output[str]
    """The predictors' claim (ReadOnlyMany), the name in their pvc:// storageUri."""
    role_arn: pulumi.Output[str]
    """The copy Jobs' IAM role (reads the cached models from S3)."""

    def __init__(self, name: str, args: EfsModelCacheArgs, opts: pulumi.ResourceOptions | None = None):
        validate_args("EfsModelCache", name, args, EfsModelCacheArgs, check_args)
        super().__init__("gpuscale:index:EfsModelCache", name, None, opts)
        after = depends_on_of(opts)
        tags = dict(args.get("tags") or {})
        child = pulumi.ResourceOptions(parent=self)
        namespace, models = args["namespace"], list(args["models"])

        group = aws.ec2.SecurityGroup(
            f"{name}-nfs", vpc_id=args["vpc_id"], description=f"EFS model cache {name}: NFS from the cluster's nodes",
            ingress=[aws.ec2.SecurityGroupIngressArgs(
                protocol="tcp", from_port=NFS_PORT, to_port=NFS_PORT, security_groups=[args["node_security_group_id"]],
                description="NFS from the cluster's nodes")],
            # No egress rule: the mount targets only answer (security groups are stateful).
            tags={**tags, "Name": f"{name}-nfs"}, opts=child)
        file_system = aws.efs.FileSystem(
            f"{name}-fs", encrypted=True, performance_mode="generalPurpose",
            # Elastic: reads scale with demand and are billed per GB read; nothing to provision or burst-credit.
            throughput_mode="elastic", tags={**tags, "Name": name}, opts=child)
        targets = [aws.efs.MountTarget(f"{name}-mt-{i}", file_system_id=file_system.id, subnet_id=subnet,
                                       security_groups=[group.id], opts=child)
                   for i, subnet in enumerate(args["subnet_ids"])]
        access_point = aws.efs.AccessPoint(
            f"{name}-ap", file_system_id=file_system.id,
            posix_user=aws.efs.AccessPointPosixUserArgs(uid=MODEL_UID, gid=MODEL_UID),
            root_directory=aws.efs.AccessPointRootDirectoryArgs(
                path=ROOT_DIRECTORY, creation_info=aws.efs.AccessPointRootDirectoryCreationInfoArgs(
                    owner_uid=MODEL_UID, owner_gid=MODEL_UID, permissions="0755")),
            tags={**tags, "Name": name}, opts=child)

        driver_role = aws.iam.Role(
            f"{name}-csi-role", description=f"aws-efs-csi-driver add-on of the EFS model cache {name}",
            assume_role_policy=web_identity_trust(args["oidc_provider_arn"], args["oidc_issuer_url"],
                                                  ADDON_NAMESPACE, ADDON_SERVICE_ACCOUNTS),
            tags=tags, opts=child)
        attached = attach_managed_policies(f"{name}-csi-role", driver_role, [ADDON_POLICY], parent=self)
        addon = aws.eks.Addon(
            f"{name}-csi", cluster_name=args["cluster_name"], addon_name=ADDON_NAME,
            service_account_role_arn=driver_role.arn, tags=tags,
            # The driver mounts through the targets: pods scheduled before they exist would fail their mounts.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*attached, *targets]))

        copier = IrsaRole(f"{name}-copy-irsa", {
            "oidc_provider_arn": args["oidc_provider_arn"], "oidc_issuer_url": args["oidc_issuer_url"],
            "namespace": namespace, "service_account": f"{name}-copy",
            "statements": [st for m in models for st in s3_statements(m["storage_uri"])],
            "description": f"EFS model cache {name}: copy Jobs read the cached models from S3",
            "tags": tags}, opts=child)
        account = k8s.core.v1.ServiceAccount(f"{name}-copy-sa", metadata={
            "name": f"{name}-copy", "namespace": namespace,
            "annotations": {IRSA_ROLE_ARN: copier.role_arn, S3_REGION: args["region"]}},
            automount_service_account_token=False, opts=pulumi.ResourceOptions(parent=self, depends_on=after))

        handle = pulumi.Output.concat(file_system.id, "::", access_point.id)
        claims = {}
        for suffix, mode in (("models", "ReadOnlyMany"), ("loader", "ReadWriteMany")):
            volume_name = f"{name}-{suffix}"
            pv = persistent_volume(volume_name, namespace, handle, mode, NOMINAL_CAPACITY)
            volume = k8s.core.v1.PersistentVolume(
                f"{name}-{suffix}-pv", metadata=pv["metadata"], spec=pv["spec"],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*after, addon]))
            pvc = persistent_volume_claim(volume_name, namespace, mode, NOMINAL_CAPACITY)
            claims[suffix] = k8s.core.v1.PersistentVolumeClaim(
                f"{name}-{suffix}-pvc", metadata=pvc["metadata"], spec=pvc["spec"],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*after, volume]))
        for model in models:
            job = copy_job(f"efs-copy-{model['name']}", namespace, model, f"{name}-loader", f"{name}-copy",
                           args["region"], args.get("node_selector") or {})
            k8s.batch.v1.Job(
                f"{name}-copy-{model['name']}", metadata=job["metadata"], spec=job["spec"],
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=[*after, claims["loader"], account],
                    custom_timeouts=pulumi.CustomTimeouts(create=COPY_TIMEOUT, update=COPY_TIMEOUT)))
        self.file_system_id = file_system.id
        self.claim_name = claims["models"].metadata["name"]
        self.role_arn = copier.role_arn
        self.register_outputs({"file_system_id": self.file_system_id, "claim_name": self.claim_name,
                               "role_arn": self.role_arn})
