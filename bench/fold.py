"""The fold alone, in memory: what ingestion would cost without Faust, Kafka or RocksDB.

The ingestion benchmark's workload is folded by the agents' own step (`fold_records`: decode,
fold, encode the view entries, commit through the wal) into a dict, in batches of 500 per
partition, next to the baseline of decoding each record with orjson. Comparing the fold's
rate with the worker's end-to-end rate (bench.ingest) tells where ingestion's time goes.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections import defaultdict

import orjson

from app.domain.log_layout import LogRecord
from app.settings import Settings
from app.topics import PREDICTIONS, TAGS
from app.views.refold import fold_records
from bench.common import machine_line
from tests.e2e.workload import build

PARTITIONS = 8


def records(predictions: int) -> dict[int, list[LogRecord]]:
    by_partition: dict[int, list[LogRecord]] = defaultdict(list)
    offsets: dict[tuple[str, int], int] = defaultdict(int)
    for item in build(predictions, seed=21).items:
        topic = PREDICTIONS if item.kind == "prediction" else TAGS
        p = hash(item.key) % PARTITIONS
        offset = offsets[(topic, p)]
        offsets[(topic, p)] += 1
        by_partition[p].append(LogRecord(topic, p, offset, 0, item.key, item.raw))
    return by_partition


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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--predictions", type=int, default=11_000)
    main(parser.parse_args().predictions)
