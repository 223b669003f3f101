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


def test_serving_facts_were_generated_at_the_pins():
    from gpuscale.components.charts import KEDA_VERSION, KNATIVE_SERVING_VERSION
    kserve = upstream_facts("kserve")
    assert kserve["tag"] == CHARTS["kserve"].version
    for chart in ("kserve", "kserve-crd"):
        assert kserve["charts"][chart]["chart"]["version"] == CHARTS[chart].version
        assert kserve["charts"][chart]["chart"]["name"] == CHARTS[chart].name
    operator = upstream_facts("knative_operator")
    assert operator["chart"]["version"] == CHARTS["knative-operator"].version
    assert KNATIVE_SERVING_VERSION in operator["servingVersions"], "the operator must bundle the Serving release"
    assert upstream_facts("knative_serving")["tag"] == f"knative-v{KNATIVE_SERVING_VERSION}"
    assert upstream_facts("keda")["tag"] == KEDA_VERSION
    keda_chart = upstream_facts("keda_chart")
    assert keda_chart["chart"]["version"] == CHARTS["keda"].version
    assert f"v{keda_chart['chart']['appVersion']}" == KEDA_VERSION, "the chart runs the KEDA release the CRDs are from"
    assert upstream_facts("cert_manager")["chart"]["version"] == CHARTS["cert-manager"].version
    for name in ("kserve", "knative_serving", "knative_operator", "keda", "keda_chart", "cert_manager"):
        facts = upstream_facts(name)
        assert facts["licence"] == "Apache-2.0" and re.fullmatch(r"[0-9a-f]{40}", facts["commit"]), name
        assert facts["source"].startswith("https://github.com/") and facts["generatedBy"] == "scripts/upstream_facts.py"


def test_the_simulators_models_cite_the_installed_minors():
    """What `gpuscale simulate` models is what the stack installs: the same Knative and KEDA minors."""
    from gpuscale.components.charts import KEDA_VERSION, KNATIVE_SERVING_VERSION
    from gpuscale.sim import keda, knative
    assert f"Knative Serving v{KNATIVE_SERVING_VERSION.rsplit('.', 1)[0]}" in knative.__doc__
    assert f"KEDA {KEDA_VERSION.rsplit('.', 1)[0]}" in keda.__doc__


def test_the_model_cache_crds_are_recorded_for_the_next_issue():
    crds = upstream_facts("kserve")["crds"]
    assert crds["LocalModelCache"]["schema"]["properties"]["spec"]["properties"]
    assert crds["LocalModelNodeGroup"]["scope"] == "Cluster"


def test_the_components_keys_are_upstreams():
    from gpuscale.components import knative_serving, model_service, pod_autoscaling
    kserve, serving = upstream_facts("kserve"), upstream_facts("knative_serving")
    assert model_service.DEPLOYMENT_MODE == kserve["annotations"]["deploymentMode"]
    assert model_service.AUTOSCALER_CLASS == kserve["annotations"]["autoscalerClass"]
    assert model_service.S3_REGION == kserve["annotations"]["s3"]["InferenceServiceS3SecretRegionAnnotation"]
    assert model_service.IRSA_ROLE_ARN == kserve["annotations"]["irsaRoleArn"]
    assert set(model_service.DEPLOYMENT_MODES.values()) == set(kserve["deploymentModes"].values())
    assert pod_autoscaling.KPA_CLASS == serving["autoscalingClasses"]["KPA"]
    assert pod_autoscaling.PROGRESS_DEADLINE == serving["servingAnnotations"]["ProgressDeadlineAnnotationKey"]
    assert set(knative_serving.POD_SPEC_FEATURES) <= set(serving["configFeatures"])
    assert str(knative_serving.DEFAULT_MAX_REVISION_TIMEOUT_SECONDS) == \
        serving["configDefaults"]["max-revision-timeout-seconds"]
