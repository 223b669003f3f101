"""`gpuscale plan --project-dir` plans a user's own program, not only this repository's: a small program in a
temporary directory that imports GpuNodeGroup and GpuAutoScalingGroup, reads its own config namespace (its project
name), keeps its program in `main: infra/` and its stack files in `stackConfigDir: env/`. Mistakes in its Pulumi.yaml,
or a stack without a file, fail before anything runs, naming the file and what is expected."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PROJECT = textwrap.dedent("""\
    name: fleet
    description: A user's own GPU fleet, built from gpuscale's components
    runtime:
      name: python
      options:
        toolchain: pip
    main: infra/
    stackConfigDir: env/
""")

PROGRAM = textwrap.dedent("""\
    import pulumi

    from gpuscale.components.agent_bundle import AgentBundle
    from gpuscale.components.gpu_asg import GpuAutoScalingGroup
    from gpuscale.components.gpu_node_group import GpuNodeGroup

    from sizes import group_sizes  # a module beside the program, found as under `pulumi up`

    config = pulumi.Config()  # the project's own namespace: fleet
    region = pulumi.Config("aws").require("region")
    low, high = group_sizes(config.require_object("gpu"))
    nodes = GpuNodeGroup("inference", {
        "cluster_name": config.require("clusterName"), "node_role_arn": config.require("nodeRoleArn"),
        "subnet_ids": config.require_object("subnetIds"), "instance_types": ["g6.xlarge"], "gpu_count": 1,
        "gpu_name": "L4", "min_size": low, "max_size": high})
    bundle = AgentBundle("agent", {})
    batch = GpuAutoScalingGroup("batch", {
        "vpc_id": config.require("vpcId"), "subnet_ids": config.require_object("subnetIds"),
        "instance_types": ["g6.xlarge"], "min_size": 0, "max_size": high, "region": region,
        "agent_bucket_arn": bundle.bucket_arn, "agent_bucket_name": bundle.bucket_name,
        "agent_object_key": bundle.object_key})
    pulumi.export("project", pulumi.get_project())
    pulumi.export("batchGroup", batch.asg_name)
""")

SIZES = textwrap.dedent("""\
    def group_sizes(gpu):
        return int(gpu["minSize"]), int(gpu["maxSize"])
""")

STACK = textwrap.dedent("""\
    config:
      aws:region: eu-west-1
      fleet:clusterName: fleet-staging
      fleet:nodeRoleArn: arn:aws:iam::123456789012:role/fleet-nodes
      fleet:vpcId: vpc-0123456789abcdef0
      fleet:subnetIds: [subnet-0123456789abcdef0, subnet-0fedcba9876543210]
      fleet:gpu:
        minSize: 1
        maxSize: 3
      # The policy rules' settings, read as in this repository's stacks; the program tags nothing with gpuscale:stack.
      gpuscale:policy:
        enforcement:
          required-tags: advisory
""")


def user_project(root: Path) -> Path:
    (root / "infra").mkdir(parents=True)
    (root / "env").mkdir()
    (root / "Pulumi.yaml").write_text(PROJECT)
    (root / "infra" / "__main__.py").write_text(PROGRAM)
    (root / "infra" / "sizes.py").write_text(SIZES)
    (root / "env" / "Pulumi.staging.yaml").write_text(STACK)
    return root


def gpuscale_plan(project: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpuscale", "plan", "--project-dir", str(project), *args],
                          capture_output=True, text=True, timeout=300, cwd=cwd or project.parent)


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    project = user_project(tmp_path_factory.mktemp("user") / "fleet")
    out = project.parent / "plan.json"
    proc = gpuscale_plan(project, "--stack", "staging", "--json", str(out))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc.stdout, json.loads(out.read_text())


def test_a_users_program_plans_under_its_own_project_name_and_config(planned):
    text, doc = planned
    assert doc["project"] == "fleet" and doc["stack"] == "staging"
    assert doc["outputs"]["project"] == "fleet", "the program sees its own project name: pulumi.Config() reads fleet:"
    types = {r["type"] for r in doc["resources"]}
    assert {"gpuscale:index:GpuNodeGroup", "gpuscale:index:GpuAutoScalingGroup", "aws:eks/nodeGroup:NodeGroup",
            "aws:autoscaling/group:Group"} <= types
    (node_group,) = [r for r in doc["resources"] if r["type"] == "aws:eks/nodeGroup:NodeGroup"]
    # The values come from env/Pulumi.staging.yaml under fleet:, through the program's own helper module.
    assert node_group["inputs"]["clusterName"] == "fleet-staging"
    scaling = node_group["inputs"]["scalingConfig"]
    assert scaling["minSize"] == 1 and scaling["maxSize"] == 3
    assert node_group["inputs"]["subnetIds"] == ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
    (group,) = [r for r in doc["resources"] if r["type"] == "aws:autoscaling/group:Group"]
    assert group["inputs"]["maxSize"] == 3
    assert "GpuNodeGroup" in text and "Outputs" in text


def test_without_platform_settings_the_policy_rules_still_run_and_the_cost_says_why_it_has_no_figure(planned):
    text, doc = planned
    assert doc["checks"], "the policy rules run on the planned resources"
    assert {c["check"] for c in doc["checks"]} == {"policy:required-tags"}
    # gpuscale:policy made the rule advisory: its findings warn, and the plan exits 0 (a mandatory one would be 3).
    assert {c["severity"] for c in doc["checks"]} == {"warning"}
    assert "holds no gpuscale: settings" in doc["cost"]["error"] and doc["cost"]["region"] == "eu-west-1"
    assert "Pre-apply checks (the policy rules only" in text


def test_a_mandatory_policy_finding_fails_a_users_plan_too(tmp_path):
    project = user_project(tmp_path / "fleet")
    stack = project / "env" / "Pulumi.staging.yaml"
    stack.write_text(stack.read_text().replace("required-tags: advisory", "required-tags: mandatory"))
    proc = gpuscale_plan(project, "--stack", "staging", "--quiet")
    assert proc.returncode == 3 and "tags lack gpuscale:stack" in proc.stderr, proc.stderr


def test_the_nearest_pulumi_yaml_is_the_project_when_no_directory_is_given(tmp_path):
    project = user_project(tmp_path / "fleet")
    out = tmp_path / "plan.json"
    proc = subprocess.run([sys.executable, "-m", "gpuscale", "plan", "--stack", "staging", "--json", str(out),
                           "--quiet"], capture_output=True, text=True, timeout=300, cwd=project / "infra")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["project"] == "fleet"


def test_a_stack_without_a_file_names_the_config_directory_and_the_stacks_there(tmp_path):
    project = user_project(tmp_path / "fleet")
    proc = gpuscale_plan(project, "--stack", "prod")
    assert proc.returncode == 2
    assert "'prod'" in proc.stderr and "Pulumi.<stack>.yaml in env/ (the project's stackConfigDir): staging" \
        in proc.stderr, proc.stderr


@pytest.mark.parametrize("change, named, expected", [
    (None, "Pulumi.yaml: missing", "a Pulumi project file (Pulumi.yaml) with at least `name` and `runtime: python`"),
    ("runtime: nodejs\nname: fleet\n", "Pulumi.yaml: runtime: 'nodejs' is not allowed",
     "python: the offline plan runs Python programs"),
    ("name: fleet\n", "Pulumi.yaml: runtime: missing", "the language runtime: python"),
    ("name: my fleet\nruntime: python\n", "Pulumi.yaml: name: 'my fleet' is not allowed",
     "alphanumeric characters, hyphens, underscores and periods"),
    ("name: fleet\nruntime: python\nmain: app/\nstackConfigDir: env/\n", "Pulumi.yaml: main: 'app/' is not allowed",
     "a path relative to Pulumi.yaml that exists"),
    ("name: fleet\nruntime: python\nstackConfigDir: env/\n", "Pulumi.yaml: main: '(default: the project directory)'",
     "a directory holding the program's __main__.py"),
    ("name: fleet\nruntime: python\nmain: infra/\nstackConfigDir: stacks/\n",
     "Pulumi.yaml: stackConfigDir: 'stacks/' is not allowed", "holding the Pulumi.<stack>.yaml files"),
    ("name: fleet\nruntime: [python\n", "Pulumi.yaml, line 3, column 1: the file is not valid YAML", ""),
])
def test_a_broken_pulumi_yaml_names_the_file_the_attribute_and_what_is_expected(tmp_path, change, named, expected):
    project = user_project(tmp_path / "fleet")
    if change is None:
        (project / "Pulumi.yaml").unlink()
    else:
        (project / "Pulumi.yaml").write_text(change)
    proc = gpuscale_plan(project, "--stack", "staging")
    assert proc.returncode == 2, proc.stdout
    assert f"{project / named}" in proc.stderr or f"{project}/{named}" in proc.stderr, proc.stderr
    assert expected in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_the_projects_virtualenv_is_where_the_plan_runs(tmp_path):
    project = user_project(tmp_path / "fleet")
    (project / "Pulumi.yaml").write_text(PROJECT.replace("toolchain: pip", "virtualenv: venv"))
    # An environment without gpuscale: the program could not import the components there, so neither can its plan.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(project / "venv")], check=True, timeout=120)
    proc = gpuscale_plan(project, "--stack", "staging")
    assert proc.returncode == 2
    assert "Pulumi.yaml: runtime.options.virtualenv" in proc.stderr and "with gpuscale installed" in proc.stderr, \
        proc.stderr


def test_project_level_config_is_named_as_not_read_offline(tmp_path):
    project = user_project(tmp_path / "fleet")
    (project / "Pulumi.yaml").write_text(PROJECT + "config:\n  fleet:team: inference\n")
    proc = gpuscale_plan(project, "--stack", "staging", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert f"warning: {project / 'Pulumi.yaml'}: config: the project-level config (fleet:team) is not read offline" \
        in proc.stderr, proc.stderr


PLATFORM_PROGRAM = textwrap.dedent("""\
    from gpuscale.components.platform import GpuPlatform
    from gpuscale.config.program import load_program_config

    GpuPlatform("gpuscale", {"config": load_program_config("fleet")})
""")


def test_the_whole_platform_under_the_programs_own_namespace_gets_every_check(tmp_path):
    """GpuPlatform fed from `fleet:` keys: the plan reads the same namespace for the checks and the cost, and its
    findings name the keys as the stack file writes them (those of this repository's dev stack, renamed)."""
    root = Path(__file__).resolve().parents[2]
    project = user_project(tmp_path / "fleet")
    (project / "infra" / "__main__.py").write_text(PLATFORM_PROGRAM)
    dev = (root / "stacks" / "Pulumi.dev.yaml").read_text()
    assert "\n  gpuscale:nodeGroups:" in dev
    (project / "env" / "Pulumi.dev.yaml").write_text(dev.replace("\n  gpuscale:", "\n  fleet:"))
    ours, theirs = tmp_path / "ours.json", tmp_path / "theirs.json"
    for proj, out in ((root, ours), (project, theirs)):
        proc = gpuscale_plan(proj, "--stack", "dev", "--json", str(out), "--quiet")
        assert proc.returncode in (0, 3), proc.stderr
    dev_doc, doc = json.loads(ours.read_text()), json.loads(theirs.read_text())
    assert doc["project"] == "fleet"
    assert any(not c["check"].startswith("policy:") for c in doc["checks"]), "the settings' checks ran"
    assert [{**c, "settings": [s.replace("fleet:", "gpuscale:") for s in c["settings"]]} for c in doc["checks"]] == \
        dev_doc["checks"]
    assert all(not s.startswith("gpuscale:") for c in doc["checks"] for s in c["settings"]), doc["checks"]
    assert doc["cost"] == dev_doc["cost"]


def test_a_namespace_other_than_the_project_name_is_named_on_the_command_line(tmp_path):
    """A program that reads `load_program_config("platform")` in project fleet: detection looks for `fleet:`
    settings and finds none, so only the policy rules run; `--config-namespace platform` reads the platform's
    settings there, and every check runs. A namespace without settings is refused, naming the ones the file has."""
    root = Path(__file__).resolve().parents[2]
    project = user_project(tmp_path / "fleet")
    (project / "infra" / "__main__.py").write_text(PLATFORM_PROGRAM.replace('"fleet"', '"platform"'))
    dev = (root / "stacks" / "Pulumi.dev.yaml").read_text()
    (project / "env" / "Pulumi.dev.yaml").write_text(dev.replace("\n  gpuscale:", "\n  platform:"))
    guessed = gpuscale_plan(project, "--stack", "dev")
    assert "Pre-apply checks (the policy rules only" in guessed.stdout
    # Unread, dev's own policy settings (platform:policy accepts its public API) do not apply either.
    assert guessed.returncode == 3 and "the API endpoint is public to 0.0.0.0/0" in guessed.stderr
    out = tmp_path / "named.json"
    named = gpuscale_plan(project, "--stack", "dev", "--config-namespace", "platform", "--json", str(out), "--quiet")
    assert named.returncode == 0, named.stderr
    checks = json.loads(out.read_text())["checks"]
    assert any(not c["check"].startswith("policy:") for c in checks), "the settings' checks ran"
    assert all(s.startswith(("platform:", "aws:")) for c in checks for s in c["settings"]), checks
    wrong = gpuscale_plan(project, "--stack", "dev", "--config-namespace", "fleet")
    assert wrong.returncode == 2 and "Plan of stack" not in wrong.stdout, "refused before the program runs"
    assert "--config-namespace: 'fleet' is not allowed; allowed: a namespace holding the platform's settings in " \
           "stack dev's file" in wrong.stderr
    assert "the namespaces it holds: aws, platform" in wrong.stderr
    # The simulator reads the same namespace, found the same way.
    sim = subprocess.run([sys.executable, "-m", "gpuscale", "simulate", "--project-dir", str(project), "--stack",
                          "dev", "--config-namespace", "platform", "--group", "infer"],
                         capture_output=True, text=True, timeout=300)
    assert sim.returncode == 0 and sim.stdout.startswith("group infer: trace burst"), sim.stderr
    unnamed = subprocess.run([sys.executable, "-m", "gpuscale", "simulate", "--project-dir", str(project),
                              "--stack", "dev"], capture_output=True, text=True, timeout=300)
    assert unnamed.returncode != 0 and "name the program's with --config-namespace" in unnamed.stderr
