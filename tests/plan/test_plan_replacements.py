"""`gpuscale diff` tells replacements from updates in place, by the provider's own ForceNew facts."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from plan_support import ROOT, diff_with_changed, gpuscale, project_copy

from gpuscale.plan.model import PlannedResource
from gpuscale.plan.diff import replacement_facts, replacement_reasons

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"


def _resource(type_: str, options: dict | None = None) -> PlannedResource:
    return PlannedResource(f"urn:pulumi:dev::gpuscale::{type_}::x", type_, "x", None, True, {}, options or {})


def _git_repo(repo, files: dict[str, str]) -> None:
    """A git repository at `repo` with one commit holding `files` (path -> text)."""
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    for args in (["init", "-q"], ["add", "."], ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True)


def test_facts_cover_every_aws_resource_type_the_stacks_declare(plans):
    facts = replacement_facts()
    declared = {r["type"] for p in plans.values() for r in p["doc"]["resources"]
                if r["custom"] and r["type"].startswith("aws:")}
    missing = declared - set(facts["resources"])
    assert not missing, f"no replacement facts for {sorted(missing)}: add them to scripts/provider_facts.py and rerun"
    assert facts["generatedBy"] == "scripts/provider_facts.py" and facts["licence"] == "MPL-2.0"
    assert re.fullmatch(r"[0-9a-f]{40}", facts["commit"]) and facts["source"].startswith("https://github.com/")
    node_group = facts["resources"][NODE_GROUP]
    assert node_group["terraform"] == "aws_eks_node_group"
    assert {"amiType", "capacityType", "instanceTypes", "launchTemplate.id"} <= set(node_group["replacedOnChange"])
    assert "scalingConfig.maxSize" not in node_group["replacedOnChange"]


def test_a_node_groups_instance_types_ami_and_capacity_type_replace_it():
    ng = _resource(NODE_GROUP)
    for path in ("inputs.instanceTypes[0]", "inputs.amiType", "inputs.capacityType", "inputs.launchTemplate.id"):
        assert replacement_reasons(ng, [path]) == [f"{path}: ForceNew in terraform-provider-aws aws_eks_node_group"]
    assert replacement_reasons(ng, ["inputs.scalingConfig.maxSize", "inputs.labels.team", "options.ignoreChanges",
                                    "inputs.launchTemplate.version"]) == [], "updated in place"


def test_list_blocks_match_in_the_plural_the_bridge_gives_them():
    asg = _resource("aws:autoscaling/group:Group")
    assert replacement_reasons(asg, ["inputs.initialLifecycleHooks[0].roleArn"]), \
        "Terraform's initial_lifecycle_hook block is pulumi-aws's initialLifecycleHooks list"
    assert replacement_reasons(asg, ["inputs.maxSize", "inputs.launchTemplate.version"]) == []
    tag = _resource("aws:autoscaling/tag:Tag")
    assert replacement_reasons(tag, ["inputs.tag.key"]) and not replacement_reasons(tag, ["inputs.tag.value"])


def test_the_programs_replace_on_changes_marks_a_replacement_too():
    res = _resource("kubernetes:monitoring.coreos.com/v1:ServiceMonitor", {"replaceOnChanges": ["spec.selector"]})
    assert replacement_reasons(res, ["inputs.spec.selector.matchLabels.app"]) == [
        "inputs.spec.selector.matchLabels.app: replaceOnChanges in the program"]
    assert replacement_reasons(res, ["inputs.spec.endpoints[0].port"]) == []


def test_a_quoted_annotation_key_in_replace_on_changes_matches_the_plans_flattened_path():
    """ModelService marks its deploymentMode annotation (a key with dots, quoted in Pulumi's property path): the
    plan flattens the key at its dots, and the trigger matches it there, not a neighbouring annotation."""
    from gpuscale.components.model_service import DEPLOYMENT_MODE_PATH

    isvc = _resource("kubernetes:serving.kserve.io/v1beta1:InferenceService",
                     {"replaceOnChanges": [DEPLOYMENT_MODE_PATH]})
    path = "inputs.metadata.annotations.serving.kserve.io/deploymentMode"
    assert replacement_reasons(isvc, [path]) == [f"{path}: replaceOnChanges in the program"]
    assert replacement_reasons(isvc, ["inputs.metadata.annotations.serving.kserve.io/autoscalerClass"]) == []
    # A quoted key names that key alone: `labels["app"]` is not a prefix of the key app.kubernetes.io/name.
    labelled = _resource("kubernetes:core/v1:ConfigMap", {"replaceOnChanges": ['metadata.labels["app"]']})
    assert replacement_reasons(labelled, ["inputs.metadata.labels.app.kubernetes.io/name"]) == []
    assert replacement_reasons(labelled, ["inputs.metadata.labels.app"]) != []


def test_a_kubernetes_object_keeping_its_fixed_name_is_replaced_delete_first():
    """pulumi-kubernetes deletes first when the replacement keeps the object's name (the two cannot coexist); a
    renamed one, or a resource of another provider, is created first."""
    from gpuscale.plan.diff import ResourceChange, _replace_mark

    def change(type_, inputs, changes):
        r = PlannedResource("urn:x", type_, "x", None, True, inputs, {})
        return _replace_mark(ResourceChange(r, changes, ["a reason"]))

    job = "kubernetes:batch/v1:Job"
    spec = [("inputs.spec.template.spec.containers[0].args[0]", "a", "b")]
    assert change(job, {"metadata": {"name": "copy"}}, spec) == "  (replace, delete first)"
    assert change(job, {"metadata": {"name": "copy-2"}}, [*spec, ("inputs.metadata.name", "copy", "copy-2")]) \
        == "  (replace)"
    assert change(job, {"metadata": {}}, spec) == "  (replace)", "auto-named"
    assert change("aws:eks/nodeGroup:NodeGroup", {"nodeGroupName": "x"}, spec) == "  (replace)"
    # Only pulumi-kubernetes's own replacements are deleted first; the program's replaceOnChanges alone is created
    # first unless the program also marks deleteBeforeReplace.
    program_only = PlannedResource("urn:x", "kubernetes:core/v1:ConfigMap", "x", None, True,
                                   {"metadata": {"name": "settings"}}, {})
    only = ResourceChange(program_only, [("inputs.data.a", "1", "2")], ["inputs.data.a: replaceOnChanges in the program"])
    assert _replace_mark(only) == "  (replace)"


def test_diff_marks_a_replacement_apart_from_updates_and_sums_them_up(plans, tmp_path):
    def change(config):
        config["gpuscale:nodeGroups"][0]["instanceTypes"] = ["g6.2xlarge"]  # same L4 GPU, a larger host
        config["gpuscale:autoScalingGroups"][0]["maxSize"] = 1

    proc = diff_with_changed(tmp_path, plans["dev"]["path"], "dev", change)
    assert proc.returncode == 1
    out = proc.stdout
    assert f"+- {NODE_GROUP}  l4-spot-ng  (replace)" in out
    assert "replaced because inputs.instanceTypes[0]: ForceNew in terraform-provider-aws aws_eks_node_group" in out
    assert "~ aws:autoscaling/group:Group  infer-asg" in out and "inputs.maxSize: 2 => 1" in out
    summary = re.search(r"^(\d+) to add, (\d+) to change, (\d+) to replace, (\d+) to delete$", out, re.M)
    assert summary is not None, out
    assert summary.group(3) == "1" and int(summary.group(2)) >= 1 and summary.group(1) == summary.group(4) == "0"
    assert replacement_facts()["commit"][:12] in out, "the replacement rules' source is named"


def test_diff_shows_a_changed_headroom_priority_as_a_replacement_deleted_first(tmp_path):
    """dev with one warm l4-spot node, then its headroom's priority changed: the PriorityClass is replaced (its value
    is immutable; pulumi-kubernetes's own facts would call it an update), deleted first (its name is fixed), and the
    placeholders are updated to roll onto it."""
    def with_headroom(priority):
        def change(config):
            config["gpuscale:headroom"] = [{"nodeGroup": "l4-spot", "nodes": 1, "priority": priority}]
        return change

    base = project_copy(tmp_path / "base", "dev", with_headroom(-10))
    base_plan = tmp_path / "base.json"
    planned = gpuscale("plan", "--stack", "dev", "--project-dir", str(base), "--json", str(base_plan), "--quiet")
    assert planned.returncode == 0, planned.stderr
    out = diff_with_changed(tmp_path / "new", base_plan, "dev", with_headroom(-5)).stdout
    pc = "kubernetes:scheduling.k8s.io/v1:PriorityClass"
    assert re.search(rf"^\+- {re.escape(pc)}  \S+-priority  \(replace, delete first\)$", out, re.M), out
    assert "inputs.value: -10 => -5" in out
    assert "replaced because inputs.value: replaceOnChanges in the program" in out
    assert re.search(r"^~ kubernetes:apps/v1:Deployment  \S+-placeholder$", out, re.M), out
    assert "gpuscale.io/priority: -10 => -5" in out
    assert re.search(r"^0 to add, 1 to change, 1 to replace, 0 to delete$", out, re.M), out
    # The same change without the program's marks is what pulumi-kubernetes's own facts say: an update in place.
    assert "value" not in str(replacement_facts()["kubernetes"]["resources"][pc]["replacedOnChange"])


def test_the_facts_script_reads_force_new_from_a_provider_clone(tmp_path):
    repo = tmp_path / "tfaws"
    files = {
        "LICENSE": "Mozilla Public License Version 2.0\n",
        "CHANGELOG.md": "## 9.9.0 (Unreleased)\n",
        "names/attr_consts.go": 'package names\nconst (\n\tAttrName = "name"\n)\n',
        "internal/service/eks/node_group.go": '''package eks
// @SDKResource("aws_eks_node_group", name="Node Group")
func resourceNodeGroup() *schema.Resource {
	return &schema.Resource{
		SchemaFunc: func() map[string]*schema.Schema {
			local := func() *schema.Schema {
				return &schema.Schema{Type: schema.TypeString, ForceNew: true}
			}
			return map[string]*schema.Schema{
				"ami_type": {
					Type:     schema.TypeString, // "ForceNew: true" in a comment is not a mark
					ForceNew: true,
				},
				"scaling_config": {
					Type: schema.TypeList,
					Elem: &schema.Resource{
						Schema: map[string]*schema.Schema{
							"max_size": {Type: schema.TypeInt, Required: true},
							"node_role": {Type: schema.TypeString, ForceNew: true},
						},
					},
				},
				names.AttrName: {Type: schema.TypeString, ForceNew: true},
				"launch_template": local(),
				"labels": {Type: schema.TypeMap, Description: "{ForceNew: true}"},
			}
		},
	}
}
''',
    }
    _git_repo(repo, files)
    out = tmp_path / "facts.json"
    script = [sys.executable, str(ROOT / "scripts" / "provider_facts.py"), "--terraform-provider-aws", str(repo),
              "--output", str(out), "--only", NODE_GROUP]
    proc = subprocess.run(script, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(out.read_text())
    ng = facts["resources"][NODE_GROUP]
    assert ng["replacedOnChange"] == ["amiType", "launchTemplate", "name", "scalingConfig.nodeRole"]
    assert facts["licence"] == "MPL-2.0" and facts["version"] == "9.9.0 (Unreleased)"
    (repo / "LICENSE").write_text("All rights reserved\n")
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "y"],
                   check=True)
    bad = subprocess.run(script, capture_output=True, text=True)
    assert bad.returncode != 0 and "not MPL-2.0" in bad.stderr


def test_kubernetes_objects_are_replaced_on_a_new_name_namespace_or_selector():
    facts = replacement_facts()["kubernetes"]
    assert facts["licence"] == "Apache-2.0" and re.fullmatch(r"[0-9a-f]{40}", facts["commit"])
    daemonset = _resource("kubernetes:apps/v1:DaemonSet")
    for path in ("inputs.metadata.name", "inputs.metadata.namespace", "inputs.spec.selector.matchLabels.app"):
        [why] = replacement_reasons(daemonset, [path])
        assert why == f"{path}: replaced on change by pulumi-kubernetes {facts['ref']}"
    assert replacement_reasons(daemonset, ["inputs.spec.template.spec.containers[0].image",
                                           "inputs.metadata.labels.team"]) == [], "rolled out in place"
    release = _resource("kubernetes:helm.sh/v3:Release")
    assert replacement_reasons(release, ["inputs.namespace"]) and not replacement_reasons(
        release, ["inputs.values.extraArgs.scan-interval", "inputs.version"])


def test_facts_cover_every_kubernetes_kind_the_stacks_declare(plans):
    kinds = set(replacement_facts()["kubernetes"]["resources"])
    declared = {r["type"] for p in plans.values() for r in p["doc"]["resources"]
                if r["custom"] and r["type"].startswith("kubernetes:")}
    assert declared <= kinds, f"no replacement facts for {sorted(declared - kinds)}"


def test_the_facts_script_reads_pulumi_kubernetes_force_new_table(tmp_path):
    repo = tmp_path / "pk"
    files = {
        "LICENSE": "Apache License\nVersion 2.0, January 2004\n",
        "provider/pkg/provider/helm_release.go": 'package provider\n\tforceNewFields := []string{".name", ".namespace"}\n',
        "provider/pkg/provider/diff.go": '''package provider
var forceNew = _groups{
	// a comment with "quotes"
	"apps": _versions{
		"v1": _kinds{"DaemonSet": daemonset},
	},
	"core": core,
}

var core = _versions{
	"v1": _kinds{
		"Service": properties{
			".spec.clusterIP",
		},
	},
}

var daemonset = append(
	properties{
		".spec.selector",
	},
	labelSelectorForceNewProperties(".spec.selector")...,
)

func metadataForceNewProperties(prefix string) properties {
	return properties{
		prefix + ".name",
		prefix + ".namespace",
	}
}

func labelSelectorForceNewProperties(prefix string) properties {
	return properties{
		prefix + ".matchLabels",
	}
}
''',
    }
    _git_repo(repo, files)
    out = tmp_path / "facts.json"
    out.write_text(json.dumps({"source": "kept", "resources": {}}))
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "provider_facts.py"), "--pulumi-kubernetes",
                           str(repo), "--output", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(out.read_text())
    assert facts["source"] == "kept", "the AWS section is kept when only Kubernetes is regenerated"
    kinds = {k: v["replacedOnChange"] for k, v in facts["kubernetes"]["resources"].items()}
    assert kinds["kubernetes:apps/v1:DaemonSet"] == ["metadata.name", "metadata.namespace", "spec.selector",
                                                     "spec.selector.matchLabels"]
    assert kinds["kubernetes:core/v1:Service"] == ["metadata.name", "metadata.namespace", "spec.clusterIP"]
    assert kinds["kubernetes:core/v1:Namespace"] == ["metadata.name", "metadata.namespace"]
    assert kinds["kubernetes:helm.sh/v3:Release"] == ["name", "namespace"]


def test_moving_a_service_to_knatives_autoscaler_replaces_its_inferenceservice_deleted_first(plans, tmp_path):
    """prod's chat from KEDA (Standard mode) to the KPA (Knative mode): KServe refuses the changed deploymentMode
    on the existing InferenceService, so the diff shows it replaced, the old one deleted first, and the ScaledObject
    that scaled it deleted; Knative Serving is added beside KEDA."""
    from gpuscale.config.pod_autoscalers import PRESETS

    def to_kpa(config):
        chat = next(s for s in config["gpuscale:services"] if s["name"] == "chat")
        chat["scaling"] = {"preset": "coreweave-kpa"}
        config["gpuscale:kubernetes"]["serving"]["knative"] = dict(PRESETS["coreweave-kpa"].knative)

    out = diff_with_changed(tmp_path, plans["prod"]["path"], "prod", to_kpa).stdout
    isvc = "kubernetes:serving.kserve.io/v1beta1:InferenceService"
    assert re.search(rf"^\+- {re.escape(isvc)}  chat-isvc  \(replace, delete first\)$", out, re.M), out
    assert "serving.kserve.io/deploymentMode: Standard => Knative" in out
    assert "replaced because inputs.metadata.annotations.serving.kserve.io/deploymentMode: replaceOnChanges in " \
           "the program" in out
    assert re.search(r"^- kubernetes:keda.sh/v1alpha1:ScaledObject  chat-scaler$", out, re.M), out
    assert re.search(r"^\+ gpuscale:index:KnativeServing  knative-serving$", out, re.M), out
