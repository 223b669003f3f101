"""Keda: KEDA from its chart, with an IAM role for its operator (IRSA) when a scaler reads AWS: CloudWatch for the
agent's GPU series, SQS for a queue's length. TriggerAuthentications name this role's identity (`identityOwner:
keda`), so one role, scoped to what the services' triggers read, serves every ScaledObject."""

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
from typing_extensions import NotRequired, TypedDict

from ..config.args import validate_args
from ..config.reader import Section
from ._docs import documented
from ._helm import pinned_release
from .irsa_role import IrsaRole
from .kube_values import read_node_selector

NAMESPACE = "keda"
OPERATOR_SERVICE_ACCOUNT = "keda-operator"
"""The chart's operator service account (serviceAccount.operator.name): the scalers run in the operator."""
GET_METRIC_DATA = "cloudwatch:GetMetricData"
"""What the aws-cloudwatch scaler calls (pkg/scalers/aws_cloudwatch_scaler.go); IAM cannot scope it to metrics."""
GET_QUEUE_ATTRIBUTES = "sqs:GetQueueAttributes"
"""What the aws-sqs-queue scaler calls (pkg/scalers/aws_sqs_queue_scaler.go), scoped to the services' queues."""


class KedaArgs(TypedDict):
    oidc_provider_arn: pulumi.Input[str]
    """The cluster's IAM OIDC provider, trusted by the operator's role."""
    oidc_issuer_url: pulumi.Input[str]
    """The cluster's OIDC issuer URL."""
    read_cloudwatch: bool
    """A trigger reads the agent's metrics from CloudWatch (cloudwatch:GetMetricData)."""
    queue_arns: Sequence[pulumi.Input[str]]
    """SQS queues a trigger reads the length of (sqs:GetQueueAttributes on exactly these). May be empty."""
    node_selector: NotRequired[Mapping[str, str]]
    """Labels of the nodes KEDA runs on (the system node group). Default none."""
    tags: NotRequired[dict[str, str]]
    """Tags on the IAM role. Default none."""


def check_args(s: Section) -> None:
    """The rules of KedaArgs."""
    s.input("oidc_provider_arn")
    s.input("oidc_issuer_url")
    s.bool("read_cloudwatch")
    s.input("queue_arns")
    read_node_selector(s)
    s.input("tags", {})


def keda_policy(args: KedaArgs) -> list[dict[str, Any]]:
    """The operator's IAM statements: only what the services' triggers read."""
    statements: list[dict[str, Any]] = []
    if args["read_cloudwatch"]:
        statements.append({"Effect": "Allow", "Action": [GET_METRIC_DATA], "Resource": "*"})
    if args["queue_arns"]:
        statements.append({"Effect": "Allow", "Action": [GET_QUEUE_ATTRIBUTES], "Resource": list(args["queue_arns"])})
    return statements


def keda_values(args: KedaArgs, role_arn: pulumi.Input[str] | None) -> dict[str, Any]:
    """The chart's values (every key exists in the pinned chart's values.yaml, or in a map it renders whole)."""
    values: dict[str, Any] = {"nodeSelector": dict(args.get("node_selector") or {})}
    if role_arn is not None:
        # The chart annotates the operator's service account with the role (IRSA) and the regional STS endpoint.
        values["podIdentity"] = {"aws": {"irsa": {"enabled": True, "roleArn": role_arn}}}
    return values


@documented
class Keda(pulumi.ComponentResource):
    """KEDA (operator, metrics API server, admission webhooks) in its namespace, and the operator's IRSA role when a
    trigger reads AWS. Pass the stack's Kubernetes provider in `opts.providers`."""

    role_arn: pulumi.Output[str] | None
    """The KEDA operator's IAM role (IRSA), None when no trigger reads AWS."""
    release_name: pulumi.Output[str]
    """The KEDA Helm release's name."""

    def __init__(self, name: str, args: KedaArgs, opts: pulumi.ResourceOptions | None = None):
        validate_args("Keda", name, args, KedaArgs, check_args)
        super().__init__("gpuscale:index:Keda", name, None, opts)
        statements = keda_policy(args)
        role = IrsaRole(f"{name}-irsa", {
            "oidc_provider_arn": args["oidc_provider_arn"], "oidc_issuer_url": args["oidc_issuer_url"],
            "namespace": NAMESPACE, "service_account": OPERATOR_SERVICE_ACCOUNT, "statements": statements,
            "description": "KEDA operator: read the GPU metrics and queues the services scale on",
            "tags": args.get("tags")}, opts=pulumi.ResourceOptions(parent=self)) if statements else None
        # helm.v3.Release: Helm owns KEDA's CRDs, its webhook certificates and upgrades as one release.
        release = pinned_release(self, name, "keda", NAMESPACE, keda_values(args, role.role_arn if role else None),
                                 opts)
        self.role_arn = role.role_arn if role else None
        self.release_name = release.name
        self.register_outputs({"release_name": self.release_name})
