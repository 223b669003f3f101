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
from gpuscale.provider import NOT_YET_EXPOSED, PACKAGE, PYTHON_ONLY, components, provider, schema, version

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = schema()


def _flat(text: str) -> str:
    return " ".join(text.split())


def _type(token_name: str) -> dict:
    return SCHEMA["types"][f"gpuscale:index:{token_name}"]


def test_every_public_component_is_in_the_package_under_its_own_type_token():
    public = set()
    for module in pkgutil.iter_modules(gpuscale.components.__path__):
        if module.name.startswith("_") or module.name in NOT_YET_EXPOSED + PYTHON_ONLY:
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
    assert sorted(resource.get("requiredInputs", [])) == sorted(camel_case(k) for k in args_type.__required_keys__)
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


def test_nested_args_are_types_with_their_own_required_fields():
    nested = {t for c in components() for t in _docs.args_types(inspect.get_annotations(c.__init__)["args"])[1:]}
    assert {f"gpuscale:index:{t.__name__}" for t in nested} == set(SCHEMA["types"])
    for t in nested:
        spec = _type(t.__name__)
        assert spec["type"] == "object"
        required = t.__required_keys__ if is_typeddict(t) else {f.name for f in _docs.fields(t) if f.required}
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
