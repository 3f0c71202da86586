"""`modelview rebuild`: fold the whole log again, with the agents' own fold, and prove it equal.

For each partition it reads the live views from their changelog, takes the source offsets
they reflect (the partition's wal cursor), replays the log up to exactly those offsets, cold
segments first, and folds it into a fresh store. Every key must match, byte for byte.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from tqdm import tqdm

from app.domain.datasets import records_before
from app.log.replay import consumer_for, log_end, stop_consumer
from app.log.segment_store import segment_store
from app.settings import Settings
from app.topics import LOGGED
from app.views.changelog import read_views
from app.views.refold import fold_partition
from app.views.wal import read_cursor, wal_key


@dataclass
class PartitionResult:
    partition: int
    records: int
    keys: int
    compared: bool
    differences: list[str] = field(default_factory=list)


@dataclass
class RebuildReport:
    partitions: list[PartitionResult] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return all(not p.differences for p in self.partitions)

    @property
    def records(self) -> int:
        return sum(p.records for p in self.partitions)

    @property
    def keys(self) -> int:
        return sum(p.keys for p in self.partitions)


async def rebuild(
    settings: Settings, compare: bool = True, progress: Callable[[int], None] | None = None
) -> RebuildReport:
    report = RebuildReport()
    consumer = consumer_for(settings)
    await consumer.start()
    try:
        async with segment_store(settings) as cold:
            for partition in range(settings.partitions):
                live = await read_views(settings, consumer, partition) if compare else None
                stops: dict[str, int | None] = {t: None for t in LOGGED}
                if live is not None:
                    cursor = read_cursor(live, partition)
                    stops = {t: cursor.get(t, -1) + 1 for t in LOGGED}
                store, count = await fold_partition(
                    settings, cold, consumer, partition, stops, progress
                )
                result = PartitionResult(partition, count, len(store), live is not None)
                if live is not None:
                    result.differences = differences(live, store, partition)
                report.partitions.append(result)
    finally:
        await stop_consumer(consumer)
    return report


def same(a: Any, b: Any) -> bool:
    """Equal JSON values, floats within 1e-9: a float sum depends on the order it was added in.

    Live, predictions and their tags interleave as they arrived; a replay reads one topic, then
    the other. Counts and every other value must match exactly.
    """
    if isinstance(a, float) or isinstance(b, float):
        return (
            isinstance(a, int | float)
            and isinstance(b, int | float)
            and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def differences(live: dict[str, bytes], rebuilt: dict[str, bytes], partition: int) -> list[str]:
    """Every key whose value differs, is missing, or is extra; the wal is bookkeeping, not a view."""
    wal = wal_key(partition)
    out = []
    for key in sorted((set(live) | set(rebuilt)) - {wal}):
        a, b = live.get(key), rebuilt.get(key)
        if a == b or (a is not None and b is not None and same(orjson.loads(a), orjson.loads(b))):
            continue
        if a is None:
            out.append(f"{key}: missing from the live views")
        elif b is None:
            out.append(f"{key}: in the live views but not in the log's fold")
        else:
            out.append(f"{key}: live {a[:120]!r} != rebuilt {b[:120]!r}")
    return out


def run(settings: Settings, compare: bool = True) -> int:
    """The CLI: progress on stderr, a verdict on stdout, exit 1 if the views differ."""
    total = records_before(asyncio.run(log_end(settings)))
    with tqdm(total=total, unit="rec", file=sys.stderr, desc="rebuild", disable=None) as bar:
        report = asyncio.run(rebuild(settings, compare, progress=bar.update))
    for part in report.partitions:
        for line in part.differences[:20]:
            print(f"partition {part.partition}: {line}")
        if len(part.differences) > 20:
            print(f"partition {part.partition}: ... {len(part.differences) - 20} more")
    compared = sum(p.compared for p in report.partitions)
    if not compare or not compared:
        print(
            f"rebuilt {report.keys} view keys from {report.records} records (no live views to compare)"
        )
        return 0
    if report.equal:
        print(
            f"views equal: {report.keys} keys rebuilt from {report.records} records match the live views"
        )
        return 0
    bad = sum(len(p.differences) for p in report.partitions)
    print(f"views differ: {bad} keys (rebuilt from {report.records} records)")
    return 1
