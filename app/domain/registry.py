"""The model registry as a fold of model events: versions, their lineage, and the champion."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

KINDS = ("ModelTrained", "ModelValidated", "ModelPromoted", "ModelRejected")


class InvalidModelEvent(ValueError):
    pass


def check(event: Any) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise InvalidModelEvent("a model event must be a JSON object")
    kind = event.get("type")
    if kind not in KINDS:
        raise InvalidModelEvent(f"type must be one of {', '.join(KINDS)}, not {kind!r}")
    for name in ("model", "version"):
        if not isinstance(event.get(name), str) or not event[name]:
            raise InvalidModelEvent(f"{name}: required, a non-empty string")
    return event


def lineage(trained: Mapping[str, Any]) -> dict[str, Any]:
    """What a version came from, as the registry shows it."""
    snapshot = trained.get("snapshot") or {}
    delta = snapshot.get("delta") or {}
    return {
        "trainer": trained.get("trainer"),
        "trained_at": trained.get("trained_at"),
        "parent_version": trained.get("parent_version"),
        "train_rows": trained.get("train_rows"),
        "holdout_rows": trained.get("holdout_rows"),
        "snapshot": {
            "snapshot_id": snapshot.get("snapshot_id"),
            "dataset": snapshot.get("dataset"),
            "rows": snapshot.get("rows"),
            "content_hash": snapshot.get("content_hash"),
            "as_of": snapshot.get("as_of"),
            "parent": snapshot.get("parent"),
            "delta": {k: len(v) for k, v in delta.items()},
        },
        "describe": trained.get("describe"),
        "artifacts": trained.get("artifacts"),
    }


def apply(state: Mapping[str, Any] | None, event: Mapping[str, Any]) -> dict[str, Any]:
    """The model's registry entry after `event`; applying an event twice changes nothing."""
    model = dict(state or {"model": event["model"], "versions": {}, "champion": None})
    versions = {k: dict(v) for k, v in model["versions"].items()}
    version = versions.setdefault(
        event["version"], {"version": event["version"], "status": "unknown"}
    )
    kind = event["type"]
    if kind == "ModelTrained":
        version.update(lineage(event))
        if version["status"] == "unknown":
            version["status"] = "trained"
    elif kind == "ModelValidated":
        version["validation"] = event.get("report")
        # Events logged before the decision had its own field carry it in the report only.
        report = event.get("report") or {}
        version["decision"] = event.get("decision", report.get("decision"))
        if version["status"] in ("unknown", "trained"):
            version["status"] = "validated"
    elif kind == "ModelPromoted":
        version["status"] = "champion"
        version["promoted_at"] = event.get("promoted_at")
        version["promotion"] = {k: event.get(k) for k in ("by", "reasons", "improvement")}
        previous = model.get("champion")
        if previous and previous != event["version"] and previous in versions:
            versions[previous]["status"] = "retired"
        model["champion"] = event["version"]
        history = list(model.get("champions", []))
        if event.get("by") == "rollback" and history[-2:-1] == [event["version"]]:
            history.pop()  # back to the one before: a second rollback goes further back
        elif not history or history[-1] != event["version"]:
            history.append(event["version"])
        model["champions"] = history
    elif kind == "ModelRejected":
        version["status"] = "rejected"
        version["reasons"] = event.get("reasons", [])
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
