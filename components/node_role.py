"""EksNodeRole: the IAM role EKS worker nodes (system and GPU node groups) run as."""

import pulumi
import pulumi_aws as aws
from typing_extensions import NotRequired, TypedDict

from gpuscale.config.args import validate_args
from gpuscale.config.reader import Section

from ._docs import documented
from ._iam import assume_role_policy, attach_managed_policies

NODE_POLICIES = (
    # kubelet describes EC2 resources of its VPC; also the EKS Pod Identity agent's permissions.
    "AmazonEKSWorkerNodePolicy",
    # kubelet pulls images from ECR, including the built-in networking add-ons' images.
    "AmazonEC2ContainerRegistryPullOnly",
    # The VPC CNI assigns pod IPs with the node's credentials unless it gets its own role (IRSA / Pod Identity).
    "AmazonEKS_CNI_Policy",
)
SSM_POLICY = "AmazonSSMManagedInstanceCore"


class EksNodeRoleArgs(TypedDict):
    ssm_access: NotRequired[bool]
    """Also attach AmazonSSMManagedInstanceCore, for a shell on nodes through Session Manager without SSH or open
    ports. Default True."""
    tags: NotRequired[pulumi.Input[dict[str, str]]]
    """Tags on the role. Default none."""


def check_args(s: Section) -> None:
    s.bool("ssm_access", True)
    s.input("tags", {})


@documented
class EksNodeRole(pulumi.ComponentResource):
    """An IAM role for EC2 worker nodes with the standard EKS worker policies attached."""

    role_name: pulumi.Output[str]
    """Name of the role."""
    role_arn: pulumi.Output[str]
    """ARN of the role (node groups' node_role_arn)."""

    def __init__(self, name: str, args: EksNodeRoleArgs, opts: pulumi.ResourceOptions | None = None):
        validate_args("EksNodeRole", name, args, EksNodeRoleArgs, check_args)
        super().__init__("gpuscale:index:EksNodeRole", name, None, opts)
        role = aws.iam.Role(f"{name}-role", assume_role_policy=assume_role_policy("ec2.amazonaws.com"),
                            description="EKS worker nodes (gpuscale)", tags=args.get("tags"),
                            opts=pulumi.ResourceOptions(parent=self))
        policies = NODE_POLICIES + ((SSM_POLICY,) if args.get("ssm_access", True) else ())
        self.attachments = attach_managed_policies(name, role, policies, parent=self)
        self.role_name = role.name
        # Node groups take the ARN only once every policy is attached: a node that boots before its policies are
        # in place cannot join the cluster, and on destroy the policies must outlive the nodes.
        self.role_arn = pulumi.Output.all(role.arn, *[a.id for a in self.attachments]).apply(lambda v: v[0])
        self.register_outputs({"role_name": self.role_name, "role_arn": self.role_arn})
