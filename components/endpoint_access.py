"""Who may reach an EKS cluster's Kubernetes API: one rule for the stack config, EksCluster and the policy rule.

Pure data, so the config reads it without importing Pulumi. The private endpoint is always on (nodes in the
private subnets reach the API without leaving the VPC, and EKS refuses a cluster with neither endpoint); the public
endpoint is off, or open to the networks given. "Open to the whole internet" is decided here only
(`open_to_internet`): the config's pre-apply check, and the policy rule eks-api-not-public on planned resources,
both ask this function.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from .arg_rules import Refusal

AWS_DEFAULT_PUBLIC_ACCESS_CIDRS = ("0.0.0.0/0",)
"""What EKS allows when publicAccessCidrs is not set (an IPv4 cluster; IPv6 clusters add ::/0): everyone."""




def endpoint_access_problem(public_access: bool, cidrs: Sequence[str] | None) -> Refusal | None:
    """None when EKS would accept this endpoint access, else the first thing it would refuse (or that would lock
    everyone out)."""
    if not isinstance(public_access, bool):
        return Refusal("endpoint_public_access", public_access, "true or false")
    if cidrs is None:
        return None
    if not public_access:
        return Refusal("public_access_cidrs", list(cidrs),
                               "no public CIDRs with the public endpoint off (publicAccess: false): the API answers "
                               "only inside the VPC")
    if isinstance(cidrs, str) or not cidrs:
        return Refusal("public_access_cidrs", cidrs,
                               "a list of at least one IPv4 network; for no public access turn the public endpoint "
                               "off instead")
    for i, cidr in enumerate(cidrs):
        try:
            net = ipaddress.IPv4Network(cidr, strict=True)
        except (ValueError, TypeError):
            return Refusal(f"public_access_cidrs[{i}]", cidr,
                                   "an IPv4 network in CIDR notation, e.g. 52.94.76.5/32 (EKS takes IPv6 blocks only "
                                   "on IPv6 clusters)")
        if net.prefixlen and not net.is_global:
            # EKS refuses reserved ranges here; private addresses reach the API through the private endpoint anyway.
            return Refusal(f"public_access_cidrs[{i}]", cidr,
                                   "a public (globally routable) network: EKS refuses reserved ranges in "
                                   "publicAccessCidrs, and private addresses reach the API through the private "
                                   "endpoint")
    if len(set(cidrs)) != len(cidrs):
        return Refusal("public_access_cidrs", list(cidrs), "a list without repeated networks")
    return None


def open_to_internet(public_access: object, cidrs: Sequence[str] | None) -> tuple[str, ...]:
    """The networks through which the public endpoint is open to the whole internet (empty when it is not).

    Unset CIDRs with the public endpoint on mean AWS's default, 0.0.0.0/0. Several blocks that together cover every
    IPv4 (or IPv6) address count too (0.0.0.0/1 and 128.0.0.0/1 are the whole internet in two lines).
    `public_access` may be a plan's value: True, "true", None (unset: AWS's default, on).
    """
    if public_access is False or (isinstance(public_access, str) and public_access.lower() == "false"):
        return ()
    given = tuple(cidrs) if cidrs is not None else AWS_DEFAULT_PUBLIC_ACCESS_CIDRS
    open_to: list[str] = []
    for version in (4, 6):
        nets = []
        for cidr in given:
            try:
                net = ipaddress.ip_network(cidr, strict=False)
            except (ValueError, TypeError):
                continue  # not an address block: the provider refuses it, nothing is opened
            if net.version == version:
                nets.append((cidr, net))
        if nets and [n.prefixlen for n in ipaddress.collapse_addresses(n for _, n in nets)] == [0]:
            whole = [c for c, n in nets if n.prefixlen == 0]
            open_to += whole or [c for c, _ in nets]
    return tuple(open_to)
