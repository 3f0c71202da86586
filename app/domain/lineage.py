"""Lineage back from an event: which snapshots held it, which versions learned from it, which
validations scored it.

Forward lineage (version -> snapshot -> rows) is in the manifests; going back from one event
that way means reading every snapshot. So when a snapshot is taken or a validation scores
events, one `LineageRecord` per row is logged on `modelview.lineage`, once keyed by the event
and once by its tag, and the `lineage` table folds them per key: O(rows) once, one table
read per lookup. Which versions were fitted on a snapshot is the registry's to say (a refit
may reuse a snapshot), so `answer` joins the two when asked. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import orjson

from app.domain.datasets import Manifest, Row, was_fitted
from app.domain.events import Value
from app.domain.registry import RegistryEntry

SCHEMA_VERSION = 1
KINDS = ("snapshot", "validation", "erased")


class InvalidLineage(ValueError):
    """Not a lineage record this code can fold; the message says what is wrong."""


@dataclass(frozen=True)
class LineageRecord:
    """One event's part in one snapshot or one validation."""

    kind: str  # "snapshot", "validation", or "erased": the event's data was erased
    event_id: str
    tag_id: str
    occurred_at: str
    label: Value | None
    at: str  # when the snapshot was taken, the validation ran, or the erasure was made
    dataset: str | None = None  # snapshot
    snapshot_id: str | None = None
    holdout: bool = False
    model: str | None = None  # validation
    version: str | None = None
    prediction: Value | None = None  # what the validated version predicted
    served_by: str | None = None  # the version that served the logged prediction

    @property
    def identity(self) -> tuple[Any, ...]:
        """Records with the same identity say the same thing: folding one twice adds nothing.
        A snapshot is its content (the same rows taken twice is one snapshot)."""
        if self.kind == "snapshot":
            return (self.kind, self.event_id, self.snapshot_id)
        if self.kind == "erased":
            return (self.kind, self.event_id)
        return (self.kind, self.event_id, self.model, self.version, self.at)


def erased(event_id: str, at: str, tag_id: str = "") -> LineageRecord:
    """The marker that makes a key's lineage forget the event's label and prediction."""
    return LineageRecord("erased", event_id, tag_id, "", None, at)


def redacted(record: LineageRecord) -> LineageRecord:
    """What lineage keeps of an erased event: which snapshots and validations, no data."""
    return replace(record, label=None, prediction=None)


def of_snapshot(manifest: Manifest, rows: Iterable[Row]) -> list[LineageRecord]:
    return [
        LineageRecord(
            kind="snapshot",
            event_id=r.event_id,
            tag_id=r.tag_id,
            occurred_at=r.occurred_at,
            label=r.label,
            at=manifest.created_at,
            dataset=manifest.dataset,
            snapshot_id=manifest.snapshot_id,
            holdout=r.holdout,
        )
        for r in rows
    ]


def of_validation(
    model: str,
    version: str,
    validated_at: str,
    rows: Sequence[Row],
    predictions: Sequence[Value],
) -> list[LineageRecord]:
    if len(rows) != len(predictions):
        raise ValueError(f"{len(rows)} rows but {len(predictions)} predictions")
    return [
        LineageRecord(
            kind="validation",
            event_id=r.event_id,
            tag_id=r.tag_id,
            occurred_at=r.occurred_at,
            label=r.label,
            at=validated_at,
            model=model,
            version=version,
            prediction=p,
            served_by=r.model_version,
        )
        for r, p in zip(rows, predictions, strict=True)
    ]


def keyed(records: Iterable[LineageRecord]) -> list[tuple[bytes, bytes]]:
    """(message key, value) pairs: each record under its event and under its tag."""
    out = []
    for record in records:
        value = encode(record)
        out.append((record.event_id.encode(), value))
        if record.tag_id and record.tag_id != record.event_id:
            out.append((record.tag_id.encode(), value))
    return out


def encode(record: LineageRecord) -> bytes:
    return orjson.dumps({"schema_version": SCHEMA_VERSION, **_plain(record)})


def decode(raw: bytes) -> LineageRecord:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidLineage(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidLineage("a lineage record is a JSON object")
    version = data.pop("schema_version", None)
    if version != SCHEMA_VERSION:
        raise InvalidLineage(f"schema_version {version!r}; this code reads {SCHEMA_VERSION}")
    if data.get("kind") not in KINDS:
        raise InvalidLineage(f"kind {data.get('kind')!r} is none of {KINDS}")
    try:
        record = LineageRecord(**data)
    except TypeError as exc:
        raise InvalidLineage(str(exc)) from None
    for name in ("event_id", "tag_id", "occurred_at", "at"):
        if not isinstance(getattr(record, name), str):
            raise InvalidLineage(f"{name} must be a string")
    need = {"snapshot": ("dataset", "snapshot_id"), "validation": ("model", "version")}
    missing = [n for n in need.get(record.kind, ()) if not isinstance(getattr(record, n), str)]
    if missing:
        raise InvalidLineage(f"a {record.kind} record needs {missing}")
    return record


def fold(current: bytes | None, record: LineageRecord) -> bytes | None:
    """The table's value for a key after `record`; None when it is already there."""
    held = entries(current)
    if any(entry.identity == record.identity for entry in held):
        return None
    if record.kind == "erased":
        held = [redacted(r) for r in held]
    elif any(r.kind == "erased" and r.event_id == record.event_id for r in held):
        record = redacted(record)
    return orjson.dumps([_plain(r) for r in [*held, record]])


def entries(value: bytes | None) -> list[LineageRecord]:
    """What the table holds under a key (written by `fold` only, so trusted)."""
    return [] if value is None else [LineageRecord(**e) for e in orjson.loads(value)]


def _plain(record: LineageRecord) -> dict[str, Any]:
    # `label` is always there: null once its event is erased.
    return {
        k: v
        for k, v in asdict(record).items()
        if k == "label" or (v is not None and v is not False)
    }


def answer(
    records: Iterable[LineageRecord],
    registry: Iterable[RegistryEntry],
    event_id: str | None = None,
    tag_id: str | None = None,
) -> dict[str, Any]:
    """The lineage of an event (or of a tag): snapshots, the versions trained on each with
    whether the event was among the rows fitted, and validations; oldest first."""
    chosen = [
        r
        for r in records
        if (event_id is None or r.event_id == event_id) and (tag_id is None or r.tag_id == tag_id)
    ]
    snapshots = sorted((r for r in chosen if r.kind == "snapshot"), key=lambda r: (r.at, r.dataset))
    validations = sorted(
        (r for r in chosen if r.kind == "validation"), key=lambda r: (r.at, r.model, r.version)
    )
    trained_on: dict[str, list[tuple[RegistryEntry, str, Mapping[str, Any]]]] = {}
    for entry in registry:
        for version, v in entry.versions.items():
            snapshot_id = v.snapshot.get("snapshot_id")
            if snapshot_id:
                trained_on.setdefault(snapshot_id, []).append((entry, version, v.lineage or {}))
    versions: list[dict[str, Any]] = []
    for s in snapshots:
        for entry, version, lineage in trained_on.get(s.snapshot_id or "", []):
            fit_until = lineage.get("fit_until")
            versions.append(
                {
                    "model": entry.model,
                    "version": version,
                    "status": entry.versions[version].status,
                    "champion": entry.champion == version,
                    "dataset": s.dataset,
                    "snapshot_id": s.snapshot_id,
                    "fitted": was_fitted(s.holdout, s.occurred_at, fit_until),
                    "label": s.label,
                    "trained_at": lineage.get("trained_at"),
                }
            )
    versions.sort(key=lambda v: (str(v["model"]), int(v["version"])))
    return {
        "erased": any(r.kind == "erased" for r in chosen),
        "event_ids": sorted({r.event_id for r in chosen}),
        "tag_ids": sorted({r.tag_id for r in chosen if r.tag_id}),
        "snapshots": [
            {
                "dataset": s.dataset,
                "snapshot_id": s.snapshot_id,
                "created_at": s.at,
                "event_id": s.event_id,
                "tag_id": s.tag_id,
                "label": s.label,
                "holdout": s.holdout,
            }
            for s in snapshots
        ],
        "versions": versions,
        "validations": [
            {
                "model": v.model,
                "version": v.version,
                "validated_at": v.at,
                "event_id": v.event_id,
                "tag_id": v.tag_id,
                "label": v.label,
                "prediction": v.prediction,
                "served_by": v.served_by,
            }
            for v in validations
        ],
    }
