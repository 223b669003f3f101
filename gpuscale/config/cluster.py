"""The cluster section (`gpuscale:cluster`): an EKS cluster the stack creates (its network, API endpoint and system
nodes) or an existing one it names, and the AWS region rules the config shares."""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from typing import Any


from ..components.arns import IAM_ROLE_ARN, IAM_ROLE_ARN_DESCRIBED
from ..components.endpoint_access import AWS_DEFAULT_PUBLIC_ACCESS_CIDRS, endpoint_access_problem
from .reader import REQUIRED, ConfigError, Section
from .groups import INSTANCE_TYPE_PATTERN, read_group_sizes


CIDR_PATTERN = r"(\d{1,3}\.){3}\d{1,3}/\d{1,2}"


@functools.cache
def aws_regions() -> tuple[str, ...]:
    """Every region of every AWS partition, from the AWS SDK's own endpoint data (botocore's endpoints.json), so a
    region AWS adds arrives with botocore and a typo (`us-west2`) is refused."""
    import botocore.loaders

    partitions = botocore.loaders.create_loader().load_data("endpoints")["partitions"]
    return tuple(sorted(region for p in partitions for region in p["regions"]))


def read_region(s: Section, name: str = "region") -> Any:
    """An AWS region the SDK knows: the stack's `aws:region`, and every component argument that names one."""
    if not s.has(name):
        raise s.fail(name, REQUIRED, "an AWS region such as us-west-2 (required)")
    region = s.str(name, describe="an AWS region such as us-west-2")
    if region not in aws_regions():
        near = difflib.get_close_matches(region, aws_regions(), n=1)
        raise s.fail(name, region, "an AWS region such as us-west-2" + (f" (did you mean {near[0]}?)" if near else "")
                     + "; the regions botocore knows: " + ", ".join(aws_regions()))
    return region


@dataclass(frozen=True)
class SystemNodesConfig:
    instance_type: str
    min_size: int
    max_size: int
    desired_size: int


@dataclass(frozen=True)
class ClusterConfig:
    mode: str
    """``create``: a new VPC and EKS cluster; ``existing``: attach to an existing cluster by name."""
    name: str
    kubernetes_version: str | None
    vpc_cidr: str | None
    availability_zone_count: int
    nat_gateway_per_zone: bool
    """Create mode: one NAT gateway per zone (a zone's outage leaves the others' egress up), or a single shared one
    (cheaper; every private subnet loses egress with its zone)."""
    system_nodes: SystemNodesConfig | None
    subnet_ids: tuple[str, ...]
    """Existing mode: private subnets for GPU nodes (default: the cluster's own subnets)."""
    public_access: bool = True
    """Create mode: the API's public endpoint is on (the private one always is, for the nodes)."""
    public_access_cidrs: tuple[str, ...] = ()
    """Create mode, public endpoint on: the networks it answers (AWS's default 0.0.0.0/0 when none are set)."""
    preview_role_arn: str | None = None
    """Create mode: the CI preview/drift role, given read-only access to the cluster by an EKS access entry."""


def read_cluster_name(s: Section, name: str = "name") -> Any:
    """An EKS cluster's name (`gpuscale:cluster.name`, the components' `cluster_name`)."""
    return s.str(name, pattern=r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}",
                 describe="an EKS cluster name: 1 to 100 letters, digits, hyphens or underscores")


def read_kubernetes_version(s: Section, default: Any = REQUIRED) -> Any:
    return s.str("kubernetesVersion", default, pattern=r"1\.(2[89]|3\d)",
                 describe="a Kubernetes minor version EKS supports, from 1.28 to 1.39, e.g. \"1.33\"")


def read_vpc(s: Section) -> tuple[Any, Any, Any]:
    """A new VPC: its range, its zones and whether each zone has its own NAT gateway."""
    cidr = s.cidr("vpcCidr", "10.0.0.0/16")
    zones = s.int("availabilityZoneCount", 2, min=2, max=4)
    nat_per_zone = s.bool("natGatewayPerZone", True)
    return cidr, zones, nat_per_zone


def read_subnet_ids(s: Section) -> Any:
    """Existing mode: the private subnets for GPU nodes (default: the cluster's own)."""
    return s.str_list("subnetIds", (), pattern=r"subnet-[0-9a-f]{8,17}",
                      describe="subnet ids such as subnet-0123456789abcdef0")


def read_cluster(s: Section) -> ClusterConfig:
    mode = s.str("mode", "create", choices=("create", "existing"))
    name = read_cluster_name(s)
    version = read_kubernetes_version(s, "1.33" if mode == "create" else None)
    if mode == "create":
        cidr, zones, nat_per_zone = read_vpc(s)
        system = read_system_nodes(s.section("systemNodes", {}) or Section({}, s.key("systemNodes")))
        public_access, public_cidrs = _read_api_endpoint(s)
        subnet_ids: tuple[str, ...] = ()
        preview_role = s.str("previewRoleArn", None, pattern=IAM_ROLE_ARN, describe=IAM_ROLE_ARN_DESCRIBED)
        if s.has("subnetIds"):
            raise s.fail("subnetIds", s.data["subnetIds"], "subnetIds only with mode: existing (mode: create makes "
                                                            "its own private subnets)")
    else:
        cidr, zones, nat_per_zone, system, preview_role = None, 0, False, None, None
        public_access, public_cidrs = True, ()
        if s.has("previewRoleArn"):
            raise s.fail("previewRoleArn", s.data["previewRoleArn"], "previewRoleArn only with mode: create (an "
                                                                    "existing cluster's access entries are its "
                                                                    "owner's to grant)")
        for key in ("vpcCidr", "availabilityZoneCount", "natGatewayPerZone", "systemNodes", "apiEndpoint"):
            if s.has(key):
                raise s.fail(key, s.data[key], f"{key} only with mode: create (an existing cluster has its own)")
        subnet_ids = read_subnet_ids(s)
    s.finish()
    return ClusterConfig(mode, name, version, cidr, zones, nat_per_zone, system, subnet_ids, public_access,
                         public_cidrs, preview_role)


def _read_api_endpoint(cluster: Section) -> tuple[bool, tuple[str, ...]]:
    """`apiEndpoint`: the public endpoint off (`publicAccess: false`, private only), or on for `publicAccessCidrs`
    (default AWS's 0.0.0.0/0). The rule is components/endpoint_access.py's, which EksCluster applies too."""
    s = cluster.optional_section("apiEndpoint") or Section({}, cluster.key("apiEndpoint"))
    public = s.bool("publicAccess", True)
    cidrs = s.str_list("publicAccessCidrs", None, min_items=1,
                       describe="IPv4 networks in CIDR notation, e.g. 52.94.76.5/32")
    problem = endpoint_access_problem(public, cidrs)
    if problem is not None:  # the Args name public_access_cidrs; the config publicAccessCidrs
        raise ConfigError(problem.config_key(s.path), problem.value, problem.allowed)
    s.finish()
    return public, (cidrs or AWS_DEFAULT_PUBLIC_ACCESS_CIDRS) if public else ()


def read_system_nodes(s: Section) -> SystemNodesConfig:
    """The small non-GPU node group for cluster add-ons."""
    instance_type = s.str("instanceType", "t3.large", pattern=INSTANCE_TYPE_PATTERN,
                          describe="an EC2 instance type such as t3.large")
    lo, hi = read_group_sizes(s, default_min=1, default_max=3)
    desired = s.int("desiredSize", max(lo, min(2, hi)), min=lo, max=hi)
    s.finish()
    return SystemNodesConfig(instance_type, lo, hi, desired)
