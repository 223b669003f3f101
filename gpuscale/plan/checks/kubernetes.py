"""Pre-apply checks of the Kubernetes side: what keeps cluster-autoscaler from scaling the GPU node groups as
configured. `run_checks` (gpuscale/plan/checks/) calls `kubernetes_findings`."""

from __future__ import annotations

from typing import Any

from ...components.labels import CA_ENABLED_TAG, ca_cluster_tag, ca_discovery_tags
from ...config import PROJECT, StackConfig

ERROR, WARNING, INFO = "error", "warning", "info"
RELEASE, TAG, NODE_GROUP = "kubernetes:helm.sh/v3:Release", "aws:autoscaling/tag:Tag", "aws:eks/nodeGroup:NodeGroup"
NODE_GROUP_COMPONENT = "gpuscale:index:GpuNodeGroup"
CA_KEY = f"{PROJECT}:kubernetes.clusterAutoscaler"


def kubernetes_findings(config: StackConfig, plan: Any | None, finding: type) -> list[Any]:
    """Findings (instances of `finding`, gpuscale.plan.checks.Finding) about the autoscaler and the node groups; none
    for a config without node groups or with the autoscaler off."""
    kubernetes = getattr(config, "kubernetes", None)
    if kubernetes is None or not kubernetes.cluster_autoscaler.enabled or not getattr(config, "node_groups", ()):
        return []
    found = _provision_time(config, finding)
    if plan is not None:
        found += _discovery(config, plan, finding)
    return found


MAX_NODE_STARTUP_SECONDS = 15 * 60
"""cluster-autoscaler's fixed limit from a node's registration to its readiness (clusterstate.MaxNodeStartupTime,
1.33); a GPU node (accelerator label) counts as ready only once its GPUs are advertised."""


def _provision_time(config: StackConfig, finding: type) -> list[Any]:
    """Upstream (1.33 clusterstate) gives up on a scale-up in two places: a node not registered within
    max-node-provision-time, and a registered node not ready (GPUs advertised) within MaxNodeStartupTime. Either
    way it removes the node and backs the group off. Image pull and model load come after, per pod: not counted."""
    ca = config.kubernetes.cluster_autoscaler
    found = []
    for i, group in enumerate(config.node_groups):
        if group.workload is None:
            continue
        cs, key = group.workload.cold_start, f"{PROJECT}:nodeGroups[{i}].workload.coldStart"
        gives_up = "the autoscaler gives up on every new node, removes it and backs the group off, so the group " \
                   "never scales up"
        if cs.node_provisioning_seconds > ca.max_node_provision_seconds:
            found.append(finding(
                ERROR, "node-provision-time", (f"{CA_KEY}.maxNodeProvisionSeconds", f"{key}.nodeProvisioningSeconds"),
                f"a {group.name} node needs about {cs.node_provisioning_seconds:.0f} s to register, longer than "
                f"cluster-autoscaler's max-node-provision-time of {ca.max_node_provision_seconds} s: {gives_up}",
                group.name))
        plugin = cs.device_plugin_ready_seconds or 0
        if plugin > MAX_NODE_STARTUP_SECONDS:
            found.append(finding(
                ERROR, "node-provision-time", (f"{key}.devicePluginReadySeconds",),
                f"a {group.name} node advertises its GPUs about {plugin:.0f} s after it registers, longer than "
                f"cluster-autoscaler's fixed {MAX_NODE_STARTUP_SECONDS} s for a registered node to become ready: "
                f"{gives_up}", group.name))
    return found


def _discovery(config: StackConfig, plan: Any, finding: type) -> list[Any]:
    """Every GPU node group's ASG carries the tags the autoscaler's auto-discovery looks for, and the autoscaler
    looks for exactly those."""
    resources = tuple(plan.resources)
    releases = [r for r in resources if r.type == RELEASE and r.inputs.get("chart") == "cluster-autoscaler"]
    if not releases:
        return [finding(ERROR, "autoscaler-discovery", (f"{CA_KEY}.enabled",),
                        "cluster-autoscaler is enabled but the plan installs none: no node group will scale")]
    wanted = ca_discovery_tags(config.cluster.name)
    looked_for = ((releases[0].inputs.get("values") or {}).get("autoDiscovery") or {}).get("tags") or []
    found = []
    if sorted(looked_for) != sorted(wanted):
        found.append(finding(ERROR, "autoscaler-discovery", (f"{CA_KEY}",),
                             f"cluster-autoscaler discovers groups tagged {looked_for}, but the node groups are "
                             f"tagged {wanted}"))
    components = {r.name: r for r in resources if r.type == NODE_GROUP_COMPONENT}
    for i, group in enumerate(config.node_groups):
        component = components.get(group.name)
        keys = {str((t.inputs.get("tag") or {}).get("key")) for t in resources
                if t.type == TAG and component is not None and t.parent == component.urn}
        missing = [k for k in (CA_ENABLED_TAG, ca_cluster_tag(config.cluster.name)) if k not in keys]
        if missing:
            found.append(finding(ERROR, "autoscaler-discovery", (f"{PROJECT}:nodeGroups[{i}]", CA_KEY),
                                 f"node group {group.name}'s Auto Scaling group lacks {', '.join(missing)}: "
                                 "cluster-autoscaler never discovers it, so it never scales", group.name))
    return found
