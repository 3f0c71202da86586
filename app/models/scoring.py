"""Batch scoring: precompute a version's predictions for a dataset or a Parquet file.

Every scored row is captured as a PredictionEvent (the system eats its own dog food: a batch
prediction is a prediction), and the results go to S3 as one Parquet file under
`scores/{model}/{version}/{job}/`, which DuckDB or pyarrow read as a table. A row the model
cannot read is reported with its row number and skipped; it never stops the job.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from app.client import KafkaPublisher
from app.domain.codec import MAX_FEATURES, InvalidEvent, format_time, prediction_from_dict
from app.domain.datasets import DatasetSpec
from app.domain.events import Value, is_number
from app.domain.scores import (
    JobStatus,
    ScoredEvents,
    features_json,
    rows_json,
    scores_prefix,
    status_key,
)
from app.learning.base import Expected, Features, predict_table
from app.log.replay import log_end
from app.log.segments import to_parquet
from app.models import snapshots
from app.models.adapters import Adapters, opened
from app.models.serving import IMPUTED
from app.models.training import TrainingError, load_recorded, version_manifest
from app.settings import Settings
from app.topics import PREDICTIONS

BATCH = 4096
ACKS_AHEAD = 4  # batches whose captures may await the broker's acks while the next are made
JOB_NAME = re.compile(r"[A-Za-z0-9._-]{1,200}")


class ScoringError(TrainingError):
    """No version to score with, a source that cannot be read, or a job name taken."""


async def score(
    settings: Settings,
    model: str,
    *,
    version: int | None = None,
    dataset: str | None = None,
    parquet: Path | None = None,
    job: str | None = None,
    progress: Callable[[int], None] | None = None,
    adapters: Adapters | None = None,
) -> tuple[JobStatus, bool]:
    """Run the job, or find it done: (its status, whether this call ran it)."""
    if (dataset is None) == (parquet is None):
        raise ScoringError("score a --dataset or a --parquet file, one of them")
    source = f"dataset:{dataset}" if dataset else f"parquet:{parquet}"
    name = job or (f"dataset-{dataset}" if dataset else f"file-{Path(str(parquet)).stem}")
    if not JOB_NAME.fullmatch(name):
        raise ScoringError(f"job name {name!r}: letters, digits, '.', '_' and '-' only")
    async with opened(settings, adapters) as kept:
        # The version and the rows load while the job's status is read: a job found done
        # wastes the reads, and a job to run (the usual call) starts them a round trip
        # sooner. Python's collector: the job makes a few objects a row, so the collector
        # would run a full pass every few tens of thousands of rows, each scanning
        # TensorFlow's objects, the rows and the results: 0.2 s, a third of a job's time
        # (BENCHMARKS.md, batch scoring). So the load runs with no pass, and what it leaves,
        # then each batch's survivors, are frozen out of later passes until the job ends;
        # the young generations still collect a batch's cycles.
        publisher = KafkaPublisher(settings.bootstrap_servers, validate=False)
        starting = asyncio.ensure_future(publisher.start())
        gc.disable()
        loading = asyncio.ensure_future(_load(settings, kept, model, version, dataset, parquet))
        try:
            try:
                found = await job_status(settings, model, name, kept)
                if found is not None and found.state == "done":
                    if version is not None and str(version) != found.version:
                        raise ScoringError(
                            f"job {name!r} already scored {model} with version "
                            f"{found.version}; name another job"
                        )
                    return found, False
                record, fitted, rows = await loading
            finally:
                await _settled(loading)  # its error raised above, or moot for a job found done
                gc.freeze()
                gc.enable()
            status = JobStatus(
                model, record.version, name, source, "running", format_time(datetime.now(UTC))
            )
            status.rows = len(rows.keys)
            await asyncio.gather(_save_status(kept, status), starting)
            results = await _score_all(settings, fitted, status, rows, publisher, progress)
        finally:
            gc.unfreeze()
            await _settled(starting)  # stopped once it is no longer starting
            await publisher.stop()
        key = scores_prefix(model, record.version, name) + "scores.parquet"
        await kept.objects.put(key, results)
        status.state, status.location = "done", key
        status.finished_at = format_time(datetime.now(UTC))
        await _save_status(kept, status)
        return status, True


async def _load(
    settings: Settings,
    adapters: Adapters,
    model: str,
    version: int | None,
    dataset: str | None,
    parquet: Path | None,
) -> tuple[Any, Any, Source]:
    """The version's manifest, its fitted model, and the rows to score (read meanwhile)."""
    rows = asyncio.ensure_future(_instances(settings, dataset, parquet))
    try:
        chosen = str(version) if version is not None else await _champion(adapters, model)
        record = await version_manifest(settings, model, int(chosen), adapters)
        fitted = await load_recorded(settings, record, adapters)
        return record, fitted, await rows
    finally:
        await _settled(rows)


async def _settled(task: asyncio.Future[Any]) -> None:
    """Cancel `task` unless done, and wait until it is: a task left running would outlive
    the job, and an error nobody asked for would be logged as never retrieved."""
    if not task.done():
        task.cancel()
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()


async def job_status(
    settings: Settings, model: str, job: str, adapters: Adapters | None = None
) -> JobStatus | None:
    async with opened(settings, adapters) as kept:
        data = await kept.objects.get(status_key(model, job))
    return JobStatus.from_dict(orjson.loads(data)) if data is not None else None


async def _save_status(adapters: Adapters, status: JobStatus) -> None:
    body = orjson.dumps(status.to_dict(), option=orjson.OPT_INDENT_2)
    await adapters.objects.put(status_key(status.model, status.job), body)


async def _champion(adapters: Adapters, model: str) -> str:
    entry = (await adapters.registry.entries(model)).get(model)
    if entry is None or entry.champion is None:
        raise ScoringError(f"model {model!r} has no champion: give --version")
    return entry.champion


class Source(NamedTuple):
    """The rows to score: each row's key, and its features as dicts (a dataset's), or as
    the columns of `table` (a Parquet file's, whose columns' types are checked once, and
    which the model may read whole); the reason each row the codec would refuse is refused,
    by row number."""

    keys: list[str]
    rows: list[Features] | None
    refused: dict[int, str]
    table: pa.Table | None = None


async def _instances(settings: Settings, dataset: str | None, parquet: Path | None) -> Source:
    """The rows to score, and what the codec would refuse in them: checked here once, so
    that the scoring loop need not check every event."""
    if dataset is not None:
        made = await snapshots.materialize(settings, DatasetSpec(dataset), await log_end(settings))
        if not made.rows:
            raise ScoringError(f"dataset {dataset!r} has no examples to score")
        # Captured events' features: the codec took them when they were logged.
        return Source([r.event_id for r in made.rows], [r.features for r in made.rows], {})
    assert parquet is not None
    try:
        table = await asyncio.to_thread(pq.read_table, parquet)
    except (OSError, pa.ArrowException) as exc:
        raise ScoringError(f"cannot read {parquet}: {exc}") from None
    keys = table.column("id").to_pylist() if "id" in table.column_names else None
    features = table.drop_columns(["id"]) if keys is not None else table
    # An `id` column keys the rows (and so their event ids); else the row number does.
    named = [str(k) for k in keys] if keys is not None else list(map(str, range(table.num_rows)))
    return Source(named, None, column_problems(features), features)


def column_problems(table: pa.Table) -> dict[int, str]:
    """What the codec would refuse in each row's features, found a column at a time: a
    column of a type no feature takes, a list of anything but numbers, or a number that is
    not finite. The first reason per row number."""
    if table.num_columns > MAX_FEATURES:
        reason = f"features: at most {MAX_FEATURES}, got {table.num_columns}"
        return dict.fromkeys(range(table.num_rows), reason)
    refused: dict[int, str] = {}

    def refuse(mask: Any, reason: str, rows: Any = None) -> None:
        """The rows where `mask` holds; with `rows`, the mask is of list items instead."""
        found = pc.indices_nonzero(mask)
        for row in (found if rows is None else pc.take(rows, found)).to_pylist():
            refused.setdefault(row, reason)

    for name, chunks in zip(table.column_names, table.columns, strict=True):
        column = chunks.combine_chunks()
        if pa.types.is_dictionary(column.type):  # categories, as pandas writes them
            column = column.dictionary_decode()
        kind, where = column.type, f"features.{name}"
        if pa.types.is_list(kind) or pa.types.is_large_list(kind):
            items, kind = pc.list_flatten(column), kind.value_type
            if not _numeric(kind):
                lengths = pc.fill_null(pc.list_value_length(column), 0)
                refuse(pc.greater(lengths, 0), f"{where}: lists hold numbers only, got {kind}")
                continue
            parents = pc.list_parent_indices(column)  # each item's row
            refuse(pc.is_null(items), f"{where}: lists hold numbers only, got null", parents)
            if pa.types.is_floating(kind):
                refuse(_not_finite(items), f"{where}: must be finite", parents)
        elif pa.types.is_floating(kind):
            refuse(_not_finite(column), f"{where}: must be finite")
        elif not (_numeric(kind) or _plain(kind)):
            reason = f"{where}: must be a number, string, bool, null or list of numbers, got {kind}"
            refuse(pc.is_valid(column), reason)
    return refused


def column_checks(expected: Expected, table: pa.Table) -> dict[int, list[str]] | None:
    """`Expected.check_all` of every row at once, from the columns' types: the features each
    row lacks (by row number), where every column present is of a type its feature takes (a
    number, or a bool, for a number; a string for a string; a column of nulls for either).
    None where a column's type leaves the answer to each row's values."""
    missing: dict[int, list[str]] = {}
    for name in sorted(expected.numbers | expected.strings):
        if name not in table.column_names:
            absent: Any = range(table.num_rows)
        else:
            column = table.column(name)
            kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
            if name in expected.numbers:
                fits = _numeric(kind) or pa.types.is_boolean(kind)
            else:
                fits = pa.types.is_string(kind) or pa.types.is_large_string(kind)
            if not (fits or pa.types.is_null(kind)):
                return None
            if not column.null_count:
                continue
            absent = np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False)).tolist()
        for row in absent:
            missing.setdefault(row, []).append(name)
    return missing


def _not_finite(values: Any) -> Any:
    return pc.and_(pc.is_valid(values), pc.invert(pc.is_finite(values)))


def _numeric(kind: pa.DataType) -> bool:
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind))


def _plain(kind: pa.DataType) -> bool:
    return any(
        test(kind)
        for test in (
            pa.types.is_string,
            pa.types.is_large_string,
            pa.types.is_boolean,
            pa.types.is_null,
        )
    )


@dataclass
class Good:
    """A batch's rows the model may score: their row numbers, their keys, and the features
    each lacks (by index among them, only those that lack some), to be imputed and named."""

    rows: np.ndarray[Any, np.dtype[np.int64]]
    keys: list[str]
    missing: dict[int, list[str]]

    def __len__(self) -> int:
        return len(self.keys)

    def take(self, keep: list[int]) -> Good:
        at = {old: new for new, old in enumerate(keep)}
        missing = {at[i]: m for i, m in self.missing.items() if i in at}
        return Good(self.rows[keep], [self.keys[i] for i in keep], missing)


@dataclass
class Results:
    """The job's results, by column, batch after batch."""

    rows: list[np.ndarray[Any, np.dtype[np.int64]]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    ids: list[pa.Array] = field(default_factory=list)
    predictions: list[Any] = field(default_factory=list)

    def columns(self) -> dict[str, Any]:
        predictions = self.predictions
        if not set(map(type, predictions)) <= {int, float}:  # classes: their JSON text
            predictions = [orjson.dumps(v).decode() for v in predictions]
        return {
            "row": np.concatenate(self.rows) if self.rows else np.empty(0, np.int64),
            "key": self.keys,
            "event_id": pa.chunked_array(self.ids, pa.string()),
            "prediction": predictions,
        }


def _results_parquet(columns: dict[str, Any]) -> bytes:
    # Rows, keys and ids are unique: a dictionary of them would only be tried, and dropped.
    return to_parquet(pa.table(columns), use_dictionary=["prediction"])


Refusals = list[tuple[int, str, str]]  # row, key, reason
Predicted = tuple[list[Value], pa.Array]  # a batch's values, and its rows' features as JSON


async def _score_all(
    settings: Settings,
    fitted: Any,
    status: JobStatus,
    source: Source,
    publisher: KafkaPublisher,
    progress: Callable[[int], None] | None,
) -> bytes:
    """Score in batches, as a pipeline: the model predicts one batch (in a thread) while the
    last is captured, and the broker acks the ones before (ACKS_AHEAD of them at most).
    The results, as Parquet, are written (in a thread) while the last acks are awaited.

    A Parquet file's rows stay columns throughout where they can (every column of a type its
    feature takes, and of plain values): the model reads them whole (`predict_table`) and
    their JSON is made a column at a time, both in the thread, which Arrow and TensorFlow
    leave free to run beside the job's own work. Else each row is a dict, as a dataset's."""
    expected = fitted.expects()
    keys, rows, refused, table = source
    reads = len(expected.numbers | expected.strings)
    checked = column_checks(expected, table) if table is not None else None
    columnar = (
        table is not None and checked is not None and features_json(table.slice(0, 0)) is not None
    )
    if table is not None and not columnar:
        rows = await asyncio.to_thread(table.to_pylist)
    missing_by_batch: dict[int, dict[int, list[str]]] = {}  # what `checked` found, by batch
    for row, absent in (checked or {}).items():
        missing_by_batch.setdefault(row // BATCH, {})[row % BATCH] = absent

    def accepted(start: int, stop: int, bad: Refusals) -> Good:
        problems: dict[int, dict[str, str]] = {}  # none where the columns' types fit
        if checked is None:
            assert rows is not None
            problems, missing = expected.check_all(rows[start:stop])
        else:
            missing = missing_by_batch.get(start // BATCH, {})
        if not (problems or missing or refused):  # the usual batch: every row is good
            return Good(np.arange(start, stop, dtype=np.int64), keys[start:stop], {})
        good: list[int] = []
        lacking: dict[int, list[str]] = {}
        for row in range(start, stop):
            if row in refused:
                bad.append((row, keys[row], refused[row]))
                continue
            absent, wrong = missing.get(row - start, []), problems.get(row - start)
            if not wrong and reads and len(absent) == reads:
                wrong = dict.fromkeys(absent, "missing")
            if wrong:
                bad.append((row, keys[row], "; ".join(f"{n}: {why}" for n, why in wrong.items())))
                continue
            if absent:
                lacking[len(good)] = absent
            good.append(row)
        return Good(np.array(good, dtype=np.int64), [keys[row] for row in good], lacking)

    def predict(start: int, stop: int, good: Good) -> Predicted:
        """In a thread: the good rows' values and JSON features."""
        if columnar:
            assert table is not None
            part = table.slice(start, stop - start)
            if len(good) < part.num_rows:
                part = part.take(good.rows - start)
            encoded = features_json(part)
            assert encoded is not None
            return predict_table(fitted, part), encoded
        assert rows is not None
        dicts = [rows[row] for row in good.rows.tolist()]
        return fitted.predict(dicts), rows_json(dicts)

    def predicting(start: int) -> tuple[Good, Refusals, asyncio.Future[Predicted]]:
        bad: Refusals = []
        stop = min(start + BATCH, len(keys))
        good = accepted(start, stop, bad)
        return good, bad, asyncio.ensure_future(asyncio.to_thread(predict, start, stop, good))

    events = ScoredEvents(status)
    out = Results()
    starts = range(0, len(keys), BATCH)
    acks: collections.deque[asyncio.Future[Any]] = collections.deque()
    ahead = predicting(0) if starts else None
    try:
        for start in starts:
            assert ahead is not None
            good, bad, values_of = ahead
            values, encoded = await values_of
            ahead = predicting(start + BATCH) if start + BATCH < len(keys) else None
            ids, captures = _captured(settings, status, events, good, values, encoded, out, bad)
            for row, key, reason in sorted(bad):  # in row order, though found in two passes
                status.refuse(row, key, reason)
            acks.append(await publisher.queue_keyed(PREDICTIONS, ids, captures))
            while len(acks) > ACKS_AHEAD:
                await acks.popleft()
            status.scored += len(captures)
            gc.freeze()  # this batch's survivors (its results): see `score`
            if progress:
                progress(min(BATCH, len(keys) - start))
        written = asyncio.ensure_future(asyncio.to_thread(_results_parquet, out.columns()))
        while acks:
            await acks.popleft()
        return await written
    finally:
        for pending in (*acks, ahead[2] if ahead else None):
            if pending is not None and not pending.done():
                pending.cancel()


def _captured(
    settings: Settings,
    status: JobStatus,
    events: ScoredEvents,
    good: Good,
    values: list[Any],
    features: pa.Array,
    out: Results,
    bad: Refusals,
) -> tuple[pa.Array, pa.Array]:
    """The records capturing a batch's scores (their keys, the event ids, and their values),
    each row's result added to `out` and each row refused to `bad`. The rows' features
    (`features`, their JSON) were checked (the codec's rules, by column or when they were
    logged), and the model's values are its classes or numbers: the first event alone goes
    through the codec whole (until one passes), for the fields every event of the job
    shares. The batch is encoded a column at a time (`ScoredEvents.encode_batch`)."""
    if not _all_finite(values):  # else no row's value needs a look
        keep = []
        for i, value in enumerate(values):
            if is_number(value) and not math.isfinite(float(value)):
                bad.append(
                    (
                        int(good.rows[i]),
                        good.keys[i],
                        "the model produced a value that is not finite",
                    )
                )
            else:
                keep.append(i)
        good, values, features = good.take(keep), [values[i] for i in keep], features.take(keep)
    if not good:
        return pa.array([], pa.binary()), pa.array([], pa.binary())
    ids = events.id_of.many(good.keys)
    imputed = {i: {IMPUTED: missing} for i, missing in good.missing.items()}
    encoded = events.encode_batch(ids, good.rows, features, values, imputed)
    sizes = pc.binary_length(encoded).to_numpy()
    limit = settings.max_event_bytes
    dropped = {
        int(i): f"event of {sizes[i]} bytes exceeds {limit}" for i in np.flatnonzero(sizes > limit)
    }
    if not status.scored and not out.keys:
        for i in range(len(good)):
            if i in dropped:
                continue
            try:
                prediction_from_dict(orjson.loads(encoded[i].as_py()))
                break
            except InvalidEvent as exc:
                dropped[i] = str(exc)
    if dropped:
        for i, reason in dropped.items():
            bad.append((int(good.rows[i]), good.keys[i], reason))
        keep = [i for i in range(len(good)) if i not in dropped]
        good, values = good.take(keep), [values[i] for i in keep]
        ids, encoded = ids.take(keep), encoded.take(keep)
    out.rows.append(good.rows)
    out.keys += good.keys
    out.ids.append(ids)
    out.predictions += values
    return ids.cast(pa.binary()), encoded


def _all_finite(values: list[Any]) -> bool:
    """Whether every value is a finite number (a regression's usual batch), found at C speed."""
    try:
        return all(map(math.isfinite, values))
    except TypeError:  # classes
        return False
