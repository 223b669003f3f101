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


def upstream_facts_script():
    """scripts/upstream_facts.py as a module (it is a script, not part of the package)."""
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location(
        "upstream_facts_script", Path(__file__).resolve().parents[2] / "scripts" / "upstream_facts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUNTIME_TEMPLATE = """apiVersion: serving.kserve.io/v1alpha1
kind: ClusterServingRuntime
metadata:
  name: kserve-demo
spec:
  disabled: {{ .Values.kserve.servingruntime.demo.disabled }}
  supportedModelFormats:
    - name: demo
      version: "1"
      autoSelect: true
      priority: 2
    - name: demo
      version: "2"
      autoSelect: true
      priority: 2
    - name: other
      version: "1"
  protocolVersions:
    - v1
  containers:
    - name: kserve-container
      image: "{{ .Values.kserve.servingruntime.demo.image }}:{{ .Values.kserve.servingruntime.demo.tag }}"
      args:
        - --model_name={{ .Values.kserve.servingruntime.modelNamePlaceholder }}
      securityContext:
          {{- with .Values.kserve.servingruntime.demo.securityContext}}
          {{- toYaml . | nindent 10 }}
          {{- end }}
      volumeMounts:
        - name: shm
          sizeLimit: {{ . }}
---
apiVersion: serving.kserve.io/v1alpha1
kind: ClusterServingRuntime
metadata:
  name: kserve-demo-multinode
spec:
  disabled: true
  supportedModelFormats:
    - name: demo
      autoSelect: true
  containers:
    - name: kserve-container
      image: "{{ .Values.kserve.servingruntime.demo.image }}:{{ .Values.kserve.servingruntime.demo.tag }}-gpu"
  workerSpec:
    containers: []
"""
RUNTIME_VALUES = {"kserve": {"servingruntime": {"modelNamePlaceholder": "{{.Name}}", "demo": {
    "disabled": False, "image": "kserve/demoserver", "tag": "v0.16.0", "securityContext": {"runAsNonRoot": True}}}}}


def test_the_facts_script_reads_runtime_images_and_formats_from_the_charts_template():
    facts = upstream_facts_script().serving_runtimes(RUNTIME_TEMPLATE, RUNTIME_VALUES)
    assert facts == {
        "kserve-demo": {"image": "kserve/demoserver:v0.16.0",
                        "modelFormats": {"demo": {"autoSelect": True, "priority": 2},
                                         "other": {"autoSelect": False, "priority": None}},
                        "protocolVersions": ["v1"], "multiModel": False, "multiNode": False, "disabled": False},
        "kserve-demo-multinode": {"image": "kserve/demoserver:v0.16.0-gpu",
                                  "modelFormats": {"demo": {"autoSelect": True, "priority": None}},
                                  "protocolVersions": [], "multiModel": False, "multiNode": True, "disabled": True}}


def test_the_facts_script_refuses_a_value_the_chart_does_not_have():
    import pytest
    script = upstream_facts_script()
    with pytest.raises(SystemExit, match=r"\.Values\.kserve\.servingruntime\.demo\.tag is not in values\.yaml"):
        script.serving_runtimes(RUNTIME_TEMPLATE, {"kserve": {"servingruntime": {
            "modelNamePlaceholder": "x", "demo": {"disabled": False, "image": "kserve/demoserver"}}}})
    conflicting = RUNTIME_TEMPLATE.replace('version: "2"\n      autoSelect: true\n      priority: 2',
                                           'version: "2"\n      autoSelect: true\n      priority: 1')
    with pytest.raises(SystemExit, match="declares demo twice"):
        script.serving_runtimes(conflicting, RUNTIME_VALUES)


def test_the_kserve_chart_runtimes_images_are_the_charts_values():
    """charts/kserve-resources/values.yaml at v0.16.0: the kserve-built runtimes take the chart's version as their
    tag (&defaultVersion); the multi-node Hugging Face runtime appends -gpu; third-party runtimes pin their own."""
    runtimes = upstream_facts("kserve")["clusterServingRuntimes"]
    version = CHARTS["kserve"].version
    assert runtimes["kserve-huggingfaceserver"]["image"] == f"kserve/huggingfaceserver:{version}"
    assert runtimes["kserve-huggingfaceserver-multinode"]["image"] == f"kserve/huggingfaceserver:{version}-gpu"
    assert runtimes["kserve-tritonserver"]["image"] == "nvcr.io/nvidia/tritonserver:23.05-py3"
    from gpuscale.components.kube_values import is_pinned_image
    assert all(is_pinned_image(rt["image"]) for rt in runtimes.values())


def test_kserve_picks_a_runtime_by_format_protocol_and_priority():
    from gpuscale.components.serving_runtimes import runtime_image, selected_runtime
    # One single-node runtime serves huggingface at v1; the multi-node one (priority 2) needs a workerSpec.
    assert selected_runtime("huggingface") == "kserve-huggingfaceserver"
    assert runtime_image("huggingface") == "kserve/huggingfaceserver:v0.16.0"
    # sklearn: mlserver has priority 2 but speaks only v2; gpuscale's models use the default protocol v1.
    assert selected_runtime("sklearn") == "kserve-sklearnserver"
    # tensorflow: TensorFlow Serving (priority 2, v1) over Triton (priority 1, v2 only).
    assert selected_runtime("tensorflow") == "kserve-tensorflow-serving"
    # onnx: only Triton declares it, and Triton speaks no v1: no runtime, no image.
    assert selected_runtime("onnx") is None and runtime_image("onnx") is None
    # triton: KServe's defaulter (setPredictorModelDefaults) gives the format protocol v2, which Triton speaks.
    assert selected_runtime("triton") == "kserve-tritonserver"
    assert runtime_image("triton") == "nvcr.io/nvidia/tritonserver:23.05-py3"
    # tensorrt and mlflow keep v1: no runtime serving them speaks it.
    assert selected_runtime("tensorrt") is selected_runtime("mlflow") is None
    assert runtime_image("pytorch") == "pytorch/torchserve-kfs:0.9.0"
    assert selected_runtime("no-such-format") is None
    # A named runtime: the chart's, declaring the format (even without autoSelect), or unknown.
    assert runtime_image("pytorch", "kserve-tritonserver") == "nvcr.io/nvidia/tritonserver:23.05-py3"
    assert runtime_image("huggingface", "kserve-tritonserver") is None
    assert runtime_image("huggingface", "my-own-runtime") is None


def test_a_tie_at_the_top_priority_leaves_the_runtime_unknown(monkeypatch):
    """KServe orders tied runtimes by creation time, which a plan cannot know."""
    from gpuscale.components import serving_runtimes
    runtime = {"image": "a/b:1", "modelFormats": {"x": {"autoSelect": True, "priority": 1}}, "protocolVersions": [],
               "multiModel": False, "multiNode": False, "disabled": False}
    monkeypatch.setattr(serving_runtimes, "chart_runtimes", lambda: {
        "one": runtime, "two": {**runtime, "image": "c/d:1"},
        "three": {**runtime, "modelFormats": {"x": {"autoSelect": True, "priority": None}}}})
    assert serving_runtimes.selected_runtime("x") is None
    monkeypatch.setattr(serving_runtimes, "chart_runtimes", lambda: {
        "one": runtime, "three": {**runtime, "modelFormats": {"x": {"autoSelect": True, "priority": None}}},
        "off": {**runtime, "disabled": True, "modelFormats": {"x": {"autoSelect": True, "priority": 9}}}})
    assert serving_runtimes.selected_runtime("x") == "one"
