"""Records as a worker is handed them: made `SourceRecord`s, put in log order, and checked for
the offsets delivery skipped. Run for every record a worker reads, so compiled with the fold
(`app.native`): as the worker's own Python they took about 5% of its main thread (py-spy,
bench.ingest, 2026-12-08)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from app.domain.batch import Kind, SourceRecord
from app.topics import ERASURE_ORDERS, PREDICTIONS, TAGS

KINDS: dict[str, Kind] = {PREDICTIONS: "prediction", TAGS: "tag", ERASURE_ORDERS: "erasure"}


def source_record(record: Any) -> SourceRecord:
    """A record of the predictions, tags or erasure orders topic (aiokafka's, or the replay
    log's) as the fold takes it."""
    return SourceRecord(
        KINDS[record.topic], record.topic, record.partition, record.offset, record.key, record.value
    )


def source_records(fetched: Iterable[Iterable[Any]]) -> list[SourceRecord]:
    """A fetch's records, partition after partition, as the fold takes them."""
    return [source_record(record) for records in fetched for record in records]


def log_order(record: SourceRecord) -> tuple[str, int]:
    return record.topic, record.offset


def in_log_order(records: Iterable[SourceRecord]) -> list[SourceRecord]:
    return sorted(records, key=log_order)


def holes(
    cursor: Mapping[str, int], records: Sequence[SourceRecord], ends: Mapping[str, int]
) -> list[tuple[str, int, int]]:
    """(topic, first, stop) of each run of offsets past the cursor that `records`, in log
    order, lack below their last, or below `ends` (per topic, an offset to reach)."""
    found: list[tuple[str, int, int]] = []
    expected: dict[str, int] = {}
    for r in records:
        want = expected.get(r.topic, cursor.get(r.topic, -1) + 1)
        if r.offset > want:
            found.append((r.topic, want, r.offset))
        expected[r.topic] = max(want, r.offset + 1)
    for topic, end in ends.items():
        want = expected.get(topic, cursor.get(topic, -1) + 1)
        if end > want:
            found.append((topic, want, end))
    return found
