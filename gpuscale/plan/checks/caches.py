"""Pre-apply checks of the cold-start caches (gpuscale/config/caches.py): where a cache is configured but the service's
pods cannot reach it, or it serves nobody. `run_checks` (gpuscale/plan/checks/) calls `cache_findings`.

From the stack config: an image-cache snapshot on a node group no service runs on (it costs a snapshot and a restored
volume on every node for nothing); a node group whose image volume is smaller than the model caches on it; an efs cache
whose model's bucket the stack creates (empty on the first `pulumi up`, so the copy Job, which `pulumi up` awaits,
fails).
From the plan (what the program declares, whichever program it is): a LocalModelCache whose sourceModelUri matches
no InferenceService's storageUri (KServe never uses it), an InferenceService whose cached copy sits on a
LocalModelNodeGroup whose nodes its nodeSelector does not land on (the claim's volume is bound to other nodes: the pod
stays Pending), KServe's chart without `kserve.localmodel.enabled` (no agent downloads anything), and no role on the
download Jobs' service account (the downloads cannot read S3). For an EFS cache (an InferenceService whose pvc://
claim is bound to a PersistentVolume of the EFS CSI driver): a subnet of the service's node group without a mount
target of that file system (its nodes cannot mount it), no security group on the mount targets that lets NFS in from
the nodes' security group (the mounts time out), no aws-efs-csi-driver add-on (nothing mounts the volume), and a copy
Job whose service account has no IAM role (the copy cannot read S3).
"""

from __future__ import annotations

from typing import Any

from ...config import PROJECT, StackConfig
from ...components.bucket_rules import bucket_of
from ...config.caches import quantity_bytes
from ..mocks import cluster_security_group_id, planned_id

LOCAL_MODEL_CACHE = "kubernetes:serving.kserve.io/v1alpha1:LocalModelCache"
LOCAL_MODEL_NODE_GROUP = "kubernetes:serving.kserve.io/v1alpha1:LocalModelNodeGroup"
ISVC = "kubernetes:serving.kserve.io/v1beta1:InferenceService"
RELEASE = "kubernetes:helm.sh/v3:Release"
SA_PATCH = "kubernetes:core/v1:ServiceAccountPatch"
NODE_GROUP_ANNOTATION = "serving.kserve.io/nodegroup"
PV, PVC, JOB, SA = ("kubernetes:core/v1:PersistentVolume", "kubernetes:core/v1:PersistentVolumeClaim",
                    "kubernetes:batch/v1:Job", "kubernetes:core/v1:ServiceAccount")
EKS_NODE_GROUP, LAUNCH_TEMPLATE = "aws:eks/nodeGroup:NodeGroup", "aws:ec2/launchTemplate:LaunchTemplate"
SECURITY_GROUP, MOUNT_TARGET = "aws:ec2/securityGroup:SecurityGroup", "aws:efs/mountTarget:MountTarget"
ADDON = "aws:eks/addon:Addon"
EFS_CSI_DRIVER, EFS_ADDON, NFS_PORT = "efs.csi.aws.com", "aws-efs-csi-driver", 2049
IRSA_ROLE_ARN = "eks.amazonaws.com/role-arn"


def cache_findings(config: StackConfig, plan: Any | None, finding: type) -> list[Any]:
    found = _unused_image_caches(config, finding) + _cache_room(config, finding) + _model_cache_source(config, finding)
    if plan is not None:
        found += _plan_reachability(tuple(plan.resources), finding)
    return found


def _unused_image_caches(config: StackConfig, finding: type) -> list[Any]:
    used = {s.node_group for s in getattr(config, "services", ())}
    return [finding("warning", "image-cache-unused", (f"{PROJECT}:nodeGroups[{i}].imageCache.snapshotId",),
                    f"node group {g.name} restores its data volume from {g.image_cache.snapshot_id}, but no service of "
                    f"gpuscale:services runs on it: every node pays for the restored volume and no pull is saved; "
                    f"remove imageCache or run the service that needs the image here", g.name)
            for i, g in enumerate(getattr(config, "node_groups", ()))
            if getattr(g, "image_cache", None) is not None and g.name not in used]


def _cache_room(config: StackConfig, finding: type) -> list[Any]:
    found = []
    services = getattr(config, "services", ())
    for i, g in enumerate(getattr(config, "node_groups", ())):
        cached = [(j, s) for j, s in enumerate(services)
                  if s.node_group == g.name and s.model_cache and s.model_cache.kind == "local"]  # on the node's disk
        need = sum(quantity_bytes(s.model_cache.storage_limit) for _, s in cached)
        if cached and need > g.root_volume_gib * 2**30:
            found.append(finding(
                "warning", "model-cache-room",
                (f"{PROJECT}:nodeGroups[{i}].rootVolumeGiB",
                 *(f"{PROJECT}:services[{j}].modelCache.storageLimit" for j, _ in cached)),
                f"the model caches on node group {g.name} may fill {need / 2**30:.0f} GiB per node, more than its "
                f"{g.root_volume_gib} GiB image volume that also "
                f"holds the container images: downloads fail or the kubelet evicts pods for disk pressure", g.name))
    return found


def _model_cache_source(config: StackConfig, finding: type) -> list[Any]:
    created = {b.name: b.entry_key for b in getattr(config, "model_buckets", ()) if not b.existing}
    found = []
    for j, s in enumerate(getattr(config, "services", ())):
        bucket = bucket_of(s.model.storage_uri) if s.model_cache and s.model_cache.kind == "efs" else None
        if bucket in created:
            # A note, not a warning: the plan cannot see the bucket's contents, so it would stay after the upload.
            found.append(finding(
                "info", "model-cache-source", (f"{PROJECT}:services[{j}].modelCache.kind", created[bucket]),
                f"service {s.name} copies {s.model.storage_uri} onto the EFS cache, and this stack creates its bucket "
                f"{bucket} (gpuscale:modelBuckets without existing: true), which is empty on the first `pulumi up`: "
                "upload the model to the bucket before the `pulumi up` that turns the cache on, or the copy Job "
                "fails and `pulumi up` with it", s.name))
    return found


def _name(resource: Any) -> str | None:
    return (resource.inputs.get("metadata") or {}).get("name")


def _spec(resource: Any) -> dict[str, Any]:
    return resource.inputs.get("spec") or {}


def _matches(cached_uri: str, uri: str) -> bool:
    """KServe's LocalModelCacheSpec.MatchStorageURI (v0.16.0): the same URI, or one under it after a slash."""
    cached, uri = cached_uri.rstrip("/"), uri.rstrip("/")
    return uri == cached or uri.startswith(cached + "/")


def _storage_uri(isvc: Any) -> str | None:
    predictor = _spec(isvc).get("predictor") or {}
    model = predictor.get("model") or {}
    if model.get("storageUri"):
        return model["storageUri"]
    for container in predictor.get("containers") or []:
        for env in container.get("env") or []:
            if env.get("name") == "STORAGE_URI":
                return env.get("value")
    return None


def _lands_on(node_selector: dict[str, str], group: Any) -> bool:
    """Whether every node the selector allows is one the LocalModelNodeGroup's volume affinity allows (each term's
    expressions In single values, as LocalModelCache declares them; any term may match)."""
    terms = (((_spec(group).get("persistentVolumeSpec") or {}).get("nodeAffinity") or {}).get("required") or {}).get(
        "nodeSelectorTerms") or []
    for term in terms:
        exprs = term.get("matchExpressions") or []
        if all(e.get("operator") == "In" and node_selector.get(e.get("key")) in (e.get("values") or [])
               for e in exprs):
            return True
    return False


def _plan_reachability(resources: tuple[Any, ...], finding: type) -> list[Any]:
    return _local_reachability(resources, finding) + _efs_reachability(resources, finding)


def _efs_file_system(isvc: Any, resources: tuple[Any, ...]) -> str | None:
    """The EFS file system id behind an InferenceService's pvc:// storageUri (its claim's PersistentVolume of the EFS
    CSI driver: volumeHandle `fs-id`, `fs-id:/path` or `fs-id::fsap-id`); None for any other model."""
    uri = _storage_uri(isvc) or ""
    if not uri.startswith("pvc://"):
        return None
    claim = uri.removeprefix("pvc://").split("/", 1)[0]
    namespace = (isvc.inputs.get("metadata") or {}).get("namespace")
    volume = next((_spec(c).get("volumeName") for c in resources if c.type == PVC and _name(c) == claim
                   and (c.inputs.get("metadata") or {}).get("namespace") == namespace), None)
    pv = next((v for v in resources if v.type == PV and _name(v) == volume), None)
    csi = _spec(pv).get("csi") or {} if pv is not None else {}
    if csi.get("driver") != EFS_CSI_DRIVER:
        return None
    return str(csi.get("volumeHandle") or "").split(":", 1)[0]


def _node_security_groups(group: Any, resources: tuple[Any, ...]) -> list[str]:
    """The security groups of a managed node group's nodes: its launch template's, else EKS's cluster group."""
    template_id = (group.inputs.get("launchTemplate") or {}).get("id")
    template = next((t for t in resources if t.type == LAUNCH_TEMPLATE
                     and planned_id(LAUNCH_TEMPLATE, t.name) == template_id), None)
    own = list((template.inputs.get("vpcSecurityGroupIds") or []) if template is not None else [])
    return own or [cluster_security_group_id(group.inputs.get("clusterName", ""))]


def _lets_nfs_in(security_group: Any, sources: list[str]) -> bool:
    """Whether a security group's inline rules let TCP 2049 in from one of `sources` (security group ids), or from
    addresses (a CIDR rule: the nodes' addresses are not known before apply, so a range is taken as meant for them)."""
    for rule in security_group.inputs.get("ingress") or []:
        protocol = str(rule.get("protocol"))
        ports = protocol == "-1" or (protocol in ("tcp", "6") and
                                     (rule.get("fromPort") or 0) <= NFS_PORT <= (rule.get("toPort") or 0))
        if ports and (set(rule.get("securityGroups") or []) & set(sources) or rule.get("cidrBlocks")):
            return True
    return False


def _efs_reachability(resources: tuple[Any, ...], finding: type) -> list[Any]:
    users = [(isvc, fs) for isvc in resources if isvc.type == ISVC
             for fs in [_efs_file_system(isvc, resources)] if fs is not None]
    if not users:
        return []
    found = []
    groups = [g for g in resources if g.type == EKS_NODE_GROUP]
    security_groups = {planned_id(SECURITY_GROUP, g.name): g for g in resources if g.type == SECURITY_GROUP}
    for isvc, fs in users:
        targets = [m for m in resources if m.type == MOUNT_TARGET and m.inputs.get("fileSystemId") == fs]
        covered = {m.inputs.get("subnetId") for m in targets}
        target_groups = [security_groups[s] for m in targets for s in m.inputs.get("securityGroups") or []
                         if s in security_groups]
        selector = (_spec(isvc).get("predictor") or {}).get("nodeSelector") or {}
        for group in groups:
            labels = group.inputs.get("labels") or {}
            if not selector or any(labels.get(k) != v for k, v in selector.items()):
                continue  # not a group the service's pods land on
            missing = [s for s in group.inputs.get("subnetIds") or [] if s not in covered]
            if missing:
                found.append(finding(
                    "warning", "model-cache-unreachable", (f"InferenceService {_name(isvc)} storageUri",
                                                           f"node group {group.name} subnetIds"),
                    f"InferenceService {_name(isvc)} reads its model from EFS file system {fs}, which has no mount "
                    f"target in subnet(s) {', '.join(missing)} of node group {group.name}: its pods there cannot "
                    "mount the volume; add a mount target per subnet (one per availability zone)"))
            nodes = _node_security_groups(group, resources)
            if not any(_lets_nfs_in(g, nodes) for g in target_groups):
                found.append(finding(
                    "warning", "model-cache-unreachable", (f"InferenceService {_name(isvc)} storageUri",
                                                           f"EFS {fs} mount target security groups"),
                    f"InferenceService {_name(isvc)} reads its model from EFS file system {fs}, but no security "
                    f"group of its mount targets lets NFS (TCP {NFS_PORT}) in from node group {group.name}'s "
                    f"security group ({', '.join(nodes)}): the mounts time out and its pods stay in "
                    "ContainerCreating"))
    if not any(r.type == ADDON and r.inputs.get("addonName") == EFS_ADDON for r in resources):
        found.append(finding("warning", "model-cache-unreachable", (f"EKS add-on {EFS_ADDON}",),
                             f"InferenceService(s) {', '.join(sorted({str(_name(i)) for i, _ in users}))} read their "
                             f"model from an EFS volume, but no {EFS_ADDON} add-on is planned: nothing on the nodes "
                             "mounts it (install the add-on, or the driver's chart)"))
    accounts = {((a.inputs.get("metadata") or {}).get("namespace"), _name(a)): a for a in resources if a.type == SA}
    for job in resources:
        pod = ((_spec(job).get("template") or {}).get("spec") or {}) if job.type == JOB else {}
        if not any((v.get("persistentVolumeClaim") or {}) for v in pod.get("volumes") or []):
            continue
        key = ((job.inputs.get("metadata") or {}).get("namespace"), pod.get("serviceAccountName"))
        account = accounts.get(key)
        annotations = ((account.inputs.get("metadata") or {}).get("annotations") or {}) if account else {}
        if any(str(a).startswith("s3://") for c in pod.get("containers") or [] for a in c.get("args") or []) \
                and not annotations.get(IRSA_ROLE_ARN):
            found.append(finding("warning", "model-cache-permissions", (f"Job {_name(job)} serviceAccountName",),
                                 f"Job {_name(job)} copies a model from S3 onto a volume, but its service account "
                                 f"{key[1]} has no IAM role ({IRSA_ROLE_ARN}): the copy cannot read S3"))
    return found


def _local_reachability(resources: tuple[Any, ...], finding: type) -> list[Any]:
    caches = [r for r in resources if r.type == LOCAL_MODEL_CACHE]
    if not caches:
        return []
    found = []
    groups = {_name(g): g for g in resources if g.type == LOCAL_MODEL_NODE_GROUP}
    services = [r for r in resources if r.type == ISVC]
    for cache in caches:
        spec = _spec(cache)
        uri = spec.get("sourceModelUri") or ""
        users = [s for s in services if (_storage_uri(s) or "") and _matches(uri, _storage_uri(s) or "")]
        if not users:
            found.append(finding("warning", "model-cache-unreachable", (f"LocalModelCache {_name(cache)}",),
                                 f"LocalModelCache {_name(cache)} keeps {uri}, which no planned InferenceService "
                                 "reads (KServe uses a cache only for a storageUri equal to, or under, its "
                                 "sourceModelUri): the nodes download it for nobody"))
        for isvc in users:
            annotations = (isvc.inputs.get("metadata") or {}).get("annotations") or {}
            names = spec.get("nodeGroups") or []
            # KServe's choice (setLocalModelLabel): the annotated group if cached there, else the cache's first.
            chosen = annotations.get(NODE_GROUP_ANNOTATION) or (names[0] if names else None)
            if chosen not in names:
                continue  # KServe then does not use the cache for it: the storage initializer downloads as before
            selector = (_spec(isvc).get("predictor") or {}).get("nodeSelector") or {}
            group = groups.get(chosen)
            if group is None or not _lands_on(selector, group):
                found.append(finding(
                    "warning", "model-cache-unreachable",
                    (f"InferenceService {_name(isvc)} nodeSelector", f"LocalModelNodeGroup {chosen}"),
                    f"InferenceService {_name(isvc)} mounts the copy of {uri} on LocalModelNodeGroup {chosen}, whose "
                    f"volume is bound to nodes its nodeSelector {selector} does not land on"
                    + (" (no such LocalModelNodeGroup is planned)" if group is None else "")
                    + ": its pods stay Pending; cache the model on the service's node group"))
    # KServe's controller release: the one whose values carry `kserve.controller`.
    kserve = [(r.inputs.get("values") or {}).get("kserve") or {} for r in resources if r.type == RELEASE]
    kserve = [v for v in kserve if isinstance(v, dict) and "controller" in v]
    if not any((v.get("localmodel") or {}).get("enabled") is True for v in kserve):
        found.append(finding("warning", "model-cache-unreachable", ("KServe chart kserve.localmodel.enabled",),
                             "LocalModelCache is planned but KServe's chart runs no local model controller or node "
                             "agent (kserve.localmodel.enabled is not true): nothing downloads the models"))
    if not any(r.type == SA_PATCH and _name(r) == "default" for r in resources):
        found.append(finding("warning", "model-cache-permissions", ("kserve-localmodel-jobs/default",),
                             "LocalModelCache is planned but the download Jobs' service account (default in "
                             "kserve-localmodel-jobs) gets no IAM role: the downloads cannot read the models from S3"))
    return found
