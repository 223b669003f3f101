"""The EFS model cache (`modelCache.kind: efs`): the AWS resources with real pulumi-aws arguments (encrypted, Elastic
throughput, a mount target per subnet, NFS only from the nodes' security group, the CSI add-on's role with AWS's
managed policy), the Kubernetes objects valid against Kubernetes' schema (PersistentVolumes, claims, the copy Job),
the predictors' claim ReadOnlyMany and the storageUri KServe mounts; every bad argument refused by name before
anything is declared."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pulumi
import pytest
from crd_support import validate_custom_resource
from kube_support import validate_object

from gpuscale.components.efs_model_cache import (ADDON_NAME, ADDON_SERVICE_ACCOUNTS, CSI_DRIVER, NOMINAL_CAPACITY,
                                                 EfsModelCache, EfsModelCacheArgs, copy_job, persistent_volume,
                                                 persistent_volume_claim, pvc_storage_uri)
from gpuscale.plan.diff import replacement_reasons
from gpuscale.plan.model import PlannedResource
from gpuscale.plan.render import flatten
from gpuscale.config.reader import ConfigErrors

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "components"))
from components_harness import Harness  # noqa: E402
from test_serving_components import ISSUER, OIDC_ARN, isvc_object, service  # noqa: E402

NODE_SG = "sg-0123456789abcdef0"
SUBNETS = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]


def efs_args(**overrides) -> EfsModelCacheArgs:
    args: EfsModelCacheArgs = {
        "vpc_id": "vpc-0123456789abcdef0", "subnet_ids": SUBNETS, "node_security_group_id": NODE_SG,
        "cluster_name": "c1", "oidc_provider_arn": OIDC_ARN, "oidc_issuer_url": ISSUER, "region": "us-west-2",
        "namespace": "gpuscale-serving",
        "models": [{"name": "chat", "storage_uri": "s3://models/chat-8b"}],
        "node_selector": {"gpuscale.io/node-role": "system"}}
    args.update(overrides)  # type: ignore[typeddict-item]
    return args


def declared(**overrides) -> Harness:
    harness = Harness()
    harness.run(lambda: EfsModelCache("model-cache-efs", efs_args(**overrides)))
    return harness


def test_the_file_system_is_encrypted_elastic_and_reached_from_every_subnet():
    harness = declared()
    fs = harness.one("aws:efs/fileSystem:FileSystem").inputs
    assert fs["encrypted"] is True and fs["throughputMode"] == "elastic" and fs["performanceMode"] == "generalPurpose"
    targets = harness.of_type("aws:efs/mountTarget:MountTarget")
    assert sorted(t.inputs["subnetId"] for t in targets) == SUBNETS
    group = harness.one("aws:ec2/securityGroup:SecurityGroup")
    assert all(t.inputs["securityGroups"] == [group.id] for t in targets), "the mount targets take the NFS group"
    (rule,) = group.inputs["ingress"]
    assert (rule["protocol"], rule["fromPort"], rule["toPort"]) == ("tcp", 2049, 2049)
    assert rule["securityGroups"] == [NODE_SG] and "cidrBlocks" not in rule, "NFS from the nodes' group only"
    assert not group.inputs.get("egress")


def test_the_csi_add_on_has_its_role_with_awss_managed_policy():
    harness = declared()
    addon = harness.one("aws:eks/addon:Addon").inputs
    assert addon["addonName"] == ADDON_NAME == "aws-efs-csi-driver" and addon["clusterName"] == "c1"
    roles = {r.name: r for r in harness.of_type("aws:iam/role:Role")}
    trust = json.loads(roles["model-cache-efs-csi-role"].inputs["assumeRolePolicy"])
    (statement,) = trust["Statement"]
    subjects = statement["Condition"]["StringEquals"]["oidc.eks.us-west-2.amazonaws.com/id/ABC123:sub"]
    assert subjects == [f"system:serviceaccount:kube-system:{a}" for a in ADDON_SERVICE_ACCOUNTS]
    assert ADDON_SERVICE_ACCOUNTS == ("efs-csi-controller-sa", "efs-csi-node-sa")
    attachment = harness.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment").inputs
    assert attachment["policyArn"] == "arn:aws:iam::aws:policy/service-role/AmazonEFSCSIDriverPolicy"


def test_the_kubernetes_objects_are_valid_and_the_predictors_claim_is_read_only_many():
    harness = declared()
    volumes = {r.inputs["metadata"]["name"]: r.inputs for r in harness.of_type("kubernetes:core/v1:PersistentVolume")}
    claims = {r.inputs["metadata"]["name"]: r.inputs
              for r in harness.of_type("kubernetes:core/v1:PersistentVolumeClaim")}
    assert set(volumes) == set(claims) == {"model-cache-efs-models", "model-cache-efs-loader"}
    for name, pv in volumes.items():
        validate_object({"apiVersion": "v1", "kind": "PersistentVolume", **pv}, "1.33")
        validate_object({"apiVersion": "v1", "kind": "PersistentVolumeClaim", **claims[name]}, "1.33")
        assert pv["spec"]["csi"]["driver"] == CSI_DRIVER == "efs.csi.aws.com"
        # The file system id, through the access point (fs-...::fsap-...), known once both exist.
        assert claims[name]["spec"]["volumeName"] == name and pv["spec"]["storageClassName"] == ""
    models = volumes["model-cache-efs-models"]["spec"]
    assert models["accessModes"] == ["ReadOnlyMany"] and models["csi"]["readOnly"] is True
    assert claims["model-cache-efs-models"]["spec"]["accessModes"] == ["ReadOnlyMany"]
    assert volumes["model-cache-efs-loader"]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert models["capacity"]["storage"] == NOMINAL_CAPACITY


def test_a_copy_job_per_model_runs_kserves_storage_initializer_with_the_read_role():
    harness = declared(models=[{"name": "chat", "storage_uri": "s3://models/chat-8b"},
                               {"name": "code", "storage_uri": "s3://models/code-7b/"}])
    jobs = {r.inputs["metadata"]["name"]: r for r in harness.of_type("kubernetes:batch/v1:Job")}
    assert set(jobs) == {"efs-copy-chat", "efs-copy-code"}
    job = jobs["efs-copy-code"].inputs
    validate_object({"apiVersion": "batch/v1", "kind": "Job", **job}, "1.33")
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "kserve/storage-initializer:v0.16.0"
    # The model's directory is the mount's subPath (the kubelet makes it) and the mount itself the destination.
    assert container["args"] == ["s3://models/code-7b/", "/mnt/efs"]
    assert container["volumeMounts"] == [{"name": "efs", "mountPath": "/mnt/efs", "subPath": "models/code-7b"}]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "model-cache-efs-loader"
    assert pod["nodeSelector"] == {"gpuscale.io/node-role": "system"}
    account = harness.one("kubernetes:core/v1:ServiceAccount").inputs["metadata"]
    assert pod["serviceAccountName"] == account["name"] and "eks.amazonaws.com/role-arn" in account["annotations"]
    policy = harness.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"]
    assert "arn:aws:s3:::models/chat-8b/*" in policy and "arn:aws:s3:::models/code-7b/*" in policy


def test_the_service_reads_the_copy_as_a_pvc_uri_kserve_parses():
    uri = pvc_storage_uri("model-cache-efs", "s3://models/chat-8b/")
    # KServe's ParsePvcURI (pkg/utils/storage.go at v0.16.0): the claim, then the path mounted as the subPath.
    assert uri == "pvc://model-cache-efs-models/models/chat-8b"
    obj = isvc_object(service(model={"storage_uri": uri, "format": "huggingface", "runtime": None,
                                     "container": None}))
    validate_custom_resource(obj)
    assert obj["spec"]["predictor"]["model"]["storageUri"] == uri
    # The copy Job writes exactly where that URI points, below the access point's root: its mount's subPath is
    # the subPath KServe mounts for the predictor.
    job = copy_job("j", "n", {"name": "chat", "storage_uri": "s3://models/chat-8b/"},
                   "c", "sa", "us-west-2", {})
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["volumeMounts"][0]["subPath"] == uri.removeprefix("pvc://model-cache-efs-models/")
    assert container["args"][1] == container["volumeMounts"][0]["mountPath"]


def test_helpers_build_schema_valid_objects_and_the_check_refuses_a_misspelt_field():
    pv = persistent_volume("x", "n", "fs-1::fsap-1", "ReadOnlyMany", "1Gi")
    validate_object(pv, "1.33")
    pv["spec"]["csi"]["volumeID"] = pv["spec"]["csi"].pop("volumeHandle")
    with pytest.raises(Exception):
        validate_object(pv, "1.33")
    validate_object(persistent_volume_claim("x", "n", "ReadOnlyMany", "1Gi"), "1.33")


@pytest.mark.parametrize("overrides, key, allowed", [
    ({"models": [{"name": "chat", "storage_uri": "pvc://models/chat"}]},
     "models[0].storage_uri", "an s3:// storageUri"),
    ({"models": [{"name": "chat", "storage_uri": "s3://models/chat", "model_size": "16Gi"}]},
     "models[0].model_size", "known keys here are name, storage_uri"),
    ({"models": [{"name": "chat", "storage_uri": "s3://models/chat"},
                 {"name": "chat2", "storage_uri": "s3://models/chat/v2"}]},
     "models[1].storage_uri", "none under another's (chat has s3://models/chat)"),
    ({"models": []}, "models", "a list of at least 1"),
    ({"subnet_ids": []}, "subnet_ids", "a list of at least 1 subnet id"),
    ({"region": "us-west2"}, "region", "an AWS region"),
], ids=["pvc", "no-size", "nested", "no-models", "no-subnets", "region"])
def test_bad_arguments_are_refused_by_name_before_anything_is_declared(overrides, key, allowed):
    harness = Harness()
    with pytest.raises((ValueError, ConfigErrors)) as caught:
        harness.run(lambda: EfsModelCache("mc", efs_args(**overrides)))
    errors = getattr(caught.value, "errors", [caught.value])
    error = next((e for e in errors if getattr(e, "key", None) == key), None)
    assert error is not None and allowed in str(error), str(caught.value)
    assert [r.type for r in harness.resources if r.type != "pulumi:pulumi:Stack"] == []


def test_kubernetes_children_wait_for_what_the_component_waits_for():
    harness = Harness()

    def program():
        first = pulumi.CustomResource("test:index:Kserve", "kserve", {})
        EfsModelCache("model-cache-efs", efs_args(), opts=pulumi.ResourceOptions(depends_on=[first]))
    harness.run(program)
    kserve = [r for r in harness.resources if r.name == "kserve"][0].urn
    for r in harness.resources:
        if r.type.startswith("kubernetes:"):
            assert kserve in r.dependencies, f"{r.name} does not wait for KServe"


def _kubelet_and_storage_initializer(root: Path, job: dict) -> Path:
    """What a copy Job's pod does on a fresh file system (`root`, the access point's root, empty): the kubelet creates a
    missing subPath with its parents (kubelet's subpath handling, `MkdirAll`) and bind-mounts it at the mount path;
    then KServe's Storage.download (python/storage/kserve_storage/kserve_storage.py at v0.16.0) does
    `if not os.path.exists(out_dir): os.mkdir(out_dir)` on its destination (one level, no parents) and writes the
    model there. Returns the directory on the file system the model's files land in."""
    (container,) = job["spec"]["template"]["spec"]["containers"]
    (mount,) = container["volumeMounts"]
    source = root / mount.get("subPath", "")
    source.mkdir(parents=True, exist_ok=True)
    destination = container["args"][1]
    relative = Path(destination).relative_to(mount["mountPath"])  # ValueError: written outside the volume
    out_dir = source / relative
    if not out_dir.exists():
        out_dir.mkdir()  # os.mkdir: FileNotFoundError when its parent does not exist
    (out_dir / "config.json").write_text("{}")
    return out_dir


def test_the_copy_lands_where_the_predictor_reads_on_a_fresh_file_system(tmp_path):
    uri = "s3://models/chat-8b/"
    job = copy_job("j", "n", {"name": "chat", "storage_uri": uri}, "c", "sa", "us-west-2", {})
    landed = _kubelet_and_storage_initializer(tmp_path, job)
    # KServe mounts the predictor's pvc://<claim>/<path> with <path> as the subPath: the same directory.
    assert landed == tmp_path / pvc_storage_uri("model-cache-efs", uri).split("/", 3)[3]
    assert (tmp_path / "models" / "chat-8b" / "config.json").is_file()


def test_the_claims_keep_their_size_whatever_the_models():
    """A statically bound claim can neither grow (PersistentVolumeClaimResize: only dynamically provisioned claims)
    nor shrink: adding a model must not change the volumes or the claims."""
    def storage_objects(models):
        harness = declared(models=models)
        return {r.name: r.inputs for r in harness.resources
                if r.type in ("kubernetes:core/v1:PersistentVolume", "kubernetes:core/v1:PersistentVolumeClaim")}
    one = storage_objects([{"name": "chat", "storage_uri": "s3://models/chat-8b"}])
    two = storage_objects([{"name": "chat", "storage_uri": "s3://models/chat-8b"},
                           {"name": "code", "storage_uri": "s3://models/code-7b"}])
    assert one == two and len(one) == 4
    claim = one["model-cache-efs-models-pvc"]["spec"]["resources"]["requests"]["storage"]
    assert claim == one["model-cache-efs-models-pv"]["spec"]["capacity"]["storage"] == NOMINAL_CAPACITY


def test_a_new_storage_uri_replaces_the_copy_job():
    """A copy runs once per storageUri: a new model version under a new URI (a versioned prefix) gets its copy by a
    replaced Job, whose template pulumi-kubernetes cannot update in place."""
    def job(uri):
        harness = declared(models=[{"name": "chat", "storage_uri": uri}])
        (r,) = harness.of_type("kubernetes:batch/v1:Job")
        return r
    old, new = job("s3://models/chat-8b/v1"), job("s3://models/chat-8b/v2")
    assert old.urn == new.urn, "the same Job resource, changed"
    before, after = dict(flatten({"inputs": old.inputs})), dict(flatten({"inputs": new.inputs}))
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert changed and all(".spec.template." in path for path in changed), changed
    planned = PlannedResource(new.urn, new.type, new.name, None, True, new.inputs, {})
    assert replacement_reasons(planned, changed), f"{changed} would update the Job in place"
