"""LocalModelCache: KServe's local model cache (v0.16, serving.kserve.io/v1alpha1) for the stack's GPU node groups.

One LocalModelNodeGroup per GPU node group: a local PersistentVolume at the node agent's host path on every node whose
labels match the group's node selector (KServe finds a node's group by this node affinity, `getNodeGroupFromNode`,
pkg/controller/v1alpha1/localmodelnode/controller.go at v0.16.0), and the claim spec KServe binds to it. One
LocalModelCache per cached model: its storageUri (the InferenceService's, so KServe's defaulting webhook matches it,
`MatchStorageURI`), its size, the node groups it is kept on. KServe's node agent downloads the model onto each node of
those groups with a Job in the chart's `kserve.localmodel.jobNamespace`, run as that namespace's `default` service
account: it gets an IRSA role reading the cached models' S3 prefixes (KServe gives the Job no other identity).
"""

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired, TypedDict

from ..config.args import validate_args
from ..config.caches import LOCAL_MODEL_HOST_PATH, QUANTITY, QUANTITY_RULE, cacheable_uri_refusal
from ..config.reader import REQUIRED, Section
from ..config.services import STORAGE_URI_PATTERN
from ..config.groups import NAME_PATTERN as NODE_GROUP_NAME_PATTERN
from ..config.groups import NAME_RULE as NODE_GROUP_NAME_RULE
from ._docs import documented
from ._options import depends_on_of
from .irsa_role import IrsaRole
from .kube_values import DNS_LABEL_PATTERN, read_node_selector
from .kserve import selector_term
from .labels import GPU_CLASS_LABEL
from .model_service import IRSA_ROLE_ARN, s3_statements

API_VERSION = "serving.kserve.io/v1alpha1"
JOB_NAMESPACE = "kserve-localmodel-jobs"
"""The chart's `kserve.localmodel.jobNamespace` default at v0.16.0 (its templates/localmodel/namespace.yaml creates
it); the download Jobs run there."""
STORAGE_CLASS = "gpuscale-local-models"
"""Binds KServe's claims to the PersistentVolumes it creates from the same spec (static binding by class name: no
provisioner, no StorageClass object)."""


class CacheNodeGroupArgs(TypedDict):
    name: str
    """The GPU node group (its stack name; the LocalModelNodeGroup's name)."""
    node_selector: Mapping[str, str]
    """Labels of the group's nodes, at least the GPU class: the services' own node selector, so the cache is on
    exactly the nodes their pods land on."""
    storage_limit: str
    """Disk per node the cache may fill (a storage quantity): the sum of the models cached on the group."""


class CachedModelArgs(TypedDict):
    name: str
    """The LocalModelCache's name (a DNS-1123 label; the service's name)."""
    storage_uri: str
    """The model's s3:// URI, exactly the InferenceService's storageUri (or a prefix of it)."""
    model_size: str
    """The model's size on disk, a storage quantity."""
    node_groups: Sequence[str]
    """Names of node groups (of `node_groups`) the model is kept on."""


class LocalModelCacheArgs(TypedDict):
    node_groups: Sequence[CacheNodeGroupArgs]
    """The GPU node groups that keep models, at least one."""
    models: Sequence[CachedModelArgs]
    """The models kept, at least one."""
    oidc_provider_arn: pulumi.Input[str]
    """The cluster's IAM OIDC provider, trusted by the download Jobs' role."""
    oidc_issuer_url: pulumi.Input[str]
    """The cluster's OIDC issuer URL, the condition of that role's trust policy."""
    tags: NotRequired[dict[str, str]]
    """Tags on the IAM role. Default none."""


def read_cache_node_group(s: Section) -> tuple[str, dict[str, str], str]:
    name = s.str("name", pattern=NODE_GROUP_NAME_PATTERN, describe=NODE_GROUP_NAME_RULE)
    selector = read_node_selector(s, default=REQUIRED, requires=GPU_CLASS_LABEL)
    limit = s.str("storage_limit", pattern=QUANTITY, describe=QUANTITY_RULE)
    s.finish()
    return name, selector, limit


def read_cached_model(m: Section, seen: set[str]) -> tuple[str, str | None]:
    """A model cache component's model entry (this one's and EfsModelCache's): its name, a DNS-1123 label used once
    (added to `seen`), and its s3:// storage_uri, returned only when it can be cached (else reported)."""
    name = m.str("name", pattern=DNS_LABEL_PATTERN, describe="a DNS-1123 label")
    if name in seen:
        m.report("name", name, "each model name once")
    seen.add(name)
    uri = m.str("storage_uri", pattern=STORAGE_URI_PATTERN, describe="an s3:// URI")
    refusal = cacheable_uri_refusal(uri)
    if refusal is not None:
        m.report("storage_uri", uri, refusal)
        return name, None
    return name, uri


def check_args(s: Section) -> None:
    """The rules of LocalModelCacheArgs: node groups and models as the stack config's `modelCache:` reads them, each
    model on groups listed here, each name once."""
    groups = [read_cache_node_group(g) for g in s.sections("node_groups", min_items=1)]
    names = [g[0] for g in groups]
    if len(set(names)) != len(names):
        s.report("node_groups", names, "each node group once")
    seen: set[str] = set()
    uris: dict[str, str] = {}
    for i, m in enumerate(s.sections("models", min_items=1)):
        name, uri = read_cached_model(m, seen)
        if uri is not None and uri in uris:
            # KServe's LocalModelCache webhook (validateUniqueStorageURI) refuses a second cache of the same URI.
            m.report("storage_uri", uri, f"each storage_uri once ({uris[uri]} caches it already): list every node "
                                         "group of the model in that entry's node_groups")
        if uri is not None:
            uris.setdefault(uri, name)
        m.str("model_size", pattern=QUANTITY, describe=QUANTITY_RULE)
        on = m.str_list("node_groups", min_items=1)
        for group in on if isinstance(on, (list, tuple)) else ():
            if group not in names:
                m.report("node_groups", list(on), f"names of node_groups ({', '.join(names)})")
                break
        m.finish()
    s.input("oidc_provider_arn")
    s.input("oidc_issuer_url")
    s.input("tags", {})


def node_group_object(group: CacheNodeGroupArgs) -> dict[str, Any]:
    """The LocalModelNodeGroup (checked against the pinned CRD in tests)."""
    limit = group["storage_limit"]
    return {"apiVersion": API_VERSION, "kind": "LocalModelNodeGroup", "metadata": {"name": group["name"]}, "spec": {
        "storageLimit": limit,
        "persistentVolumeSpec": {
            "accessModes": ["ReadWriteOnce"], "capacity": {"storage": limit}, "storageClassName": STORAGE_CLASS,
            # The node's disk at the agent's host path: the agent checks and cleans the same directory.
            "local": {"path": LOCAL_MODEL_HOST_PATH},
            # A local volume has no deleter (Delete would leave it Failed); the node's files are the agent's to clean.
            "persistentVolumeReclaimPolicy": "Retain",
            "nodeAffinity": {"required": {"nodeSelectorTerms": [selector_term(group["node_selector"])]}}},
        "persistentVolumeClaimSpec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": limit}},
            "storageClassName": STORAGE_CLASS}}}


def model_object(model: CachedModelArgs) -> dict[str, Any]:
    """The LocalModelCache (checked against the pinned CRD in tests)."""
    return {"apiVersion": API_VERSION, "kind": "LocalModelCache", "metadata": {"name": model["name"]}, "spec": {
        "sourceModelUri": model["storage_uri"], "modelSize": model["model_size"],
        "nodeGroups": list(model["node_groups"])}}


@documented
class LocalModelCache(pulumi.ComponentResource):
    """KServe's local model cache: a LocalModelNodeGroup per GPU node group, a LocalModelCache per model, and an IRSA
    role on the download Jobs' service account. Needs KServe with its local model cache on (KServeArgs
    `local_model_nodes`): pass the KServe component in `opts.depends_on` and the stack's Kubernetes provider in
    `opts.providers`."""

    role_arn: pulumi.Output[str]
    """The download Jobs' IAM role (reads the cached models from S3)."""

    def __init__(self, name: str, args: LocalModelCacheArgs, opts: pulumi.ResourceOptions | None = None):
        validate_args("LocalModelCache", name, args, LocalModelCacheArgs, check_args)
        super().__init__("gpuscale:index:LocalModelCache", name, None, opts)
        # KServe (its CRDs, its webhooks, the Jobs' namespace its chart creates) comes first, for every Kubernetes
        # child: the SDK does not hand a component's depends_on to its children.
        after = depends_on_of(opts)
        statements = [st for m in args["models"] for st in s3_statements(m["storage_uri"])]
        role = IrsaRole(f"{name}-jobs-irsa", {
            "oidc_provider_arn": args["oidc_provider_arn"], "oidc_issuer_url": args["oidc_issuer_url"],
            "namespace": JOB_NAMESPACE, "service_account": "default", "statements": statements,
            "description": "KServe local model cache: download Jobs read the cached models from S3",
            "tags": args.get("tags")}, opts=pulumi.ResourceOptions(parent=self))
        # KServe's download Job names no service account: the namespace's `default` one (created by Kubernetes) is
        # annotated, not replaced.
        account = k8s.core.v1.ServiceAccountPatch(f"{name}-jobs-sa", metadata={
            "name": "default", "namespace": JOB_NAMESPACE, "annotations": {IRSA_ROLE_ARN: role.role_arn}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=after))
        groups = []
        for group in args["node_groups"]:
            body = node_group_object(group)
            groups.append(k8s.apiextensions.CustomResource(
                f"{name}-{group['name']}", api_version=API_VERSION, kind=body["kind"], metadata=body["metadata"],
                spec=body["spec"], opts=pulumi.ResourceOptions(parent=self, depends_on=after)))
        for model in args["models"]:
            body = model_object(model)
            # After its node groups (KServe's controller looks them up by name to create the volumes) and the role
            # its download Jobs read with.
            k8s.apiextensions.CustomResource(
                f"{name}-{model['name']}", api_version=API_VERSION, kind=body["kind"], metadata=body["metadata"],
                spec=body["spec"], opts=pulumi.ResourceOptions(parent=self, depends_on=[*after, *groups, account]))
        self.role_arn = role.role_arn
        self.register_outputs({"role_arn": self.role_arn})
