"""The recorded upstream facts match the pins, and what the code repeats from upstream agrees with them."""

from __future__ import annotations

import re

from gpuscale.components.charts import CHARTS, upstream_facts
from gpuscale.components.labels import CA_AUTOSCALING_OPTION_KEYS
from gpuscale.config.kubernetes import read_kubernetes
from gpuscale.config.reader import Section


def test_facts_were_generated_at_the_pinned_chart_versions():
    for facts_name, chart in (("cluster_autoscaler", "cluster-autoscaler"),
                              ("nvidia_device_plugin", "nvidia-device-plugin")):
        facts = upstream_facts(facts_name)
        assert facts["chart"]["version"] == CHARTS[chart].version, \
            f"{chart} is pinned at {CHARTS[chart].version}: rerun scripts/upstream_facts.py"
        assert facts["chart"]["name"] == CHARTS[chart].name
        assert facts["licence"] == "Apache-2.0" and re.fullmatch(r"[0-9a-f]{40}", facts["commit"])
        assert facts["source"].startswith("https://github.com/") and facts["generatedBy"] == "scripts/upstream_facts.py"


def test_config_defaults_are_upstreams_flag_defaults():
    ca = read_kubernetes(Section({}, "gpuscale:kubernetes")).cluster_autoscaler
    flags = upstream_facts("cluster_autoscaler")["flagDefaults"]
    assert f"{ca.scan_interval_seconds}s" == flags["scan-interval"]
    assert f"{ca.scale_down_unneeded_seconds}s" == flags["scale-down-unneeded-time"]
    assert f"{ca.scale_down_delay_after_add_seconds}s" == flags["scale-down-delay-after-add"]
    assert f"{ca.max_node_provision_seconds}s" == flags["max-node-provision-time"]
    assert float(flags["scale-down-utilization-threshold"]) == ca.scale_down_utilization_threshold
    assert float(flags["scale-down-gpu-utilization-threshold"]) == ca.scale_down_gpu_utilization_threshold
    assert flags["balance-similar-node-groups"] == str(ca.balance_similar_node_groups).lower()
    assert flags["skip-nodes-with-local-storage"] == str(ca.skip_nodes_with_local_storage).lower()
    assert flags["expander"] == "least-waste", "the fallback after the priority expander is upstream's default"


def test_per_group_option_keys_are_the_ones_the_aws_provider_reads():
    assert sorted(CA_AUTOSCALING_OPTION_KEYS) == sorted(upstream_facts("cluster_autoscaler")["asgOptionKeys"])


def test_autoscaler_releases_cover_the_default_kubernetes_minor_and_are_tags():
    tags = upstream_facts("cluster_autoscaler")["imageTags"]
    assert "1.33" in tags
    for minor, tag in tags.items():
        assert re.fullmatch(rf"v{re.escape(minor)}\.\d+", tag), tag
