"""The serving layer in both stacks' offline plans: every InferenceService, ScaledObject, TriggerAuthentication and
KnativeServing valid against its CRD at the pinned version, every annotation, config key and scaler metadata key one
the pinned upstream reads, core objects valid against the Kubernetes schema, Helm values against the charts' values,
and each service's objects tied to its node group, queue and model as configured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from crd_support import validate_custom_resource
from kube_support import subtree, unknown_chart_values, validate_object

from gpuscale.components.charts import CHARTS, KNATIVE_SERVING_VERSION, upstream_facts
from gpuscale.components.labels import GPU_RESOURCE, GPU_TAINT_VALUE
from gpuscale.components.serving_runtimes import selected_runtime
from gpuscale.config import read_stack_values, stack_file_path
from gpuscale.plan.model import Plan, PlannedResource

ROOT = Path(__file__).resolve().parents[2]
STACKS = ("dev", "prod")
ISVC = "kubernetes:serving.kserve.io/v1beta1:InferenceService"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
TRIGGER_AUTH = "kubernetes:keda.sh/v1alpha1:TriggerAuthentication"
KNATIVE_SERVING = "kubernetes:operator.knative.dev/v1beta1:KnativeServing"
RELEASE = "kubernetes:helm.sh/v3:Release"
SERVING_COMPONENTS = ("gpuscale:index:CertManager", "gpuscale:index:KnativeServing", "gpuscale:index:Keda",
                      "gpuscale:index:KServe", "gpuscale:index:ModelService", "gpuscale:index:LocalModelCache")
CHART_FACTS = {"cert-manager": ("cert_manager", None), "knative-operator": ("knative_operator", None),
               "keda": ("keda_chart", None), "kserve": ("kserve", "kserve"), "kserve-crd": ("kserve", "kserve-crd")}


def stack_config(stack: str) -> dict:
    return read_stack_values(stack_file_path(ROOT, stack))


def services(stack: str) -> list[dict]:
    return stack_config(stack)["gpuscale:services"]


def serving_resources(plan: Plan) -> list[PlannedResource]:
    """Every resource below the serving components."""
    return [r for root in plan.resources if root.type in SERVING_COMPONENTS for r in subtree(plan, root)]


def of_type(plan: Plan, token: str) -> list[dict]:
    return [r.inputs for r in plan.resources if r.type == token]


def service_objects(plan: Plan, name: str) -> dict[str, dict]:
    """The Kubernetes objects of one ModelService, by kind."""
    [root] = [r for r in plan.resources if r.type == "gpuscale:index:ModelService" and r.name == name]
    return {r.inputs["kind"]: r.inputs for r in subtree(plan, root) if r.type.startswith("kubernetes:")}


@pytest.mark.parametrize("stack", STACKS)
def test_every_custom_resource_is_valid_against_its_crd_at_the_pinned_version(stack_plans, stack):
    kinds = []
    for r in serving_resources(stack_plans[stack]):
        if r.type.startswith("kubernetes:") and r.type not in (RELEASE,) and "/v1:" not in r.type:
            validate_custom_resource(r.inputs)
            kinds.append(r.inputs["kind"])
    mode = stack_config(stack)["gpuscale:kubernetes"]["serving"]["mode"]
    expected = ["InferenceService"] * len(services(stack))
    if mode == "knative":
        expected.append("KnativeServing")
    else:
        expected += ["ScaledObject", "TriggerAuthentication"] * len(services(stack))
    cached = [s for s in services(stack) if s.get("modelCache")]
    if cached:  # KServe's local model cache (docs/cold-starts.md): one per model URI, one per cached group
        expected += ["LocalModelCache"] * len({s["model"]["storageUri"] for s in cached})
        expected += ["LocalModelNodeGroup"] * len({s["nodeGroup"] for s in cached})
    assert sorted(kinds) == sorted(expected)


@pytest.mark.parametrize("stack", STACKS)
def test_core_objects_are_valid_at_the_stacks_kubernetes_version(stack_plans, stack):
    version = stack_config(stack)["gpuscale:cluster"]["kubernetesVersion"]
    kinds = []
    for r in serving_resources(stack_plans[stack]):
        if r.type.startswith("kubernetes:core/v1:"):
            validate_object(r.inputs, version)
            kinds.append(r.inputs["kind"])
    namespaces = 2 if stack_config(stack)["gpuscale:kubernetes"]["serving"]["mode"] == "knative" else 1
    # One more ServiceAccount (a patch) with a model cache: the download Jobs' role annotation.
    accounts = len(services(stack)) + (1 if any(s.get("modelCache") for s in services(stack)) else 0)
    assert sorted(kinds) == sorted(["Namespace"] * namespaces + ["ServiceAccount"] * accounts)


@pytest.mark.parametrize("stack", STACKS)
def test_every_release_is_a_pinned_chart_with_values_the_chart_has(stack_plans, stack):
    releases = {r.inputs["name"]: r.inputs for r in serving_resources(stack_plans[stack]) if r.type == RELEASE}
    mode = stack_config(stack)["gpuscale:kubernetes"]["serving"]["mode"]
    expected = {"cert-manager", "kserve", "kserve-crd"} | ({"knative-operator"} if mode == "knative" else {"keda"})
    assert set(releases) == expected
    for name, release in releases.items():
        chart = CHARTS[name]
        reference = f"{chart.repo}/{chart.name}" if chart.oci else chart.name
        assert (release["chart"], release["version"]) == (reference, chart.version), name
        facts_name, sub = CHART_FACTS[name]
        assert unknown_chart_values(release.get("values", {}), facts_name, sub) == [], name


def test_chart_value_check_catches_a_misspelt_key():
    assert unknown_chart_values({"kserve": {"controller": {"deploymentMod": "Standard"}}}, "kserve", "kserve") == \
        ["kserve.controller.deploymentMod"]
    assert unknown_chart_values({"podIdentity": {"aws": {"irsa": {"role": "x"}}}}, "keda_chart") == \
        ["podIdentity.aws.irsa.role"]


@pytest.mark.parametrize("stack", STACKS)
def test_inference_service_annotations_are_ones_kserve_and_knative_read(stack_plans, stack):
    kserve, knative = upstream_facts("kserve"), upstream_facts("knative_serving")
    knative_keys = set(knative["autoscalingAnnotations"].values()) | set(knative["servingAnnotations"].values())
    for isvc in of_type(stack_plans[stack], ISVC):
        annotations = isvc["metadata"]["annotations"]
        assert annotations[kserve["annotations"]["deploymentMode"]] in kserve["deploymentModes"].values()
        for key, value in annotations.items():
            if key.startswith("serving.kserve.io/"):
                assert key in (kserve["annotations"]["deploymentMode"], kserve["annotations"]["autoscalerClass"],
                               kserve["annotations"]["nodeGroup"]), key
            else:
                assert key in knative_keys, f"{isvc['metadata']['name']}: {key} is not a Knative annotation"
        if annotations[kserve["annotations"]["deploymentMode"]] == "Standard":
            assert annotations[kserve["annotations"]["autoscalerClass"]] in kserve["standardAutoscalerClasses"]
        else:
            assert annotations["autoscaling.knative.dev/class"] in knative["autoscalingClasses"].values()
            assert annotations["autoscaling.knative.dev/metric"] in knative["autoscalingMetrics"].values()


@pytest.mark.parametrize("stack", STACKS)
def test_each_model_is_served_by_a_runtime_the_kserve_chart_installs(stack_plans, stack):
    runtimes = upstream_facts("kserve")["clusterServingRuntimes"]
    for isvc in of_type(stack_plans[stack], ISVC):
        model = isvc["spec"]["predictor"]["model"]
        served_by = [name for name, rt in runtimes.items() if model["modelFormat"]["name"] in rt["modelFormats"]]
        assert served_by, f"no runtime of KServe {CHARTS['kserve'].version} serves {model['modelFormat']['name']}"
        assert model.get("runtime", served_by[0]) in served_by
        # The one KServe picks is known, and so is its image (what GPU headroom pre-pulls).
        assert selected_runtime(model["modelFormat"]["name"], model.get("runtime")) in served_by


@pytest.mark.parametrize("stack", STACKS)
def test_scaled_object_triggers_use_only_metadata_keys_their_scaler_parses(stack_plans, stack):
    scalers = upstream_facts("keda")["scalerMetadata"]
    found = 0
    for so in of_type(stack_plans[stack], SCALED_OBJECT):
        for trigger in so["spec"]["triggers"]:
            keys = scalers[trigger["type"]]
            assert set(trigger["metadata"]) <= set(keys), set(trigger["metadata"]) - set(keys)
            required = {k for k, v in keys.items() if v == "required"}
            assert required <= set(trigger["metadata"]), required - set(trigger["metadata"])
            assert trigger["metricType"] in ("Value", "AverageValue")
            found += 1
    assert found == (0 if stack == "dev" else 2)


def test_knative_serving_sets_only_keys_of_the_pinned_release(stack_plans):
    [ks] = of_type(stack_plans["dev"], KNATIVE_SERVING)
    operator, serving = upstream_facts("knative_operator"), upstream_facts("knative_serving")
    assert ks["spec"]["version"] == KNATIVE_SERVING_VERSION in operator["servingVersions"]
    known = {"autoscaler": serving["configAutoscaler"], "defaults": serving["configDefaults"],
             "features": serving["configFeatures"], "network": operator["configNetwork"]}
    for config_map, values in ks["spec"]["config"].items():
        assert set(values) <= set(known[config_map]), (config_map, set(values) - set(known[config_map]))
    # The stack's Knative settings reach config-autoscaler (dev: upstream's defaults).
    autoscaler = ks["spec"]["config"]["autoscaler"]
    assert autoscaler["stable-window"] == serving["configAutoscaler"]["stable-window"]
    assert float(autoscaler["max-scale-down-rate"]) == float(serving["configAutoscaler"]["max-scale-down-rate"])
    # dev's chat waits out a cold start: its 900 s timeout needs the revision timeout ceiling raised.
    timeout = services("dev")[0]["requestTimeoutSeconds"]
    assert int(ks["spec"]["config"]["defaults"]["max-revision-timeout-seconds"]) >= timeout > 600
    assert ks["spec"]["ingress"] == {"kourier": {"enabled": True, "service-type": "ClusterIP"}}, "no public LB"
    assert ks["spec"]["config"]["features"] == {"kubernetes.podspec-nodeselector": "enabled",
                                                "kubernetes.podspec-tolerations": "enabled"}


def test_dev_chat_carries_its_kpa_settings_as_annotations(stack_plans):
    isvc = service_objects(stack_plans["dev"], "chat")["InferenceService"]
    cfg = services("dev")[0]
    a, predictor = isvc["metadata"]["annotations"], isvc["spec"]["predictor"]
    kpa = cfg["scaling"]["kpa"]
    assert a["autoscaling.knative.dev/metric"] == kpa["metric"]
    assert float(a["autoscaling.knative.dev/target-utilization-percentage"]) == kpa["targetUtilizationPercentage"]
    assert a["autoscaling.knative.dev/scale-to-zero-pod-retention-period"] == f"{kpa['scaleToZeroRetentionSeconds']}s"
    assert a["serving.knative.dev/progress-deadline"] == f"{cfg['progressDeadlineSeconds']}s"
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (cfg["minReplicas"], cfg["maxReplicas"])
    assert predictor["containerConcurrency"] == cfg["workload"]["concurrencyPerReplica"]
    assert predictor["timeout"] == cfg["requestTimeoutSeconds"]


@pytest.mark.parametrize("stack", STACKS)
def test_pods_go_to_their_node_group_only_and_tolerate_exactly_its_taint(stack_plans, stack):
    groups = {r.name.removesuffix("-ng"): r.inputs for r in stack_plans[stack].resources
              if r.type == "aws:eks/nodeGroup:NodeGroup"}
    for cfg in services(stack):
        predictor = service_objects(stack_plans[stack], cfg["name"])["InferenceService"]["spec"]["predictor"]
        group = groups[cfg["nodeGroup"]]
        selected = [name for name, g in groups.items() if predictor["nodeSelector"].items() <= g["labels"].items()]
        assert selected == [cfg["nodeGroup"]], f"{cfg['name']} selects {selected}"
        assert predictor["tolerations"] == [{"key": GPU_RESOURCE, "operator": "Equal", "value": GPU_TAINT_VALUE,
                                             "effect": "NoSchedule"}]
        assert {"key": GPU_RESOURCE, "value": GPU_TAINT_VALUE, "effect": "NO_SCHEDULE"} in group["taints"]
        resources = predictor["model"]["resources"]
        assert resources["requests"][GPU_RESOURCE] == resources["limits"][GPU_RESOURCE] == str(cfg.get("gpus", 1))


@pytest.mark.parametrize("stack", STACKS)
def test_s3_models_are_read_with_the_services_own_role(stack_plans, stack):
    plan = stack_plans[stack]
    for cfg in services(stack):
        objects = service_objects(plan, cfg["name"])
        account = objects["ServiceAccount"]
        assert objects["InferenceService"]["spec"]["predictor"]["serviceAccountName"] == account["metadata"]["name"]
        assert "eks.amazonaws.com/role-arn" in account["metadata"]["annotations"]
        assert account["metadata"]["annotations"]["serving.kserve.io/s3-region"] == stack_config(stack)["aws:region"]
        [policy] = [r.inputs for r in plan.resources if r.type == "aws:iam/rolePolicy:RolePolicy"
                    and r.name == f"{cfg['name']}-irsa-policy"]
        bucket, _, prefix = cfg["model"]["storageUri"].removeprefix("s3://").partition("/")
        statements = json.loads(policy["policy"])["Statement"]
        assert statements[0] == {"Effect": "Allow", "Action": ["s3:GetObject"],
                                 "Resource": f"arn:aws:s3:::{bucket}/{prefix}/*"}
        assert statements[1]["Condition"] == {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}}
        [role] = [r.inputs for r in plan.resources if r.type == "aws:iam/role:Role"
                  and r.name == f"{cfg['name']}-irsa-role"]
        trust = json.loads(role["assumeRolePolicy"])["Statement"][0]["Condition"]["StringEquals"]
        assert f"system:serviceaccount:gpuscale-serving:{account['metadata']['name']}" in trust.values()


def test_prod_triggers_read_the_group_and_the_queue_the_config_names(stack_plans):
    plan = stack_plans["prod"]
    cfg = {s["name"]: s for s in services("prod")}
    chat = service_objects(plan, "chat")["ScaledObject"]["spec"]
    [gpu] = chat["triggers"]
    assert gpu["type"] == "aws-cloudwatch" and gpu["metadata"]["metricName"] == "NodeGpuUtilization"
    assert gpu["metadata"]["dimensionName"] == "AutoScalingGroupName"
    assert float(gpu["metadata"]["targetMetricValue"]) == cfg["chat"]["scaling"]["keda"]["gpuUtilization"]["target"]
    assert gpu["metricType"] == "Value", "a mean utilisation: ratio x replicas, not total / replicas"
    assert chat["minReplicaCount"] == 1 and chat["scaleTargetRef"]["name"] == "chat-predictor"
    batch = service_objects(plan, "batch")["ScaledObject"]["spec"]
    [queue] = batch["triggers"]
    wake = cfg["batch"]["scaling"]["keda"]["wake"]
    assert queue["type"] == "aws-sqs-queue" and queue["metadata"]["queueURL"].endswith("/" + wake["queueName"])
    assert queue["metadata"]["queueLength"] == str(wake["perReplica"]) and queue["metricType"] == "AverageValue"
    assert batch["minReplicaCount"] == 0 and batch["cooldownPeriod"] == cfg["batch"]["scaling"]["keda"][
        "cooldownPeriodSeconds"]
    [keda_policy] = [r.inputs for r in plan.resources if r.type == "aws:iam/rolePolicy:RolePolicy"
                     and r.name == "keda-irsa-policy"]
    statements = json.loads(keda_policy["policy"])["Statement"]
    assert statements[0]["Action"] == ["cloudwatch:GetMetricData"]
    assert statements[1]["Action"] == ["sqs:GetQueueAttributes"]
    assert [arn.rsplit(":", 1)[1] for arn in statements[1]["Resource"]] == [wake["queueName"]]
    # The queue the trigger reads is the one the stack creates (gpuscale:queues).
    assert wake["queueName"] in [r.inputs.get("name") for r in plan.resources if r.type == "aws:sqs/queue:Queue"]


def test_the_gpu_trigger_reads_its_own_node_groups_asg(stack_plans):
    plan = stack_plans["prod"]
    chat = service_objects(plan, "chat")["ScaledObject"]["spec"]
    group = [r for r in plan.resources if r.type == "aws:eks/nodeGroup:NodeGroup" and r.name == "l4-ondemand-ng"]
    assert group, "prod's chat runs on l4-ondemand"
    asg_tags = [r.inputs for r in plan.resources if r.type == "aws:autoscaling/tag:Tag"
                and r.parent == group[0].parent]
    asg_names = {t["autoscalingGroupName"] for t in asg_tags}
    assert chat["triggers"][0]["metadata"]["dimensionValue"] in asg_names
