"""EksCluster: a new VPC and EKS cluster, its OIDC provider, the node role and a small system node group."""

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws
from typing_extensions import NotRequired, TypedDict

from gpuscale.config.args import validate_args
from gpuscale.config.reader import Section, is_deferred
from gpuscale.config.cluster import read_cluster_name, read_kubernetes_version, read_system_nodes, read_vpc

from ._docs import documented
from ._cluster_outputs import ClusterOutputs
from ._iam import assume_role_policy, attach_managed_policies
from .arns import iam_role_arn_problem
from .endpoint_access import AWS_DEFAULT_PUBLIC_ACCESS_CIDRS, endpoint_access_problem
from .network import Network
from .labels import SYSTEM_NODE_LABEL
from .node_role import EksNodeRole


class SystemNodesArgs(TypedDict):
    instance_type: str
    """Instance type of the non-GPU nodes for cluster add-ons (CoreDNS, cluster-autoscaler), e.g. "t3.large"."""
    min_size: int
    """Floor of the system group."""
    max_size: int
    """Ceiling of the system group."""
    desired_size: int
    """Nodes at creation; afterwards the autoscaler owns it."""
    ami_type: NotRequired[str]
    """EKS AMI type matching the instance type's architecture. Default "AL2023_x86_64_STANDARD"."""


class EksClusterArgs(TypedDict):
    cluster_name: str
    """Name of the EKS cluster (also used in subnet and cluster-autoscaler tags)."""
    kubernetes_version: str
    """Kubernetes minor version, e.g. "1.33"."""
    vpc_cidr: str
    """IPv4 range of the new VPC, /16 to /24."""
    availability_zone_count: int
    """Zones the VPC spans, 2 to 4."""
    system_nodes: SystemNodesArgs
    """The small non-GPU node group for add-ons; GPU nodes are tainted, so add-ons need somewhere else to run."""
    nat_gateway_per_zone: NotRequired[bool]
    """One NAT gateway per zone (True) or one shared (False, cheaper). Default True."""
    endpoint_public_access: NotRequired[bool]
    """The Kubernetes API's public endpoint is on. False: private only, the API answers inside the VPC (and networks
    routed into it) alone. The private endpoint is always on, so nodes reach the API without leaving the VPC.
    Default True (AWS's default)."""
    public_access_cidrs: NotRequired[Sequence[str]]
    """Public IPv4 networks allowed to reach the public endpoint (only with endpoint_public_access). Default
    ["0.0.0.0/0"], AWS's default: the whole internet; narrow it for prod."""
    control_plane_logs: NotRequired[Sequence[str]]
    """Control plane log types sent to CloudWatch Logs. Default ["audit", "authenticator"] (who did what)."""
    tags: NotRequired[dict[str, str]]
    """Tags on every resource. Default none."""
    preview_role_arn: NotRequired[str]
    """IAM role of the CI jobs that preview and check drift (`pulumi preview --refresh` reads the Kubernetes
    objects): given, it gets an EKS access entry with read-only access to the whole cluster. Default none."""


PREVIEW_ACCESS_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSAdminViewPolicy"
"""Read-only on every Kubernetes resource, Secrets included: Helm v3 keeps each release's state in a Secret of its
namespace, so a preview of the charts must read those; AmazonEKSViewPolicy leaves Secrets out. No write verbs."""


def check_args(s: Section) -> None:
    """The rules of EksClusterArgs: the stack config's cluster rules."""
    s.require("vpcCidr", "availabilityZoneCount", "systemNodes")
    read_cluster_name(s, "clusterName")
    read_kubernetes_version(s)
    read_vpc(s)
    nodes = s.section("system_nodes")
    nodes.require("instanceType", "minSize", "maxSize", "desiredSize")
    nodes.str("ami_type", "AL2023_x86_64_STANDARD", pattern=r"[A-Z0-9_]+", describe="an EKS AMI type, e.g. "
                                                                                    "AL2023_x86_64_STANDARD")
    read_system_nodes(nodes)
    public = s.bool("endpoint_public_access", True)
    cidrs = s.input("public_access_cidrs", None)
    if not is_deferred(cidrs):
        s.refuse(endpoint_access_problem(public, cidrs))  # the stack config's apiEndpoint rule
    preview_role = s.input("preview_role_arn", None)
    if not is_deferred(preview_role):
        s.refuse(iam_role_arn_problem("preview_role_arn", preview_role))
    s.str_list("control_plane_logs", ["audit", "authenticator"], min_items=0,
               pattern="api|audit|authenticator|controllerManager|scheduler",
               describe="EKS control plane log types: api, audit, authenticator, controllerManager, scheduler")
    s.input("tags", {})


@documented
class EksCluster(pulumi.ComponentResource, ClusterOutputs):
    """Create mode: everything a GPU node group needs to join, in a VPC of its own."""

    public_subnet_ids: pulumi.Output[list[str]]
    """Public subnets (NAT gateways, internet-facing load balancers)."""
    system_node_group_name: pulumi.Output[str]
    """Name of the managed node group for system pods (CoreDNS, cluster-autoscaler)."""

    def __init__(self, name: str, args: EksClusterArgs, opts: pulumi.ResourceOptions | None = None):
        validate_args("EksCluster", name, args, EksClusterArgs, check_args)
        public = args.get("endpoint_public_access", True)
        preview_role = args.get("preview_role_arn")
        super().__init__("gpuscale:index:EksCluster", name, None, opts)
        tags = dict(args.get("tags") or {})
        child = pulumi.ResourceOptions(parent=self)
        network = Network(f"{name}-network", {
            "cidr_block": args["vpc_cidr"], "availability_zone_count": args["availability_zone_count"],
            "cluster_name": args["cluster_name"], "nat_gateway_per_zone": args.get("nat_gateway_per_zone", True),
            "tags": tags}, opts=child)

        role = aws.iam.Role(f"{name}-cluster-role", assume_role_policy=assume_role_policy("eks.amazonaws.com"),
                            description=f"EKS control plane of {args['cluster_name']}", tags=tags, opts=child)
        role_policies = attach_managed_policies(f"{name}-cluster-role", role, ["AmazonEKSClusterPolicy"], parent=self)
        cluster = aws.eks.Cluster(
            f"{name}-eks",
            name=args["cluster_name"],
            version=args["kubernetes_version"],
            role_arn=role.arn,
            # The control plane's network interfaces go into the private subnets; internet-facing load balancers
            # still find the public ones by their kubernetes.io/role/elb tag. Private access always: node traffic
            # to the API stays in the VPC, and a private-only cluster needs it. The public CIDRs are written out even
            # when they are AWS's default, so a reviewer (and the policy rule) sees who may connect.
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=network.private_subnet_ids, endpoint_private_access=True, endpoint_public_access=public,
                public_access_cidrs=list(args.get("public_access_cidrs", AWS_DEFAULT_PUBLIC_ACCESS_CIDRS))
                if public else None),
            # Access entries (API) instead of the aws-auth ConfigMap: managed node groups get theirs automatically,
            # and whoever runs `pulumi up` becomes cluster admin so the next steps (add-ons) can run.
            access_config=aws.eks.ClusterAccessConfigArgs(authentication_mode="API",
                                                          bootstrap_cluster_creator_admin_permissions=True),
            enabled_cluster_log_types=list(args.get("control_plane_logs", ["audit", "authenticator"])),
            tags=tags,
            # EKS checks the role's permissions when it creates the cluster, and needs them to delete it cleanly.
            opts=pulumi.ResourceOptions(parent=self, depends_on=role_policies))

        issuer = cluster.identities.apply(lambda ids: ids[0].oidcs[0].issuer)
        # No thumbprint: IAM fetches the issuer's certificate itself when none is given, and for EKS issuers it
        # trusts its own root CAs; a pinned thumbprint would only break on certificate rotation.
        oidc = aws.iam.OpenIdConnectProvider(f"{name}-oidc", url=issuer, client_id_lists=["sts.amazonaws.com"],
                                             tags=tags, opts=child)

        node_role = EksNodeRole(f"{name}-nodes", {"tags": tags}, opts=child)
        system = args["system_nodes"]
        system_group = aws.eks.NodeGroup(
            f"{name}-system",
            cluster_name=cluster.name,
            node_role_arn=node_role.role_arn,
            subnet_ids=network.private_subnet_ids,
            instance_types=[system["instance_type"]],
            ami_type=system.get("ami_type", "AL2023_x86_64_STANDARD"),
            capacity_type="ON_DEMAND",
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(min_size=system["min_size"], max_size=system["max_size"],
                                                              desired_size=system["desired_size"]),
            labels={SYSTEM_NODE_LABEL: "system"},
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            tags=tags,
            # The autoscaler owns the node count once the group exists; `pulumi up` must not reset it.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["scalingConfig.desiredSize"]))

        if preview_role is not None:
            entry = aws.eks.AccessEntry(f"{name}-preview", cluster_name=cluster.name, principal_arn=preview_role,
                                        type="STANDARD", tags=tags, opts=child)
            aws.eks.AccessPolicyAssociation(
                f"{name}-preview-read", cluster_name=cluster.name, principal_arn=entry.principal_arn,
                policy_arn=PREVIEW_ACCESS_POLICY,
                access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"), opts=child)

        self.cluster_name = cluster.name
        self.cluster_arn = cluster.arn
        self.kubernetes_version = cluster.version
        self.endpoint = cluster.endpoint
        self.certificate_authority_data = cluster.certificate_authority.apply(lambda ca: ca.data)
        self.cluster_security_group_id = cluster.vpc_config.apply(lambda v: v.cluster_security_group_id)
        self.oidc_issuer_url = issuer
        self.oidc_provider_arn = oidc.arn
        self.vpc_id = network.vpc_id
        self.private_subnet_ids = network.private_subnet_ids
        self.public_subnet_ids = network.public_subnet_ids
        self.node_role_arn = node_role.role_arn
        self.node_role_name = node_role.role_name
        self.system_node_group_name = system_group.node_group_name
        self.register_outputs(self.cluster_outputs("public_subnet_ids", "system_node_group_name"))
