"""The agent as a DaemonSet in both stacks' offline plans: every object valid against the Kubernetes OpenAPI schema
of the stack's version, one DaemonSet per GPU node group carrying that group's dimension, exactly the GPU taint
tolerated, no privilege beyond NVML's, its IRSA policy action by action, the image built from agent/Dockerfile, and
the stack's Kubernetes provider on every Kubernetes resource."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import kubernetes_validate
import pytest
from kube_support import subtree, validate_object

from gpu_metrics_agent import catalogue
from gpu_metrics_agent.config import OPTIONS, parse_config
from gpu_metrics_agent.imds import NodeIdentity, resolve_identity
from gpuscale.components.agent_bundle import content_hash
from gpuscale.components.labels import GPU_CLASS_LABEL, GPU_RESOURCE, GPU_TAINT_VALUE
from gpuscale.config import read_stack_values, stack_file_path
from gpuscale.plan.model import Plan, PlannedResource

ROOT = Path(__file__).resolve().parents[2]
COMPONENT = "gpuscale:index:AgentDaemonSet"
STACKS = ("dev", "prod")


def stack_config(stack: str) -> dict:
    return read_stack_values(stack_file_path(ROOT, stack))


def under(plan: Plan, component_type: str) -> list[PlannedResource]:
    """Every resource below the one component of that type (its whole subtree)."""
    [root] = [r for r in plan.resources if r.type == component_type]
    return subtree(plan, root)


def as_object(r: PlannedResource) -> dict:
    """The Kubernetes object a planned resource sends: its inputs, which are the object's top-level fields."""
    return dict(r.inputs)


def daemonsets(plan: Plan) -> dict[str, dict]:
    """The agent's DaemonSets by the node group key they serve (their app.kubernetes.io/instance label)."""
    return {r.inputs["metadata"]["labels"]["app.kubernetes.io/instance"]: r.inputs
            for r in under(plan, COMPONENT) if r.type == "kubernetes:apps/v1:DaemonSet"}


@pytest.mark.parametrize("stack", STACKS)
def test_every_agent_object_is_valid_at_the_stacks_kubernetes_version(stack_plans, stack):
    version = stack_config(stack)["gpuscale:cluster"]["kubernetesVersion"]
    kinds = []
    for r in under(stack_plans[stack], COMPONENT):
        if r.type.startswith("kubernetes:"):
            validate_object(as_object(r), version)
            kinds.append(r.inputs["kind"])
    groups = stack_config(stack)["gpuscale:nodeGroups"]
    assert sorted(kinds) == sorted(["Namespace", "ServiceAccount", "Service"] + ["DaemonSet"] * len(groups))


def test_the_schema_check_is_strict(stack_plans):
    """A misspelt field or a wrong type in the DaemonSet is refused: the validation above can fail."""
    ds = copy.deepcopy(next(iter(daemonsets(stack_plans["dev"]).values())))
    ds["spec"]["template"]["spec"]["tolerations"][0]["efect"] = "NoSchedule"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_object(ds, "1.33")
    ds = copy.deepcopy(next(iter(daemonsets(stack_plans["dev"]).values())))
    ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = [1]
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_object(ds, "1.33")


@pytest.mark.parametrize("stack", STACKS)
def test_every_kubernetes_resource_uses_the_stacks_provider(stack_plans, stack):
    plan = stack_plans[stack]
    [provider] = plan.by_type("pulumi:providers:kubernetes")
    kube = [r for r in plan.resources if r.type.startswith("kubernetes:")]
    assert len(kube) >= 4
    assert {r.name: r.options.get("provider") for r in kube} == {r.name: provider.urn for r in kube}


@pytest.mark.parametrize("stack", STACKS)
def test_one_daemonset_per_node_group_with_its_own_group_dimension(stack_plans, stack):
    plan = stack_plans[stack]
    outputs = plan.outputs["nodeGroups"]
    sets = daemonsets(plan)
    groups = stack_config(stack)["gpuscale:nodeGroups"]
    assert set(sets) == {g["name"] for g in groups}
    for g in groups:
        pod = sets[g["name"]]["spec"]["template"]["spec"]
        [term] = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert term["matchExpressions"] == [
            {"key": GPU_CLASS_LABEL, "operator": "Exists"},
            {"key": "eks.amazonaws.com/nodegroup", "operator": "In", "values": [outputs[g["name"]]["nodeGroupName"]]}]
        env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
        assert env["GPU_METRICS_AGENT_ASG_NAME"] == outputs[g["name"]]["asgName"], g["name"]


class NoTagsMetadata:
    """Instance metadata of an EKS managed node: identity documents, but no instance tags."""

    def token(self) -> str:
        return "token"

    def get(self, path: str, token: str) -> str | None:
        return {"/latest/meta-data/instance-id": "i-0123456789abcdef0",
                "/latest/meta-data/instance-type": "g6.xlarge"}.get(path)


@pytest.mark.parametrize("stack", STACKS)
def test_the_agent_reads_the_pods_options_and_names_its_group(stack_plans, stack):
    """Every GPU_METRICS_AGENT_* variable is an option the agent has, parsed by the agent itself: the group comes
    from the DaemonSet (EKS metadata has no tags), region and intervals from `gpuscale:agent`."""
    known = {o.env for o in OPTIONS}
    agent = stack_config(stack).get("gpuscale:agent", {})
    for key, ds in daemonsets(stack_plans[stack]).items():
        container = ds["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        ours = {k: v for k, v in env.items() if k.startswith("GPU_METRICS_AGENT_")}
        assert set(ours) <= known, f"{key}: not options of the agent: {sorted(set(ours) - known)}"
        assert "args" not in container and "command" not in container
        config = parse_config([], ours)
        assert config.sample_interval == agent.get("sampleIntervalSeconds", 1)
        assert config.flush_interval == agent.get("flushIntervalSeconds", 10)
        assert config.prometheus_port == agent.get("prometheusPort", 9410)
        assert config.region == stack_config(stack)["aws:region"]
        identity = resolve_identity(NodeIdentity(asg_name=config.asg_name, region=config.region), NoTagsMetadata())
        assert identity.asg_name == stack_plans[stack].outputs["nodeGroups"][key]["asgName"]
        assert identity.instance_id == "i-0123456789abcdef0"
        # Without the DaemonSet's group name, the agent refuses to guess (so the value above is what it uses).
        with pytest.raises(Exception, match="groupName"):
            resolve_identity(NodeIdentity(region=config.region), NoTagsMetadata())


@pytest.mark.parametrize("stack", STACKS)
def test_gpu_nodes_only_all_gpus_none_requested(stack_plans, stack):
    gpu_groups = [r for r in stack_plans[stack].by_type("aws:eks/nodeGroup:NodeGroup")
                  if "gpuscale:index:GpuNodeGroup" in (r.parent or "")]
    ng_taints = [t for r in gpu_groups for t in r.inputs["taints"]]
    taint = {"key": GPU_RESOURCE, "value": GPU_TAINT_VALUE, "effect": "NO_SCHEDULE"}
    assert len(ng_taints) == len(gpu_groups) and all(t == taint for t in ng_taints)
    families = {g["name"]: g.get("amiType", "AL2023_x86_64_NVIDIA") for g in stack_config(stack)["gpuscale:nodeGroups"]}
    for key, ds in daemonsets(stack_plans[stack]).items():
        pod = ds["spec"]["template"]["spec"]
        assert pod["tolerations"] == [{"key": GPU_RESOURCE, "operator": "Equal", "value": GPU_TAINT_VALUE,
                                       "effect": "NoSchedule"}]
        [container] = pod["containers"]
        assert GPU_RESOURCE not in json.dumps(container["resources"]), "the agent must not take a GPU from workloads"
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["NVIDIA_VISIBLE_DEVICES"] == "all" and env["NVIDIA_DRIVER_CAPABILITIES"] == "utility"
        devices = [m for m in container["volumeMounts"]
                   if m["mountPath"].startswith("/var/run/nvidia-container-devices")]
        if families[key].startswith("BOTTLEROCKET"):
            # Bottlerocket ignores NVIDIA_VISIBLE_DEVICES in unprivileged containers; /dev/null mounts name devices.
            assert devices == [{"name": "all-gpus", "mountPath": "/var/run/nvidia-container-devices/all",
                                "readOnly": True}]
            assert {"name": "all-gpus", "hostPath": {"path": "/dev/null", "type": "CharDevice"}} in pod["volumes"]
        else:
            assert devices == []


@pytest.mark.parametrize("stack", STACKS)
def test_no_privilege_beyond_nvml(stack_plans, stack):
    for key, ds in daemonsets(stack_plans[stack]).items():
        pod = ds["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert container["securityContext"] == {"allowPrivilegeEscalation": False, "privileged": False,
                                                "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
        # uid 0 for the root-owned pod-resources socket only: no capability, so root's DAC override is gone too.
        assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsNonRoot"]) == (0, False)
        env = {e["name"]: e for e in container["env"]}
        assert env["GPU_METRICS_AGENT_POD_RESOURCES_SOCKET"]["value"] == "/var/lib/kubelet/pod-resources/kubelet.sock"
        assert env["GPU_METRICS_AGENT_HOSTNAME"]["valueFrom"] == {
            "fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
        assert pod["automountServiceAccountToken"] is False
        # Host paths: the kubelet's pod-resources directory read-only, and on Bottlerocket /dev/null; nothing else.
        host = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"]}
        assert set(host.values()) <= {"/var/lib/kubelet/pod-resources", "/dev/null"}
        assert all(m["readOnly"] for m in container["volumeMounts"])
        assert {"name": "pod-resources", "mountPath": "/var/lib/kubelet/pod-resources", "readOnly": True} in \
            container["volumeMounts"]


@pytest.mark.parametrize("stack", STACKS)
def test_probes_priority_rollout_and_resources(stack_plans, stack):
    port = stack_config(stack).get("gpuscale:agent", {}).get("prometheusPort", 9410)
    for key, ds in daemonsets(stack_plans[stack]).items():
        assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate",
                                                "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
        pod = ds["spec"]["template"]["spec"]
        assert pod["priorityClassName"] == "system-node-critical"
        [container] = pod["containers"]
        assert container["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics", "scheme": "HTTP"}
        # `gpuscale:kubernetes.agent.resources` defaults (50m, 64Mi); the limits are twice the requests.
        assert container["resources"] == {"requests": {"cpu": "50m", "memory": "64Mi"},
                                          "limits": {"cpu": "100m", "memory": "128Mi"}}
        assert ds["spec"]["selector"]["matchLabels"].items() <= ds["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("stack", STACKS)
def test_daemonsets_wait_for_the_node_groups(stack_plans, stack):
    plan = stack_plans[stack]
    groups = {r.urn for r in plan.by_type("aws:eks/nodeGroup:NodeGroup") if "gpuscale:index:GpuNodeGroup" in r.parent}
    assert groups
    for r in under(plan, COMPONENT):
        if r.type == "kubernetes:apps/v1:DaemonSet":
            assert groups <= set(r.options["dependsOn"]), r.name


@pytest.mark.parametrize("stack", STACKS)
def test_service_is_scraped_and_selects_every_agent(stack_plans, stack):
    port = stack_config(stack).get("gpuscale:agent", {}).get("prometheusPort", 9410)
    [svc] = [r.inputs for r in under(stack_plans[stack], COMPONENT) if r.type == "kubernetes:core/v1:Service"]
    assert svc["metadata"]["annotations"] == {"prometheus.io/scrape": "true", "prometheus.io/port": str(port),
                                              "prometheus.io/path": "/metrics", "prometheus.io/scheme": "http"}
    assert svc["spec"]["ports"] == [{"name": "metrics", "port": port, "targetPort": "metrics", "protocol": "TCP"}]
    for ds in daemonsets(stack_plans[stack]).values():
        assert svc["spec"]["selector"].items() <= ds["spec"]["template"]["metadata"]["labels"].items()
    monitors = stack_plans[stack].by_type("kubernetes:monitoring.coreos.com/v1:ServiceMonitor")
    assert not monitors, \
        "no ServiceMonitor unless gpuscale:kubernetes.agent.serviceMonitor says the operator is installed"


def policy_statements(plan: Plan) -> tuple[list[dict], dict]:
    resources = under(plan, COMPONENT)
    [policy] = [r for r in resources if r.type == "aws:iam/rolePolicy:RolePolicy"]
    [role] = [r for r in resources if r.type == "aws:iam/role:Role"]
    return json.loads(policy.inputs["policy"])["Statement"], json.loads(role.inputs["assumeRolePolicy"])


@pytest.mark.parametrize("stack", STACKS)
def test_irsa_policy_action_by_action(stack_plans, stack):
    statements, trust = policy_statements(stack_plans[stack])
    put, describe = statements
    assert len(statements) == 2
    assert put == {"Effect": "Allow", "Action": ["cloudwatch:PutMetricData"], "Resource": "*",
                   "Condition": {"StringEquals": {"cloudwatch:namespace": catalogue.NAMESPACE}}}
    assert describe == {"Effect": "Allow", "Action": ["autoscaling:DescribeAutoScalingInstances"], "Resource": "*"}
    assert not any("Condition" in s and set(s["Condition"]) != {"StringEquals"} for s in statements)
    [trusted] = trust["Statement"]
    assert trusted["Action"] == "sts:AssumeRoleWithWebIdentity"
    host = trusted["Principal"]["Federated"].split("oidc-provider/", 1)[1]
    assert trusted["Condition"] == {"StringEquals": {
        f"{host}:sub": "system:serviceaccount:gpuscale-system:gpu-metrics-agent", f"{host}:aud": "sts.amazonaws.com"}}
    [sa] = [r.inputs for r in under(stack_plans[stack], COMPONENT) if r.type == "kubernetes:core/v1:ServiceAccount"]
    role_arn = sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert role_arn.startswith("arn:aws:iam::123456789012:role/agent-daemonset-irsa-role-")
    assert (sa["metadata"]["namespace"], sa["metadata"]["name"]) == ("gpuscale-system", "gpu-metrics-agent")


@pytest.mark.parametrize("stack", STACKS)
def test_image_is_built_from_the_agent_dockerfile_and_pinned_by_digest(stack_plans, stack):
    plan = stack_plans[stack]
    [repo] = [r.inputs for r in under(plan, "gpuscale:index:AgentImage") if r.type == "aws:ecr/repository:Repository"]
    [image] = [r.inputs for r in under(plan, "gpuscale:index:AgentImage") if r.type == "docker-build:index:Image"]
    assert repo["name"] == f"gpuscale-{stack}/gpu-metrics-agent" and repo["imageTagMutability"] == "MUTABLE"
    assert image["context"] == {"location": "agent"} and image["dockerfile"] == {"location": "agent/Dockerfile"}
    assert image["push"] is True and image["platforms"] == ["linux/amd64"]
    [tag] = image["tags"]
    assert tag.endswith(f"/gpuscale-{stack}/gpu-metrics-agent:{content_hash(ROOT / 'agent')[:16]}-amd64")
    assert image["registries"] == "[secret]", "the ECR token must stay secret in the state"
    for ds in daemonsets(plan).values():
        ref = ds["spec"]["template"]["spec"]["containers"][0]["image"]
        assert ref.startswith(tag + "@sha256:") and len(ref.rsplit(":", 1)[1]) == 64
