"""Training sets as views: a spec plus an as-of point in the log defines exactly one set of rows.

The rows are the examples the fold of the log up to the as-of offsets holds, filtered by the
spec: a prediction, its latest tag known by then, that tag's label, in the named dataset.
Nothing here does I/O; the snapshot adapter reads the log and writes the result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from app.domain.codec import format_time, parse_time
from app.domain.events import Feature, Value
from app.domain.examples import Example

# topic -> partition -> first offset NOT included (a high-water mark, as Kafka reports it)
AsOf = Mapping[str, Mapping[int, int]]


def records_before(as_of: AsOf) -> int:
    """How many log records lie before an offset vector (offsets start at 0)."""
    return sum(sum(parts.values()) for parts in as_of.values())


@dataclass(frozen=True)
class DatasetSpec:
    """Which labeled examples train a model; every field is part of the snapshot's identity."""

    dataset: str
    model: str | None = None
    model_versions: tuple[str, ...] = ()
    since: datetime | None = None  # prediction occurred_at >= since
    until: datetime | None = None  # prediction occurred_at < until
    features: tuple[str, ...] = ()  # empty: every feature seen
    holdout: float = 0.0  # share of event ids, by hash, kept out of training for validation

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["since"] = format_time(self.since) if self.since else None
        out["until"] = format_time(self.until) if self.until else None
        out["model_versions"] = list(self.model_versions)
        out["features"] = list(self.features)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetSpec:
        return cls(
            dataset=data["dataset"],
            model=data.get("model"),
            model_versions=tuple(data.get("model_versions") or ()),
            since=parse_time(data["since"]) if data.get("since") else None,
            until=parse_time(data["until"]) if data.get("until") else None,
            features=tuple(data.get("features") or ()),
            holdout=float(data.get("holdout") or 0.0),
        )


@dataclass(frozen=True)
class Row:
    """One training example, as the snapshot stores it."""

    event_id: str
    model: str
    model_version: str
    occurred_at: str
    features: Mapping[str, Feature]
    prediction: Value
    label: Value
    tag_id: str
    tagged_at: str
    holdout: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def in_holdout(event_id: str, share: float) -> bool:
    """A stable, uniform choice by event id: the same event is held out in every snapshot."""
    if share <= 0:
        return False
    bucket = int.from_bytes(hashlib.sha256(event_id.encode()).digest()[:8], "big") / 2**64
    return bucket < share


def fit_cutoff(rows: Iterable[Row], leave_recent: timedelta) -> str | None:
    """The time before which a version is fitted: `leave_recent` before the latest row, so
    that the rows after it are left for validation as out-of-time events."""
    latest = max((parse_time(r.occurred_at) for r in rows), default=None)
    return format_time(latest - leave_recent) if latest is not None else None


def fitted_rows(rows: Iterable[Row], fit_until: str | None = None) -> list[Row]:
    """The rows a version is fitted on: not held out, and occurred before `fit_until`."""
    return [r for r in rows if was_fitted(r.holdout, r.occurred_at, fit_until)]


def was_fitted(holdout: bool, occurred_at: str, fit_until: str | None) -> bool:
    """Whether a snapshot's row was among those its version was fitted on."""
    return not holdout and (not fit_until or parse_time(occurred_at) < parse_time(fit_until))


def select(example: Example, spec: DatasetSpec) -> Row | None:
    pred, tag = example.prediction, example.tag
    if example.erased or pred is None or tag is None or tag.label is None:
        return None
    if spec.dataset not in tag.datasets:
        return None
    if spec.model is not None and pred.model != spec.model:
        return None
    if spec.model_versions and pred.model_version not in spec.model_versions:
        return None
    if spec.since is not None and pred.occurred_at < spec.since:
        return None
    if spec.until is not None and pred.occurred_at >= spec.until:
        return None
    features = (
        {name: pred.features.get(name) for name in spec.features}
        if spec.features
        else dict(pred.features)
    )
    return Row(
        event_id=pred.event_id,
        model=pred.model,
        model_version=pred.model_version,
        occurred_at=format_time(pred.occurred_at),
        features=features,
        prediction=pred.prediction.value,
        label=tag.label,
        tag_id=tag.tag_id,
        tagged_at=format_time(tag.tagged_at),
        holdout=in_holdout(pred.event_id, spec.holdout),
    )


def rows_of(examples: Iterable[Example], spec: DatasetSpec) -> list[Row]:
    """The snapshot's rows in a canonical order (by event id)."""
    rows = [row for e in examples if (row := select(e, spec)) is not None]
    return sorted(rows, key=lambda r: r.event_id)


def content_hash(rows: Iterable[Row]) -> str:
    """sha256 of the rows as canonical JSON lines: equal rows, equal hash, whatever the file."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(orjson.dumps(row.to_dict(), option=orjson.OPT_SORT_KEYS))
        digest.update(b"\n")
    return digest.hexdigest()


@dataclass(frozen=True)
class Delta:
    """What changed between two snapshots of one spec: new rows, and rows whose tag changed."""

    added: tuple[str, ...] = ()
    relabeled: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return len(self.added) + len(self.relabeled) + len(self.removed)


def delta(before: Iterable[Row], after: Iterable[Row]) -> Delta:
    old = {r.event_id: r for r in before}
    new = {r.event_id: r for r in after}
    return Delta(
        added=tuple(sorted(new.keys() - old.keys())),
        relabeled=tuple(
            sorted(k for k in new.keys() & old.keys() if new[k].tag_id != old[k].tag_id)
        ),
        removed=tuple(sorted(old.keys() - new.keys())),
    )


@dataclass(frozen=True)
class Manifest:
    """Everything needed to materialize the same snapshot again and prove it identical."""

    dataset: str
    spec: DatasetSpec
    as_of: AsOf
    rows: int
    content_hash: str
    created_at: str
    parent: str | None = None  # the snapshot this one extends, for incremental training
    delta: Delta = field(default_factory=Delta)
    read_records: int = 0  # log records read to make it: only those after the parent's
    incremental: bool = False
    # erasure id -> the rows it took out after the snapshot was taken, as [holdout,
    # occurred_at] (no data: enough to tell whether a version was fitted on them). `rows` is
    # what is left; `content_hash` (and so the id) stays that of the rows as taken.
    erased: Mapping[str, list[list[Any]]] = field(default_factory=dict)

    @property
    def snapshot_id(self) -> str:
        return self.content_hash[:16]

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshot_id": self.snapshot_id,
            "dataset": self.dataset,
            "spec": self.spec.to_dict(),
            "as_of": {t: {str(p): o for p, o in parts.items()} for t, parts in self.as_of.items()},
            "rows": self.rows,
            "content_hash": self.content_hash,
            "created_at": self.created_at,
            "parent": self.parent,
            "delta": asdict(self.delta),
            "read_records": self.read_records,
            "incremental": self.incremental,
        } | ({"erased": dict(self.erased)} if self.erased else {})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        d = data.get("delta") or {}
        return cls(
            dataset=data["dataset"],
            spec=DatasetSpec.from_dict(data["spec"]),
            as_of={t: {int(p): o for p, o in parts.items()} for t, parts in data["as_of"].items()},
            rows=data["rows"],
            content_hash=data["content_hash"],
            created_at=data["created_at"],
            parent=data.get("parent"),
            delta=Delta(*(tuple(d.get(k, ())) for k in ("added", "relabeled", "removed"))),
            read_records=int(data.get("read_records", 0)),
            incremental=bool(data.get("incremental", False)),
            erased={str(e): list(rows) for e, rows in (data.get("erased") or {}).items()},
        )
