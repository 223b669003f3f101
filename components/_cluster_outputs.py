"""What GPU groups need from a cluster, whether the stack created it (EksCluster) or looked it up (ExistingCluster)."""

import pulumi

CLUSTER_OUTPUTS = ("cluster_name", "cluster_arn", "kubernetes_version", "endpoint", "certificate_authority_data",
                   "cluster_security_group_id", "oidc_issuer_url", "oidc_provider_arn", "vpc_id", "private_subnet_ids",
                   "node_role_arn", "node_role_name")


class ClusterOutputs:
    """The outputs both cluster components have; `__main__.py` wires node groups and ASGs from these alone."""

    cluster_name: pulumi.Output[str]
    """Name of the EKS cluster."""
    cluster_arn: pulumi.Output[str]
    """ARN of the EKS cluster."""
    kubernetes_version: pulumi.Output[str]
    """The control plane's Kubernetes minor version, e.g. "1.33"."""
    endpoint: pulumi.Output[str]
    """URL of the cluster's Kubernetes API server."""
    certificate_authority_data: pulumi.Output[str]
    """Base64 PEM of the cluster's certificate authority (for a kubeconfig)."""
    cluster_security_group_id: pulumi.Output[str]
    """Security group EKS created for the control plane and managed nodes."""
    oidc_issuer_url: pulumi.Output[str]
    """The cluster's OIDC issuer URL (https://oidc.eks.<region>.amazonaws.com/id/...), which IRSA roles trust."""
    oidc_provider_arn: pulumi.Output[str]
    """The IAM OIDC identity provider that IRSA roles trust."""
    vpc_id: pulumi.Output[str]
    """VPC of the cluster."""
    private_subnet_ids: pulumi.Output[list[str]]
    """Subnets for GPU nodes."""
    node_role_arn: pulumi.Output[str]
    """Resolves once the worker policies are attached."""
    node_role_name: pulumi.Output[str]
    """Name of the worker nodes' IAM role."""

    def cluster_outputs(self, *extra: str) -> dict[str, pulumi.Output]:
        """The shared outputs plus `extra` ones, by attribute name, for `register_outputs`."""
        return {name: getattr(self, name) for name in CLUSTER_OUTPUTS + extra}
