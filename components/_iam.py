"""IAM policy documents shared by the components, written as plain JSON (no invoke needed to build them)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pulumi
import pulumi_aws as aws


def assume_role_policy(service: str) -> str:
    """Trust policy letting one AWS service principal (``ec2.amazonaws.com``, ``eks.amazonaws.com``) assume a role."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    })


def attach_managed_policies(name: str, role: aws.iam.Role, policies: Sequence[str],
                            parent: pulumi.Resource) -> list[aws.iam.RolePolicyAttachment]:
    """Attach AWS managed policies (by name) to a role, with ARNs in the partition the provider deploys to.

    Child names are `<name>-<policy name>`, so adding or removing one policy leaves the others untouched. A policy
    under a path (`service-role/AmazonEFSCSIDriverPolicy`) is named by its last part.
    """
    partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=parent)).partition
    return [
        aws.iam.RolePolicyAttachment(
            f"{name}-{policy.rsplit('/', 1)[-1]}", role=role.name,
            policy_arn=pulumi.Output.concat("arn:", partition, ":iam::aws:policy/", policy),
            opts=pulumi.ResourceOptions(parent=parent))
        for policy in policies
    ]
