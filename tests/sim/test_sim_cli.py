"""`gpuscale simulate` through click's runner: the table, --json, --png, and clear errors without tracebacks."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner
from sim_support import REPO

from gpuscale.cli import cli


def simulate(*args: str):
    return CliRunner().invoke(cli, ["simulate", "--project-dir", str(REPO), *args])


def test_table_of_stack_and_ideal_by_default():
    result = simulate("--stack", "dev")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("group infer: trace burst")
    header = next(line for line in lines if line.startswith("preset"))
    for column in ("cost", "P", "p50 s", "p95 s", "p99 s", "to cap s", "done s", "queued", "502", "cost/ideal",
                   "done/ideal"):
        assert column in header
    assert "1st pod s" not in header, "an instance group's runs have no pods"
    table = lines[lines.index(header) + 2:]
    rows = [line.split()[0] for line in table[:table.index("")]]
    assert rows == ["stack", "ideal"]


def test_compare_and_json(tmp_path):
    out = tmp_path / "sim.json"
    result = simulate("--stack", "prod", "--group", "infer-l40s", "--compare", "--json", str(out))
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    (group,) = data["groups"]
    assert group["group"] == "infer-l40s" and group["currency"] == "USD"
    presets = [r["preset"] for r in group["results"]]
    assert presets == ["static", "hf-like", "coreweave-kpa", "hpa-example", "keda-queue", "stack", "ideal"]
    ideal = group["results"][-1]
    assert ideal["cost_vs_ideal"] == 1.0 and ideal["completion_vs_ideal"] == 1.0
    for preset in presets:
        assert f"\n{preset} " in "\n" + result.output


def test_node_groups_are_simulated_and_compared():
    result = simulate("--stack", "dev")
    assert result.exit_code == 0 and "group l4-spot:" in result.output, "node groups with a workload by default"
    result = simulate("--stack", "prod", "--group", "a10g-x4", "--compare")
    assert result.exit_code == 0, result.output
    rows = [line.split()[0] for line in result.output.splitlines()[4:] if line.strip()]
    assert rows == ["static", "hf-like", "coreweave-kpa", "hpa-example", "keda-queue", "stack", "ideal"]


def test_png_chart_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "burst.png"
    result = simulate("--stack", "dev", "--group", "infer", "--preset", "stack", "--preset", "ideal", "--png", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_csv_trace_and_duration(tmp_path):
    trace = tmp_path / "rates.csv"
    trace.write_text("second,requests\n" + "".join(f"{s},0.05\n" for s in range(600)))
    result = simulate("--stack", "dev", "--trace", str(trace), "--duration", "30m", "--preset", "ideal")
    assert result.exit_code == 0, result.output
    assert "over 1800 s" in result.output and "rates.csv" in result.output


@pytest.mark.parametrize("args, named", [
    (["--stack", "nope"], "'nope'"),
    (["--stack", "dev", "--trace", "nowhere.csv"], "nowhere.csv"),
    (["--stack", "dev", "--trace", "sawtooth"], "sawtooth"),
    (["--stack", "dev", "--duration", "3x"], "--duration"),
    (["--stack", "dev", "--duration", "9d"], "--duration"),
    (["--stack", "dev", "--group", "infer-l40s"], "--group 'infer-l40s'"),
    (["--stack", "dev", "--preset", "magic"], "'magic'"),
    (["--stack", "dev", "--step", "0"], "--step"),
])
def test_bad_input_names_it_without_a_traceback(args, named):
    result = simulate(*args)
    assert result.exit_code != 0
    assert named in result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, (TypeError, KeyError, ValueError))


def test_bad_csv_names_the_line(tmp_path):
    trace = tmp_path / "bad.csv"
    trace.write_text("timestamp\n1\nlater\n")
    result = simulate("--stack", "dev", "--trace", str(trace))
    assert result.exit_code == 2 and "bad.csv:3" in result.output and "Traceback" not in result.output


def test_png_without_matplotlib_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the charts extra were not installed
    result = simulate("--stack", "dev", "--preset", "ideal", "--png", str(tmp_path / "x.png"))
    assert result.exit_code == 2 and "gpuscale[charts]" in result.output


def test_unwritable_json_is_an_error_not_a_traceback(tmp_path):
    result = simulate("--stack", "dev", "--preset", "ideal", "--json", str(tmp_path / "no" / "such" / "dir.json"))
    assert result.exit_code == 2 and "--json" in result.output and "Traceback" not in result.output


def test_a_service_compared_with_every_preset():
    result = simulate("--stack", "prod", "--service", "batch", "--compare")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("service batch: trace burst")
    assert lines[1].startswith("node group l4-spot; keda in KServe's standard mode")
    assert "cold start: node 120 s + device plugin 30 s + image 90 s + model 60 s" in lines[2]
    header = next(line for line in lines if line.startswith("preset"))
    table = lines[lines.index(header) + 2:]
    rows = [line.split()[0] for line in table if line.strip()]
    assert rows == ["stack", "coreweave-kpa", "hf-like", "hpa-example", "keda-queue", "ideal"]


def test_service_json_says_what_was_simulated(tmp_path):
    out = tmp_path / "sim.json"
    result = simulate("--stack", "dev", "--service", "chat", "--json", str(out))
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(out.read_text())["groups"]
    assert (entry["group"], entry["kind"]) == ("chat", "service")
    assert [r["preset"] for r in entry["results"]] == ["stack", "ideal"]


@pytest.mark.parametrize("args, message", [
    (("--service", "nope"), "--service 'nope': not a service of stack dev (its services: chat)"),
    (("--service", "chat", "--preset", "static"), "--preset static: not a preset for a service"),
])
def test_service_errors_name_the_input(args, message):
    result = simulate("--stack", "dev", *args)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
