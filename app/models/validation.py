"""Validate a version by replaying past prediction events, gate it, promote or roll back.

The events are the labeled examples of the version's dataset that it was not trained on: its
snapshot's holdout, and everything labeled after its as-of offsets. The fold that finds them
starts from the training snapshot's stored state, so it reads only the log since then. What
was served is compared as the log recorded it; when the model has a champion, only the
events that champion served are judged, so a challenger must beat the model it would replace.

Reports are stored under `models/{model}/{version}/validation/` and announced on
`modelview.model-events`, as are promotions and rejections: the registry is their fold.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa

from app.domain import lineage, registry
from app.domain.codec import format_time, parse_time
from app.domain.datasets import Row, fitted_rows
from app.domain.events import Value
from app.domain.gate import (
    Decision,
    Gate,
    Scored,
    ValidationReport,
    decide_in_time,
    loss,
    periods,
    report,
    scored,
)
from app.domain.model_events import (
    ModelPromoted,
    ModelRejected,
    ModelTrained,
    ModelValidated,
)
from app.learning.base import Features, Model, task_of
from app.log.replay import log_end
from app.log.segments import from_parquet, to_parquet
from app.models import snapshots
from app.models.adapters import Adapters, opened
from app.models.training import TrainingError, load_recorded, version_manifest
from app.settings import Settings

SCORE_BATCH = 4096


def gate_of(settings: Settings) -> Gate:
    return Gate(
        metric=settings.gate_metric,
        min_improvement=settings.gate_min_improvement,
        max_segment_regression=settings.gate_max_segment_regression,
        min_samples=settings.gate_min_samples,
        min_segment_samples=settings.gate_min_segment_samples,
        confidence=settings.gate_confidence,
    )


async def unseen_rows(
    settings: Settings, record: ModelTrained, adapters: Adapters | None = None
) -> tuple[list[Row], Any, str | None]:
    """Labeled rows of the version's dataset, now, minus those it was trained on; with the
    log's end and the latest time among the rows it was fitted on (where out-of-time begins)."""
    manifest = record.snapshot
    async with opened(settings, adapters) as adapters:
        _, snapshot_rows = await adapters.snapshots.load(manifest.dataset, manifest.snapshot_id)
        base = await adapters.snapshots.state(manifest.dataset, manifest.snapshot_id)
    fitted = fitted_rows(snapshot_rows, record.fit_until)
    trained = {r.event_id for r in fitted}
    until = max((parse_time(r.occurred_at) for r in fitted), default=None)
    now = await log_end(settings)
    done = await snapshots.materialize(settings, manifest.spec, now, base=base)
    unseen = [r for r in done.rows if r.event_id not in trained]
    return unseen, now, format_time(until) if until else None


def score(model: Model, features: Sequence[Features], batch: int = SCORE_BATCH) -> list[Value]:
    out: list[Value] = []
    for start in range(0, len(features), batch):
        out.extend(model.predict(features[start : start + batch]))
    return out


async def validate(
    settings: Settings,
    model: str,
    version: int | str,
    gate: Gate | None = None,
    segment_by: str | None = None,
    bucket: str | None = None,
    adapters: Adapters | None = None,
) -> ValidationReport:
    """Replay, report, store, announce; with a gate, also promote or reject."""
    async with opened(settings, adapters) as kept:
        return await _validate(settings, kept, model, version, gate, segment_by, bucket)


async def _validate(
    settings: Settings,
    adapters: Adapters,
    model: str,
    version: int | str,
    gate: Gate | None,
    segment_by: str | None,
    bucket: str | None,
) -> ValidationReport:
    record = await version_manifest(settings, model, int(version), adapters)
    version = record.version
    entry = (await adapters.registry.entries(model)).get(model)
    champion = entry.champion if entry else None
    rows, as_of, trained_until = await unseen_rows(settings, record, adapters)
    if champion and champion != version:
        judged = [r for r in rows if r.model == model and r.model_version == champion]
        compared_with = {"model": model, "version": champion}
    else:
        judged, compared_with = rows, None  # no champion yet: whatever was served
    fitted = await load_recorded(settings, record, adapters)
    predictions = await asyncio.to_thread(score, fitted, [r.features for r in judged])
    task = fitted.describe().get("task") or task_of([r.label for r in judged])
    segment = segment_by if segment_by is not None else settings.validation_segment_by
    events = scored(judged, predictions, segment or None)
    shape = (
        segment or None,
        bucket or settings.validation_bucket,
        gate.confidence if gate else 0.95,
    )
    measured = report(task, events, *shape)
    split = periods(task, events, trained_until, *shape)
    decided_on, decision = (
        decide_in_time(measured, split, gate) if gate and champion != version else (None, None)
    )
    result = ValidationReport(
        measured=measured,
        model=model,
        version=version,
        champion=champion,
        compared_with=compared_with,
        unseen_events=len(rows),
        as_of=as_of,
        validated_at=format_time(datetime.now(UTC)),
        decision=decision,
        periods=split.to_dict(),
        decided_on=decided_on,
    )
    await _store(adapters, model, version, result, task, events)
    await adapters.events.record_lineage(
        lineage.of_validation(model, version, result.validated_at, judged, predictions)
    )
    await adapters.events.publish(
        ModelValidated(
            model=model,
            version=version,
            report=result.to_dict(),
            decision=decision,
            validated_at=result.validated_at,
        ),
    )
    if decision is not None:
        await _decide(settings, adapters, model, version, decision)
    return result


async def _decide(
    settings: Settings, adapters: Adapters, model: str, version: str, decision: Decision
) -> None:
    if decision.promote:
        reasons, gain = decision.reasons, decision.improvement
        await promote(settings, model, version, "gate", reasons, gain, adapters)
    else:
        await adapters.events.publish(
            ModelRejected(
                model=model,
                version=version,
                rejected_at=format_time(datetime.now(UTC)),
                reasons=decision.reasons,
                improvement=decision.improvement,
            ),
        )


async def promote(
    settings: Settings,
    model: str,
    version: int | str,
    by: str = "manual",
    reasons: Sequence[str] = (),
    improvement: float | None = None,
    adapters: Adapters | None = None,
) -> ModelPromoted:
    async with opened(settings, adapters) as kept:
        record = await version_manifest(settings, model, int(version), kept)  # it must exist
        event = ModelPromoted(
            model=model,
            version=record.version,
            promoted_at=format_time(datetime.now(UTC)),
            by=by,
            reasons=tuple(reasons),
            improvement=improvement,
        )
        await kept.events.publish(event)
    return event


async def rollback(
    settings: Settings, model: str, adapters: Adapters | None = None
) -> ModelPromoted:
    async with opened(settings, adapters) as kept:
        entry = (await kept.registry.entries(model)).get(model)
        target = registry.rollback_target(entry) if entry else None
        if target is None:
            raise TrainingError(f"model {model!r} has no earlier champion to roll back to")
        reason = f"rolled back from version {entry and entry.champion}"
        return await promote(settings, model, target, "rollback", [reason], None, kept)


async def _store(
    adapters: Adapters,
    model: str,
    version: str,
    result: ValidationReport,
    task: str,
    events: list[Scored],
) -> None:
    metric = "accuracy" if task == "classification" else "mae"
    table = pa.table(
        {
            "event_id": [e.event_id for e in events],
            "occurred_at": [e.occurred_at for e in events],
            "served_by": [e.served_by for e in events],
            "segment": [e.segment for e in events],
            "label": [orjson.dumps(e.label).decode() for e in events],
            "served": [orjson.dumps(e.served).decode() for e in events],
            "challenger": [orjson.dumps(e.challenger).decode() for e in events],
            # Per event: challenger's loss minus the served model's (negative: better).
            "difference": [
                loss(task, metric, e.challenger, e.label) - loss(task, metric, e.served, e.label)
                for e in events
            ],
        }
    )
    await adapters.reports.save(result, to_parquet(table))


async def stored_report(
    settings: Settings,
    model: str,
    version: str,
    events: bool = False,
    limit: int = 1000,
    adapters: Adapters | None = None,
) -> dict[str, Any] | None:
    """The latest validation report of a version, with per-event differences if asked."""
    async with opened(settings, adapters) as adapters:
        found = await adapters.reports.report(model, version)
        data = await adapters.reports.events(model, version) if found and events else None
    if found is None:
        return None
    result = found.to_dict()
    if data is not None:
        table = from_parquet(data)
        rows = table.slice(0, limit).to_pylist()
        for row in rows:
            for name in ("label", "served", "challenger"):
                row[name] = orjson.loads(row[name])
        result["events"] = rows
        result["events_total"] = table.num_rows
    return result
