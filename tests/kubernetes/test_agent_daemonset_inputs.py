"""The agent's DaemonSet and image components by their inputs: each bad argument refused with its name before anything
is declared, the image from config instead of a build, the ServiceMonitor only on request and valid against the
pinned CRD, the ECR credentials the build pushes with, and the recorded CRD facts themselves."""

from __future__ import annotations

import copy
import importlib.metadata
import re
import sys
from pathlib import Path

import jsonschema
import pytest
from pulumi.runtime import rpc
from crd_support import validate_service_monitor
from kube_support import validate_object

from gpuscale.components.agent_bundle import content_hash
from gpuscale.components.agent_daemonset import AgentDaemonSet, AgentDaemonSetArgs, check_args, service_monitor_spec
from gpuscale.components.agent_image import AgentImage, AgentImageArgs
from gpuscale.components.charts import DOCKER_BUILD_PROVIDER_VERSION, PROMETHEUS_OPERATOR_VERSION, upstream_facts
from gpuscale.config.kubernetes import AgentDaemonSetConfig, ResourceRequests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "components"))
from components_harness import Harness, stack_values  # noqa: E402  (the component tests' harness)

MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
GIVEN = "123456789012.dkr.ecr.us-west-2.amazonaws.com/gpu-metrics-agent:0.1.0"


@pytest.fixture(autouse=True)
def in_project_dir(monkeypatch):
    # A Pulumi program runs in its project directory; the image's build context is relative to it.
    monkeypatch.chdir(ROOT)


def good_args() -> AgentDaemonSetArgs:
    return {"image": GIVEN, "region": "us-west-2",
            "node_groups": [{"key": "l4", "node_group_name": "l4-ng", "asg_name": "eks-l4-ng-1",
                             "ami_family": "al2023"}],
            "sample_interval_seconds": 1, "flush_interval_seconds": 10, "prometheus_port": 9410,
            "requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "100m", "memory": "128Mi"},
            "oidc_provider_arn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/X",
            "oidc_issuer_url": "https://oidc.eks.us-west-2.amazonaws.com/id/X"}


BAD_ARGS = [
    ("image", lambda a: a.update(image="registry.example/agent"), "tag or digest"),
    ("image", lambda a: a.update(image="Registry/Agent:1"), "a container image reference"),
    ("node_groups", lambda a: a.update(node_groups=[]), "at least 1"),
    ("node_groups[1].key", lambda a: a["node_groups"].append(dict(a["node_groups"][0])), "unique"),
    ("node_groups[0].key", lambda a: a["node_groups"][0].update(key="L4_spot"), "lowercase"),
    ("node_groups[0].ami_family", lambda a: a["node_groups"][0].update(ami_family="al2"), "al2023, bottlerocket"),
    ("region", lambda a: a.update(region="west"), "AWS region"),
    ("sample_interval_seconds", lambda a: a.update(sample_interval_seconds=0), "[0.1, 60]"),
    ("flush_interval_seconds", lambda a: a.update(sample_interval_seconds=5, flush_interval_seconds=2),
     ">= sample_interval_seconds (5)"),
    ("prometheus_port", lambda a: a.update(prometheus_port=80), "1024, 65535"),
    ("prometheus_port", lambda a: a.update(prometheus_port="9410"), "an integer"),
    ("requests.memory", lambda a: a.update(requests={"cpu": "50m"}), "a value is required here"),
    ("limits", lambda a: a.update(limits={"cpu": "lots", "memory": "1Gi"}), "quantity"),
]


@pytest.mark.parametrize("name, change, allowed", BAD_ARGS, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(BAD_ARGS)])
def test_bad_daemonset_args_are_refused_by_name(name, change, allowed):
    args = good_args()
    change(args)
    with pytest.raises(ValueError, match=rf"^{re.escape(name)}[^(]* \(AgentDaemonSet \"agent\"\): .* is not allowed; "
                                         rf"allowed: .*{re.escape(allowed)}"):
        check_args(args)


def test_bad_args_declare_nothing(harness: Harness):
    args = good_args()
    args["prometheus_port"] = 80
    with pytest.raises(ValueError, match="prometheus_port"):
        harness.run(lambda: AgentDaemonSet("agent", args))
    assert [r.type for r in harness.resources] == ["pulumi:pulumi:Stack"], "nothing declared before the check"
    check_args(good_args())  # the good arguments themselves pass


def good_image_args() -> AgentImageArgs:
    return {"repository_name": "gpuscale-test/gpu-metrics-agent", "architectures": ["x86_64"]}


@pytest.mark.parametrize("name, change, allowed", [
    ("repository_name", lambda a: a.update(repository_name="Gpuscale/Agent"), "ECR repository name"),
    ("repository_name", lambda a: a.update(repository_name="a"), "2-256"),
    ("context_dir", lambda a: a.update(context_dir=str(ROOT / "components")), "with a Dockerfile"),
    ("architectures", lambda a: a.update(architectures=[]), "x86_64, arm64"),
    ("architectures", lambda a: a.update(architectures=["aarch64"]), "x86_64, arm64"),
])
def test_bad_image_args_are_refused_by_name_before_anything(harness: Harness, name, change, allowed):
    args = good_image_args()
    change(args)
    with pytest.raises(ValueError, match=rf"^{name}[^:]*: .* is not allowed; allowed: .*{re.escape(allowed)}"):
        harness.run(lambda: AgentImage("image", args))
    assert [r.type for r in harness.resources] == ["pulumi:pulumi:Stack"], "nothing declared"


@pytest.fixture
def harness() -> Harness:
    return Harness()


def test_image_pushes_with_the_registrys_own_token(harness: Harness):
    harness.run(lambda: AgentImage("image", {**good_image_args(), "architectures": ["arm64", "x86_64", "arm64"]}))
    repo = harness.one("aws:ecr/repository:Repository")
    image = harness.one("docker-build:index:Image")
    [(token, invoke)] = [i for i in harness.invokes if i[0] == "aws:ecr/getAuthorizationToken:getAuthorizationToken"]
    assert invoke == {"registryId": "123456789012"}
    assert image.inputs["platforms"] == ["linux/amd64", "linux/arm64"]
    # Sent to the engine as a secret (the whole list, as Pulumi marks a list holding one): never in clear in state.
    secret = image.inputs["registries"]
    assert secret[rpc._special_sig_key] == rpc._special_secret_sig
    [registry] = secret["value"]
    assert registry == {"address": "123456789012.dkr.ecr.us-west-2.amazonaws.com", "username": "AWS",
                        "password": registry["password"]} and registry["password"].startswith("mock-ecr-token-")
    assert image.inputs["tags"] == [f"123456789012.dkr.ecr.us-west-2.amazonaws.com/{repo.inputs['name']}:"
                                    f"{content_hash(ROOT / 'agent')[:16]}-amd64-arm64"]


def run_stack(stack: str, **agent: object) -> Harness:
    values = copy.deepcopy(stack_values(stack))
    if agent:
        values["gpuscale:kubernetes"] = {**values.get("gpuscale:kubernetes", {}), "agent": agent}
    harness = Harness()
    harness.run_program(stack, values)
    return harness


def test_an_image_from_config_is_run_and_nothing_is_built():
    harness = run_stack("dev", image=GIVEN)
    assert harness.of_type("gpuscale:index:AgentImage") == [] and harness.of_type("aws:ecr/repository:Repository") == []
    assert harness.of_type("docker-build:index:Image") == []
    [ds] = harness.of_type("kubernetes:apps/v1:DaemonSet")
    assert ds.inputs["spec"]["template"]["spec"]["containers"][0]["image"] == GIVEN


def test_resources_from_config_with_twice_the_limits():
    harness = run_stack("dev", resources={"cpu": "0.25", "memory": "1.5Gi"})
    [ds] = harness.of_type("kubernetes:apps/v1:DaemonSet")
    assert ds.inputs["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "0.25", "memory": "1.5Gi"}, "limits": {"cpu": "0.5", "memory": "3Gi"}}
    validate_object(ds.inputs, "1.33")
    config = AgentDaemonSetConfig(None, ResourceRequests("75m", "96Mi"), False)
    assert config.limits == ResourceRequests("150m", "192Mi")


def test_service_monitor_only_on_request_and_valid_against_the_pinned_crd():
    harness = run_stack("prod", serviceMonitor=True)
    [monitor] = harness.of_type(MONITOR)
    obj = monitor.inputs
    validate_service_monitor(obj)
    assert obj["metadata"] == {"name": "gpu-metrics-agent", "namespace": "gpuscale-system",
                               "labels": {"app.kubernetes.io/name": "gpu-metrics-agent",
                                          "app.kubernetes.io/part-of": "gpuscale"}}
    [svc] = harness.of_type("kubernetes:core/v1:Service")
    assert obj["spec"]["selector"]["matchLabels"].items() <= svc.inputs["metadata"]["labels"].items()
    assert obj["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "scheme": "http", "interval": "10s"}]
    assert run_stack("prod", serviceMonitor=False).of_type(MONITOR) == []


@pytest.mark.parametrize("change", [
    lambda s: s["endpoints"][0].update(scheme="tcp"),                  # not in the CRD's enum
    lambda s: s["endpoints"][0].update(intervall="10s"),               # misspelt field
    lambda s: s["endpoints"][0].update(interval="10 seconds"),         # not a Prometheus duration
    lambda s: s.pop("selector"),                                       # required
])
def test_the_crd_check_refuses_what_the_api_server_would(change):
    spec = service_monitor_spec(2.5)
    obj = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
           "metadata": {"name": "m", "namespace": "n"}, "spec": spec}
    validate_service_monitor(obj)
    assert spec["endpoints"][0]["interval"] == "2500ms"
    change(spec)
    with pytest.raises(jsonschema.ValidationError):
        validate_service_monitor(obj)


def test_no_node_groups_no_agent():
    values = copy.deepcopy(stack_values("dev"))
    del values["gpuscale:nodeGroups"]
    del values["gpuscale:services"]  # they run on the node groups
    harness = Harness()
    harness.run_program("dev", values)
    assert not [r for r in harness.resources if r.type.startswith(("kubernetes:", "docker-build:"))
                or r.type in ("gpuscale:index:AgentDaemonSet", "gpuscale:index:AgentImage")]


def test_crd_facts_are_recorded_at_the_pin():
    facts = upstream_facts("prometheus_operator")
    assert facts["tag"] == PROMETHEUS_OPERATOR_VERSION and facts["licence"] == "Apache-2.0"
    assert facts["source"] == "https://github.com/prometheus-operator/prometheus-operator"
    assert re.fullmatch(r"[0-9a-f]{40}", facts["commit"]) and facts["generatedBy"] == "scripts/upstream_facts.py"
    schema = facts["serviceMonitor"]["schema"]
    spec = schema["properties"]["spec"]
    assert spec["required"] == ["endpoints", "selector"]
    assert spec["properties"]["endpoints"]["items"]["properties"]["scheme"]["enum"] == ["http", "https", "HTTP",
                                                                                          "HTTPS"]
    assert "description" not in spec, "facts, not upstream's text"


def provider_input_errors(inputs: dict, facts: dict) -> list[str]:
    """Paths of planned `Image` inputs the pinned provider's schema does not have (argument names, nested field
    names, enum values), and required inputs left out."""
    types = facts["types"]
    errors = [f"{name}: required" for name in facts["image"]["required"] if name not in inputs]

    def check(path: str, value: object, refs: list[str]) -> None:
        if isinstance(value, list):
            for i, item in enumerate(value):
                check(f"{path}[{i}]", item, refs)
            return
        for ref in refs:
            t = types[ref]
            if "enum" in t and value not in t["enum"]:
                errors.append(f"{path}: {value!r} not in {ref}")
            elif "properties" in t and isinstance(value, dict):
                errors.extend(f"{path}.{k}: not a field of {ref}" for k in value if k not in t["properties"])
                errors.extend(f"{path}.{k}: required by {ref}" for k in t["required"] if k not in value)
                for k, v in value.items():
                    check(f"{path}.{k}", v, t["properties"].get(k, []))

    for name, value in inputs.items():
        if name not in facts["image"]["inputs"]:
            errors.append(f"{name}: not an argument of docker-build:index:Image")
        else:
            check(name, value, facts["image"]["inputs"][name])
    return errors


def test_image_arguments_exist_in_the_pinned_provider_schema(harness: Harness):
    facts = upstream_facts("docker_build")
    assert facts["tag"] == f"v{DOCKER_BUILD_PROVIDER_VERSION}" and facts["licence"] == "Apache-2.0"
    def release(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in v.split(".")[:3])
    assert release(importlib.metadata.version("pulumi-docker-build")) >= release(DOCKER_BUILD_PROVIDER_VERSION)
    harness.run(lambda: AgentImage("image", {**good_image_args(), "architectures": ["arm64", "x86_64"]}))
    inputs = dict(harness.one("docker-build:index:Image").inputs)
    inputs["registries"] = inputs["registries"]["value"]  # unwrapped from its secret
    assert provider_input_errors(inputs, facts) == []
    # The check itself refuses a wrong name, a wrong nested field, a wrong enum value and a missing requirement.
    bad = {**inputs, "buildOnPreveiw": True, "context": {"path": "agent"}, "platforms": ["linux/x86"]}
    del bad["push"]
    assert sorted(provider_input_errors(bad, facts)) == sorted([
        "push: required", "buildOnPreveiw: not an argument of docker-build:index:Image",
        "context.path: not a field of docker-build:index:BuildContext",
        "context.location: required by docker-build:index:BuildContext",
        "platforms[0]: 'linux/x86' not in docker-build:index:Platform"])
