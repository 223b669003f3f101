"""Network: a VPC for an EKS cluster with GPU nodes in private subnets."""

import ipaddress

import pulumi
import pulumi_aws as aws
from typing_extensions import NotRequired, TypedDict

from ._docs import documented

from gpuscale.config.args import args_style, validate_args
from gpuscale.config.reader import Section
from gpuscale.config.cluster import read_cluster_name, read_vpc

ALIASES = {"vpcCidr": "cidr_block"}
"""The stack config's VPC key and NetworkArgs' name for it."""


class NetworkArgs(TypedDict):
    cidr_block: str
    """IPv4 range of the VPC, from /16 to /24, e.g. "10.40.0.0/16". Half of it is split into one private subnet
    per zone (pod IPs come from these with the VPC CNI, so they get the most room), a quarter of what is left
    into small public subnets."""
    availability_zone_count: int
    """Zones to spread over, 2 to 4 (EKS needs subnets in at least two)."""
    cluster_name: str
    """EKS cluster that uses the subnets; tagged `kubernetes.io/cluster/<name>: shared` for load balancers."""
    nat_gateway_per_zone: NotRequired[bool]
    """One NAT gateway per zone, so a zone outage does not cut the others off from the internet; False shares one
    (cheaper, for dev). Default True."""
    tags: NotRequired[dict[str, str]]
    """Tags on every resource. Default none."""


def subnet_layout(cidr_block: str, zones: int) -> tuple[list[str], list[str]]:
    """(private, public) subnet CIDRs, one of each per zone.

    Private subnets are eighths of the VPC (a /19 each in a /16); public subnets, which only hold NAT gateways and
    load balancers, are 64ths (a /22 in a /16, never smaller than AWS's /28 minimum) from the upper half.
    """
    # The stack config's VPC rule (a prefix from /16 to /24, 2 to 4 zones): a ConfigError naming the argument.
    read_vpc(Section({"cidr_block": cidr_block, "availability_zone_count": zones}, "", style=args_style(ALIASES)))
    net = ipaddress.IPv4Network(cidr_block, strict=True)
    private = [str(s) for s in list(net.subnets(new_prefix=net.prefixlen + 3))[:zones]]
    upper = list(net.subnets(prefixlen_diff=1))[1]
    public = [str(s) for s in list(upper.subnets(new_prefix=min(net.prefixlen + 6, 28)))[:zones]]
    return private, public


def check_args(s: Section) -> None:
    """The rules of NetworkArgs: the stack config's VPC rules."""
    s.require("vpcCidr", "availabilityZoneCount")
    read_vpc(s)
    read_cluster_name(s, "clusterName")
    s.input("tags", {})


@documented
class Network(pulumi.ComponentResource):
    """A VPC with public subnets (NAT gateways, internet-facing load balancers only) and private subnets (nodes,
    without public IPs, reaching the internet through NAT)."""

    vpc_id: pulumi.Output[str]
    """ID of the VPC."""
    private_subnet_ids: pulumi.Output[list[str]]
    """Private subnets, one per zone (nodes)."""
    public_subnet_ids: pulumi.Output[list[str]]
    """Public subnets, one per zone (NAT gateways, internet-facing load balancers)."""

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        validate_args("Network", name, args, NetworkArgs, check_args, ALIASES)
        super().__init__("gpuscale:index:Network", name, None, opts)
        zones = args["availability_zone_count"]
        private_cidrs, public_cidrs = subnet_layout(args["cidr_block"], zones)
        tags = dict(args.get("tags") or {})
        cluster_tag = {f"kubernetes.io/cluster/{args['cluster_name']}": "shared"}
        child = pulumi.ResourceOptions(parent=self)

        def named(resource: str) -> dict[str, str]:
            return {**tags, "Name": f"{name}-{resource}"}

        # EKS requires DNS hostnames and resolution in the VPC (nodes register by their private DNS names).
        vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=args["cidr_block"], enable_dns_hostnames=True,
                          enable_dns_support=True, tags=named("vpc"), opts=child)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=named("igw"), opts=child)
        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt", vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags=named("public-rt"), opts=child)
        azs = aws.get_availability_zones_output(state="available", opts=pulumi.InvokeOutputOptions(parent=self))

        public, private, nats = [], [], []
        for i in range(zones):
            az = azs.names.apply(lambda names, i=i: _zone(names, i, zones))
            # No public IPs on launch even here: only NAT gateways (Elastic IPs) and load balancers live in these.
            pub = aws.ec2.Subnet(f"{name}-public-{i}", vpc_id=vpc.id, cidr_block=public_cidrs[i], availability_zone=az,
                                 map_public_ip_on_launch=False,
                                 tags={**named(f"public-{i}"), **cluster_tag, "kubernetes.io/role/elb": "1"},
                                 opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-public-{i}", subnet_id=pub.id, route_table_id=public_rt.id,
                                          opts=child)
            # GPU nodes go here: no public IPs; internal load balancers are placed here by the role tag.
            priv = aws.ec2.Subnet(f"{name}-private-{i}", vpc_id=vpc.id, cidr_block=private_cidrs[i],
                                  availability_zone=az, map_public_ip_on_launch=False,
                                  tags={**named(f"private-{i}"), **cluster_tag, "kubernetes.io/role/internal-elb": "1"},
                                  opts=child)
            if i == 0 or args.get("nat_gateway_per_zone", True):
                eip = aws.ec2.Eip(f"{name}-nat-{i}", domain="vpc", tags=named(f"nat-{i}"), opts=child)
                # The gateway needs the internet gateway attached before it can route out.
                nats.append(aws.ec2.NatGateway(f"{name}-nat-{i}", subnet_id=pub.id, allocation_id=eip.allocation_id,
                                               tags=named(f"nat-{i}"),
                                               opts=pulumi.ResourceOptions(parent=self, depends_on=[igw])))
            rt = aws.ec2.RouteTable(
                f"{name}-private-rt-{i}", vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nats[-1].id)],
                tags=named(f"private-rt-{i}"), opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-private-{i}", subnet_id=priv.id, route_table_id=rt.id,
                                          opts=child)
            public.append(pub)
            private.append(priv)

        self.vpc_id = vpc.id
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in private])
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in public])
        self.register_outputs({"vpc_id": self.vpc_id, "private_subnet_ids": self.private_subnet_ids,
                               "public_subnet_ids": self.public_subnet_ids})


def _zone(names: list[str], index: int, wanted: int) -> str:
    if index >= len(names):
        raise ValueError(f"availability_zone_count: {wanted} is not allowed here; allowed: at most {len(names)}, the "
                         f"zones available in this region ({', '.join(names)})")
    return names[index]
