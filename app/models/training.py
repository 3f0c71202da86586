"""Train a model version from a dataset snapshot, and record exactly what it came from.

A version is a view over prediction events: its manifest names the snapshot (spec, as-of
offsets, content hash) it was fitted on, and a `ModelTrained` event on
`modelview.model-events` announces it. Artifacts live in S3 under `models/{model}/{version}/`.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from botocore.exceptions import ClientError

from app.domain import model_events
from app.domain.codec import format_time
from app.domain.datasets import AsOf, DatasetSpec, content_hash
from app.domain.model_events import MODELS, ModelEvent, ModelTrained
from app.extras import require
from app.learning.base import BaselineTrainer, Model, Trainer
from app.models import snapshots
from app.s3 import s3_client
from app.settings import Settings
from app.topics import MODEL_EVENTS


class TrainingError(RuntimeError):
    """Nothing to train on, or the snapshot cannot be reproduced."""


def trainer_named(name: str) -> Trainer:
    if name == "baseline":
        return BaselineTrainer()
    if name == "keras":
        require("keras")
        from app.learning.keras import KerasTrainer  # TensorFlow only when asked for

        return KerasTrainer()
    raise TrainingError(f"unknown trainer {name!r}: baseline or keras")


async def versions(settings: Settings, model: str) -> list[int]:
    found = []
    async with s3_client(settings) as client:
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(
            Bucket=settings.s3_bucket, Prefix=f"{MODELS}/{model}/", Delimiter="/"
        ):
            for prefix in page.get("CommonPrefixes", []):
                name = prefix["Prefix"].rstrip("/").rsplit("/", 1)[-1]
                if name.isdigit():
                    found.append(int(name))
    return sorted(found)


async def version_manifest(settings: Settings, model: str, version: int) -> ModelTrained:
    """A version's manifest: the ModelTrained event that announced it."""
    async with s3_client(settings) as client:
        try:
            response = await client.get_object(
                Bucket=settings.s3_bucket, Key=f"{MODELS}/{model}/{version}/manifest.json"
            )
        except client.exceptions.NoSuchKey:
            raise TrainingError(f"model {model!r} has no version {version}") from None
        async with response["Body"] as body:
            event = model_events.decode(await body.read())
    if not isinstance(event, ModelTrained):
        raise TrainingError(f"the manifest of {model} version {version} is not a ModelTrained")
    return event


async def train(
    settings: Settings,
    spec: DatasetSpec,
    model: str | None = None,
    trainer: Trainer | None = None,
    as_of: AsOf | None = None,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> ModelTrained:
    """Snapshot, fit, store, announce; returns the version's manifest (also the event)."""
    name = model or spec.dataset
    fitter = trainer or BaselineTrainer()
    existing = await versions(settings, name)
    parent = None
    if existing:
        last = await version_manifest(settings, name, existing[-1])
        parent = await snapshots.load(settings, spec.dataset, last.snapshot.snapshot_id)
    warm = None
    if existing and last.trainer == fitter.kind and fitter.warm_starts:
        # Warm start: go on from the last version's weights (the trainer decides if it can).
        with tempfile.TemporaryDirectory() as tmp:
            warm = fitter.load(await _fetch_artifact(settings, last.artifacts, Path(tmp)))
    manifest, rows = await snapshots.take(settings, spec, as_of, parent, progress)
    train_rows = [r for r in rows if not r.holdout]
    if not train_rows:
        raise TrainingError(
            f"dataset {spec.dataset!r} has no labeled examples as of the given offsets"
        )
    fitted = fitter.fit(
        [r.features for r in train_rows], [r.label for r in train_rows], warm_start=warm, seed=seed
    )
    version = (existing[-1] + 1) if existing else 1
    record = ModelTrained(
        model=name,
        version=str(version),
        trainer=fitter.kind,
        trained_at=format_time(datetime.now(UTC)),
        seed=seed,
        snapshot=manifest,
        train_rows=len(train_rows),
        holdout_rows=len(rows) - len(train_rows),
        parent_version=str(existing[-1]) if existing else None,
        warm_start=warm is not None,
        describe=fitted.describe(),
    )
    await _store(settings, name, version, fitted, record)
    await announce(settings, record)
    return record


async def _store(
    settings: Settings, model: str, version: int, fitted: Any, record: ModelTrained
) -> None:
    prefix = f"{MODELS}/{model}/{version}/"
    files = _saved(fitted)
    async with s3_client(settings) as client:
        for name, data in files:
            await client.put_object(
                Bucket=settings.s3_bucket, Key=prefix + "artifact/" + name, Body=data
            )
        try:
            # Two trainings racing for one version number: the second is refused, not merged.
            await client.put_object(
                Bucket=settings.s3_bucket,
                Key=prefix + "manifest.json",
                Body=orjson.dumps(model_events.to_dict(record), option=orjson.OPT_INDENT_2),
                IfNoneMatch="*",
            )
        except ClientError as exc:
            raise TrainingError(
                f"version {version} of {model} was written meanwhile: {exc}"
            ) from exc


def _saved(fitted: Any) -> list[tuple[str, bytes]]:
    """The files `fitted.save` writes, as (relative name, bytes)."""
    with tempfile.TemporaryDirectory() as tmp:
        fitted.save(Path(tmp))
        return [
            (path.relative_to(tmp).as_posix(), path.read_bytes())
            for path in sorted(Path(tmp).rglob("*"))
            if path.is_file()
        ]


async def _fetch_artifact(settings: Settings, prefix: str, into: Path) -> Path:
    """Download a version's artifact files under `into`; returns their directory."""
    target = into / "warm"
    async with s3_client(settings) as client:
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(
            Bucket=settings.s3_bucket, Prefix=prefix + "artifact/"
        ):
            for item in page.get("Contents", []):
                response = await client.get_object(Bucket=settings.s3_bucket, Key=item["Key"])
                async with response["Body"] as body:
                    data = await body.read()
                path = target / item["Key"][len(prefix + "artifact/") :]
                await asyncio.to_thread(_write, path, data)
    return target


async def load_version(settings: Settings, model: str, version: int | str) -> Model:
    """A stored version, ready to predict: its artifact downloaded and loaded by its trainer."""
    return await load_recorded(settings, await version_manifest(settings, model, int(version)))


async def load_recorded(settings: Settings, record: ModelTrained) -> Model:
    """`load_version` for a caller that has read the version's manifest already."""
    fitter = trainer_named(record.trainer)
    with tempfile.TemporaryDirectory() as tmp:
        directory = await _fetch_artifact(settings, record.artifacts, Path(tmp))
        return await asyncio.to_thread(fitter.load, directory)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


async def announce(settings: Settings, event: ModelEvent) -> None:
    """Log a model event, keyed by its model so one model's events stay in order."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            MODEL_EVENTS, key=event.model.encode(), value=model_events.encode(event)
        )
    finally:
        await producer.stop()


async def rebuild_snapshot(settings: Settings, model: str, version: int) -> tuple[bool, str, str]:
    """Fold the log again to the version's as-of offsets: (equal, recorded hash, new hash)."""
    manifest = (await version_manifest(settings, model, version)).snapshot
    # From the start of the log, whatever way the version's snapshot was made.
    rows = (await snapshots.materialize(settings, manifest.spec, manifest.as_of)).rows
    again = content_hash(rows)
    return again == manifest.content_hash, manifest.content_hash, again


# Refitting must give the same predictions: exactly the same classes, numbers within this.
REFIT_TOLERANCE = 1e-5


async def refit(settings: Settings, model: str, version: int) -> Any:
    """Fit `version` again from its snapshot and seed; a warm-started version refits its
    parents first, as it was trained."""
    record = await version_manifest(settings, model, version)
    fitter = trainer_named(record.trainer)
    warm = None
    if record.warm_start and record.parent_version:
        warm = await refit(settings, model, int(record.parent_version))
    manifest = record.snapshot
    made = await snapshots.materialize(settings, manifest.spec, manifest.as_of)
    rows = [r for r in made.rows if not r.holdout]
    return fitter.fit(
        [r.features for r in rows], [r.label for r in rows], warm_start=warm, seed=record.seed
    )


async def refit_matches(settings: Settings, model: str, version: int) -> tuple[bool, str]:
    """Compare the stored model with a refit on the snapshot's rows: (within tolerance, how)."""
    record = await version_manifest(settings, model, version)
    fitter = trainer_named(record.trainer)
    with tempfile.TemporaryDirectory() as tmp:
        stored = fitter.load(await _fetch_artifact(settings, record.artifacts, Path(tmp)))
    manifest = record.snapshot
    rows = (await snapshots.materialize(settings, manifest.spec, manifest.as_of)).rows
    features = [r.features for r in rows]
    again = (await refit(settings, model, version)).predict(features)
    before = stored.predict(features)
    if record.describe.get("task") == "classification":
        same = sum(a == b for a, b in zip(before, again, strict=True))
        return same == len(rows), f"{same}/{len(rows)} predictions equal"
    worst = max((abs(float(a) - float(b)) for a, b in zip(before, again, strict=True)), default=0.0)
    return worst <= REFIT_TOLERANCE, f"largest difference {worst:.3g} (tolerance {REFIT_TOLERANCE})"
