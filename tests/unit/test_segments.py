"""Segment keys and replay planning: pure logic, every way the cold and hot logs can meet."""

from __future__ import annotations

import pytest

from app.domain.log_layout import (
    LogGap,
    LogRecord,
    Segment,
    next_offset,
    parse_segment_key,
    plan_replay,
    segment_key,
)
from app.log import segments as parquet


def seg(first: int, last: int) -> Segment:
    return Segment(first, last, "t", 0)


def test_keys_sort_in_offset_order_and_round_trip() -> None:
    keys = [segment_key("modelview.tags", 3, f, f + 9) for f in (0, 10, 100, 1_000_000)]
    assert keys == sorted(keys)
    assert (
        keys[1]
        == "log/modelview.tags/partition=3/00000000000000000010-00000000000000000019.parquet"
    )
    parsed = parse_segment_key(keys[2])
    assert parsed == Segment(100, 109, "modelview.tags", 3)
    assert parsed is not None and parsed.key == keys[2]


@pytest.mark.parametrize(
    "key",
    [
        "log/t/partition=0/1-2.parquet",
        "log/t/partition=0/00000000000000000009-00000000000000000001.parquet",
        "log/t/partition=x/00000000000000000001-00000000000000000002.parquet",
        "snapshots/t/partition=0/00000000000000000001-00000000000000000002.parquet",
    ],
)
def test_other_objects_are_not_segments(key: str) -> None:
    assert parse_segment_key(key) is None


def test_next_offset() -> None:
    assert next_offset([]) == 0
    assert next_offset([seg(0, 9), seg(10, 24)]) == 25


def test_kafka_holds_everything_segments_come_first() -> None:
    plan = plan_replay([seg(0, 9), seg(10, 19)], start=0, stop=30, kafka_start=0, kafka_end=30)
    assert plan.segments == (seg(0, 9), seg(10, 19))
    assert (plan.kafka_from, plan.stop) == (20, 30)


def test_start_inside_a_segment_and_stop_before_kafka() -> None:
    plan = plan_replay([seg(0, 9), seg(10, 19)], start=12, stop=15, kafka_start=0, kafka_end=30)
    assert plan.segments == (seg(10, 19),)
    assert plan.kafka_from == plan.stop == 15


def test_retention_dropped_the_head_segments_cover_it() -> None:
    plan = plan_replay([seg(0, 9), seg(10, 19)], start=0, stop=40, kafka_start=15, kafka_end=40)
    assert (plan.kafka_from, plan.stop) == (20, 40)


def test_kafka_lost_everything_segments_alone() -> None:
    plan = plan_replay([seg(0, 9), seg(10, 19)], start=0, stop=20, kafka_start=0, kafka_end=0)
    assert plan.segments == (seg(0, 9), seg(10, 19))
    assert plan.kafka_from == plan.stop == 20


def test_a_hole_neither_side_holds_is_a_gap() -> None:
    with pytest.raises(LogGap, match=r"offsets 10\.\.14"):
        plan_replay([seg(0, 9)], start=0, stop=40, kafka_start=15, kafka_end=40)


def test_a_hole_between_segments_kafka_fills() -> None:
    plan = plan_replay([seg(0, 9), seg(20, 29)], start=0, stop=40, kafka_start=0, kafka_end=40)
    assert plan.segments == (seg(0, 9),)
    assert (plan.kafka_from, plan.stop) == (10, 40)


def test_overlapping_segments_are_read_once_each() -> None:
    # Two flushers raced in a rebalance: 10..19 and 10..24 both exist.
    plan = plan_replay(
        [seg(0, 9), seg(10, 19), seg(10, 24), seg(25, 29)], 0, 30, kafka_start=0, kafka_end=0
    )
    assert plan.segments == (seg(0, 9), seg(10, 19), seg(10, 24), seg(25, 29))
    assert plan.stop == 30


def test_parquet_round_trip_keeps_exact_bytes() -> None:
    records = [
        LogRecord("t", 2, 7, 1_700_000_000_123, b"k", b'{"a": 1}'),
        LogRecord("t", 2, 8, 1_700_000_000_124, None, None),
        LogRecord("t", 2, 9, 1_700_000_000_125, b"\xff\xfe", b"\x00not json\xc3"),
    ]
    assert list(parquet.decode("t", parquet.encode(records))) == records


def test_records_are_columns_that_become_rows_when_asked() -> None:
    rows = [LogRecord("t", 4, o, 1_700_000_000_000 + o, b"k%d" % o, b"v") for o in range(10, 20)]
    buffer = parquet.Records("t", 4)
    for r in rows:
        buffer.append(r.offset, r.timestamp_ms, r.key, r.value)
    assert len(buffer) == 10 and buffer[0] == rows[0] and buffer[-1] == rows[-1]
    assert list(buffer[2:4]) == rows[2:4]
    assert list(buffer.between(12, 15)) == rows[2:5]
    assert list(buffer.between(15)) == rows[5:]
    assert list(buffer.between(0, 10)) == [] and list(buffer.between(20)) == []
    assert parquet.encode(buffer) == parquet.encode(rows)
    buffer.drop(7)
    assert list(buffer) == rows[7:]
    decoded = parquet.decode("t", parquet.encode(buffer))
    assert (decoded.topic, decoded.partition, list(decoded)) == ("t", 4, rows[7:])
