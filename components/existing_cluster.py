"""ExistingCluster: attach GPU capacity to an EKS cluster that already exists, looked up by name with its OIDC
provider (which must exist: IRSA roles trust it; `eksctl utils associate-iam-oidc-provider` creates one)."""

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws
from typing_extensions import NotRequired, TypedDict

from gpuscale.config.args import validate_args
from gpuscale.config.reader import Section
from gpuscale.config.cluster import read_cluster_name, read_subnet_ids

from ._docs import documented
from ._cluster_outputs import ClusterOutputs
from .node_role import EksNodeRole


class ExistingClusterArgs(TypedDict):
    cluster_name: str
    """Name of the EKS cluster to attach to; it must exist in the provider's account and region."""
    subnet_ids: NotRequired[Sequence[str]]
    """Private subnets for GPU nodes. Default: the cluster's own subnets (which may include public ones: list
    private subnets here when the cluster was created with both)."""
    tags: NotRequired[dict[str, str]]
    """Tags on the node role. Default none."""


def check_args(s: Section) -> None:
    """The rules of ExistingClusterArgs: the stack config's existing-cluster rules."""
    read_cluster_name(s, "clusterName")
    s.input("subnet_ids", (), read=lambda name, default: read_subnet_ids(s))
    s.input("tags", {})


@documented
class ExistingCluster(pulumi.ComponentResource, ClusterOutputs):
    """Existing mode: the cluster and its network are read, never changed; only the node role is created."""

    def __init__(self, name: str, args: ExistingClusterArgs, opts: pulumi.ResourceOptions | None = None):
        validate_args("ExistingCluster", name, args, ExistingClusterArgs, check_args)
        super().__init__("gpuscale:index:ExistingCluster", name, None, opts)
        cluster = aws.eks.get_cluster_output(name=args["cluster_name"], opts=pulumi.InvokeOutputOptions(parent=self))
        node_role = EksNodeRole(f"{name}-nodes", {"tags": dict(args.get("tags") or {})},
                                opts=pulumi.ResourceOptions(parent=self))

        configured = list(args.get("subnet_ids") or ())
        self.cluster_name = cluster.name
        self.cluster_arn = cluster.arn
        self.kubernetes_version = cluster.version
        self.endpoint = cluster.endpoint
        self.certificate_authority_data = cluster.certificate_authorities.apply(lambda cas: cas[0].data)
        self.cluster_security_group_id = cluster.vpc_config.apply(lambda v: v.cluster_security_group_id)
        self.oidc_issuer_url = cluster.identities.apply(lambda ids: ids[0].oidcs[0].issuer)
        self.oidc_provider_arn = aws.iam.get_open_id_connect_provider_output(
            url=self.oidc_issuer_url, opts=pulumi.InvokeOutputOptions(parent=self)).arn
        self.vpc_id = cluster.vpc_config.apply(lambda v: v.vpc_id)
        self.private_subnet_ids = (pulumi.Output.from_input(configured) if configured
                                   else cluster.vpc_config.apply(lambda v: list(v.subnet_ids)))
        self.node_role_arn = node_role.role_arn
        self.node_role_name = node_role.role_name
        self.register_outputs(self.cluster_outputs())
