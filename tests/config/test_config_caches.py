"""Cold-start caches in the stack config: a service's `modelCache:` and a node group's `imageCache:`, every bad value
refused naming its key, the value and what is allowed; the good ones read into their dataclasses."""

from __future__ import annotations

import copy

import pytest
from test_config_services import assert_service_rejected, svc, with_service
from test_config_validation import CATALOG, assert_rejected, ng

from gpuscale.config import load_stack_config
from gpuscale.config.caches import EFS_ELASTIC_CLIENT_MIB_PER_SECOND, GP3_BASELINE_MIB_PER_SECOND, quantity_bytes

S, N = "gpuscale:services[0]", "gpuscale:nodeGroups[0]"
CACHE = {"kind": "local", "modelSize": "16Gi", "storageLimit": "100Gi"}
SNAPSHOT = "snap-0123456789abcdef0"


def _cache(**changes):
    def mutate(cfg):
        svc(cfg)["modelCache"] = {**CACHE, **changes}
    return mutate


def _bottlerocket(cfg):
    ng(cfg)["amiType"] = "BOTTLEROCKET_x86_64_NVIDIA"


def _image_cache(value, bottlerocket=True):
    def mutate(cfg):
        if bottlerocket:
            _bottlerocket(cfg)
        ng(cfg)["imageCache"] = value
    return mutate


def test_a_local_model_cache_is_read_with_the_gp3_default():
    cfg = with_service()
    _cache()(cfg)
    (service,) = load_stack_config(cfg, "test", CATALOG).services
    cache = service.model_cache
    assert (cache.kind, cache.model_size, cache.storage_limit) == ("local", "16Gi", "100Gi")
    assert cache.read_mib_per_second == GP3_BASELINE_MIB_PER_SECOND == 125.0
    assert cache.read_seconds == pytest.approx(16 * 1024 / 125)


def test_no_model_cache_by_default_and_storage_limit_defaults_to_the_model():
    (service,) = load_stack_config(with_service(), "test", CATALOG).services
    assert service.model_cache is None
    cfg = with_service()
    svc(cfg)["modelCache"] = {"kind": "local", "modelSize": "8Gi", "readMibPerSecond": 1000}
    (service,) = load_stack_config(cfg, "test", CATALOG).services
    assert service.model_cache.storage_limit == "8Gi"
    assert service.model_cache.read_seconds == pytest.approx(8 * 1024 / 1000)


@pytest.mark.parametrize("mutate,key,allowed", [
    (_cache(kind="nfs"), f"{S}.modelCache.kind", "one of local, efs"),
    (_cache(modelSize="16GB"), f"{S}.modelCache.modelSize", "a Kubernetes storage quantity"),
    (_cache(modelSize=16), f"{S}.modelCache.modelSize", "a Kubernetes storage quantity"),
    (_cache(storageLimit="8Gi"), f"{S}.modelCache.storageLimit", "at least modelSize (16Gi)"),
    (_cache(readMibPerSecond=0), f"{S}.modelCache.readMibPerSecond", "a number in [1, 100000.0]"),
    (_cache(readMibPerSecond="fast"), f"{S}.modelCache.readMibPerSecond", "a number"),
    (_cache(size="16Gi"), f"{S}.modelCache.size", "known keys here are"),
    (lambda c: svc(c).update(modelCache={"modelSize": "16Gi"}), f"{S}.modelCache.kind", "a value is required"),
    (lambda c: (_cache()(c), svc(c)["model"].update(storageUri="pvc://models/chat")), f"{S}.modelCache.kind",
     "an s3:// storageUri"),
], ids=["kind", "size-unit", "size-number", "limit-below-size", "rate-zero", "rate-text", "misspelt", "no-kind",
        "pvc-model"])
def test_bad_model_cache_is_refused(mutate, key, allowed):
    assert_service_rejected(mutate, key, allowed)


def test_an_image_cache_is_read_on_bottlerocket():
    cfg = copy.deepcopy(with_service())
    _image_cache({"snapshotId": SNAPSHOT})(cfg)
    (group,) = load_stack_config(cfg, "test", CATALOG).node_groups
    assert group.image_cache.snapshot_id == SNAPSHOT and group.image_cache.pull_seconds == 0
    assert load_stack_config(with_service(), "test", CATALOG).node_groups[0].image_cache is None


@pytest.mark.parametrize("mutate,key,allowed", [
    (_image_cache({"snapshotId": SNAPSHOT}, bottlerocket=False), f"{N}.imageCache.snapshotId",
     "an image cache only on a Bottlerocket AMI type"),
    (_image_cache({"snapshotId": "snap-xyz"}), f"{N}.imageCache.snapshotId", "an EBS snapshot id"),
    (_image_cache({"snapshotId": "ami-0123456789abcdef0"}), f"{N}.imageCache.snapshotId", "an EBS snapshot id"),
    (_image_cache({}), f"{N}.imageCache.snapshotId", "a value is required"),
    (_image_cache({"snapshotId": SNAPSHOT, "pullSeconds": -1}), f"{N}.imageCache.pullSeconds", "a number in [0, 3600]"),
    (_image_cache({"snapshotId": SNAPSHOT, "snapshot": "x"}), f"{N}.imageCache.snapshot", "known keys here are"),
], ids=["al2023", "bad-id", "ami-id", "no-id", "negative-pull", "misspelt"])
def test_bad_image_cache_is_refused(mutate, key, allowed):
    assert_rejected(mutate, key, allowed)


def test_quantities():
    assert quantity_bytes("16Gi") == 16 * 2**30
    assert quantity_bytes("1.5Ti") == 1.5 * 2**40
    with pytest.raises(ValueError, match="storage quantity"):
        quantity_bytes("16G")



def test_the_cache_reads_at_the_groups_provisioned_volume_throughput():
    cfg = with_service()
    ng(cfg)["imageVolumeThroughputMibps"] = 500
    _cache()(cfg)
    config = load_stack_config(cfg, "test", CATALOG)
    assert config.node_groups[0].image_volume_throughput_mibps == 500
    assert config.services[0].model_cache.read_mib_per_second == 500
    ng(cfg)["imageVolumeThroughputMibps"] = 1001
    with pytest.raises(Exception, match=r"imageVolumeThroughputMibps.*\[125, 1000\]"):
        load_stack_config(cfg, "test", CATALOG)


EFS = {"kind": "efs", "modelSize": "16Gi"}


def _efs(**changes):
    def mutate(cfg):
        svc(cfg)["modelCache"] = {**EFS, **changes}
    return mutate


def test_an_efs_model_cache_reads_at_one_clients_elastic_throughput_within_the_nodes_network():
    """EFS Elastic's per-client 1,500 MiB/s, unless the node's network is slower: a g6.xlarge's "Up to 10 Gigabit"
    is 1,192.1 MiB/s; a g6e.12xlarge's 100 Gigabit leaves EFS's limit."""
    cfg = with_service()
    ng(cfg)["imageVolumeThroughputMibps"] = 500  # the node's disk is not where an efs cache is read from
    _efs()(cfg)
    (service,) = load_stack_config(cfg, "test", CATALOG).services
    cache = service.model_cache
    assert (cache.kind, cache.model_size, cache.storage_limit) == ("efs", "16Gi", "16Gi")
    assert ng(cfg)["instanceTypes"] == ["g6.xlarge"]
    assert cache.read_mib_per_second == 1192.1 < EFS_ELASTIC_CLIENT_MIB_PER_SECOND
    assert cache.read_seconds == pytest.approx(16 * 1024 / 1192.1)
    ng(cfg)["instanceTypes"] = ["g6e.12xlarge"]
    svc(cfg)["gpus"] = 1
    (service,) = load_stack_config(cfg, "test", CATALOG).services
    assert service.model_cache.read_mib_per_second == EFS_ELASTIC_CLIENT_MIB_PER_SECOND == 1500.0
    # A pod may land on any of the group's types: the slowest network counts (g6.xlarge's beside g6.4xlarge's 25).
    ng(cfg)["instanceTypes"] = ["g6.4xlarge", "g6.xlarge"]
    (service,) = load_stack_config(cfg, "test", CATALOG).services
    assert service.model_cache.read_mib_per_second == 1192.1
    _efs(readMibPerSecond=400)(cfg)
    (service,) = load_stack_config(cfg, "test", CATALOG).services
    assert service.model_cache.read_seconds == pytest.approx(16 * 1024 / 400)


def _existing_cluster(subnets):
    def mutate(cfg):
        _efs()(cfg)
        cfg["gpuscale:cluster"] = {"mode": "existing", "name": "c1", "kubernetesVersion": "1.33",
                                   **({"subnetIds": subnets} if subnets else {})}
    return mutate


def _no_node_groups(cfg):
    _efs()(cfg)
    cfg.pop("gpuscale:nodeGroups")


@pytest.mark.parametrize("mutate,key,allowed", [
    (_efs(modelSize="16GB"), f"{S}.modelCache.modelSize", "a Kubernetes storage quantity"),
    (_efs(storageLimit="40Gi"), f"{S}.modelCache.storageLimit", "storageLimit only with kind local"),
    (_efs(readMibPerSecond=0), f"{S}.modelCache.readMibPerSecond", "a number in [1, 100000.0]"),
    (_efs(throughput=100), f"{S}.modelCache.throughput", "known keys here are"),
    (lambda c: (_efs()(c), svc(c)["model"].update(storageUri="pvc://models/chat")), f"{S}.modelCache.kind",
     "an s3:// storageUri"),
    (_existing_cluster(None), f"{S}.modelCache.kind", "only with gpuscale:cluster.subnetIds"),
    (_no_node_groups, f"{S}.nodeGroup", "services run on EKS"),
], ids=["size-unit", "storage-limit", "rate-zero", "misspelt", "pvc-model", "existing-cluster-subnets", "no-eks"])
def test_bad_efs_model_cache_is_refused(mutate, key, allowed):
    assert_service_rejected(mutate, key, allowed)


def test_an_efs_cache_on_an_existing_cluster_with_its_subnets_is_read():
    cfg = with_service()
    _existing_cluster(["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"])(cfg)
    (service,) = load_stack_config(cfg, "test", CATALOG).services
    assert service.model_cache.kind == "efs"
