"""Train a model version from a dataset snapshot, and record exactly what it came from.

A version is a view over prediction events: its manifest names the snapshot (spec, as-of
offsets, content hash) it was fitted on, and a `ModelTrained` event on
`modelview.model-events` announces it. `app.models.stores.ModelStore` keeps both.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from app.domain import lineage
from app.domain.codec import format_time
from app.domain.datasets import AsOf, DatasetSpec, content_hash, fit_cutoff, fitted_rows
from app.domain.model_events import ModelTrained
from app.extras import require
from app.learning import fingerprint
from app.learning.base import BaselineTrainer, Model, Trainer
from app.learning.hyper import Hyper, HyperError, recorded
from app.models import snapshots
from app.models.adapters import Adapters, opened
from app.models.stores import AlreadyStored, NotStored
from app.settings import Settings


class TrainingError(RuntimeError):
    """Nothing to train on, or the snapshot cannot be reproduced."""


TRAINERS = ("baseline", "keras", "linear")


def trainer_named(name: str, hyper: Hyper | None = None) -> Trainer:
    """A trainer by the name manifests record; `hyper` is for the Keras and linear ones."""
    if name == "baseline":
        return BaselineTrainer()
    if name in ("keras", "linear"):
        require("keras")
        from app.learning.keras import KerasTrainer, LinearTrainer  # TensorFlow only here

        return KerasTrainer(hyper) if name == "keras" else LinearTrainer(hyper)
    raise TrainingError(f"unknown trainer {name!r}: one of {', '.join(TRAINERS)}")


def recorded_trainer(record: ModelTrained) -> Trainer:
    """The trainer, with the hyperparameters, that fitted a stored version."""
    try:
        return trainer_named(record.trainer, recorded(record.describe))
    except HyperError as exc:
        raise TrainingError(f"version {record.version}'s hyperparameters: {exc}") from None


async def versions(settings: Settings, model: str, adapters: Adapters | None = None) -> list[int]:
    async with opened(settings, adapters) as kept:
        return await kept.models.versions(model)


async def version_manifest(
    settings: Settings, model: str, version: int, adapters: Adapters | None = None
) -> ModelTrained:
    """A version's manifest: the ModelTrained event that announced it."""
    async with opened(settings, adapters) as kept:
        try:
            return await kept.models.manifest(model, version)
        except NotStored as exc:
            raise TrainingError(str(exc)) from None


async def train(
    settings: Settings,
    spec: DatasetSpec,
    model: str | None = None,
    trainer: Trainer | None = None,
    as_of: AsOf | None = None,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    adapters: Adapters | None = None,
    leave_recent: timedelta | None = None,
    cold_start: bool = False,
    fit_until: str | None = None,
) -> ModelTrained:
    """Snapshot, fit, store, announce; returns the version's manifest (also the event).

    With `leave_recent`, the snapshot's last stretch of that length is not fitted on: it is
    left for validation to judge the version on events after all it learned from; with
    `fit_until`, rows from then on. `cold_start` fits from fresh weights, not the last
    version's (which may hold what an erasure took away)."""
    async with opened(settings, adapters) as kept:
        return await _train(
            settings,
            kept,
            spec,
            model,
            trainer,
            as_of,
            seed,
            progress,
            leave_recent,
            cold_start,
            fit_until,
        )


async def _train(
    settings: Settings,
    adapters: Adapters,
    spec: DatasetSpec,
    model: str | None,
    trainer: Trainer | None,
    as_of: AsOf | None,
    seed: int,
    progress: Callable[[int], None] | None,
    leave_recent: timedelta | None = None,
    cold_start: bool = False,
    fit_until: str | None = None,
) -> ModelTrained:
    name = model or spec.dataset
    fitter = trainer or BaselineTrainer()
    existing = await adapters.models.versions(name)
    parent = None
    if existing:
        last = await adapters.models.manifest(name, existing[-1])
        parent = await adapters.snapshots.load(spec.dataset, last.snapshot.snapshot_id)
    warm = None
    refused = None
    if existing and last.trainer == fitter.kind and fitter.warm_starts and not cold_start:
        refused = await _learned_erased(adapters, name, last.version)
        if refused is None:
            # Warm start: go on from the last version's weights (the trainer decides if it can).
            with tempfile.TemporaryDirectory() as tmp:
                warm = fitter.load(await adapters.models.artifact(last, Path(tmp)))
    manifest, rows = await snapshots.take(
        settings, adapters.snapshots, spec, as_of, parent, progress
    )
    # Before any version is fitted on it: a version's events can always be traced back.
    await adapters.events.record_lineage(lineage.of_snapshot(manifest, rows))
    if fit_until is None and leave_recent:
        fit_until = fit_cutoff(rows, leave_recent)
    train_rows = fitted_rows(rows, fit_until)
    if not train_rows:
        raise TrainingError(
            f"dataset {spec.dataset!r} has no labeled examples as of the given offsets"
        )
    fitted = fitter.fit(
        [r.features for r in train_rows], [r.label for r in train_rows], warm_start=warm, seed=seed
    )
    version = (existing[-1] + 1) if existing else 1
    described = fitted.describe()
    if refused is not None:
        described["warm_start"] = {**described.get("warm_start", {}), "refused": refused}
    files = _saved(fitted)
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
        # Whether weights were carried over, not merely offered: the trainer decides.
        warm_start=bool(described.get("warm_start", {}).get("reused")),
        describe=described,
        fit_until=fit_until,
        weights_sha256=fingerprint.weights_digest(fitted),
        artifact_sha256=fingerprint.files_digest(files),
        environment=fingerprint.environment(),
    )
    try:
        await adapters.models.save(record, files)
    except AlreadyStored as exc:
        raise TrainingError(str(exc)) from None
    await adapters.events.publish(record)
    return record


async def _learned_erased(adapters: Adapters, model: str, version: str) -> str | None:
    """Why not to start from `version`'s weights: it learned from data since erased."""
    entry = (await adapters.registry.entries(model)).get(model)
    found = entry.versions.get(version) if entry is not None else None
    if found is None or not found.erased:
        return None
    return f"version {version} learned from erased data ({', '.join(sorted(found.erased))})"


def _saved(fitted: Any) -> list[tuple[str, bytes]]:
    """The files `fitted.save` writes, as (relative name, bytes)."""
    with tempfile.TemporaryDirectory() as tmp:
        fitted.save(Path(tmp))
        return [
            (path.relative_to(tmp).as_posix(), path.read_bytes())
            for path in sorted(Path(tmp).rglob("*"))
            if path.is_file()
        ]


async def load_version(
    settings: Settings, model: str, version: int | str, adapters: Adapters | None = None
) -> Model:
    """A stored version, ready to predict: its artifact downloaded and loaded by its trainer."""
    async with opened(settings, adapters) as kept:
        record = await version_manifest(settings, model, int(version), kept)
        return await load_recorded(settings, record, kept)


async def load_recorded(
    settings: Settings, record: ModelTrained, adapters: Adapters | None = None
) -> Model:
    """`load_version` for a caller that has read the version's manifest already."""
    fitter = recorded_trainer(record)
    async with opened(settings, adapters) as kept:
        with tempfile.TemporaryDirectory() as tmp:
            directory = await kept.models.artifact(record, Path(tmp))
            return await asyncio.to_thread(fitter.load, directory)


async def retrain_without(settings: Settings, model: str, version: int) -> ModelTrained:
    """A new version fitted as `version` was (same dataset spec, offsets, trainer, seed and
    fit cut-off), from fresh weights, on the log as it is now: every erasure since applied."""
    record = await version_manifest(settings, model, version)
    return await train(
        settings,
        record.snapshot.spec,
        model=model,
        trainer=recorded_trainer(record),
        as_of=record.snapshot.as_of,
        seed=record.seed,
        cold_start=True,
        fit_until=record.fit_until,
    )


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
    fitter = recorded_trainer(record)
    warm = None
    if record.warm_start and record.parent_version:
        warm = await refit(settings, model, int(record.parent_version))
    manifest = record.snapshot
    made = await snapshots.materialize(settings, manifest.spec, manifest.as_of)
    rows = fitted_rows(made.rows, record.fit_until)
    return fitter.fit(
        [r.features for r in rows], [r.label for r in rows], warm_start=warm, seed=record.seed
    )


async def refit_matches(settings: Settings, model: str, version: int) -> tuple[bool, str, str]:
    """Compare the stored model with a refit on the snapshot's rows: (within tolerance, how
    its predictions compare, how its weights compare and why they may differ)."""
    record = await version_manifest(settings, model, version)
    stored = await load_recorded(settings, record)
    again_model = await refit(settings, model, version)
    weights = _weights_compared(record, stored, again_model)
    manifest = record.snapshot
    rows = (await snapshots.materialize(settings, manifest.spec, manifest.as_of)).rows
    features = [r.features for r in rows]
    again = again_model.predict(features)
    before = stored.predict(features)
    if record.describe.get("task") == "classification":
        same = sum(a == b for a, b in zip(before, again, strict=True))
        return same == len(rows), f"{same}/{len(rows)} predictions equal", weights
    worst = max((abs(float(a) - float(b)) for a, b in zip(before, again, strict=True)), default=0.0)
    how = f"largest difference {worst:.3g} (tolerance {REFIT_TOLERANCE})"
    return worst <= REFIT_TOLERANCE, how, weights


def _weights_compared(record: ModelTrained, stored: Model, again: Model) -> str:
    if record.weights_sha256 is None:
        return "weights: not recorded for this version (trained before digests were)"
    if fingerprint.weights_digest(again) == record.weights_sha256:
        return "weights: bit-identical (sha256 " + record.weights_sha256[:16] + "…)"
    largest = fingerprint.largest_difference(
        fingerprint.weights_of(stored), fingerprint.weights_of(again)
    )
    changed = fingerprint.differences(record.environment or {}, fingerprint.environment())
    where = (
        "; the environment differs: "
        + ", ".join(f"{k} {v[0]} then, {v[1]} now" for k, v in changed.items())
        if changed
        else "; the environment is the same"
    )
    size = "other shapes" if largest is None else f"largest difference {largest:.3g}"
    return f"weights: NOT bit-identical ({size}){where}"
