"""A value encrypted inside a stack file's key plans offline as [secret], and the plan says it could not read it."""

from __future__ import annotations

import json
import subprocess
import sys

from plan_support import project_copy


def test_the_offline_plan_shows_a_nested_secret_as_secret(tmp_path):
    """A stack whose alert email is encrypted plans offline: the subscription's endpoint is [secret], and the plan
    says which value it could not read."""
    def encrypt_email(config: dict) -> None:
        alerts = config.setdefault("gpuscale:alerts", {}) or {}
        alerts.update(email={"secure": "v1:AAAABBBBCCCC"})
        alerts.setdefault("snsTopicName", "gpu-alerts")
        config["gpuscale:alerts"] = alerts

    project = project_copy(tmp_path, "dev", encrypt_email)
    out = tmp_path / "plan.json"
    proc = subprocess.run([sys.executable, "-m", "gpuscale", "plan", "--stack", "dev", "--project-dir", str(project),
                           "--json", str(out)], capture_output=True, text=True)
    assert proc.returncode in (0, 3), proc.stderr
    assert "Secrets (encrypted in the stack file): gpuscale:alerts.email." in proc.stdout
    plan = json.loads(out.read_text())
    (subscription,) = [r for r in plan["resources"] if r["type"] == "aws:sns/topicSubscription:TopicSubscription"]
    assert subscription["inputs"]["endpoint"] == "[secret]"
    assert "AAAABBBBCCCC" not in json.dumps(plan) + proc.stdout
