"""The buffer's bound and resend order, and PutMetricData requests within the API's limits."""

from __future__ import annotations

import json
import time
from array import array

import botocore.session
import pytest
from botocore.validate import ParamValidator

from gpu_metrics_agent import catalogue as cat
from gpu_metrics_agent.buffer import Cursor, DatapointBuffer
from gpu_metrics_agent.cloudwatch_batch import MAX_AGE_S, RequestBuilder, Series
from gpu_metrics_agent.imds import NodeIdentity

IDENTITY = NodeIdentity("asg", "i-1", "p5.48xlarge", "us-east-1")
PUT_METRIC_DATA = botocore.session.get_session().get_service_model("cloudwatch").operation_model("PutMetricData")


def _keys(n: int, rollup: bool = False) -> tuple[Series, ...]:
    return tuple(Series(f"M{i}", "Count", rollup, () if rollup else (("GpuIndex", str(i)),)) for i in range(n))


def _valid(metric_data: list[dict]) -> None:
    report = ParamValidator().validate({"Namespace": cat.NAMESPACE, "MetricData": metric_data},
                                       PUT_METRIC_DATA.input_shape)
    assert not report.has_errors(), report.generate_report()


def test_the_service_model_still_has_the_limits_the_builder_assumes():
    doc = PUT_METRIC_DATA.documentation
    assert "no more than 1000 different metrics" in doc and "1 MB" in doc and "150 values" in doc
    assert PUT_METRIC_DATA.input_shape.members["MetricData"].member.members["Dimensions"].metadata["max"] == 30


def test_the_bound_drops_the_oldest_rows_and_counts_their_datapoints():
    buffer = DatapointBuffer(capacity=10)
    for ts in range(4):
        buffer.append(float(ts), _keys(4), array("d", [ts] * 4))
    assert len(buffer) == 8 and buffer.dropped == 8
    rows, offset = buffer.peek(100)
    assert [r.timestamp for r in rows] == [2.0, 3.0] and offset == 0


def test_commit_can_stop_inside_a_row():
    buffer = DatapointBuffer(capacity=12)
    for ts in range(3):
        buffer.append(float(ts), _keys(4), array("d", [ts] * 4))
    rows, _ = buffer.peek(1)
    assert len(rows) == 1
    buffer.commit(Cursor(rows[0].seq, 3))
    assert len(buffer) == 9
    rows, offset = buffer.peek(100)
    assert offset == 3 and [r.timestamp for r in rows] == [0.0, 1.0, 2.0]


def _in_flight_then_overflow() -> tuple[DatapointBuffer, list]:
    buffer = DatapointBuffer(capacity=12)
    for ts in range(3):
        buffer.append(float(ts), _keys(4), array("d", [ts] * 4))
    rows, _ = buffer.peek(1)  # row 0 goes out in a request
    buffer.append(3.0, _keys(4), array("d", [3] * 4))
    buffer.append(4.0, _keys(4), array("d", [4] * 4))
    return buffer, rows


def test_rows_in_flight_are_never_dropped_so_nothing_counts_as_both_sent_and_dropped():
    buffer, rows = _in_flight_then_overflow()
    assert buffer.dropped == 4, "the oldest row not in flight made room"
    buffer.commit(Cursor(rows[0].seq, 4))  # the request lands
    assert buffer.dropped == 4 and len(buffer) == 12
    assert [r.timestamp for r in buffer.peek(100)[0]] == [2.0, 3.0, 4.0]


def test_a_failed_request_is_kept_and_the_buffer_trimmed_oldest_first():
    buffer, rows = _in_flight_then_overflow()
    buffer.release()
    assert buffer.dropped == 8 and len(buffer) == 12
    assert [r.timestamp for r in buffer.peek(100)[0]] == [2.0, 3.0, 4.0]


def test_requests_hold_at_most_1000_metrics_and_stop_where_the_next_begins():
    buffer = DatapointBuffer(capacity=10_000)
    for ts in range(5):
        buffer.append(1.7e9 + ts, _keys(300), array("d", range(300)))
    builder = RequestBuilder(IDENTITY)
    rows, offset = buffer.peek(4000)
    batch = builder.build(rows, offset, now=1.7e9 + 10)
    assert len(batch.metric_data) == 1000 and batch.datapoints == 1000
    assert batch.end == Cursor(rows[3].seq, 100)
    _valid(batch.metric_data)
    buffer.commit(batch.end)
    rows, offset = buffer.peek(4000)
    rest = builder.build(rows, offset, now=1.7e9 + 10)
    assert rest.datapoints == 500 and len(buffer) == 500


def test_same_series_in_the_same_second_share_one_datum_with_values_and_counts():
    rows_buffer = DatapointBuffer(capacity=10_000)
    rollup = Series(cat.GPU_THERMAL_THROTTLE.name, "Count", True, ())
    for tick in range(4):  # 4 samples within one second, 8 GPUs each rolled up to the group
        rows_buffer.append(1.7e9 + tick * 0.25, (rollup,) * 8, array("d", [0, 0, 0, 0, 0, 0, 0, 1]))
    rows, offset = rows_buffer.peek(4000)
    batch = RequestBuilder(IDENTITY).build(rows, offset, now=1.7e9)
    assert len(batch.metric_data) == 1 and batch.datapoints == 32
    datum = batch.metric_data[0]
    assert datum["Values"] == [0.0, 1.0] and datum["Counts"] == [28, 4]
    assert datum["Dimensions"] == [{"Name": cat.DIM_ASG, "Value": "asg"}]
    assert datum["StorageResolution"] == 1 and datum["Timestamp"].timestamp() == 1.7e9
    _valid(batch.metric_data)


def test_a_datum_never_carries_more_than_150_values():
    buffer = DatapointBuffer(capacity=10_000)
    series = Series("M", "None", True, ())
    buffer.append(1.7e9, (series,) * 400, array("d", range(400)))
    rows, offset = buffer.peek(4000)
    batch = RequestBuilder(IDENTITY).build(rows, offset, now=1.7e9)
    assert [len(d["Values"]) for d in batch.metric_data] == [150, 150, 100]
    _valid(batch.metric_data)


def test_requests_stay_under_the_size_limit():
    buffer = DatapointBuffer(capacity=100_000)
    long_labels = (("GpuUuid", "GPU-" + "f" * 200),)
    buffer.append(1.7e9, tuple(Series(f"Metric{i}", "None", False, long_labels) for i in range(1000)),
                  array("d", range(1000)))
    rows, offset = buffer.peek(4000)
    batch = RequestBuilder(IDENTITY, max_bytes=100_000).build(rows, offset, now=1.7e9)
    size = len(json.dumps(batch.metric_data, default=str))
    assert 0 < len(batch.metric_data) < 1000 and size <= 100_000


def test_datapoints_older_than_two_weeks_are_given_up_and_counted():
    buffer = DatapointBuffer(capacity=100)
    now = time.time()
    buffer.append(now - MAX_AGE_S - 60, _keys(3), array("d", [1, 2, 3]))
    buffer.append(now, _keys(2), array("d", [4, 5]))
    rows, offset = buffer.peek(100)
    batch = RequestBuilder(IDENTITY).build(rows, offset, now=now)
    assert batch.expired == 3 and batch.datapoints == 2 and len(batch.metric_data) == 2


@pytest.mark.parametrize("capacity", [0, -1])
def test_a_buffer_needs_room(capacity):
    with pytest.raises(ValueError):
        DatapointBuffer(capacity)
