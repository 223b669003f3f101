"""`gpuscale:kubernetes` and the node groups' `autoscaler:` overrides: every bad value names its key, the value and
what is allowed; good values reach the typed config; the expander order follows the rules it documents."""

from __future__ import annotations

import pytest
from test_config_validation import CATALOG, _set, assert_rejected, base, cluster, ng

from gpuscale.config import load_stack_config
from gpuscale.config.kubernetes import asg_option_tags, expander_order


def kube(cfg):
    return cfg.setdefault("gpuscale:kubernetes", {})


def ca(cfg):
    return kube(cfg).setdefault("clusterAutoscaler", {})


def plugin(cfg):
    return kube(cfg).setdefault("devicePlugin", {})


def agent(cfg):
    return kube(cfg).setdefault("agent", {})


def overrides(cfg):
    return ng(cfg).setdefault("autoscaler", {})


K = "gpuscale:kubernetes"
BAD = [
    ("kubernetes-not-mapping", _set(lambda c: c, K, ["clusterAutoscaler"]), K, "a mapping"),
    ("kubernetes-typo", _set(kube, "clusterAutoScaler", {}), f"{K}.clusterAutoScaler", "known keys"),
    ("ca-enabled-not-bool", _set(ca, "enabled", "yes"), f"{K}.clusterAutoscaler.enabled", "true or false"),
    ("ca-scan-zero", _set(ca, "scanIntervalSeconds", 0), f"{K}.clusterAutoscaler.scanIntervalSeconds", "[1, 600]"),
    ("ca-scan-fraction", _set(ca, "scanIntervalSeconds", 2.5), f"{K}.clusterAutoscaler.scanIntervalSeconds",
     "an integer"),
    ("ca-unneeded-negative", _set(ca, "scaleDownUnneededSeconds", -1),
     f"{K}.clusterAutoscaler.scaleDownUnneededSeconds", "[0, 86400]"),
    ("ca-util-over-one", _set(ca, "scaleDownUtilizationThreshold", 1.5),
     f"{K}.clusterAutoscaler.scaleDownUtilizationThreshold", "[0, 1]"),
    ("ca-gpu-util-string", _set(ca, "scaleDownGpuUtilizationThreshold", "half"),
     f"{K}.clusterAutoscaler.scaleDownGpuUtilizationThreshold", "a number"),
    ("ca-provision-short", _set(ca, "maxNodeProvisionSeconds", 30),
     f"{K}.clusterAutoscaler.maxNodeProvisionSeconds", "[60, 86400]"),
    ("ca-priorities-unknown-group", _set(ca, "expanderPriorities", ["l4", "h100"]),
     f"{K}.clusterAutoscaler.expanderPriorities[1]", "names of this stack's node groups: l4"),
    ("ca-priorities-empty", _set(ca, "expanderPriorities", []), f"{K}.clusterAutoscaler.expanderPriorities",
     "at least 1"),
    ("ca-cpu-quantity", _set(ca, "resources", {"cpu": "lots"}), f"{K}.clusterAutoscaler.resources.cpu",
     "CPU quantity"),
    ("ca-resources-typo", _set(ca, "resources", {"memroy": "1Gi"}), f"{K}.clusterAutoscaler.resources.memroy",
     "known keys"),
    ("ca-version-without-release", _set(cluster, "kubernetesVersion", "1.39"), "gpuscale:cluster.kubernetesVersion",
     "a Kubernetes minor with a cluster-autoscaler release"),
    ("existing-without-version", lambda c: c.__setitem__("gpuscale:cluster", {"mode": "existing", "name": "c1"}),
     "gpuscale:cluster.kubernetesVersion", "cluster-autoscaler's minor must match it"),
    ("plugin-mig", _set(plugin, "migStrategy", "auto"), f"{K}.devicePlugin.migStrategy", "none, single, mixed"),
    ("plugin-slicing-zero", _set(plugin, "timeSlicingReplicas", 0), f"{K}.devicePlugin.timeSlicingReplicas",
     "[1, 64]"),
    ("plugin-slicing-with-mixed-mig", lambda c: plugin(c).update(migStrategy="mixed", timeSlicingReplicas=2),
     f"{K}.devicePlugin.timeSlicingReplicas", "migStrategy: mixed"),
    ("agent-image-no-tag", _set(agent, "image", "123456789012.dkr.ecr.us-west-2.amazonaws.com/agent"),
     f"{K}.agent.image", "a tag or digest"),
    ("agent-image-malformed", _set(agent, "image", "Not An Image"), f"{K}.agent.image", "container image"),
    ("agent-service-monitor-not-bool", _set(agent, "serviceMonitor", "on"), f"{K}.agent.serviceMonitor",
     "true or false"),
    ("agent-memory-quantity", _set(agent, "resources", {"memory": "64 megabytes"}), f"{K}.agent.resources.memory",
     "memory quantity"),
    ("group-override-threshold", _set(overrides, "scaleDownGpuUtilizationThreshold", 2),
     "gpuscale:nodeGroups[0].autoscaler.scaleDownGpuUtilizationThreshold", "[0, 1]"),
    ("group-override-typo", _set(overrides, "maxNodeProvisionSeconds", 600),
     "gpuscale:nodeGroups[0].autoscaler.maxNodeProvisionSeconds", "known keys"),
    ("group-override-bool", _set(overrides, "ignoreDaemonSetsUtilization", "true"),
     "gpuscale:nodeGroups[0].autoscaler.ignoreDaemonSetsUtilization", "true or false"),
]


@pytest.mark.parametrize("mutate,key,allowed", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_kubernetes_input_is_rejected_naming_key_and_allowed(mutate, key, allowed):
    assert_rejected(mutate, key, allowed)


def test_at_least_fifteen_distinct_kubernetes_bad_inputs():
    assert len({b[0] for b in BAD}) >= 15


def test_settings_and_overrides_reach_the_typed_config():
    cfg = base()
    ca(cfg).update(scanIntervalSeconds=20, maxNodeProvisionSeconds=1200, expanderPriorities=["l4"],
                   balanceSimilarNodeGroups=True)
    plugin(cfg).update(timeSlicingReplicas=4)
    agent(cfg).update(image="public.ecr.aws/acme/gpu-metrics-agent:0.1.0", serviceMonitor=True)
    overrides(cfg).update(scaleDownUnneededSeconds=1200, scaleDownGpuUtilizationThreshold=0.25,
                          ignoreDaemonSetsUtilization=True)
    loaded = load_stack_config(cfg, "test", CATALOG)
    k = loaded.kubernetes
    assert (k.cluster_autoscaler.scan_interval_seconds, k.cluster_autoscaler.max_node_provision_seconds) == (20, 1200)
    assert k.cluster_autoscaler.balance_similar_node_groups is True
    assert k.device_plugin.time_slicing_replicas == 4 and k.agent.service_monitor is True
    assert asg_option_tags(loaded.node_groups[0].autoscaler) == {
        "scaledownunneededtime": "1200s", "scaledowngpuutilizationthreshold": "0.25",
        "ignoredaemonsetsutilization": "true"}


def test_existing_cluster_takes_its_version_and_mode_create_keeps_the_default():
    cfg = base()
    cfg["gpuscale:cluster"] = {"mode": "existing", "name": "c1", "kubernetesVersion": "1.31"}
    assert load_stack_config(cfg, "test", CATALOG).cluster.kubernetes_version == "1.31"
    assert load_stack_config(base(), "test", CATALOG).cluster.kubernetes_version == "1.33"


def test_existing_cluster_needs_no_version_when_the_autoscaler_is_off():
    cfg = base()
    cfg["gpuscale:cluster"] = {"mode": "existing", "name": "c1"}
    ca(cfg)["enabled"] = False
    assert load_stack_config(cfg, "test", CATALOG).cluster.kubernetes_version is None


def test_expander_order_prefers_spot_then_cheaper_gpus_unless_configured():
    cfg = base()
    cfg["gpuscale:nodeGroups"] = [
        {"name": "h100", "instanceTypes": ["p5.48xlarge"], "minSize": 0, "maxSize": 1},
        {"name": "l4-od", "instanceTypes": ["g6.xlarge"], "minSize": 0, "maxSize": 2},
        {"name": "a10g-spot", "instanceTypes": ["g5.xlarge"], "capacityType": "SPOT", "minSize": 0, "maxSize": 2},
        {"name": "l4-spot", "instanceTypes": ["g6.xlarge"], "capacityType": "SPOT", "minSize": 0, "maxSize": 2}]
    loaded = load_stack_config(cfg, "test", CATALOG)
    assert expander_order(loaded.kubernetes, loaded.node_groups) == ("l4-spot", "a10g-spot", "l4-od", "h100")
    ca(cfg)["expanderPriorities"] = ["h100", "l4-od"]
    loaded = load_stack_config(cfg, "test", CATALOG)
    assert expander_order(loaded.kubernetes, loaded.node_groups) == ("h100", "l4-od"), "the user's order"

