"""Pre-apply checks of the cold-start caches (gpuscale/config/caches.py): where a cache is configured but the service's
pods cannot reach it, or it serves nobody. `run_checks` (gpuscale/plan/checks/) calls `cache_findings`.

From the stack config: an image-cache snapshot on a node group no service runs on (it costs a snapshot and a restored
volume on every node for nothing); a node group whose image volume is smaller than the model caches on it.
From the plan (what the program declares, whichever program it is): a LocalModelCache whose sourceModelUri matches
no InferenceService's storageUri (KServe never uses it), an InferenceService whose cached copy sits on a
LocalModelNodeGroup whose nodes its nodeSelector does not land on (the claim's volume is bound to other nodes: the pod
stays Pending), KServe's chart without `kserve.localmodel.enabled` (no agent downloads anything), and no role on the
download Jobs' service account (the downloads cannot read S3).
"""

from __future__ import annotations

from typing import Any

from ...config import PROJECT, StackConfig
from ...config.caches import quantity_bytes

LOCAL_MODEL_CACHE = "kubernetes:serving.kserve.io/v1alpha1:LocalModelCache"
LOCAL_MODEL_NODE_GROUP = "kubernetes:serving.kserve.io/v1alpha1:LocalModelNodeGroup"
ISVC = "kubernetes:serving.kserve.io/v1beta1:InferenceService"
RELEASE = "kubernetes:helm.sh/v3:Release"
SA_PATCH = "kubernetes:core/v1:ServiceAccountPatch"
NODE_GROUP_ANNOTATION = "serving.kserve.io/nodegroup"


def cache_findings(config: StackConfig, plan: Any | None, finding: type) -> list[Any]:
    found = _unused_image_caches(config, finding) + _cache_room(config, finding)
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
        cached = [(j, s) for j, s in enumerate(services) if s.node_group == g.name and s.model_cache]
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
