"""Traces: the built-in shapes and CSV files, with errors that name the file and line."""

from __future__ import annotations

import pytest

from gpuscale.sim.traces import BURST_REQUESTS, TraceError, load, read_csv


def test_burst_is_100_requests_at_once_onto_a_service_at_zero():
    trace = load("burst", peak_rps=5)
    assert trace.total_requests == BURST_REQUESTS == 100
    assert trace.seconds == 1 and trace.starts_at_zero


def test_builtin_traces_are_sized_to_the_group_and_repeatable():
    day = load("diurnal", peak_rps=10)
    assert day.seconds == 86400
    hourly = day.arrivals.reshape(24, 3600).mean(axis=1)
    assert hourly.argmax() in (15, 16) and hourly.argmin() in (3, 4), "peak in the afternoon, trough at night"
    assert hourly.max() == pytest.approx(7.0, rel=0.05), "70% of the group's peak throughput"
    assert (load("diurnal", peak_rps=10).arrivals == day.arrivals).all(), "a fixed seed: the same trace each run"
    spiky = load("spiky", peak_rps=10, seconds=7200)
    assert spiky.arrivals.max() > 3 * spiky.arrivals.mean(), "spikes stand out of the baseline"


def test_csv_of_timestamps(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("timestamp\n0\n0.5\n3\n3.9\n3.2\n")
    assert read_csv(path).arrivals.tolist() == [2, 0, 0, 3]


def test_csv_of_iso_timestamps_counts_from_the_first(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("timestamp\n2024-05-01T10:00:02Z\n2024-05-01T10:00:00Z\n2024-05-01T10:00:02.5Z\n")
    assert read_csv(path).arrivals.tolist() == [1, 0, 2]


def test_csv_of_rates(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("second,requests\n0,1.5\n2,4\n")
    assert read_csv(path).arrivals.tolist() == [1.5, 0, 4]


@pytest.mark.parametrize("text, message", [
    ("", "empty file"),
    ("when\n1\n", ":1: header 'when' not recognised"),
    ("timestamp\n", "no data rows"),
    ("timestamp\n1\nsoon\n", ":3: 'soon' is neither seconds"),
    ("timestamp\n1,2\n", ":2: expected one column"),
    ("timestamp\n-4\n", "negative timestamp"),
    ("timestamp\n1\n2024-01-01T00:00:00\n", "mixes numeric and ISO 8601"),
    ("second,requests\n0,1\n0,2\n", "second 0 appears more than once"),
    ("second,requests\n0,-1\n", ":2: second must be >= 0 and requests a finite number >= 0"),
    ("second,requests\nx,1\n", ":2: 'x,1': second must be a whole number"),
    ("timestamp\n9999999\n", "at most 604800 s"),
])
def test_bad_csv_files_say_where(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(TraceError) as err:
        read_csv(path)
    assert message in str(err.value) and "bad.csv" in str(err.value)


def test_unknown_trace_names_the_choices(tmp_path):
    with pytest.raises(TraceError, match="not a built-in trace .*burst, diurnal, spiky"):
        load("sawtooth", peak_rps=1)
    with pytest.raises(TraceError, match="no such file"):
        load(str(tmp_path / "missing.csv"), peak_rps=1)
