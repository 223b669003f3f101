"""Other languages: the package schema Pulumi's Python component provider host would publish for gpuscale (generated
here by the host's own analyzer, without the Pulumi CLI), its types, descriptions and required fields, the plugin
files `pulumi package add` reads, and a component constructed through the provider the way a YAML or TypeScript
program's registration reaches it (camelCase inputs, plain objects for nested Args)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from importlib.metadata import version as installed
from pathlib import Path

import pulumi
import pytest
import yaml
from pulumi.provider.experimental.util import camel_case
from typing_extensions import is_typeddict

import gpuscale.components
from gpuscale.components import _docs
from gpuscale.config.args import admits_none
from gpuscale.provider import PACKAGE, PYTHON_ONLY, components, provider, schema, version

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = schema()


def _flat(text: str) -> str:
    return " ".join(text.split())


def _type(token_name: str) -> dict:
    return SCHEMA["types"][f"gpuscale:index:{token_name}"]


def test_every_public_component_is_in_the_package_under_its_own_type_token():
    public = set()
    for module in pkgutil.iter_modules(gpuscale.components.__path__):
        if module.name.startswith("_") or module.name in PYTHON_ONLY:
            continue
        mod = importlib.import_module(f"gpuscale.components.{module.name}")
        public |= {v for v in vars(mod).values() if inspect.isclass(v)
                   and issubclass(v, pulumi.ComponentResource) and v.__module__ == mod.__name__}
    assert set(components()) == public
    assert SCHEMA["name"] == PACKAGE and SCHEMA["version"] == version()
    assert set(SCHEMA["resources"]) == {f"gpuscale:index:{c.__name__}" for c in public}
    for component in public:
        # The engine constructs the token the schema names; the component must register that same token.
        assert f'"gpuscale:index:{component.__name__}"' in inspect.getsource(component.__init__), component


@pytest.mark.parametrize("component", components(), ids=lambda c: c.__name__)
def test_inputs_are_the_args_with_their_docstrings_and_required_keys(component):
    resource = SCHEMA["resources"][f"gpuscale:index:{component.__name__}"]
    assert resource["isComponent"] is True
    assert _flat(resource["description"]) == _flat(component.__dict__["__doc__"]), "what it builds"
    args_type = inspect.get_annotations(component.__init__)["args"]
    fields = _docs.fields(args_type)
    assert set(resource["inputProperties"]) == {camel_case(f.name) for f in fields}
    assert sorted(resource.get("requiredInputs", [])) == sorted(camel_case(k) for k in published_required(args_type))
    for f in fields:
        prop = resource["inputProperties"][camel_case(f.name)]
        assert f.doc and _flat(prop["description"]) == _flat(f.doc), f"{component.__name__}.{f.name}"


@pytest.mark.parametrize("component", components(), ids=lambda c: c.__name__)
def test_outputs_are_documented_and_required_unless_optional(component):
    resource = SCHEMA["resources"][f"gpuscale:index:{component.__name__}"]
    outputs = _docs.outputs(component)
    assert set(resource["properties"]) == {camel_case(o.name) for o in outputs}
    optional = {o.name for o in outputs if "None" in o.annotation}
    assert sorted(resource.get("required", [])) == sorted(camel_case(o.name) for o in outputs
                                                          if o.name not in optional)
    for o in outputs:
        assert o.doc and _flat(resource["properties"][camel_case(o.name)]["description"]) == _flat(o.doc), o.name


def published_required(t: type) -> set[str]:
    """The fields the schema requires: the Args' required keys, less those whose type takes None (a schema has no
    "required but may be null": the host publishes them as optional, and the component reads absent as None)."""
    if not is_typeddict(t):
        return {f.name for f in _docs.fields(t) if f.required}
    hints = inspect.get_annotations(t, eval_str=True)
    return {k for k in t.__required_keys__ if not admits_none(hints[k])}


def test_nested_args_are_types_with_their_own_required_fields():
    nested = {t for c in components() for t in _docs.args_types(inspect.get_annotations(c.__init__)["args"])[1:]}
    assert {f"gpuscale:index:{t.__name__}" for t in nested} == set(SCHEMA["types"])
    for t in nested:
        spec = _type(t.__name__)
        assert spec["type"] == "object"
        required = published_required(t)
        assert sorted(spec.get("required", [])) == sorted(camel_case(k) for k in required), t.__name__
        for f in _docs.fields(t):
            assert _flat(spec["properties"][camel_case(f.name)]["description"]) == _flat(f.doc), f"{t}.{f.name}"


def test_property_types_follow_the_annotations():
    group = SCHEMA["resources"]["gpuscale:index:GpuNodeGroup"]["inputProperties"]
    # pulumi.Input[...] may be an output of another resource; plain values are read when the component is built.
    assert group["subnetIds"]["type"] == "array" and group["subnetIds"]["items"]["type"] == "string"
    assert "plain" not in group["subnetIds"] and "plain" not in group["clusterName"]
    assert group["minSize"] == {**group["minSize"], "type": "integer", "plain": True}
    assert group["instanceTypes"]["plain"] is True and group["instanceTypes"]["items"]["type"] == "string"
    assert group["labels"]["type"] == "object" and group["labels"]["additionalProperties"]["type"] == "string"
    fleet = SCHEMA["resources"]["gpuscale:index:GpuAutoScalingGroup"]["inputProperties"]
    assert fleet["warmPool"]["$ref"] == "#/types/gpuscale:index:WarmPoolArgs"
    assert fleet["agent"]["$ref"] == "#/types/gpuscale:index:AgentSettings"
    assert _type("AgentSettings")["properties"]["sampleIntervalSeconds"]["type"] == "number"
    scaling = SCHEMA["resources"]["gpuscale:index:GpuScalingPolicies"]
    assert scaling["inputProperties"]["target"]["$ref"] == "#/types/gpuscale:index:TargetTrackingArgs"
    assert _type("TargetTrackingArgs")["required"] == ["targetGpuUtilization"]
    assert _type("BurstArgs")["properties"]["steps"]["items"]["$ref"] == "#/types/gpuscale:index:BurstStepArgs"
    assert scaling["properties"]["alarmArns"]["type"] == "array"


def test_the_plugin_directory_is_what_pulumi_package_add_reads():
    pulumi_version = installed("pulumi")
    plugin = ROOT / "provider"
    manifest = yaml.safe_load((plugin / "PulumiPlugin.yaml").read_text())
    assert manifest == {"runtime": "python"}, "the pip toolchain and ./venv: no other runtime options"
    assert "from gpuscale.provider import main" in (plugin / "__main__.py").read_text()
    requirements = [line for line in (plugin / "requirements.txt").read_text().splitlines()
                    if line and not line.startswith("#")]
    assert requirements[0] == ".." and (plugin / ".." / "pyproject.toml").resolve() == ROOT / "pyproject.toml"
    pinned = re.fullmatch(r"pulumi>=(\d+)\.(\d+),<4", requirements[1])
    assert pinned and tuple(map(int, pinned.groups())) <= tuple(map(int, pulumi_version.split(".")[:2])), \
        "the plugin asks for a pulumi no newer than the one these tests ran"


def test_a_component_constructed_through_the_provider_as_another_language_declares_it(harness):
    """Inputs as the engine hands them to the provider: camelCase names, nested Args as plain objects."""
    host = provider()
    inputs = {"vpcId": "vpc-0123456789abcdef0", "subnetIds": ["subnet-0123456789abcdef0"],
              "instanceTypes": ["g6.xlarge"], "minSize": 0, "maxSize": 2, "region": "us-west-2",
              "agentBucketArn": "arn:aws:s3:::agent", "agentBucketName": "agent",
              "agentObjectKey": "gpu-metrics-agent/0123456789abcdef.zip",
              "agent": {"prometheusPort": 9500}, "warmPool": {"poolState": "Stopped"},
              "metricsIngressCidrs": ["10.0.0.0/16"]}
    result = harness.run(lambda: host.construct("their-fleet", "gpuscale:index:GpuAutoScalingGroup", inputs))
    assert set(result.state) == {"asgName", "asgArn", "launchTemplateId", "instanceRoleName", "instanceRoleArn",
                                 "securityGroupId"}
    harness.one("gpuscale:index:GpuAutoScalingGroup", "their-fleet")
    warm = harness.one("aws:autoscaling/group:Group").inputs["warmPool"]
    assert warm["poolState"] == "Stopped"
    (ingress,) = harness.one("aws:ec2/securityGroup:SecurityGroup").inputs["ingress"]
    assert ingress["fromPort"] == 9500, "the agent's port, from a plain object, reached the component as AgentSettings"


def readme_yaml_program() -> dict:
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    (program,) = [yaml.safe_load(b) for b in blocks if "runtime: yaml" in b]
    return program


def _check_object(value: dict, spec: dict, where: str) -> None:
    """Property names, required ones and nested object types of `value` against a schema object spec."""
    props = spec.get("inputProperties", spec.get("properties", {}))
    required = spec.get("requiredInputs", spec.get("required", []))
    assert set(value) <= set(props), f"{where}: unknown {sorted(set(value) - set(props))}"
    assert set(required) <= set(value), f"{where}: missing {sorted(set(required) - set(value))}"
    for key, item in value.items():
        ref = props[key].get("$ref", "")
        if isinstance(item, dict) and ref.startswith("#/types/"):
            _check_object(item, SCHEMA["types"][ref[len("#/types/"):]], f"{where}.{key}")


def test_the_readme_yaml_program_uses_the_schema_as_published():
    program = readme_yaml_program()
    assert program["runtime"] == "yaml"
    declared = {name: r["type"] for name, r in program["resources"].items()}
    for name, resource in program["resources"].items():
        spec = SCHEMA["resources"][resource["type"]]
        _check_object(resource.get("properties") or {}, spec, name)
    # Every ${resource.output} names a declared resource and an output of its type.
    text = yaml.safe_dump(program)
    for ref_name, output in re.findall(r"\$\{(\w[\w-]*)\.(\w+)\}", text):
        assert output in SCHEMA["resources"][declared[ref_name]]["properties"], f"{ref_name}.{output}"


def test_args_type_names_are_unique_across_the_package():
    """The host names a type, and finds its fields' docstrings, by the class name alone: two Args classes of one name
    (the Keda component's KedaArgs and ModelService's KEDA settings, once) would share one entry."""
    every = [t for c in components() for t in _docs.args_types(inspect.get_annotations(c.__init__)["args"])]
    names = [t.__name__ for t in dict.fromkeys(every)]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_the_serving_components_are_served_with_typed_scaling_objects():
    """ModelService's scaling is one optional object per mode (the host has no unions), each a typed object type."""
    service = SCHEMA["resources"]["gpuscale:index:ModelService"]["inputProperties"]
    assert {service[m]["$ref"] for m in ("kpa", "hpa", "keda")} == {
        "#/types/gpuscale:index:KpaArgs", "#/types/gpuscale:index:HpaArgs", "#/types/gpuscale:index:KedaScalingArgs"}
    assert service["scalingMode"]["type"] == "string" and "scaling" not in service
    assert {"kpa", "hpa", "keda"}.isdisjoint(SCHEMA["resources"]["gpuscale:index:ModelService"]["requiredInputs"])
    keda = _type("KedaScalingArgs")["properties"]
    assert keda["wake"]["$ref"] == "#/types/gpuscale:index:WakeArgs"
    assert keda["behavior"]["$ref"] == "#/types/gpuscale:index:BehaviorArgs"
    assert _type("WakeArgs")["required"] == ["activation", "kind", "perReplica"]
    assert _type("KpaArgs")["required"] == ["metric"], "the rest may be left out: None, Knative's cluster value"
    for token in ("CertManager", "KnativeServing", "KServe", "Keda", "ModelService", "ModelBucket"):
        assert f"gpuscale:index:{token}" in SCHEMA["resources"], token
    assert SCHEMA["resources"]["gpuscale:index:ModelBucket"]["requiredInputs"] == ["bucketName"]


def test_a_model_service_constructed_as_another_language_leaves_out_what_python_writes_as_none(harness):
    host = provider()
    inputs = {"name": "chat", "namespace": "gpuscale-serving", "servingMode": "standard",
              "model": {"storageUri": "s3://gpuscale-test-models/chat", "format": "huggingface"},
              "gpus": 1, "cpu": "2", "memory": "12Gi", "minReplicas": 0, "maxReplicas": 4,
              "requestTimeoutSeconds": 600, "progressDeadlineSeconds": 600, "concurrency": 4,
              "nodeSelector": {"gpuscale.io/gpu-class": "l4"}, "scalingMode": "keda",
              "keda": {"wake": {"kind": "sqs", "perReplica": 8, "activation": 0,
                                "queueUrl": "https://sqs.us-west-2.amazonaws.com/123456789012/jobs"},
                       "pollingIntervalSeconds": 10, "cooldownPeriodSeconds": 120},
              "metrics": {"kind": "cloudwatch", "region": "us-west-2", "asgName": "eks-l4"},
              "oidcProviderArn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/X",
              "oidcIssuerUrl": "https://oidc.eks.us-west-2.amazonaws.com/id/X"}
    result = harness.run(lambda: host.construct("chat", "gpuscale:index:ModelService", inputs))
    assert "inferenceServiceName" in result.state
    scaler = harness.one("kubernetes:keda.sh/v1alpha1:ScaledObject").inputs["spec"]
    assert [t["type"] for t in scaler["triggers"]] == ["aws-sqs-queue"], "gpuUtilization left out: None"
    assert "advanced" not in scaler, "behavior left out: the API's defaults"
    predictor = harness.one("kubernetes:serving.kserve.io/v1beta1:InferenceService").inputs["spec"]["predictor"]
    assert predictor["model"]["storageUri"] == "s3://gpuscale-test-models/chat" and "runtime" not in predictor["model"]


CACHE_INPUTS = {
    "nodeGroups": [{"name": "l4-ondemand", "nodeSelector": {"gpuscale.io/gpu-class": "l4"}, "storageLimit": "40Gi"}],
    "models": [{"name": "chat", "storageUri": "s3://gpuscale-test-models/chat", "modelSize": "16Gi",
                "nodeGroups": ["l4-ondemand"]}],
    "oidcProviderArn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/X",
    "oidcIssuerUrl": "https://oidc.eks.us-west-2.amazonaws.com/id/X"}


def test_the_local_model_cache_is_served_with_typed_node_group_and_model_objects():
    cache = SCHEMA["resources"]["gpuscale:index:LocalModelCache"]
    assert sorted(cache["requiredInputs"]) == ["models", "nodeGroups", "oidcIssuerUrl", "oidcProviderArn"]
    assert cache["inputProperties"]["nodeGroups"]["items"]["$ref"] == "#/types/gpuscale:index:CacheNodeGroupArgs"
    assert cache["inputProperties"]["models"]["items"]["$ref"] == "#/types/gpuscale:index:CachedModelArgs"
    assert "plain" not in cache["inputProperties"]["oidcProviderArn"], "the cluster's output, passed as it is"
    assert _type("CacheNodeGroupArgs")["required"] == ["name", "nodeSelector", "storageLimit"]
    assert _type("CachedModelArgs")["properties"]["nodeGroups"]["items"]["type"] == "string"
    assert cache["properties"]["roleArn"]["type"] == "string" and cache["required"] == ["roleArn"]


def test_a_local_model_cache_constructed_as_another_language_declares_it(harness):
    host = provider()
    result = harness.run(lambda: host.construct("cache", "gpuscale:index:LocalModelCache", CACHE_INPUTS))
    assert set(result.state) == {"roleArn"}
    group = harness.one("kubernetes:serving.kserve.io/v1alpha1:LocalModelNodeGroup").inputs
    assert group["metadata"]["name"] == "l4-ondemand" and group["spec"]["storageLimit"] == "40Gi"
    term = group["spec"]["persistentVolumeSpec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]
    assert term["matchExpressions"] == [{"key": "gpuscale.io/gpu-class", "operator": "In", "values": ["l4"]}]
    model = harness.one("kubernetes:serving.kserve.io/v1alpha1:LocalModelCache").inputs["spec"]
    assert model == {"sourceModelUri": "s3://gpuscale-test-models/chat", "modelSize": "16Gi",
                     "nodeGroups": ["l4-ondemand"]}
    harness.one("kubernetes:core/v1:ServiceAccountPatch")


def test_a_local_model_cache_from_another_language_is_refused_by_its_field_names(harness):
    host = provider()
    bad = {**CACHE_INPUTS, "models": [{**CACHE_INPUTS["models"][0], "nodeGroups": ["h100"]}]}
    # The host wraps the component's ValueError (ComponentInitError), keeping its message: key, value, what is allowed.
    with pytest.raises(Exception, match=r"^models\[0\]\.node_groups \(LocalModelCache \"cache\", model \"chat\"\): "
                                        r"\['h100'\] is not allowed; allowed: names of node_groups \(l4-ondemand\)$"):
        harness.run(lambda: host.construct("cache", "gpuscale:index:LocalModelCache", bad))
    assert [r.type for r in harness.resources if r.type != "pulumi:pulumi:Stack"] == [], "nothing declared"
