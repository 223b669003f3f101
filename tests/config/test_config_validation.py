"""Every invalid stack config fails with a message naming the key, the value and what is allowed."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import pytest

from gpuscale.config import ConfigError, load_stack_config, load_stack_file
from gpuscale.instance_types import RecordedInstanceTypes, from_describe_record

ROOT = Path(__file__).resolve().parents[2]
RECORDED = RecordedInstanceTypes()


class Catalog:
    """EC2's recorded descriptions, plus g4ad.xlarge (AMD Radeon Pro V520), which moto's records lack."""

    G4AD = {"InstanceType": "g4ad.xlarge", "VCpuInfo": {"DefaultVCpus": 4}, "MemoryInfo": {"SizeInMiB": 16384},
            "ProcessorInfo": {"SupportedArchitectures": ["x86_64"]},
            "GpuInfo": {"Gpus": [{"Name": "Radeon Pro V520", "Manufacturer": "AMD", "Count": 1,
                                  "MemoryInfo": {"SizeInMiB": 8192}}]}}

    def describe(self, instance_type):
        if instance_type == "g4ad.xlarge":
            return from_describe_record(self.G4AD)
        return RECORDED.describe(instance_type)


CATALOG = Catalog()


def base() -> dict:
    return {
        "aws:region": "us-west-2",
        "gpuscale:cluster": {"mode": "create", "name": "c1", "vpcCidr": "10.40.0.0/16",
                             "systemNodes": {"minSize": 1, "maxSize": 2}},
        "gpuscale:nodeGroups": [{"name": "l4", "instanceTypes": ["g6.xlarge"], "capacityType": "SPOT",
                                 "minSize": 0, "maxSize": 2}],
        "gpuscale:autoScalingGroups": [{"name": "infer", "instanceTypes": ["g6e.xlarge"], "minSize": 0,
                                        "maxSize": 3}],
    }


def ng(cfg):
    return cfg["gpuscale:nodeGroups"][0]


def asg(cfg):
    return cfg["gpuscale:autoScalingGroups"][0]


def cluster(cfg):
    return cfg["gpuscale:cluster"]


def _set(getter, key, value):
    def mutate(cfg):
        target = getter(cfg)
        if value is DELETE:
            target.pop(key, None)
        else:
            target[key] = value
    return mutate


DELETE = object()


def top(cfg):
    return cfg


# (id, mutation, the key the message must name, a fragment of what is allowed)
BAD = [
    ("region-missing", _set(top, "aws:region", DELETE), "aws:region", "AWS region"),
    ("region-malformed", _set(top, "aws:region", "uswest2"), "aws:region", "AWS region"),
    ("unknown-top-level-key", _set(top, "gpuscale:nodegroups", []), "gpuscale:nodegroups", "known keys"),
    ("cluster-mode", _set(cluster, "mode", "import"), "gpuscale:cluster.mode", "create, existing"),
    ("cluster-name-missing", _set(cluster, "name", DELETE), "gpuscale:cluster.name", "required"),
    ("cluster-name-chars", _set(cluster, "name", "bad name!"), "gpuscale:cluster.name", "EKS cluster name"),
    ("k8s-version", _set(cluster, "kubernetesVersion", "1.20"), "gpuscale:cluster.kubernetesVersion", "1.28"),
    ("cidr-syntax", _set(cluster, "vpcCidr", "10.0.0.0/33"), "gpuscale:cluster.vpcCidr", "CIDR"),
    ("cidr-host-bits", _set(cluster, "vpcCidr", "10.0.0.1/16"), "gpuscale:cluster.vpcCidr", "CIDR"),
    ("cidr-too-large", _set(cluster, "vpcCidr", "10.0.0.0/8"), "gpuscale:cluster.vpcCidr", "/16 to /24"),
    ("az-count", _set(cluster, "availabilityZoneCount", 1), "gpuscale:cluster.availabilityZoneCount", "[2, 4]"),
    ("nat-per-zone-not-bool", _set(cluster, "natGatewayPerZone", "no"), "gpuscale:cluster.natGatewayPerZone",
     "true or false"),
    ("existing-with-nat", lambda c: c.__setitem__("gpuscale:cluster", {"mode": "existing", "name": "c1",
                                                                        "natGatewayPerZone": False}),
     "gpuscale:cluster.natGatewayPerZone", "mode: create"),
    ("system-min-over-max", _set(lambda c: cluster(c)["systemNodes"], "minSize", 3),
     "gpuscale:cluster.systemNodes.minSize", "minSize <= maxSize"),
    ("system-desired-over-max", _set(lambda c: cluster(c)["systemNodes"], "desiredSize", 5),
     "gpuscale:cluster.systemNodes.desiredSize", "[1, 2]"),
    ("existing-with-cidr", _set(cluster, "mode", "existing"), "gpuscale:cluster.vpcCidr", "mode: create"),
    ("create-with-subnets", _set(cluster, "subnetIds", ["subnet-0123456789abcdef0"]),
     "gpuscale:cluster.subnetIds", "mode: existing"),
    ("no-groups", lambda c: (c.pop("gpuscale:nodeGroups"), c.pop("gpuscale:autoScalingGroups")),
     "gpuscale:nodeGroups", "at least one GPU group"),
    ("node-groups-not-list", _set(top, "gpuscale:nodeGroups", {"name": "x"}), "gpuscale:nodeGroups", "a list"),
    ("group-name", _set(ng, "name", "L4_Spot"), "gpuscale:nodeGroups[0].name", "lowercase"),
    ("instance-types-empty", _set(ng, "instanceTypes", []), "gpuscale:nodeGroups[0].instanceTypes", "at least 1"),
    ("instance-type-no-gpu", _set(ng, "instanceTypes", ["m5.large"]), "gpuscale:nodeGroups[0].instanceTypes[0]",
     "GPU instance type"),
    ("instance-type-unknown", _set(ng, "instanceTypes", ["g9.huge"]), "gpuscale:nodeGroups[0].instanceTypes[0]",
     "exists"),
    ("instance-type-amd-gpu", _set(ng, "instanceTypes", ["g4ad.xlarge"]),
     "gpuscale:nodeGroups[0].instanceTypes[0]", "NVIDIA"),
    ("instance-type-repeated", _set(ng, "instanceTypes", ["g6.xlarge", "g6.xlarge"]),
     "gpuscale:nodeGroups[0].instanceTypes", "without repeated"),
    ("instance-type-malformed", _set(ng, "instanceTypes", ["G6 XL"]), "gpuscale:nodeGroups[0].instanceTypes[0]",
     "EC2 instance types"),
    ("ami-type", _set(ng, "amiType", "AL2_x86_64_GPU"), "gpuscale:nodeGroups[0].amiType", "AL2023_x86_64_NVIDIA"),
    ("ami-arch-mismatch", _set(ng, "amiType", "AL2023_ARM_64_NVIDIA"), "gpuscale:nodeGroups[0].instanceTypes[0]",
     "runs arm64"),
    ("mixed-gpu-counts", _set(ng, "instanceTypes", ["g6.xlarge", "g6.12xlarge"]),
     "gpuscale:nodeGroups[0].instanceTypes[1]", "same GPUs"),
    ("capacity-type", _set(ng, "capacityType", "PREEMPTIBLE"), "gpuscale:nodeGroups[0].capacityType",
     "ON_DEMAND, SPOT"),
    ("min-negative", _set(ng, "minSize", -1), "gpuscale:nodeGroups[0].minSize", "[0, 1000]"),
    ("min-over-max", _set(ng, "minSize", 3), "gpuscale:nodeGroups[0].minSize", "minSize <= maxSize (2)"),
    ("max-zero", _set(ng, "maxSize", 0), "gpuscale:nodeGroups[0].maxSize", "[1, 1000]"),
    ("max-not-number", _set(ng, "maxSize", "two"), "gpuscale:nodeGroups[0].maxSize", "an integer"),
    ("max-bool", _set(ng, "maxSize", True), "gpuscale:nodeGroups[0].maxSize", "an integer"),
    ("min-fraction", _set(ng, "minSize", 1.5), "gpuscale:nodeGroups[0].minSize", "an integer"),
    ("min-missing", _set(ng, "minSize", DELETE), "gpuscale:nodeGroups[0].minSize", "required"),
    ("root-volume-small", _set(ng, "rootVolumeGiB", 10), "gpuscale:nodeGroups[0].rootVolumeGiB", "[50, 16384]"),
    ("label-reserved", _set(ng, "labels", {"gpuscale.io/gpu-class": "x"}),
     "gpuscale:nodeGroups[0].labels.gpuscale.io/gpu-class", "gpuscale sets"),
    ("label-bad-name", _set(ng, "labels", {"bad label": "x"}), "gpuscale:nodeGroups[0].labels.bad label",
     "Kubernetes label"),
    ("node-group-typo-key", _set(ng, "instanceType", "g6.xlarge"), "gpuscale:nodeGroups[0].instanceType",
     "known keys"),
    ("duplicate-names", _set(asg, "name", "l4"), "gpuscale:autoScalingGroups[0].name", "used once"),
    ("warm-pool-with-spot", lambda c: asg(c).update(onDemandPercentageAboveBase=50, warmPool={"minSize": 1}),
     "gpuscale:autoScalingGroups[0].warmPool", "Spot share"),
    ("warm-pool-with-mixed-types", lambda c: asg(c).update(instanceTypes=["g6e.xlarge", "g6.xlarge"],
                                                           warmPool={"minSize": 1}),
     "gpuscale:autoScalingGroups[0].warmPool", "several instance types"),
    ("on-demand-percentage", _set(asg, "onDemandPercentageAboveBase", 150),
     "gpuscale:autoScalingGroups[0].onDemandPercentageAboveBase", "[0, 100]"),
    ("on-demand-base-over-max", _set(asg, "onDemandBaseCapacity", 9),
     "gpuscale:autoScalingGroups[0].onDemandBaseCapacity", "[0, 3]"),
    ("spot-strategy", _set(asg, "spotAllocationStrategy", "cheapest"),
     "gpuscale:autoScalingGroups[0].spotAllocationStrategy", "price-capacity-optimized"),
    ("ami-parameter-private", _set(asg, "amiParameter", "/my/ami"), "gpuscale:autoScalingGroups[0].amiParameter",
     "/aws/service/"),
    ("health-grace-short", _set(asg, "healthCheckGraceSeconds", 10),
     "gpuscale:autoScalingGroups[0].healthCheckGraceSeconds", "[60, 7200]"),
    ("warm-pool-state", _set(asg, "warmPool", {"poolState": "Frozen"}),
     "gpuscale:autoScalingGroups[0].warmPool.poolState", "Stopped, Hibernated, Running"),
    # EC2's records: no GPU instance type can hibernate (g6e.xlarge: HibernationSupported false).
    ("warm-pool-hibernated-gpu", _set(asg, "warmPool", {"poolState": "Hibernated"}),
     "gpuscale:autoScalingGroups[0].warmPool.poolState", "g6e.xlarge cannot hibernate"),
    ("warm-pool-prepared-below-min", _set(asg, "warmPool", {"minSize": 2, "maxPreparedCapacity": 1}),
     "gpuscale:autoScalingGroups[0].warmPool.maxPreparedCapacity", ">= minSize (2)"),
    ("agent-flush-below-sample", lambda c: c.update({"gpuscale:agent": {"sampleIntervalSeconds": 5,
                                                                         "flushIntervalSeconds": 2}}),
     "gpuscale:agent.flushIntervalSeconds", "sample interval"),
    ("agent-sample-zero", lambda c: c.update({"gpuscale:agent": {"sampleIntervalSeconds": 0}}),
     "gpuscale:agent.sampleIntervalSeconds", "[0.1, 60]"),
    ("agent-port-privileged", lambda c: c.update({"gpuscale:agent": {"prometheusPort": 80}}),
     "gpuscale:agent.prometheusPort", "[1024, 65535]"),
]


def assert_rejected(mutate, key: str, allowed: str) -> None:
    """`mutate` applied to the base config fails validation naming `key`, its value first, and `allowed`."""
    cfg = copy.deepcopy(base())
    mutate(cfg)
    with pytest.raises(ConfigError) as err:
        load_stack_config(cfg, "test", CATALOG)
    message = str(err.value)
    assert err.value.key == key, f"error names {err.value.key!r}, expected {key!r}: {message}"
    where = f" ({err.value.where})" if err.value.where else ""
    assert message.startswith(f"{key}{where}: {err.value.value!r} is not allowed"), f"{message!r}: key and value first"
    assert allowed in message, f"{message!r} does not say what is allowed ({allowed!r})"


@pytest.mark.parametrize("mutate,key,allowed", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_is_rejected_naming_key_and_allowed(mutate, key, allowed):
    assert_rejected(mutate, key, allowed)


def test_distinct_bad_inputs_cover_the_issue():
    assert len({b[0] for b in BAD}) >= 30


def test_valid_base_config_loads_with_gpu_data_from_ec2_records():
    cfg = load_stack_config(base(), "test", CATALOG)
    (group,) = cfg.node_groups
    assert (group.gpu.gpu_count, group.gpu.gpu_name) == (1, "L4")
    assert cfg.auto_scaling_groups[0].uses_mixed_instances is False


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_shipped_stacks_are_valid(stack):
    cfg = load_stack_file(ROOT, stack)
    assert cfg.stack == stack and (cfg.node_groups or cfg.auto_scaling_groups)


def test_dev_is_small_and_prod_is_realistic():
    dev, prod = load_stack_file(ROOT, "dev"), load_stack_file(ROOT, "prod")
    assert len(dev.node_groups) == 1 and dev.node_groups[0].min_size == 0 and dev.node_groups[0].max_size <= 2
    assert {g.capacity_type for g in prod.node_groups} == {"ON_DEMAND", "SPOT"}
    assert max(g.gpu.gpu_count for g in prod.node_groups) >= 4, "prod needs a multi-GPU type"
    assert any(a.warm_pool for a in prod.auto_scaling_groups)
    assert max(g.max_size for g in prod.node_groups) > max(g.max_size for g in dev.node_groups)


def test_unknown_stack_names_the_known_ones():
    with pytest.raises(ConfigError, match="dev, prod"):
        load_stack_file(ROOT, "staging")


def test_hibernated_warm_pool_follows_ec2s_instance_type_data():
    """The refusal comes from EC2's HibernationSupported flag, not from a list: a type that could hibernate passes."""

    class Hibernating:
        def describe(self, instance_type):
            info = CATALOG.describe(instance_type)
            return replace(info, hibernation_supported=True) if info else None

    cfg = base()
    asg(cfg)["warmPool"] = {"poolState": "Hibernated"}
    (group,) = load_stack_config(cfg, "test", Hibernating()).auto_scaling_groups
    assert group.warm_pool.pool_state == "Hibernated"
    with pytest.raises(ConfigError, match="g6e.xlarge cannot hibernate"):
        load_stack_config(cfg, "test", CATALOG)


@pytest.mark.parametrize("arn", ["arn:aws:iam::12345:role/ci", "arn:aws:iam::123456789012:user/ci",
                                 "arn:aws:iam::123456789012:role/", "gpuscale-preview", 42])
def test_preview_role_must_be_an_iam_role_arn(arn):
    assert_rejected(_set(cluster, "previewRoleArn", arn), "gpuscale:cluster.previewRoleArn", "IAM role ARN")


def test_preview_role_only_in_create_mode_and_read_when_valid():
    assert_rejected(lambda c: c.__setitem__("gpuscale:cluster", {
        "mode": "existing", "name": "c1", "previewRoleArn": "arn:aws:iam::123456789012:role/ci"}),
        "gpuscale:cluster.previewRoleArn", "mode: create")
    cfg = base()
    cluster(cfg)["previewRoleArn"] = "arn:aws:iam::123456789012:role/ci/gpuscale-preview"
    assert load_stack_config(cfg, "test", CATALOG).cluster.preview_role_arn == \
        "arn:aws:iam::123456789012:role/ci/gpuscale-preview"
    assert load_stack_config(base(), "test", CATALOG).cluster.preview_role_arn is None
