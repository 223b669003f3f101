"""IrsaRole: an IAM role that exactly one Kubernetes service account assumes through the cluster's OIDC provider."""

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws
from typing_extensions import NotRequired, TypedDict

from ._docs import documented

from gpuscale.config.args import validate_args
from gpuscale.config.reader import Section, is_deferred

from .kube_values import DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN


class IrsaRoleArgs(TypedDict):
    oidc_provider_arn: pulumi.Input[str]
    """ARN of the cluster's IAM OIDC identity provider (EksCluster or ExistingCluster `oidc_provider_arn`)."""
    oidc_issuer_url: pulumi.Input[str]
    """The cluster's OIDC issuer URL (`https://oidc.eks.<region>.amazonaws.com/id/<id>`)."""
    namespace: str
    """Namespace of the service account."""
    service_account: str
    """Name of the service account; no other service account can assume the role."""
    statements: Sequence[Mapping[str, Any]]
    """The role's IAM policy statements (values may be outputs), as one inline policy."""
    description: NotRequired[str]
    """What the role is for. Default: names the service account."""
    tags: NotRequired[dict[str, str]]
    """Tags on the role. Default none."""


def web_identity_trust(oidc_provider_arn: pulumi.Input[str], oidc_issuer_url: pulumi.Input[str], namespace: str,
                       service_account: "str | Sequence[str]") -> pulumi.Output[str]:
    """Trust policy: tokens the cluster issued to `namespace/service_account` (or to any of several service accounts
    of the namespace: one add-on's controller and node), for STS, and nothing else."""
    accounts = [service_account] if isinstance(service_account, str) else list(service_account)
    subjects = [f"system:serviceaccount:{namespace}:{a}" for a in accounts]

    def document(args: list[str]) -> str:
        arn, url = args
        host = url.removeprefix("https://")
        return json.dumps({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow", "Principal": {"Federated": arn}, "Action": "sts:AssumeRoleWithWebIdentity",
                # StringEquals on both: `sub` pins the service account (a list: any one of them), `aud` the token's
                # audience (STS).
                "Condition": {"StringEquals": {f"{host}:sub": subjects[0] if len(subjects) == 1 else subjects,
                                               f"{host}:aud": "sts.amazonaws.com"}}}]})
    return pulumi.Output.all(oidc_provider_arn, oidc_issuer_url).apply(document)


def check_args(s: Section) -> None:
    """The rules of IrsaRoleArgs: a service account Kubernetes accepts, and at least one statement."""
    s.input("oidc_provider_arn")
    s.input("oidc_issuer_url")
    s.str("namespace", pattern=DNS_LABEL_PATTERN, describe="a Kubernetes namespace name (a DNS-1123 label)")
    s.str("service_account", pattern=DNS_SUBDOMAIN_PATTERN,
          describe="a Kubernetes service account name (a DNS-1123 subdomain)")
    statements = s.input("statements")
    if not is_deferred(statements) and (isinstance(statements, (str, Mapping)) or not isinstance(statements, Sequence)
                                        or not statements or not all(isinstance(x, Mapping) for x in statements)):
        s.report("statements", statements, "a list of at least one IAM policy statement (mappings)")
    s.str("description", "IRSA role", describe="a description of the role")
    s.input("tags", {})


@documented
class IrsaRole(pulumi.ComponentResource):
    """IAM roles for service accounts (IRSA): the pod gets the role through its service account's
    `eks.amazonaws.com/role-arn` annotation, never through the node's role."""

    role_arn: pulumi.Output[str]
    """ARN of the role (the service account's `eks.amazonaws.com/role-arn` annotation)."""
    role_name: pulumi.Output[str]
    """Name of the role."""

    def __init__(self, name: str, args: IrsaRoleArgs, opts: pulumi.ResourceOptions | None = None):
        validate_args("IrsaRole", name, args, IrsaRoleArgs, check_args)
        super().__init__("gpuscale:index:IrsaRole", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namespace, account = args["namespace"], args["service_account"]
        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=web_identity_trust(args["oidc_provider_arn"], args["oidc_issuer_url"], namespace,
                                                  account),
            description=args.get("description", f"IRSA role of {namespace}/{account} (gpuscale)"),
            tags=args.get("tags"), opts=child)
        policy = aws.iam.RolePolicy(
            f"{name}-policy", role=role.name,
            policy=pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": list(args["statements"])}),
            opts=child)
        self.role_name = role.name
        # Pods start with the ARN only once the policy is attached: an autoscaler that starts without its
        # permissions logs AccessDenied and backs off for minutes.
        self.role_arn = pulumi.Output.all(role.arn, policy.id).apply(lambda v: v[0])
        self.register_outputs({"role_arn": self.role_arn, "role_name": self.role_name})
