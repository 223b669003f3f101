"""Network, EksCluster (create mode) and ExistingCluster (existing mode)."""

from __future__ import annotations

import ipaddress
import json
import re

import pytest

from gpuscale.components.eks_cluster import EksCluster, EksClusterArgs
from gpuscale.components.existing_cluster import ExistingCluster
from gpuscale.components.network import Network, subnet_layout
from gpuscale.components.node_role import NODE_POLICIES

SUBNET = "aws:ec2/subnet:Subnet"
NAT = "aws:ec2/natGateway:NatGateway"
RT = "aws:ec2/routeTable:RouteTable"
NG = "aws:eks/nodeGroup:NodeGroup"
ATTACH = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"


def cluster_args(**overrides) -> EksClusterArgs:
    args: EksClusterArgs = {
        "cluster_name": "gpuscale-test", "kubernetes_version": "1.33", "vpc_cidr": "10.40.0.0/16",
        "availability_zone_count": 3,
        "system_nodes": {"instance_type": "t3.large", "min_size": 1, "max_size": 3, "desired_size": 2}}
    args.update(overrides)  # type: ignore[typeddict-item]
    return args


@pytest.mark.parametrize("cidr, zones", [("10.40.0.0/16", 2), ("10.0.0.0/20", 4), ("192.168.7.0/24", 4)])
def test_subnet_layout_fits_the_vpc_without_overlap(cidr, zones):
    private, public = subnet_layout(cidr, zones)
    nets = [ipaddress.IPv4Network(n) for n in private + public]
    assert len(private) == len(public) == zones
    assert all(n.subnet_of(ipaddress.IPv4Network(cidr)) for n in nets), "inside the VPC"
    assert all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:]), "no two subnets overlap"
    assert all(n.prefixlen <= 28 for n in nets), "AWS's smallest subnet is a /28"
    assert min(ipaddress.IPv4Network(p).num_addresses for p in private) > \
        max(ipaddress.IPv4Network(p).num_addresses for p in public), "pods get the room, not load balancers"


@pytest.mark.parametrize("cidr, zones, arg", [("10.0.0.0/25", 2, "cidr_block"), ("10.0.0.0/16", 1, "zone_count"),
                                              ("10.0.0.0/16", 5, "zone_count")])
def test_subnet_layout_rejects_what_cannot_be_laid_out(cidr, zones, arg):
    with pytest.raises(ValueError, match=arg):
        subnet_layout(cidr, zones)


def test_network_private_subnets_without_public_ips_behind_nat(harness):
    harness.run(lambda: Network("net", {"cidr_block": "10.40.0.0/16", "availability_zone_count": 2,
                                        "cluster_name": "c1"}))
    subnets = {s.name: s.inputs for s in harness.of_type(SUBNET)}
    assert set(subnets) == {"net-private-0", "net-private-1", "net-public-0", "net-public-1"}
    for name, inputs in subnets.items():
        assert inputs["mapPublicIpOnLaunch"] is False, f"{name}: no instance gets a public IP"
        assert inputs["tags"]["kubernetes.io/cluster/c1"] == "shared", name
    assert subnets["net-private-0"]["tags"]["kubernetes.io/role/internal-elb"] == "1"
    assert subnets["net-public-0"]["tags"]["kubernetes.io/role/elb"] == "1"
    assert [subnets[f"net-private-{i}"]["availabilityZone"] for i in range(2)] == ["us-west-2a", "us-west-2b"]
    assert len(harness.of_type(NAT)) == 2, "one NAT gateway per zone by default"
    routes = {r.name: r.inputs["routes"] for r in harness.of_type(RT)}
    assert "gatewayId" in routes["net-public-rt"][0], "public subnets route out through the internet gateway"
    for i in range(2):
        assert routes[f"net-private-rt-{i}"][0]["natGatewayId"].startswith("nat-"), f"net-private-rt-{i}"
    vpc = harness.one("aws:ec2/vpc:Vpc")
    assert vpc.inputs["enableDnsHostnames"] is True and vpc.inputs["enableDnsSupport"] is True, vpc.name


def test_more_zones_than_the_region_has_are_rejected(harness):
    harness.region = "us-west-1"
    with pytest.raises(Exception, match="availability_zone_count: 3 .*at most 2"):
        harness.run(lambda: Network("net", {"cidr_block": "10.40.0.0/16", "availability_zone_count": 3,
                                            "cluster_name": "c1"}))


def test_network_can_share_one_nat_gateway(harness):
    harness.run(lambda: Network("net", {"cidr_block": "10.40.0.0/16", "availability_zone_count": 3,
                                        "cluster_name": "c1", "nat_gateway_per_zone": False}))
    [nat] = harness.of_type(NAT)
    assert nat.inputs["subnetId"] == harness.one(SUBNET, "net-public-0").id, f"{nat.name}: in the first zone"
    targets = {r.inputs["routes"][0].get("natGatewayId") for r in harness.of_type(RT) if "private" in r.name}
    assert len(targets) == 1, "every private route table uses the one gateway"


def test_eks_cluster_create_mode(harness):
    cluster = harness.run(lambda: EksCluster("gs", cluster_args()))
    eks = harness.one("aws:eks/cluster:Cluster")
    assert eks.inputs["name"] == "gpuscale-test" and eks.inputs["version"] == "1.33", eks.name
    assert eks.inputs["accessConfig"] == {"authenticationMode": "API",
                                          "bootstrapClusterCreatorAdminPermissions": True}, eks.name
    private = harness.value(cluster.private_subnet_ids)
    assert eks.inputs["vpcConfig"]["subnetIds"] == private and len(private) == 3, f"{eks.name}: private subnets"
    trust = json.loads(harness.one("aws:iam/role:Role", "gs-cluster-role").inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "eks.amazonaws.com"}

    oidc = harness.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    issuer = harness.value(cluster.oidc_issuer_url)
    assert oidc.inputs["url"] == issuer and issuer.startswith("https://oidc.eks.us-west-2.amazonaws.com/id/")
    assert oidc.inputs["clientIdLists"] == ["sts.amazonaws.com"], oidc.name
    assert "thumbprintLists" not in oidc.inputs, f"{oidc.name}: IAM fetches and trusts the issuer's certificate"
    assert harness.value(cluster.oidc_provider_arn).startswith("arn:aws:iam::123456789012:oidc-provider/oidc.eks.")

    system = harness.one(NG, "gs-system")
    assert system.inputs["instanceTypes"] == ["t3.large"] and system.inputs["amiType"] == "AL2023_x86_64_STANDARD"
    assert system.inputs["scalingConfig"] == {"minSize": 1, "maxSize": 3, "desiredSize": 2}, system.name
    assert system.ignore_changes == ("scalingConfig.desiredSize",), system.name
    assert "taints" not in system.inputs, f"{system.name}: add-ons must be able to run here"
    assert system.inputs["nodeRoleArn"] == harness.value(cluster.node_role_arn), system.name


def test_node_role_has_the_standard_worker_policies(harness):
    harness.run(lambda: EksCluster("gs", cluster_args()))
    attached = {a.inputs["policyArn"].rsplit("/", 1)[1] for a in harness.of_type(ATTACH) if "-nodes-" in a.name}
    assert attached == set(NODE_POLICIES) | {"AmazonSSMManagedInstanceCore"}
    assert set(NODE_POLICIES) == {"AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly",
                                  "AmazonEKS_CNI_Policy"}
    trust = json.loads(harness.one("aws:iam/role:Role", "gs-nodes-role").inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}


def test_node_groups_wait_for_the_node_role_policies(harness):
    """A node that boots before its role has the worker policies never joins: the ARN carries that dependency."""
    harness.run(lambda: EksCluster("gs", cluster_args()))
    system = harness.one(NG, "gs-system")
    attachments = {a.urn for a in harness.of_type(ATTACH) if "-nodes-" in a.name}
    assert attachments and attachments <= set(system.dependencies), system.name


def test_existing_cluster_is_looked_up_not_created(harness):
    cluster = harness.run(lambda: ExistingCluster("prod", {"cluster_name": "shared-prod"}))
    assert harness.of_type("aws:eks/cluster:Cluster") == [] and harness.of_type("aws:ec2/vpc:Vpc") == []
    assert ("aws:eks/getCluster:getCluster", {"name": "shared-prod"}) in harness.invokes
    assert harness.value(cluster.cluster_name) == "shared-prod"
    assert harness.value(cluster.vpc_id).startswith("vpc-")
    assert len(harness.value(cluster.private_subnet_ids)) == 3, "the cluster's own subnets by default"
    assert harness.value(cluster.oidc_issuer_url).startswith("https://oidc.eks.us-west-2.amazonaws.com/id/")
    assert harness.value(cluster.node_role_arn).startswith("arn:aws:iam::123456789012:role/prod-nodes-role-")


def test_existing_cluster_uses_configured_subnets(harness):
    chosen = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
    cluster = harness.run(lambda: ExistingCluster("prod", {"cluster_name": "shared-prod", "subnet_ids": chosen}))
    assert harness.value(cluster.private_subnet_ids) == chosen


def test_preview_role_gets_a_read_only_access_entry(harness):
    role = "arn:aws:iam::123456789012:role/gpuscale-preview"
    harness.run(lambda: EksCluster("gs", cluster_args(preview_role_arn=role)))
    entry = harness.one("aws:eks/accessEntry:AccessEntry")
    assert entry.inputs["principalArn"] == role and entry.inputs["clusterName"] == "gpuscale-test", entry.name
    assert entry.inputs["type"] == "STANDARD" and "kubernetesGroups" not in entry.inputs, entry.name
    read = harness.one("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    assert read.inputs["policyArn"] == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSAdminViewPolicy", read.name
    assert read.inputs["accessScope"] == {"type": "cluster"} and read.inputs["principalArn"] == role, read.name


def test_no_preview_role_no_access_entry(harness):
    harness.run(lambda: EksCluster("gs", cluster_args()))
    assert harness.of_type("aws:eks/accessEntry:AccessEntry") == []
    assert harness.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation") == []


def test_a_malformed_preview_role_is_refused_before_anything_is_declared(harness):
    with pytest.raises(ValueError, match=r"preview_role_arn \(EksCluster \"gs\"\): 'arn:aws:iam::123:role/x' is not "
                                         r"allowed; allowed: an IAM role ARN"):
        harness.run(lambda: EksCluster("gs", cluster_args(preview_role_arn="arn:aws:iam::123:role/x")))
    assert harness.of_type("aws:eks/cluster:Cluster") == []


@pytest.mark.parametrize("overrides, vpc", [
    ({}, {"endpointPrivateAccess": True, "endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]}),
    ({"endpoint_public_access": False}, {"endpointPrivateAccess": True, "endpointPublicAccess": False}),
    ({"public_access_cidrs": ["52.94.0.0/16"]},
     {"endpointPrivateAccess": True, "endpointPublicAccess": True, "publicAccessCidrs": ["52.94.0.0/16"]}),
])
def test_eks_cluster_api_endpoint_exposure(harness, overrides, vpc):
    harness.run(lambda: EksCluster("gs", cluster_args(**overrides)))
    eks = harness.one("aws:eks/cluster:Cluster")
    shown = {k: v for k, v in eks.inputs["vpcConfig"].items() if k.startswith(("endpoint", "publicAccess"))}
    assert shown == vpc, f"{eks.name}: private access always on (nodes), public as asked"


@pytest.mark.parametrize("overrides, key", [
    ({"public_access_cidrs": ["10.0.0.0/8"]}, "public_access_cidrs[0]"),
    ({"endpoint_public_access": False, "public_access_cidrs": ["52.94.0.0/16"]}, "public_access_cidrs"),
    ({"endpoint_public_access": "yes"}, "endpoint_public_access"),
])
def test_eks_cluster_refuses_endpoint_access_eks_would_refuse(harness, overrides, key):
    with pytest.raises(ValueError, match=rf"^{re.escape(key)} \(EksCluster \"gs\"\): .* is not allowed; allowed: "):
        harness.run(lambda: EksCluster("gs", cluster_args(**overrides)))
    assert [r.type for r in harness.resources] == ["pulumi:pulumi:Stack"], "nothing declared before the Args pass"
