"""The kubeconfig of an EKS cluster for the stack's Kubernetes provider: endpoint and CA from the cluster, and an exec
credential (`aws eks get-token`), so no token is stored in the state and nothing reads an ambient kubeconfig."""

from __future__ import annotations

import json
import pulumi


def eks_kubeconfig(cluster_name: pulumi.Input[str], endpoint: pulumi.Input[str],
                   certificate_authority_data: pulumi.Input[str], region: str) -> pulumi.Output[str]:
    def document(args: list[str]) -> str:
        name, server, ca = args
        return json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": name, "preferences": {},
            "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": ca}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "users": [{"name": name, "user": {"exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws",
                "args": ["eks", "get-token", "--cluster-name", name, "--region", region, "--output", "json"],
                # The token is fetched on each use with whatever AWS credentials run `pulumi up`.
                "interactiveMode": "Never"}}}]})
    return pulumi.Output.all(cluster_name, endpoint, certificate_authority_data).apply(document)
