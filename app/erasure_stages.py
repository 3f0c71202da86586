"""The stages of an erasure after the views: where else the erased data lives, made unreadable.

Each stage is idempotent (a second run finds nothing left to change) and returns what it
did, which the erasure agent logs as an `ErasureStage` record.

- **Cold segments are rewritten**, each record of an erased event replaced by its redacted
  skeleton at the same offset (`erasure.redact`). Rewriting was chosen over tombstones, which
  would leave the bytes readable, and over crypto-shredding, which would need a key per
  entity from the first capture on and make every cold read decrypt: a segment is small,
  immutable otherwise, and named by its offsets, so the same key is simply written again.
  Keeping the offset keeps the log without holes, which replay and hole filling rely on.
- **Snapshots** lose the erased rows (`data.parquet`, `stats.json`); their fold state
  (`state.parquet`) loses the partitions that held them, so the next incremental snapshot
  folds those partitions again from the (redacted) log. The manifest counts what went.
- **Validation files** (`events.parquet`) lose the erased events' rows.
- **The registry** flags each version fitted on a snapshot that lost rows
  (`ModelDataErased`), with how many and how many of them it was fitted on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from app.domain import drift, erasure, lineage
from app.domain.codec import InvalidEvent, format_time
from app.domain.datasets import was_fitted
from app.domain.log_layout import Segment, next_offset
from app.domain.model_events import MODELS, ModelDataErased
from app.domain.registry import RegistryEntry
from app.log.segment_store import SegmentStore
from app.log.segments import Records, from_parquet, to_parquet
from app.models import snapshot_format
from app.models.adapters import Adapters
from app.models.stores import SNAPSHOTS
from app.topics import ERASURE_ORDERS, LINEAGE, PREDICTIONS, TAGS
from app.views import viewcodec
from app.views.wal import Store, read_cursor


class NotYet(RuntimeError):
    """A stage cannot run yet (the flusher has not reached the erased records); try later."""


async def redact_cold(
    cold: SegmentStore, erased: Mapping[int, set[str]], log_end: Mapping[int, int]
) -> dict[str, int]:
    """Rewrite every segment of the erased events' partitions that holds one of them.

    It waits (NotYet) until the flusher has written the predictions the request covers,
    so none of them reaches S3 unredacted after this stage.
    """
    listed = {p: await cold.segments(PREDICTIONS, p) for p, ids in erased.items() if ids}
    for p, found in listed.items():
        if next_offset(found) < log_end.get(p, 0):
            raise NotYet(f"{PREDICTIONS}[{p}] is not in S3 up to offset {log_end.get(p, 0)} yet")
    rewritten = records = 0
    for p in sorted(listed):
        ids = erased[p]
        for topic, kind in ((PREDICTIONS, "prediction"), (TAGS, "tag")):
            found = listed[p] if topic == PREDICTIONS else await cold.segments(topic, p)
            for segment in found:
                changed = await _rewrite(cold, segment, _keyed_by(ids, kind))
                rewritten, records = rewritten + bool(changed), records + changed
    return {"segments_rewritten": rewritten, "records_redacted": records}


def _keyed_by(ids: set[str], kind: str) -> Callable[[bytes | None, bytes | None], bytes | None]:
    """Redacts the records keyed by one of `ids` (predictions and tags are keyed by event)."""

    def redact(key: bytes | None, value: bytes | None) -> bytes | None:
        named = key is not None and key.decode("utf-8", "replace") in ids
        return _redacted(kind, value) if named else value

    return redact


async def _rewrite(
    cold: SegmentStore,
    segment: Segment,
    redact: Callable[[bytes | None, bytes | None], bytes | None],
) -> int:
    """Put the segment back with each value as `redact(key, value)` has it, if any changed;
    how many changed. The offsets, keys and timestamps stay: the log keeps no hole."""
    table = from_parquet(await cold.get(segment))
    values = table.column("value").to_pylist()
    changed = 0
    for i, key in enumerate(table.column("key").to_pylist()):
        value = redact(key, values[i])
        if value != values[i]:
            values[i], changed = value, changed + 1
    if changed:
        column = table.schema.get_field_index("value")
        table = table.set_column(column, table.schema.field(column), pa.array(values, pa.binary()))
        await cold.put(segment, to_parquet(table))
    return changed


def _warm_from(
    registry: Mapping[str, RegistryEntry], flagged: Mapping[tuple[str, str], Any]
) -> list[tuple[tuple[str, str], str]]:
    """Versions that started from the weights of a flagged version, however many warm starts
    away: they carry what it learned. Each with the parent it started from."""
    tainted = set(flagged)
    out = []
    changed = True
    while changed:
        changed = False
        for entry in registry.values():
            for version in entry.versions.values():
                key = (entry.model, version.version)
                lineage = version.lineage or {}
                parent = lineage.get("parent_version")
                reused = ((lineage.get("describe") or {}).get("warm_start") or {}).get("reused")
                if key not in tainted and parent and reused and (entry.model, parent) in tainted:
                    tainted.add(key)
                    out.append((key, str(parent)))
                    changed = True
    return out


def redact_records(records: Records, erased: Callable[[bytes], bool]) -> Records:
    """A batch the flusher is about to write, with the records of erased events redacted.

    The cold stage rewrites what was in S3 when it ran; this covers what comes later (a tag
    of an erased event, an event erased by id before it arrived), for every record the
    views have folded by the time it is flushed.
    """
    kind = {PREDICTIONS: "prediction", TAGS: "tag"}.get(records.topic)
    if kind is None:
        return records
    hits = [i for i, key in enumerate(records.keys) if key is not None and erased(key)]
    if not hits:
        return records
    values = list(records.values)
    for i in hits:
        values[i] = _redacted(kind, values[i])
    return Records(
        records.topic,
        records.partition,
        list(records.offsets),
        list(records.timestamps),
        list(records.keys),
        values,
    )


def _redacted(kind: str, value: bytes | None) -> bytes | None:
    if value is None:
        return None
    try:
        return erasure.redact(kind, value)
    except InvalidEvent:
        return None  # not readable as an event, but it was this event's: its bytes go too


async def redact_snapshots(
    adapters: Adapters, erased: Mapping[int, set[str]], erasure_id: str
) -> dict[str, int]:
    """Take the erased rows out of every snapshot that holds them."""
    ids = {e for found in erased.values() for e in found}
    objects, store = adapters.objects, adapters.snapshots
    snapshots = rows_removed = 0
    for dataset, snapshot_id in await _snapshots(adapters):
        manifest, rows = await store.load(dataset, snapshot_id)
        gone = [r for r in rows if r.event_id in ids]
        if gone:
            kept = [r for r in rows if r.event_id not in ids]
            prefix = store.prefix(dataset, snapshot_id)
            await objects.put(prefix + "data.parquet", snapshot_format.encode_rows(kept))
            await objects.put(prefix + "stats.json", orjson.dumps(drift.of_rows(kept)))
            state = await store.state(dataset, snapshot_id)
            if state is not None:
                # A partition that held an erased example is folded again next time.
                state = {p: s for p, s in state.items() if not erased.get(p)}
                await objects.put(prefix + "state.parquet", snapshot_format.encode_state(state))
            removed = [[r.holdout, r.occurred_at] for r in gone]
            updated = replace(
                manifest,
                rows=len(kept),
                erased={
                    **manifest.erased,
                    erasure_id: [*manifest.erased.get(erasure_id, []), *removed],
                },
            )
            body = orjson.dumps(updated.to_dict(), option=orjson.OPT_INDENT_2)
            # The manifest last: a stage cut short finds the rows again and finishes.
            await objects.put(prefix + "manifest.json", body)
            snapshots, rows_removed = snapshots + 1, rows_removed + len(gone)
    return {"snapshots_rewritten": snapshots, "rows_removed": rows_removed}


async def _snapshots(adapters: Adapters) -> list[tuple[str, str]]:
    objects = adapters.objects
    return [
        (dataset, snapshot_id)
        for dataset in await objects.folders(f"{SNAPSHOTS}/")
        for snapshot_id in await objects.folders(f"{SNAPSHOTS}/{dataset}/")
    ]


async def redact_validations(adapters: Adapters, erased: Mapping[int, set[str]]) -> dict[str, int]:
    """Take the erased events out of every validation's `events.parquet`."""
    ids = pa.array(sorted({e for found in erased.values() for e in found}), pa.string())
    objects = adapters.objects
    files = rows = 0
    for model in await objects.folders(f"{MODELS}/"):
        for version in await objects.folders(f"{MODELS}/{model}/"):
            key = f"{MODELS}/{model}/{version}/validation/events.parquet"
            data = await objects.get(key)
            if data is None:
                continue
            table = from_parquet(data)
            hit = pc.is_in(table.column("event_id"), value_set=ids)
            count = pc.sum(hit).as_py() or 0
            if count:
                await objects.put(key, to_parquet(table.filter(pc.invert(hit))))
                files, rows = files + 1, rows + count
    return {"files_rewritten": files, "rows_removed": rows}


async def redact_lineage(
    adapters: Adapters,
    cold: SegmentStore,
    erased: Mapping[int, set[str]],
    log_end: Mapping[int, int],
) -> dict[str, int]:
    """Lineage keeps which snapshots and validations used an erased event, not its label or
    prediction: an `erased` marker per event for the lineage table (its agent passes it on
    to the tags' keys), and the lineage topic's cold segments rewritten.

    Lineage records are keyed by event and by tag, so any partition may hold one of an
    erased event's: every segment of the topic is read (each record names its event). It
    waits (NotYet) until the flusher has written what Kafka held of the topic
    (`log_end`, read before the markers are sent, so they are not waited for)."""
    for p, end in log_end.items():
        if next_offset(await cold.segments(LINEAGE, p)) < end:
            raise NotYet(f"{LINEAGE}[{p}] is not in S3 up to offset {end} yet")
    ids = {e for found in erased.values() for e in found}
    now = format_time(datetime.now(UTC))
    await adapters.events.record_lineage([lineage.erased(e, now) for e in sorted(ids)])
    rewritten = records = 0
    for p in await cold.partitions(LINEAGE):
        for segment in await cold.segments(LINEAGE, p):
            changed = await _rewrite(cold, segment, lambda _, v: _redacted_lineage(v, ids))
            rewritten, records = rewritten + bool(changed), records + changed
    return {"markers": len(ids), "segments_rewritten": rewritten, "records_redacted": records}


def _redacted_lineage(value: bytes | None, ids: set[str]) -> bytes | None:
    if value is None or not any(e.encode() in value for e in ids):
        return value  # the cheap test first: most records name no erased event
    try:
        record = lineage.decode(value)
    except lineage.InvalidLineage:
        return None  # unreadable, and it names an erased event: its bytes go
    if record.event_id not in ids or record.kind == "erased":
        return value
    return lineage.encode(lineage.redacted(record))


async def flag_versions(
    adapters: Adapters, registry: Mapping[str, RegistryEntry], erasure_id: str
) -> dict[str, int]:
    """A `ModelDataErased` for each version fitted on a snapshot that lost rows to it, as
    the snapshots' manifests say (so a run cut short and run again finds the same)."""
    removed: dict[tuple[str, str], list[list[Any]]] = {}
    for dataset, snapshot_id in await _snapshots(adapters):
        manifest = await adapters.snapshots.manifest(dataset, snapshot_id)
        if erasure_id in manifest.erased:
            removed[(dataset, snapshot_id)] = manifest.erased[erasure_id]
    direct: dict[tuple[str, str], tuple[int, int]] = {}
    for entry in registry.values():
        for version in entry.versions.values():
            snapshot = version.snapshot
            gone = removed.get((snapshot.get("dataset", ""), snapshot.get("snapshot_id", "")))
            if gone:
                fit_until = (version.lineage or {}).get("fit_until")
                fitted = sum(was_fitted(holdout, at, fit_until) for holdout, at in gone)
                direct[(entry.model, version.version)] = (len(gone), fitted)
    flags: list[tuple[str, str, int, int, str | None]] = [
        (model, v, rows, fitted, None) for (model, v), (rows, fitted) in direct.items()
    ]
    flags += [(model, v, 0, 0, parent) for (model, v), parent in _warm_from(registry, direct)]
    now = format_time(datetime.now(UTC))
    flagged = 0
    for model, v, rows, fitted, through in sorted(flags, key=lambda f: (f[0], int(f[1]))):
        if registry[model].versions[v].erased.get(erasure_id) == (rows, fitted, through):
            continue  # flagged so by an earlier run of this stage
        await adapters.events.publish(
            ModelDataErased(
                model=model,
                version=v,
                erasure_id=erasure_id,
                rows=rows,
                fitted=fitted,
                erased_at=now,
                through=through,
            )
        )
        flagged += 1
    return {"versions_flagged": flagged}


def erased_in_views(store: Store) -> Callable[[Records], Records]:
    """The flusher's redaction: a record whose example this worker's views have erased.

    Only partitions whose views folded an erasure order are looked at, so the flush of a
    log without erasures reads nothing more."""

    def redact(records: Records) -> Records:
        if read_cursor(store, records.partition).get(ERASURE_ORDERS, -1) < 0:
            return records

        def erased(key: bytes) -> bool:
            example = viewcodec.decode("ex/", store.get(f"ex/{key.decode(errors='replace')}"))
            return example is not None and bool(example.erased)

        return redact_records(records, erased)

    return redact
