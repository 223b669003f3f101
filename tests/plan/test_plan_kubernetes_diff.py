"""`gpuscale diff` shows a change of a Helm value as the value path that changed, from two real plans."""

from __future__ import annotations

from plan_support import gpuscale, project_copy


def test_diff_names_the_changed_chart_value(tmp_path, plans):
    def slower_scale_down(config):
        config["gpuscale:kubernetes"]["clusterAutoscaler"]["scaleDownUnneededSeconds"] = 900
    project = project_copy(tmp_path, "dev", slower_scale_down)
    after = tmp_path / "after.json"
    planned = gpuscale("plan", "--project-dir", str(project), "--stack", "dev", "--json", str(after), "--quiet")
    assert planned.returncode == 0, planned.stderr
    diff = gpuscale("diff", str(plans["dev"]["path"]), str(after))
    assert diff.returncode == 1, "plans differ"
    lines = diff.stdout.splitlines()
    # (The copied project has no agent/ beside it, so the agent archive's asset paths differ too.)
    at = lines.index("~ kubernetes:helm.sh/v3:Release  cluster-autoscaler-chart")
    assert lines[at + 1] == "      inputs.values.extraArgs.scale-down-unneeded-time: 300s => 900s"
    assert not lines[at + 2].startswith("      "), "the one value that changed, nothing else of the release"
