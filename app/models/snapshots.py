"""Dataset snapshots: materialized from the log as of an offset vector, then immutable.

A snapshot's manifest holds the spec, the as-of offsets, the row count and the content
hash, so that anyone can fold the same log to the same offsets and prove the same rows.
They are kept by `app.models.stores.SnapshotStore`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from app.domain.codec import format_time
from app.domain.datasets import AsOf, DatasetSpec, Manifest, Row, content_hash, delta, rows_of
from app.domain.examples import Example
from app.log.replay import consumer_for, log_end, stop_consumer
from app.log.segment_store import segment_store
from app.models.snapshot_format import FoldState
from app.models.stores import SnapshotStore
from app.settings import Settings
from app.topics import ERASURE_ORDERS, LOGGED
from app.views import viewcodec
from app.views.refold import fold_partition
from app.views.wal import read_cursor


@dataclass
class Materialized:
    rows: list[Row]
    state: FoldState
    read: int  # log records read: all of them, or only those since the base
    incremental: bool


async def materialize(
    settings: Settings,
    spec: DatasetSpec,
    as_of: AsOf,
    progress: Callable[[int], None] | None = None,
    base: FoldState | None = None,
) -> Materialized:
    """The spec's rows in the fold of the log up to `as_of`: the tags known by then, no later.

    With `base`, the fold state of an earlier snapshot, only the records after it are read
    (a partition whose base is past `as_of` is folded from the start).
    """
    rows: list[Row] = []
    state: FoldState = {}
    read, incremental = 0, base is not None
    consumer = consumer_for(settings)
    await consumer.start()
    try:
        async with segment_store(settings) as cold:
            for p in range(settings.partitions):
                stops: dict[str, int | None] = {t: as_of.get(t, {}).get(p, 0) for t in LOGGED}
                # Every erasure applies, whatever point in the past the snapshot is taken at:
                # no time travel brings erased data back (`app.domain.erasure`).
                stops[ERASURE_ORDERS] = None
                start = dict(base[p]) if base is not None and p in base else None
                if start is not None and not _before(start, p, stops):
                    start, incremental = None, False
                store, n = await fold_partition(
                    settings, cold, consumer, p, stops, progress, store=start
                )
                read += n
                state[p] = store
                examples: list[Example] = [
                    viewcodec.decode(k, v) for k, v in store.items() if k.startswith("ex/")
                ]
                rows += rows_of(examples, spec)
    finally:
        await stop_consumer(consumer)
    return Materialized(sorted(rows, key=lambda r: r.event_id), state, read, incremental)


def _before(store: dict[str, bytes], partition: int, stops: dict[str, int | None]) -> bool:
    cursor = read_cursor(store, partition)
    return all(stop is None or cursor.get(t, -1) < stop for t, stop in stops.items())


async def take(
    settings: Settings,
    store: SnapshotStore,
    spec: DatasetSpec,
    as_of: AsOf | None = None,
    parent: tuple[Manifest, list[Row]] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[Manifest, list[Row]]:
    """Materialize, describe against `parent` (the last snapshot trained on), and save."""
    point = as_of if as_of is not None else await log_end(settings)
    base = None
    if parent is not None:
        base = await store.state(parent[0].dataset, parent[0].snapshot_id)
    done = await materialize(settings, spec, point, progress, base)
    rows = done.rows
    manifest = Manifest(
        dataset=spec.dataset,
        spec=spec,
        as_of=point,
        rows=len(rows),
        content_hash=content_hash(rows),
        created_at=format_time(datetime.now(UTC)),
        parent=parent[0].snapshot_id if parent else None,
        delta=delta(parent[1] if parent else [], rows),
        read_records=done.read,
        incremental=done.incremental,
    )
    await store.save(manifest, rows, done.state)
    return manifest, rows
