"""The policy rules: each fails on a violating resource, and the shipped stacks pass (or accept a named finding)."""

from __future__ import annotations

import json

import pytest
from plan_support import ROOT, gpuscale, project_copy

from gpuscale.config import ConfigError, load_stack_file
from gpuscale.config.policy import PolicyConfig, read_policy
from gpuscale.plan.model import Plan
from gpuscale.policy import RULES, evaluate, pack_config, resources_of_plan, settings_from_pack_config
from gpuscale.policy.rules import Resource

ACCEPTED = {("eks-api-not-public", "gpuscale-dev-eks")}
"""Findings the shipped stacks accept (gpuscale:policy.accept): dev's EKS API stays public because GitHub-hosted
deploy runners have no fixed addresses; IAM authenticates every call. prod's API is private only."""

DOC = '{"Version": "2012-10-17", "Statement": [%s]}'
PUT_SCOPED = ('{"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*", "Condition": '
              '{"StringEquals": {"cloudwatch:namespace": "GpuScale/Agent"}}}')


def res(type_: str, name: str = "r", **props) -> Resource:
    return Resource(type_, name, f"urn:pulumi:t::p::{type_}::{name}", props)


LT = "aws:ec2/launchTemplate:LaunchTemplate"
VIOLATIONS = {
    "imdsv2-required": [res(LT, metadataOptions={"httpTokens": "optional"}, tags={"gpuscale:stack": "t"})],
    "ebs-encrypted": [res(LT, metadataOptions={"httpTokens": "required"},
                          blockDeviceMappings=[{"deviceName": "/dev/xvda", "ebs": {"encrypted": "false"}}])],
    "eks-api-not-public": [res("aws:eks/cluster:Cluster", vpcConfig={"endpointPublicAccess": True})],
    "no-wildcard-iam-actions": [res("aws:iam/rolePolicy:RolePolicy", policy=DOC % (
        '{"Effect": "Allow", "Action": ["s3:Get*"], "Resource": "*"}'))],
    "put-metric-data-scoped": [res("aws:iam/policy:Policy", policy=DOC % PUT_SCOPED.replace("GpuScale/Agent",
                                                                                             "Other/Namespace"))],
    "required-tags": [res("aws:sns/topic:Topic", tags={"team": "ml"})],
    "desired-capacity-unmanaged": [res("aws:autoscaling/group:Group", desiredCapacity=3, maxSize=4, minSize=0)],
    "no-public-ip-on-gpu": [
        res("aws:ec2/subnet:Subnet", "public-a", mapPublicIpOnLaunch=True),
        Resource("aws:eks/nodeGroup:NodeGroup", "gpu", "urn:ng", {"instanceTypes": ["g6.xlarge"]},
                 dependencies=("urn:pulumi:t::p::aws:ec2/subnet:Subnet::public-a",))],
    "gpu-budget": [Resource("aws:eks/nodeGroup:NodeGroup", "h100", "urn:ng",
                            {"instanceTypes": ["p5.48xlarge"], "scalingConfig": {"maxSize": 2}})],
}


def test_every_rule_has_a_violating_case():
    assert set(VIOLATIONS) == set(RULES)


@pytest.mark.parametrize("rule", sorted(VIOLATIONS))
def test_rule_finds_its_violation(rule):
    settings = PolicyConfig(gpu_hours_per_month=1000)
    found = [f for f in evaluate(VIOLATIONS[rule], settings) if f.rule == rule]
    assert found, f"{rule} found nothing on {VIOLATIONS[rule]}"
    assert all(f.blocking for f in found), "rules are mandatory unless gpuscale:policy says otherwise"


@pytest.mark.parametrize("rule", sorted(VIOLATIONS))
def test_rule_passes_the_shipped_stacks(rule, plans):
    for stack in ("dev", "prod"):
        plan = Plan.from_json(plans[stack]["doc"])
        settings = load_stack_file(ROOT, stack).policy
        found = [f for f in evaluate(resources_of_plan(plan), settings) if f.rule == rule]
        unaccepted = [f for f in found if (f.rule, f.resource) not in ACCEPTED]
        assert not unaccepted, f"{stack}: {unaccepted}"
        assert all(f.accepted for f in found), f"{stack}: an accepted finding names its reason"


def test_wildcard_and_namespace_rules_accept_exact_grants():
    grant = res("aws:iam/rolePolicy:RolePolicy", policy=DOC % PUT_SCOPED)
    assert evaluate([grant], PolicyConfig()) == []
    unscoped = res("aws:iam/role:Role", inlinePolicies=[{"name": "m", "policy": DOC % (
        '{"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*"}')}], tags={"gpuscale:stack": "t"})
    assert [f.rule for f in evaluate([unscoped], PolicyConfig())] == ["put-metric-data-scoped"]


def test_levels_and_acceptance_come_from_config():
    settings = read_policy({"enforcement": {"required-tags": "advisory", "imdsv2-required": "disabled"},
                            "accept": [{"rule": "ebs-encrypted", "resource": "r", "reason": "scratch disk"}]})
    found = {f.rule: f for f in evaluate([*VIOLATIONS["required-tags"], *VIOLATIONS["imdsv2-required"],
                                          *VIOLATIONS["ebs-encrypted"]], settings)}
    assert found["required-tags"].level == "advisory" and not found["required-tags"].blocking
    assert "imdsv2-required" not in found
    assert found["ebs-encrypted"].accepted == "scratch disk" and not found["ebs-encrypted"].blocking


@pytest.mark.parametrize("value, key", [
    ({"enforcement": {"imdsv2-required": "strict"}}, "gpuscale:policy.enforcement.imdsv2-required"),
    ({"enforcement": {"no-such-rule": "advisory"}}, "gpuscale:policy.enforcement.no-such-rule"),
    ({"gpuHoursPerMonth": 0}, "gpuscale:policy.gpuHoursPerMonth"),
    ({"accept": [{"rule": "nope", "resource": "x", "reason": "y"}]}, "gpuscale:policy.accept[0].rule"),
    ({"accept": [{"rule": "ebs-encrypted", "resource": "x"}]}, "gpuscale:policy.accept[0].reason"),
    ({"budget": 5}, "gpuscale:policy.budget"),
])
def test_bad_policy_config_names_the_key(value, key):
    with pytest.raises(ConfigError) as exc:
        read_policy(value)
    assert exc.value.key == key


def test_pack_config_round_trips_each_rules_settings():
    settings = read_policy({"gpuHoursPerMonth": 500, "requiredTags": ["team"],
                            "accept": [{"rule": "gpu-budget", "resource": "(stack)", "reason": "burst month"}]})
    doc = pack_config(settings)
    assert set(doc) == set(RULES)
    back = settings_from_pack_config("gpu-budget", json.loads(json.dumps(doc["gpu-budget"])))
    assert back.gpu_hours_per_month == 500 and back.required_tags == ("team",)
    assert back.accepted_reason("gpu-budget", "(stack)") == "burst month"


def test_crossguard_policies_run_the_same_rules():
    from pulumi_policy import (PolicyResource, PolicyResourceOptions, ResourceValidationArgs,
                               ResourceValidationPolicy, StackValidationArgs, StackValidationPolicy)

    from gpuscale.policy.pack import policies

    by_name = {p.name: p for p in policies()}
    assert list(by_name) == list(RULES)
    opts = PolicyResourceOptions(False, [], None, [], None, [])
    bad = VIOLATIONS["imdsv2-required"][0]
    reports: list[str] = []
    policy = by_name["imdsv2-required"]
    assert isinstance(policy, ResourceValidationPolicy)
    args = ResourceValidationArgs(bad.type, bad.props, bad.urn, bad.name, opts, None,
                                  pack_config(PolicyConfig())["imdsv2-required"])
    policy.validate(args, lambda message, urn=None: reports.append(message))
    assert reports == list(RULES["imdsv2-required"].check(bad, PolicyConfig()))

    budget = by_name["gpu-budget"]
    assert isinstance(budget, StackValidationPolicy)
    group = VIOLATIONS["gpu-budget"][0]
    resource = PolicyResource(group.type, group.props, group.urn, group.name, opts, None, None, [], {})
    reports.clear()
    budget.validate(StackValidationArgs([resource], {"gpuHoursPerMonth": 1000}),
                    lambda message, urn=None: reports.append(message))
    assert len(reports) == 1 and "over the budget of 1,000" in reports[0]


def test_plan_exits_3_on_a_mandatory_finding_and_0_when_advisory(tmp_path):
    def tight(config):
        config["gpuscale:policy"]["gpuHoursPerMonth"] = 100

    project = project_copy(tmp_path / "a", "dev", tight)
    proc = gpuscale("plan", "--stack", "dev", "--project-dir", str(project))
    assert proc.returncode == 3, proc.stderr
    assert "[policy:gpu-budget]" in proc.stdout and "over the budget of 100" in proc.stderr

    def advisory(config):
        tight(config)
        config["gpuscale:policy"]["enforcement"] = {"gpu-budget": "advisory"}

    project = project_copy(tmp_path / "b", "dev", advisory)
    proc = gpuscale("plan", "--stack", "dev", "--project-dir", str(project))
    assert proc.returncode == 0, proc.stderr
    assert "warning: [policy:gpu-budget]" in proc.stdout


def test_the_policy_pack_judges_through_pulumis_analyzer_protocol():
    """policy/__main__.py as the Pulumi CLI runs it: a gRPC analyzer that it configures and asks to judge
    resources. The same rules and levels reach it from `gpuscale policy-config`."""
    import subprocess
    import sys

    import grpc
    from google.protobuf import empty_pb2, struct_pb2
    from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

    def struct(value: dict) -> struct_pb2.Struct:
        out = struct_pb2.Struct()
        out.update(value)
        return out

    levels = {"mandatory": analyzer_pb2.MANDATORY, "advisory": analyzer_pb2.ADVISORY,
              "disabled": analyzer_pb2.DISABLED}
    settings = read_policy({"enforcement": {"required-tags": "advisory"}, "gpuHoursPerMonth": 1000,
                            "accept": [{"rule": "ebs-encrypted", "resource": "scratch", "reason": "no data on it"}]})
    config = {name: analyzer_pb2.PolicyConfig(enforcementLevel=levels[entry.pop("enforcementLevel")],
                                              properties=struct(entry))
              for name, entry in pack_config(settings).items()}
    pack = subprocess.Popen([sys.executable, "__main__.py"], cwd=ROOT / "policy", stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        port = int(pack.stdout.readline())
        stub = analyzer_pb2_grpc.AnalyzerStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
        assert info.name == "gpuscale" and [p.name for p in info.policies] == list(RULES)
        stub.Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig=config), timeout=30)

        def judged(resource: Resource) -> dict[str, int]:
            response = stub.Analyze(analyzer_pb2.AnalyzeRequest(
                type=resource.type, name=resource.name, urn=resource.urn, properties=struct(dict(resource.props))),
                timeout=30)
            return {d.policyName: d.enforcementLevel for d in response.diagnostics}

        template = {"metadataOptions": {"httpTokens": "optional"},
                    "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "false"}}],
                    "tags": {"team": "ml"}}
        assert judged(Resource(LT, "lt", "urn:lt", template)) == {
            "imdsv2-required": analyzer_pb2.MANDATORY, "ebs-encrypted": analyzer_pb2.MANDATORY,
            "required-tags": analyzer_pb2.ADVISORY}
        assert "ebs-encrypted" not in judged(Resource(LT, "scratch", "urn:scratch", template)), "accepted"
        role = Resource("aws:iam/rolePolicy:RolePolicy", "p", "urn:p", {"policy": DOC % (
            '{"Effect": "Allow", "Action": ["s3:*", "cloudwatch:PutMetricData"], "Resource": "*"}')})
        assert set(judged(role)) == {"no-wildcard-iam-actions", "put-metric-data-scoped"}

        group = VIOLATIONS["gpu-budget"][0]
        stack = stub.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[analyzer_pb2.AnalyzerResource(
            type=group.type, name=group.name, urn=group.urn, properties=struct(dict(group.props)))]), timeout=30)
        assert [(d.policyName, d.enforcementLevel) for d in stack.diagnostics] == [("gpu-budget",
                                                                                    analyzer_pb2.MANDATORY)]
    finally:
        pack.kill()
        pack.wait()


def test_policy_config_cli_writes_the_stacks_pack_config(tmp_path):
    out = tmp_path / "policy-config.json"
    proc = gpuscale("policy-config", "--stack", "prod", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc == pack_config(load_stack_file(ROOT, "prod").policy)
    assert doc["gpu-budget"]["gpuHoursPerMonth"] == 70000
    assert doc["eks-api-not-public"]["accept"] == [], "prod's API is private only: nothing to accept"
    bad = gpuscale("policy-config", "--stack", "nope")
    assert bad.returncode == 2 and "--stack" in bad.stderr and "prod" in bad.stderr


def test_taggable_types_come_from_the_provider_sdk():
    from gpuscale.policy.rules import taggable

    assert taggable("aws:cloudwatch/metricAlarm:MetricAlarm") and taggable("aws:autoscaling/group:Group")
    assert not taggable("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert not taggable("aws:autoscaling/tag:Tag") and not taggable("kubernetes:helm.sh/v3:Release")
