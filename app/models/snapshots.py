"""Dataset snapshots in S3: materialized from the log as of an offset vector, then immutable.

`snapshots/{dataset}/{snapshot_id}/data.parquet` holds the rows, `manifest.json` the spec,
the as-of offsets, the row count and the content hash, so that anyone can fold the same log
to the same offsets and prove the same rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa

from app.domain.codec import format_time
from app.domain.datasets import AsOf, DatasetSpec, Manifest, Row, content_hash, delta, rows_of
from app.domain.examples import Example
from app.log.replay import consumer_for, log_end, stop_consumer
from app.log.segments import from_parquet, to_parquet
from app.s3 import s3_client
from app.settings import Settings
from app.topics import LOGGED
from app.views import viewcodec
from app.views.refold import fold_partition
from app.views.wal import read_cursor

PREFIX = "snapshots"


def snapshot_prefix(dataset: str, snapshot_id: str) -> str:
    return f"{PREFIX}/{dataset}/{snapshot_id}/"


# partition -> the fold's key-value state (views plus wal), as of a snapshot's offsets
FoldState = dict[int, dict[str, bytes]]


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
        async with s3_client(settings) as client:
            for p in range(settings.partitions):
                stops = {t: as_of.get(t, {}).get(p, 0) for t in LOGGED}
                start = dict(base[p]) if base is not None and p in base else None
                if start is not None and not _before(start, p, stops):
                    start, incremental = None, False
                store, n = await fold_partition(
                    settings, client, consumer, p, stops, progress, store=start
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


def _before(store: dict[str, bytes], partition: int, stops: dict[str, int]) -> bool:
    cursor = read_cursor(store, partition)
    return all(cursor.get(t, -1) < stop for t, stop in stops.items())


def encode_state(state: FoldState) -> bytes:
    items = [(p, k, v) for p, store in sorted(state.items()) for k, v in sorted(store.items())]
    table = pa.Table.from_pydict(
        {
            "partition": pa.array([i[0] for i in items], pa.int32()),
            "key": [i[1] for i in items],
            "value": pa.array([i[2] for i in items], pa.binary()),
        }
    )
    return to_parquet(table)


def decode_state(data: bytes) -> FoldState:
    columns = from_parquet(data).to_pydict()
    state: FoldState = {}
    for p, k, v in zip(columns["partition"], columns["key"], columns["value"], strict=True):
        state.setdefault(p, {})[k] = v
    return state


def encode_rows(rows: list[Row]) -> bytes:
    """Parquet, one row per example; features, prediction and label as JSON text."""
    table = pa.Table.from_pydict(
        {
            "event_id": [r.event_id for r in rows],
            "model": [r.model for r in rows],
            "model_version": [r.model_version for r in rows],
            "occurred_at": [r.occurred_at for r in rows],
            "features": [orjson.dumps(r.features).decode() for r in rows],
            "prediction": [orjson.dumps(r.prediction).decode() for r in rows],
            "label": [orjson.dumps(r.label).decode() for r in rows],
            "tag_id": [r.tag_id for r in rows],
            "tagged_at": [r.tagged_at for r in rows],
            "holdout": [r.holdout for r in rows],
        }
    )
    return to_parquet(table)


def decode_rows(data: bytes) -> list[Row]:
    columns = from_parquet(data).to_pydict()
    return [
        Row(
            event_id=columns["event_id"][i],
            model=columns["model"][i],
            model_version=columns["model_version"][i],
            occurred_at=columns["occurred_at"][i],
            features=orjson.loads(columns["features"][i]),
            prediction=orjson.loads(columns["prediction"][i]),
            label=orjson.loads(columns["label"][i]),
            tag_id=columns["tag_id"][i],
            tagged_at=columns["tagged_at"][i],
            holdout=columns["holdout"][i],
        )
        for i in range(len(columns["event_id"]))
    ]


async def save(
    settings: Settings, manifest: Manifest, rows: list[Row], state: FoldState | None = None
) -> None:
    prefix = snapshot_prefix(manifest.dataset, manifest.snapshot_id)
    async with s3_client(settings) as client:
        await client.put_object(
            Bucket=settings.s3_bucket, Key=prefix + "data.parquet", Body=encode_rows(rows)
        )
        if state is not None:
            # The fold as of these offsets: the next snapshot reads only what came after.
            await client.put_object(
                Bucket=settings.s3_bucket, Key=prefix + "state.parquet", Body=encode_state(state)
            )
        # The manifest last: a snapshot whose manifest exists is complete.
        await client.put_object(
            Bucket=settings.s3_bucket,
            Key=prefix + "manifest.json",
            Body=orjson.dumps(manifest.to_dict(), option=orjson.OPT_INDENT_2),
        )


async def load(settings: Settings, dataset: str, snapshot_id: str) -> tuple[Manifest, list[Row]]:
    prefix = snapshot_prefix(dataset, snapshot_id)
    async with s3_client(settings) as client:
        manifest = Manifest.from_dict(
            orjson.loads(await read_object(client, settings, prefix + "manifest.json"))
        )
        rows = decode_rows(await read_object(client, settings, prefix + "data.parquet"))
    return manifest, rows


async def load_state(settings: Settings, dataset: str, snapshot_id: str) -> FoldState | None:
    async with s3_client(settings) as client:
        try:
            data = await read_object(
                client, settings, snapshot_prefix(dataset, snapshot_id) + "state.parquet"
            )
        except client.exceptions.NoSuchKey:
            return None
    return decode_state(data)


async def read_object(client: Any, settings: Settings, key: str) -> bytes:
    response = await client.get_object(Bucket=settings.s3_bucket, Key=key)
    async with response["Body"] as body:
        data: bytes = await body.read()
    return data


async def take(
    settings: Settings,
    spec: DatasetSpec,
    as_of: AsOf | None = None,
    parent: tuple[Manifest, list[Row]] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[Manifest, list[Row]]:
    """Materialize, describe against `parent` (the last snapshot trained on), and save."""
    point = as_of if as_of is not None else await log_end(settings)
    base = None
    if parent is not None:
        base = await load_state(settings, parent[0].dataset, parent[0].snapshot_id)
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
    await save(settings, manifest, rows, done.state)
    return manifest, rows
