"""The model registry as a fold of model events: versions, their lineage, and the champion.

Entries are typed (`RegistryEntry`, `VersionEntry`) with one codec (`encode`, `decode`);
their JSON is what `GET /v1/models/{model}` shows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import orjson

from app.domain.model_events import (
    ModelDataErased,
    ModelEvent,
    ModelPromoted,
    ModelRejected,
    ModelTrained,
    ModelValidated,
)


@dataclass(frozen=True)
class Promotion:
    by: str
    reasons: tuple[str, ...]
    improvement: float | None


@dataclass(frozen=True)
class VersionEntry:
    """One version as the registry shows it; a part is None until its event is folded."""

    version: str
    status: str = "unknown"  # trained, validated, champion, retired, rejected
    lineage: Mapping[str, Any] | None = None  # what it came from (ModelTrained)
    validated: bool = False
    validation: Mapping[str, Any] | None = None
    decision: Mapping[str, Any] | None = None
    promoted: bool = False
    promoted_at: str | None = None
    promotion: Promotion | None = None
    reasons: tuple[str, ...] | None = None  # why the gate rejected it
    # erasure id -> (snapshot rows it took away, of which fitted, the warm-start parent it
    # learned them through or None): the version learned from erased data
    erased: Mapping[str, tuple[int, int, str | None]] = field(default_factory=dict)

    @property
    def trained_at(self) -> str | None:
        return (self.lineage or {}).get("trained_at")

    @property
    def snapshot(self) -> Mapping[str, Any]:
        return (self.lineage or {}).get("snapshot") or {}


@dataclass(frozen=True)
class RegistryEntry:
    """A model's versions, its champion, and the order champions came in (for rollback)."""

    model: str
    versions: Mapping[str, VersionEntry] = field(default_factory=dict)
    champion: str | None = None
    champions: tuple[str, ...] = ()


def lineage(trained: ModelTrained) -> dict[str, Any]:
    """What a version came from, as the registry shows it."""
    snapshot = trained.snapshot
    return {
        "trainer": trained.trainer,
        "trained_at": trained.trained_at,
        "parent_version": trained.parent_version,
        "train_rows": trained.train_rows,
        "holdout_rows": trained.holdout_rows,
        "fit_until": trained.fit_until,
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


def apply(state: RegistryEntry | None, event: ModelEvent) -> RegistryEntry:
    """The model's registry entry after `event`; applying an event twice changes nothing."""
    entry = state or RegistryEntry(event.model)
    versions = dict(entry.versions)
    version = versions.get(event.version) or VersionEntry(event.version)
    champion, champions = entry.champion, list(entry.champions)
    match event:
        case ModelTrained():
            status = "trained" if version.status == "unknown" else version.status
            version = replace(version, lineage=lineage(event), status=status)
        case ModelValidated():
            status = "validated" if version.status in ("unknown", "trained") else version.status
            decision = event.decision.to_dict() if event.decision else None
            version = replace(
                version,
                validated=True,
                validation=dict(event.report),
                decision=decision,
                status=status,
            )
        case ModelPromoted():
            promotion = Promotion(event.by, tuple(event.reasons), event.improvement)
            version = replace(
                version,
                status="champion",
                promoted=True,
                promoted_at=event.promoted_at,
                promotion=promotion,
            )
            if champion and champion != event.version and champion in versions:
                versions[champion] = replace(versions[champion], status="retired")
            champion = event.version
            if event.by == "rollback" and champions[-2:-1] == [event.version]:
                champions.pop()  # back to the one before: a second rollback goes further back
            elif not champions or champions[-1] != event.version:
                champions.append(event.version)
        case ModelRejected():
            version = replace(version, status="rejected", reasons=tuple(event.reasons))
        case ModelDataErased():
            erased = {**version.erased, event.erasure_id: (event.rows, event.fitted, event.through)}
            version = replace(version, erased=erased)
    versions[event.version] = version
    return RegistryEntry(entry.model, versions, champion, tuple(champions))


def version_to_dict(version: VersionEntry) -> dict[str, Any]:
    """A version as the API shows it: each part once its event was folded."""
    out: dict[str, Any] = {"version": version.version, "status": version.status}
    if version.lineage is not None:
        out.update(version.lineage)
    if version.validated:
        out["validation"] = version.validation
        out["decision"] = version.decision
    if version.promoted:
        out["promoted_at"] = version.promoted_at
        promotion = version.promotion
        out["promotion"] = (
            {
                "by": promotion.by,
                "reasons": list(promotion.reasons),
                "improvement": promotion.improvement,
            }
            if promotion
            else None
        )
    if version.reasons is not None:
        out["reasons"] = list(version.reasons)
    if version.erased:
        out["erased"] = {
            "rows": sum(rows for rows, _, _ in version.erased.values()),
            "fitted": sum(fitted for _, fitted, _ in version.erased.values()),
            "erasures": {
                e: {"rows": r, "fitted": f} | ({"through": t} if t else {})
                for e, (r, f, t) in sorted(version.erased.items())
            },
        }
    return out


def to_dict(entry: RegistryEntry) -> dict[str, Any]:
    return {
        "model": entry.model,
        "versions": {v: version_to_dict(e) for v, e in entry.versions.items()},
        "champion": entry.champion,
        "champions": list(entry.champions),
    }


def encode(entry: RegistryEntry) -> bytes:
    return orjson.dumps(to_dict(entry))


def decode(raw: bytes | str) -> RegistryEntry:
    return from_dict(orjson.loads(raw))


def from_dict(data: Mapping[str, Any]) -> RegistryEntry:
    versions = {v: _version_from_dict(d) for v, d in data.get("versions", {}).items()}
    return RegistryEntry(
        data["model"], versions, data.get("champion"), tuple(data.get("champions", ()))
    )


_LINEAGE = ("trainer", "trained_at", "parent_version", "train_rows", "holdout_rows", "snapshot")
_LINEAGE_ALL = (*_LINEAGE, "describe", "artifacts", "fit_until")


def _version_from_dict(data: Mapping[str, Any]) -> VersionEntry:
    promotion = data.get("promotion")
    reasons = data.get("reasons")
    return VersionEntry(
        version=data["version"],
        status=data.get("status", "unknown"),
        lineage={k: data.get(k) for k in _LINEAGE_ALL}
        if any(k in data for k in _LINEAGE)
        else None,
        erased={
            e: (int(v["rows"]), int(v["fitted"]), v.get("through"))
            for e, v in (data.get("erased") or {}).get("erasures", {}).items()
        },
        validated="validation" in data or "decision" in data,
        validation=data.get("validation"),
        decision=data.get("decision"),
        promoted="promoted_at" in data or "promotion" in data,
        promoted_at=data.get("promoted_at"),
        promotion=Promotion(
            promotion.get("by") or "manual",
            tuple(promotion.get("reasons") or ()),
            promotion.get("improvement"),
        )
        if isinstance(promotion, dict)
        else None,
        reasons=tuple(reasons) if reasons is not None else None,
    )


def training_marks(entries: Iterable[RegistryEntry]) -> dict[str, int]:
    """Per dataset: the rows of the newest snapshot any version was trained on."""
    newest: dict[str, tuple[str, int]] = {}
    for entry in entries:
        for version in entry.versions.values():
            dataset, rows = version.snapshot.get("dataset"), version.snapshot.get("rows")
            when = version.trained_at
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


def rollback_target(entry: RegistryEntry) -> str | None:
    """The champion before the current one, if there was one."""
    return entry.champions[-2] if len(entry.champions) >= 2 else None
