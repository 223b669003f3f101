"""prod with chat's model on an EFS cache (`modelCache.kind: efs`), planned offline by the real program: the file
system and everything it needs are planned, every object is valid, chat reads its model as a pvc:// claim after the
copy, no check fires; and each way of breaking the wiring (a subnet without a mount target, NFS not let in from the
nodes, no CSI add-on, a copy without an S3 role) is found by the pre-apply checks."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from crd_support import validate_custom_resource
from kube_support import project_with_stack_lines, validate_object

from gpuscale.config import load_stack_file
from gpuscale.plan.checks import Finding, run_checks
from gpuscale.plan.checks.caches import cache_findings
from gpuscale.plan.diff import replacement_facts
from gpuscale.plan.engine import plan_in_subprocess

ROOT = Path(__file__).resolve().parents[2]
CHAT_URI = "pvc://model-cache-efs-models/gpuscale-prod-models/chat-8b-fp16"


@pytest.fixture(scope="module")
def efs_prod(tmp_path_factory):
    """prod with chat's model cached on EFS (a copy of the project whose stack file adds `modelCache` to chat)."""
    project = project_with_stack_lines(tmp_path_factory.mktemp("project"), ROOT, "prod",
                                       "    - name: chat\n      nodeGroup: l4-ondemand\n",
                                       "      modelCache: {kind: efs, modelSize: 16Gi}\n")
    return project, plan_in_subprocess(project, "prod")


def _of(plan, token):
    return [r for r in plan.resources if r.type == token]


def _findings(project, resources):
    """The cache findings of the plan's `resources` (the config's own, the created bucket's, left out)."""
    config = load_stack_file(project, "prod")
    return [(f.check, f.message) for f in cache_findings(config, SimpleNamespace(resources=resources), Finding)
            if f.check != "model-cache-source"]


def _copy(plan):
    return [replace(r, inputs=copy.deepcopy(r.inputs)) for r in plan.resources]


def test_the_file_system_and_its_wiring_are_planned_and_valid(efs_prod):
    project, plan = efs_prod
    (fs,) = _of(plan, "aws:efs/fileSystem:FileSystem")
    assert fs.inputs["encrypted"] is True and fs.inputs["throughputMode"] == "elastic"
    # prod makes three zones, one private subnet each: a mount target in every one.
    targets = _of(plan, "aws:efs/mountTarget:MountTarget")
    (chat_group,) = [g for g in _of(plan, "aws:eks/nodeGroup:NodeGroup") if g.name == "l4-ondemand-ng"]
    assert sorted(t.inputs["subnetId"] for t in targets) == sorted(chat_group.inputs["subnetIds"])
    assert len(targets) == 3
    (addon,) = _of(plan, "aws:eks/addon:Addon")
    assert addon.inputs["addonName"] == "aws-efs-csi-driver"
    for r in plan.resources:
        if r.type in ("kubernetes:core/v1:PersistentVolume", "kubernetes:core/v1:PersistentVolumeClaim",
                      "kubernetes:batch/v1:Job", "kubernetes:core/v1:ServiceAccount"):
            kind = r.type.rsplit(":", 1)[1]
            api = "batch/v1" if kind == "Job" else "v1"
            validate_object({"apiVersion": api, "kind": kind, **r.inputs}, "1.33")
    (job,) = _of(plan, "kubernetes:batch/v1:Job")
    (container,) = job.inputs["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["s3://gpuscale-prod-models/chat-8b-fp16", "/mnt/efs"]
    assert container["volumeMounts"][0]["subPath"] == CHAT_URI.split("/", 3)[3]


def test_the_copy_waits_for_the_bucket_the_stack_creates(efs_prod):
    _, plan = efs_prod
    (job,) = _of(plan, "kubernetes:batch/v1:Job")
    (bucket,) = [r for r in _of(plan, "aws:s3/bucket:Bucket") if r.name == "gpuscale-prod-models"]
    assert bucket.urn in job.options.get("dependsOn", []), "the copy Job may run before its model's bucket exists"


def test_chat_reads_the_claim_and_batch_still_downloads(efs_prod):
    _, plan = efs_prod
    isvcs = {r.inputs["metadata"]["name"]: r for r in _of(plan, "kubernetes:serving.kserve.io/v1beta1:InferenceService")}
    for r in isvcs.values():
        validate_custom_resource(r.inputs)
    assert isvcs["chat"].inputs["spec"]["predictor"]["model"]["storageUri"] == CHAT_URI
    assert isvcs["batch"].inputs["spec"]["predictor"]["model"]["storageUri"].startswith("s3://")
    # No local cache: KServe's node agent stays off and no service names a node group.
    assert not _of(plan, "kubernetes:serving.kserve.io/v1alpha1:LocalModelCache")
    assert "serving.kserve.io/nodegroup" not in isvcs["chat"].inputs["metadata"]["annotations"]


def test_every_new_aws_type_has_replacement_facts(efs_prod):
    _, plan = efs_prod
    declared = {r.type for r in plan.resources if r.custom and r.type.startswith("aws:")}
    assert {"aws:efs/fileSystem:FileSystem", "aws:efs/mountTarget:MountTarget", "aws:efs/accessPoint:AccessPoint",
            "aws:eks/addon:Addon"} <= declared
    assert declared <= set(replacement_facts()["resources"])


def test_a_wired_efs_cache_has_no_finding_but_its_empty_bucket(efs_prod):
    project, plan = efs_prod
    config = load_stack_file(project, "prod")
    assert config.services[0].model_cache.kind == "efs"
    found = [f for f in run_checks(config, plan) if f.check.startswith(("model-cache", "image-cache"))]
    # prod creates gpuscale-prod-models: empty on the first `pulumi up`, so the copy would fail there.
    assert [(f.severity, f.check, f.settings, f.group) for f in found] == [
        ("info", "model-cache-source", ("gpuscale:services[0].modelCache.kind", "gpuscale:modelBuckets[0]"), "chat")]
    assert "gpuscale-prod-models" in found[0].message and "upload the model" in found[0].message


def test_an_existing_bucket_needs_no_upload_note(efs_prod):
    project, _ = efs_prod
    config = load_stack_file(project, "prod")
    existing = replace(config, model_buckets=tuple(replace(b, existing=True) for b in config.model_buckets))
    assert [f.check for f in cache_findings(existing, None, Finding)] == []
    assert [f.check for f in cache_findings(config, None, Finding)] == ["model-cache-source"]


def test_a_subnet_without_a_mount_target_is_found(efs_prod):
    project, plan = efs_prod
    resources = _copy(plan)
    dropped = next(r for r in resources if r.type == "aws:efs/mountTarget:MountTarget")
    resources.remove(dropped)
    found = _findings(project, resources)
    assert [c for c, _ in found] == ["model-cache-unreachable"]
    assert dropped.inputs["subnetId"] in found[0][1] and "node group l4-ondemand-ng" in found[0][1]


def test_nfs_not_let_in_from_the_nodes_is_found(efs_prod):
    project, plan = efs_prod
    resources = _copy(plan)
    (nfs,) = [r for r in resources if r.type == "aws:ec2/securityGroup:SecurityGroup" and r.name == "model-cache-efs-nfs"]
    nfs.inputs["ingress"][0]["securityGroups"] = ["sg-00000000000000000"]
    found = _findings(project, resources)
    assert [c for c, _ in found] == ["model-cache-unreachable"]
    assert "TCP 2049" in found[0][1] and "security group" in found[0][1]
    nfs.inputs["ingress"][0]["fromPort"] = nfs.inputs["ingress"][0]["toPort"] = 22
    nfs.inputs["ingress"][0]["securityGroups"] = planned_node_groups(plan)
    assert [c for c, _ in _findings(project, resources)] == ["model-cache-unreachable"], "the wrong port"


def planned_node_groups(plan) -> list[str]:
    (fs_group,) = [r for r in plan.resources if r.name == "model-cache-efs-nfs"]
    return list(fs_group.inputs["ingress"][0]["securityGroups"])


def test_a_missing_csi_add_on_is_found(efs_prod):
    project, plan = efs_prod
    resources = [r for r in _copy(plan) if r.type != "aws:eks/addon:Addon"]
    found = _findings(project, resources)
    assert [c for c, _ in found] == ["model-cache-unreachable"]
    assert "aws-efs-csi-driver" in found[0][1] and "chat" in found[0][1]


def test_a_copy_without_an_s3_role_is_found(efs_prod):
    project, plan = efs_prod
    resources = _copy(plan)
    for r in resources:
        if r.type == "kubernetes:core/v1:ServiceAccount" and r.inputs["metadata"]["name"] == "model-cache-efs-copy":
            del r.inputs["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    found = _findings(project, resources)
    assert [c for c, _ in found] == ["model-cache-permissions"]
    assert "efs-copy-chat" in found[0][1]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_shipped_stacks_create_no_efs(stack):
    config = load_stack_file(ROOT, stack)
    assert all(s.model_cache is None or s.model_cache.kind != "efs" for s in config.services)


def test_on_an_existing_cluster_the_listed_subnets_get_the_mount_targets():
    import sys
    sys.path.insert(0, str(ROOT / "tests" / "components"))
    from components_harness import Harness, stack_values

    from gpuscale.plan.mocks import cluster_security_group_id

    values = copy.deepcopy(stack_values("dev"))
    subnets = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
    values["gpuscale:cluster"] = {"mode": "existing", "name": "shared", "kubernetesVersion": "1.33",
                                  "subnetIds": subnets}
    values.pop("gpuscale:policy", None)  # its accepted findings name the dev cluster's own endpoint
    values["gpuscale:services"][0]["modelCache"] = {"kind": "efs", "modelSize": "8Gi"}
    harness = Harness()
    harness.run_program("dev", values)
    targets = harness.of_type("aws:efs/mountTarget:MountTarget")
    assert sorted(t.inputs["subnetId"] for t in targets) == subnets
    (nfs,) = [r for r in harness.of_type("aws:ec2/securityGroup:SecurityGroup") if r.name == "model-cache-efs-nfs"]
    # The looked-up cluster's security group: what its managed node groups' nodes get.
    assert nfs.inputs["ingress"][0]["securityGroups"] == [cluster_security_group_id("shared")]
    (isvc,) = harness.of_type("kubernetes:serving.kserve.io/v1beta1:InferenceService")
    assert isvc.inputs["spec"]["predictor"]["model"]["storageUri"] == (
        "pvc://model-cache-efs-models/gpuscale-dev-models/chat-8b-awq")
    copy_job = harness.one("kubernetes:batch/v1:Job")
    assert "nodeSelector" not in copy_job.inputs["spec"]["template"]["spec"], "an existing cluster's nodes are unknown"
    # A dependency on a component is recorded as one on its children: the copy Job among them.
    assert copy_job.urn in isvc.dependencies, "the service waits for its model's copy"
