"""The cold-start levers in the simulator: a model cache makes the model load its read time, an image cache removes
the image pull, and `--compare` runs the service without each lever it has, beside it, through the same engine."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from gpuscale.config.caches import ImageCacheConfig, ModelCacheConfig
from gpuscale.config.headroom import HeadroomConfig
from gpuscale.config import load_stack_file
from gpuscale.sim.serving import levers_of, lever_workload, simulate_service
from gpuscale.sim.traces import burst

ROOT = Path(__file__).resolve().parents[2]
CACHE = ModelCacheConfig("local", "16Gi", "100Gi", 1000.0)


def batch_at_zero(model_cache=CACHE, image_cache=ImageCacheConfig("snap-0123456789abcdef0"), headroom=0):
    """prod's `batch` (zero between bursts) with the levers given on it and its node group."""
    config = load_stack_file(ROOT, "prod")
    svc = replace(next(s for s in config.services if s.name == "batch"), model_cache=model_cache)
    groups = tuple(replace(g, image_cache=image_cache) if g.name == svc.node_group else g for g in config.node_groups)
    config = replace(config, node_groups=groups,
                     headroom=(HeadroomConfig(svc.node_group, headroom),) if headroom else ())
    return config, svc


def test_a_model_cache_is_its_read_time_and_an_image_cache_removes_the_pull():
    config, svc = batch_at_zero()
    group = next(g for g in config.node_groups if g.name == svc.node_group)
    cold = lever_workload(svc, group, levers_of(svc, config)).cold_start
    assert cold.model_load_seconds == pytest.approx(16 * 1024 / 1000)
    assert cold.image_pull_seconds == 0
    assert cold.node_provisioning_seconds == svc.workload.cold_start.node_provisioning_seconds
    plain = lever_workload(svc, group, ()).cold_start
    assert plain == svc.workload.cold_start


def test_compare_rows_show_each_levers_effect_on_a_burst_onto_zero():
    config, svc = batch_at_zero(headroom=1)
    assert levers_of(svc, config) == ("model cache", "image cache", "headroom")
    sim = simulate_service(svc, config, burst(), ["stack", "ideal"], lever_rows=True)
    rows = {r.preset: r for r in sim.results}
    assert list(rows) == ["stack", "ideal", "no model cache", "no image cache", "no headroom"]
    cold = svc.workload.cold_start
    first = rows["stack"].first_new_pod
    # Each lever off costs the first response about what it saved (the engine works in whole seconds).
    assert rows["no image cache"].first_new_pod - first == pytest.approx(cold.image_pull_seconds, abs=2)
    assert rows["no model cache"].first_new_pod - first == pytest.approx(
        cold.model_load_seconds - CACHE.read_seconds, abs=2)
    assert rows["no headroom"].first_new_pod - first >= cold.node_provisioning_seconds
    assert "levers on: model cache, image cache, headroom" in "\n".join(sim.notes)


def test_no_lever_rows_without_levers_or_without_compare():
    config, svc = batch_at_zero(model_cache=None, image_cache=None)
    assert levers_of(svc, config) == ()
    sim = simulate_service(svc, config, burst(), ["stack", "ideal"], lever_rows=True)
    assert [r.preset for r in sim.results] == ["stack", "ideal"]
    config, svc = batch_at_zero()
    sim = simulate_service(svc, config, burst(), ["stack", "ideal"])
    assert [r.preset for r in sim.results] == ["stack", "ideal"]


def test_the_cli_compare_prints_the_lever_rows(tmp_path):
    from gpuscale.sim.cli import simulate

    text = (ROOT / "stacks" / "Pulumi.prod.yaml").read_text()
    marker = "    - name: batch\n      nodeGroup: l4-spot\n"
    assert marker in text
    for name in ("Pulumi.yaml", "__main__.py"):  # a project directory: its program beside its Pulumi.yaml
        (tmp_path / name).write_text((ROOT / name).read_text())
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    (stacks / "Pulumi.prod.yaml").write_text(text.replace(
        marker, marker + "      modelCache: {kind: local, modelSize: 16Gi, readMibPerSecond: 1000}\n"))
    result = CliRunner().invoke(simulate, ["--stack", "prod", "--service", "batch", "--compare",
                                       "--project-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "no model cache" in result.output and "1st pod s" in result.output


def test_an_efs_cache_is_the_models_size_at_one_clients_throughput_and_compares_like_the_local_one():
    efs = ModelCacheConfig("efs", "16Gi", "16Gi", 1500.0)
    config, svc = batch_at_zero(model_cache=efs, image_cache=None)
    group = next(g for g in config.node_groups if g.name == svc.node_group)
    assert lever_workload(svc, group, levers_of(svc, config)).cold_start.model_load_seconds == pytest.approx(
        16 * 1024 / 1500)
    sim = simulate_service(svc, config, burst(), ["stack", "ideal"], lever_rows=True)
    rows = {r.preset: r for r in sim.results}
    assert list(rows) == ["stack", "ideal", "no model cache"]
    assert rows["no model cache"].first_new_pod - rows["stack"].first_new_pod == pytest.approx(
        svc.workload.cold_start.model_load_seconds - efs.read_seconds, abs=2)
    notes = "\n".join(sim.notes)
    assert "the efs cache's load is 16Gi at one node's 1500 MiB/s" in notes and "already holds" not in notes


def test_the_cli_compare_prints_the_efs_lever_row(tmp_path):
    from gpuscale.sim.cli import simulate

    text = (ROOT / "stacks" / "Pulumi.prod.yaml").read_text()
    marker = "    - name: batch\n      nodeGroup: l4-spot\n"
    for name in ("Pulumi.yaml", "__main__.py"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.prod.yaml").write_text(text.replace(
        marker, marker + "      modelCache: {kind: efs, modelSize: 16Gi}\n"))
    result = CliRunner().invoke(simulate, ["--stack", "prod", "--service", "batch", "--compare",
                                       "--project-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "no model cache" in result.output and "efs cache" in result.output
