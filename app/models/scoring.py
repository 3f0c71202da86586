"""Batch scoring: precompute a version's predictions for a dataset or a Parquet file.

Every scored row is captured as a PredictionEvent (the system eats its own dog food: a batch
prediction is a prediction), and the results go to S3 as one Parquet file under
`scores/{model}/{version}/{job}/`, which DuckDB or pyarrow read as a table. A row the model
cannot read is reported with its row number and skipped; it never stops the job.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from app.client import KafkaPublisher
from app.domain.codec import (
    InvalidEvent,
    check_features,
    check_value,
    format_time,
    prediction_from_dict,
)
from app.domain.datasets import DatasetSpec
from app.domain.events import is_number
from app.domain.scores import JobStatus, scored_event, scores_prefix, status_key
from app.log.replay import log_end
from app.log.segments import to_parquet
from app.models import snapshots
from app.models.adapters import Adapters, opened
from app.models.serving import IMPUTED
from app.models.training import TrainingError, load_recorded, version_manifest
from app.settings import Settings
from app.topics import PREDICTIONS

BATCH = 4096
JOB_NAME = re.compile(r"[A-Za-z0-9._-]{1,200}")
Instance = tuple[str, Any]  # (key, features)


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
        found = await job_status(settings, model, name, kept)
        if found is not None and found.state == "done":
            if version is not None and str(version) != found.version:
                raise ScoringError(
                    f"job {name!r} already scored {model} with version {found.version}; "
                    "name another job"
                )
            return found, False
        chosen = str(version) if version is not None else await _champion(kept, model)
        record = await version_manifest(settings, model, int(chosen), kept)
        fitted = await load_recorded(settings, record, kept)
        instances = await _instances(settings, dataset, parquet)
        status = JobStatus(
            model, record.version, name, source, "running", format_time(datetime.now(UTC))
        )
        status.rows = len(instances)
        await _save_status(kept, status)
        columns = await _score_all(settings, fitted, status, instances, progress)
        key = scores_prefix(model, record.version, name) + "scores.parquet"
        await kept.objects.put(key, to_parquet(pa.table(columns)))
        status.state, status.location = "done", key
        status.finished_at = format_time(datetime.now(UTC))
        await _save_status(kept, status)
        return status, True


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


async def _instances(
    settings: Settings, dataset: str | None, parquet: Path | None
) -> list[Instance]:
    if dataset is not None:
        made = await snapshots.materialize(settings, DatasetSpec(dataset), await log_end(settings))
        if not made.rows:
            raise ScoringError(f"dataset {dataset!r} has no examples to score")
        return [(r.event_id, r.features) for r in made.rows]
    assert parquet is not None
    try:
        rows = (await asyncio.to_thread(pq.read_table, parquet)).to_pylist()
    except (OSError, pa.ArrowException) as exc:
        raise ScoringError(f"cannot read {parquet}: {exc}") from None
    # An `id` column keys the rows (and so their event ids); else the row number does.
    return [(str(row.pop("id")) if "id" in row else str(n), row) for n, row in enumerate(rows)]


async def _score_all(
    settings: Settings,
    fitted: Any,
    status: JobStatus,
    instances: list[Instance],
    progress: Callable[[int], None] | None,
) -> dict[str, list[Any]]:
    expected = fitted.expects()
    reads = len(expected.numbers | expected.strings)
    out: dict[str, list[Any]] = {"row": [], "key": [], "event_id": [], "prediction": []}
    publisher = KafkaPublisher(settings.bootstrap_servers, validate=False)
    await publisher.start()
    sending: asyncio.Future[None] | None = None  # a batch's acks, awaited after the next's work
    checked = False
    try:
        for start in range(0, len(instances), BATCH):
            good: list[tuple[int, str, Mapping[str, Any], list[str]]] = []
            for row, (key, features) in enumerate(instances[start : start + BATCH], start):
                if not isinstance(features, Mapping):
                    status.refuse(row, key, "features must be an object")
                    continue
                problems, missing = expected.check(features)
                if not problems and reads and len(missing) == reads:
                    problems = dict.fromkeys(missing, "missing")
                if problems:
                    why = "; ".join(f"{name}: {reason}" for name, reason in problems.items())
                    status.refuse(row, key, why)
                    continue
                good.append((row, key, features, missing))
            values = await asyncio.to_thread(fitted.predict, [f for _, _, f, _ in good])
            records = []
            for (row, key, features, missing), value in zip(good, values, strict=True):
                if is_number(value) and not math.isfinite(float(value)):
                    status.refuse(row, key, "the model produced a value that is not finite")
                    continue
                event = scored_event(status, row, key, features, value)
                if missing:
                    event["context"][IMPUTED] = missing
                try:
                    # The job's own fields are the same in every event: checked once.
                    if not checked:
                        prediction_from_dict(event)
                        checked = True
                    check_features(event["features"])
                    check_value(value)
                except InvalidEvent as exc:
                    status.refuse(row, key, str(exc))
                    continue
                raw = orjson.dumps(event)
                if len(raw) > settings.max_event_bytes:
                    status.refuse(
                        row, key, f"event of {len(raw)} bytes exceeds {settings.max_event_bytes}"
                    )
                    continue
                records.append((event["event_id"].encode(), raw))
                for name, item in zip(
                    ("row", "key", "event_id", "prediction"),
                    (row, key, event["event_id"], value),
                    strict=True,
                ):
                    out[name].append(item)
            if sending is not None:
                await sending
            sending = asyncio.ensure_future(publisher.send_records(PREDICTIONS, records))
            status.scored += len(records)
            if progress:
                progress(min(BATCH, len(instances) - start))
        if sending is not None:
            await sending
    finally:
        if sending is not None and not sending.done():
            sending.cancel()
        await publisher.stop()
    if not all(is_number(v) for v in out["prediction"]):  # classes: their JSON text
        out["prediction"] = [orjson.dumps(v).decode() for v in out["prediction"]]
    return out
