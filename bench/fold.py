"""The fold alone, in memory: what ingestion would cost without Faust, Kafka or RocksDB.

The ingestion benchmark's workload is folded by the agents' own step (`fold_records`: decode,
fold, encode the view entries, commit through the wal) into a dict, in batches of 500 per
partition, next to the baseline of decoding each record with orjson. Comparing the fold's
rate with the worker's end-to-end rate (bench.ingest) tells where ingestion's time goes.

It also prints what the fold writes to the views' changelog per record, with fetches of 2,000
and of 8,000 records (the default `BATCH_SIZE` before and since 2026-12-06), each a count
that does not drift with the machine: the broker's share of ingestion follows it.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections import defaultdict
from collections.abc import Sequence

import orjson

from app.domain.log_layout import LogRecord
from app.record_batch import record_batches
from app.settings import Settings
from app.topic_admin import key_partition
from app.topics import PREDICTIONS, TAGS
from app.views.refold import fold_records
from app.views.wal import put_each
from bench.common import machine_line
from tests.e2e.workload import build

PARTITIONS = 8


def records(predictions: int) -> dict[int, list[LogRecord]]:
    by_partition: dict[int, list[LogRecord]] = defaultdict(list)
    offsets: dict[tuple[str, int], int] = defaultdict(int)
    for item in build(predictions, seed=21).items:
        topic = PREDICTIONS if item.kind == "prediction" else TAGS
        p = key_partition(item.key, PARTITIONS)  # as the producer puts it; hash() is salted
        offset = offsets[(topic, p)]
        offsets[(topic, p)] += 1
        by_partition[p].append(LogRecord(topic, p, offset, 0, item.key, item.raw))
    return by_partition


class WholeStore(dict[str, bytes]):
    """A dict whose writes reach a changelog whole, as the worker's table's do on Apache
    Kafka (`tables.views.TableStore.whole_bytes`): each commit's items are kept, to measure."""

    # What the worker's writer promises: Faust's `producer_max_request_size` default, which
    # app.bootstrap gives its BatchWriter.
    whole_bytes = 1_000_000

    def __init__(self) -> None:
        super().__init__()
        self.units: list[list[tuple[bytes, bytes | None]]] = []

    def write_batch(self, partition: int, items: Sequence[tuple[str, bytes | None]]) -> None:
        self.units.append([(key.encode(), value) for key, value in items])
        put_each(self, items)


def changelog(parts: dict[int, list[LogRecord]], batch_size: int) -> tuple[float, float, float]:
    """Changelog records, bytes and zstd-compressed bytes per record folded, with fetches of
    `batch_size` records spread over the partitions, as the worker's are in a backlog."""
    limit, total = Settings().max_event_bytes, sum(len(r) for r in parts.values())
    records = plain = packed = 0
    per_partition = max(1, batch_size // PARTITIONS)
    for p, batch in parts.items():
        store = WholeStore()
        for start in range(0, len(batch), per_partition):
            fold_records(store, p, batch[start : start + per_partition], limit)
        for unit in store.units:
            keys, values = [k for k, _ in unit], [v for _, v in unit]
            records += len(unit)
            plain += sum(len(k) + len(v or b"") for k, v in unit)
            batches = record_batches(keys, values, store.whole_bytes, "zstd", units=[0])
            packed += sum(b.size() for b in batches)
    return records / total, plain / total, packed / total


def main(predictions: int) -> None:
    parts = records(predictions)
    total = sum(len(r) for r in parts.values())
    started = time.perf_counter()
    for batch in parts.values():
        for r in batch:
            with contextlib.suppress(orjson.JSONDecodeError):  # the 1% malformed
                orjson.loads(r.value or b"null")
    raw = total / (time.perf_counter() - started)
    limit = Settings().max_event_bytes
    started = time.perf_counter()
    for p, batch in parts.items():
        store: dict[str, bytes] = {}
        for start in range(0, len(batch), 500):
            fold_records(store, p, batch[start : start + 500], limit)
    folded = total / (time.perf_counter() - started)
    print(machine_line())
    print(f"records: {total} of the ingestion workload, {PARTITIONS} partitions")
    print(f"orjson.loads of each record:        {raw:,.0f} records/s")
    print(f"fold_records in memory, 500 a batch: {folded:,.0f} records/s")
    print(f"ratio (fold / decode): {folded / raw:.3f}")
    small, large = (changelog(parts, size) for size in (2000, 8000))
    for size, (records_, plain, packed) in ((2000, small), (8000, large)):
        print(
            f"changelog a record folded, fetches of {size}: {records_:.2f} records, "
            f"{plain:,.0f} bytes, {packed:,.0f} zstd-compressed"
        )
    print(f"ratio (changelog bytes compressed, 8000 / 2000): {large[2] / small[2]:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--predictions", type=int, default=11_000)
    main(parser.parse_args().predictions)
