"""The model registry as a fold of model events: versions, their lineage, and the champion."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

from app.domain.model_events import (
    ModelEvent,
    ModelPromoted,
    ModelRejected,
    ModelTrained,
    ModelValidated,
)


def lineage(trained: ModelTrained) -> dict[str, Any]:
    """What a version came from, as the registry shows it."""
    snapshot = trained.snapshot
    return {
        "trainer": trained.trainer,
        "trained_at": trained.trained_at,
        "parent_version": trained.parent_version,
        "train_rows": trained.train_rows,
        "holdout_rows": trained.holdout_rows,
        "snapshot": {
            "snapshot_id": snapshot.snapshot_id,
            "dataset": snapshot.dataset,
            "rows": snapshot.rows,
            "content_hash": snapshot.content_hash,
            "as_of": snapshot.to_dict()["as_of"],
            "parent": snapshot.parent,
            "delta": {k: len(v) for k, v in asdict(snapshot.delta).items()},
        },
        "describe": dict(trained.describe),
        "artifacts": trained.artifacts,
    }


def apply(state: Mapping[str, Any] | None, event: ModelEvent) -> dict[str, Any]:
    """The model's registry entry after `event`; applying an event twice changes nothing."""
    model = dict(state or {"model": event.model, "versions": {}, "champion": None})
    versions = {k: dict(v) for k, v in model["versions"].items()}
    version = versions.setdefault(event.version, {"version": event.version, "status": "unknown"})
    match event:
        case ModelTrained():
            version.update(lineage(event))
            if version["status"] == "unknown":
                version["status"] = "trained"
        case ModelValidated():
            version["validation"] = dict(event.report)
            version["decision"] = event.decision.to_dict() if event.decision else None
            if version["status"] in ("unknown", "trained"):
                version["status"] = "validated"
        case ModelPromoted():
            version["status"] = "champion"
            version["promoted_at"] = event.promoted_at
            version["promotion"] = {
                "by": event.by,
                "reasons": list(event.reasons),
                "improvement": event.improvement,
            }
            previous = model.get("champion")
            if previous and previous != event.version and previous in versions:
                versions[previous]["status"] = "retired"
            model["champion"] = event.version
            history = list(model.get("champions", []))
            if event.by == "rollback" and history[-2:-1] == [event.version]:
                history.pop()  # back to the one before: a second rollback goes further back
            elif not history or history[-1] != event.version:
                history.append(event.version)
            model["champions"] = history
        case ModelRejected():
            version["status"] = "rejected"
            version["reasons"] = list(event.reasons)
    model["versions"] = versions
    return model


def training_marks(entries: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Per dataset: the rows of the newest snapshot any version was trained on."""
    newest: dict[str, tuple[str, int]] = {}
    for entry in entries:
        for version in entry.get("versions", {}).values():
            snapshot = version.get("snapshot") or {}
            dataset, rows, when = (
                snapshot.get("dataset"),
                snapshot.get("rows"),
                version.get("trained_at"),
            )
            if (
                dataset
                and isinstance(rows, int)
                and when
                and when > newest.get(dataset, ("", 0))[0]
            ):
                newest[dataset] = (when, rows)
    return {dataset: rows for dataset, (_, rows) in newest.items()}


def retrain_due(
    labeled: int, mark: int | None, min_new: int, waited: float, max_wait: float
) -> bool:
    """Train when `min_new` labeled examples arrived since the last training, or when some
    did and `max_wait` seconds passed (0: no time trigger). A dataset never trained counts
    everything as new."""
    new = labeled - (mark or 0)
    if min_new > 0 and new >= min_new:
        return True
    return max_wait > 0 and new > 0 and waited >= max_wait


def rollback_target(entry: Mapping[str, Any]) -> str | None:
    """The champion before the current one, if there was one."""
    history = entry.get("champions", [])
    return str(history[-2]) if len(history) >= 2 else None
