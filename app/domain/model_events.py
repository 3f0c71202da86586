"""The lifecycle of a model version as typed facts, and their one codec.

Training, validation, promotion and rejection are announced on `modelview.model-events`,
and the registry is their fold. Each event names its model, version and the S3 prefix of the
version's artifact and manifest. Every producer builds these dataclasses and every reader
decodes through `decode`, so a field one side forgets is a type error, not a silent null.

Events logged before `schema_version` existed have none and are read as version 1; their
other missing fields get the value the code that logged them meant (see `_legacy`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.domain.datasets import Manifest
from app.domain.gate import Decision

SCHEMA_VERSION = 1
MODELS = "models"


class InvalidModelEvent(ValueError):
    """Not a model event this code can fold; the message says what is wrong."""


def version_prefix(model: str, version: str) -> str:
    """Where a version's manifest and artifact live in the bucket."""
    return f"{MODELS}/{model}/{version}/"


class _Located:
    """Each event names where its version lives: `artifacts` defaults to its prefix."""

    model: str
    version: str
    artifacts: str

    def __post_init__(self) -> None:
        if not self.artifacts:
            object.__setattr__(self, "artifacts", version_prefix(self.model, self.version))


@dataclass(frozen=True)
class ModelTrained(_Located):
    """A version was fitted on a snapshot. It is also the version's stored manifest."""

    model: str
    version: str
    trainer: str
    trained_at: str
    seed: int
    snapshot: Manifest
    train_rows: int
    holdout_rows: int
    parent_version: str | None
    warm_start: bool
    describe: Mapping[str, Any]
    artifacts: str = ""  # the version's prefix; defaults to version_prefix
    # Rows that occurred at or after this were left out of the fit (validation's
    # out-of-time events); None: every row not held out was fitted on.
    fit_until: str | None = None
    # Reproducibility (app/learning/fingerprint.py): the weights' and the artifact's sha256,
    # and the environment it was fitted in (Python, packages, CPU flags).
    weights_sha256: str | None = None
    artifact_sha256: str | None = None
    environment: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ModelValidated(_Located):
    """A version was replayed on past events; `decision` is the gate's, if one was asked."""

    model: str
    version: str
    report: Mapping[str, Any]
    decision: Decision | None
    validated_at: str | None = None
    artifacts: str = ""


@dataclass(frozen=True)
class ModelPromoted(_Located):
    """A version became champion: by the gate, by hand, or by a rollback."""

    model: str
    version: str
    promoted_at: str | None = None
    by: str = "manual"
    reasons: tuple[str, ...] = field(default_factory=tuple)
    improvement: float | None = None
    artifacts: str = ""


@dataclass(frozen=True)
class ModelRejected(_Located):
    """The gate refused a version, with every reason."""

    model: str
    version: str
    rejected_at: str | None = None
    reasons: tuple[str, ...] = field(default_factory=tuple)
    improvement: float | None = None
    artifacts: str = ""


@dataclass(frozen=True)
class ModelDataErased(_Located):
    """An erasure took rows out of the snapshot this version was fitted on.

    `rows`: the snapshot's rows it took away; `fitted`: how many of them the fit used. The
    weights still carry what they learned from them until the version is retrained without
    (`modelview models retrain-without`). `through`: the version whose weights this one
    started from (a warm start), when it learned them from there rather than its snapshot.
    """

    model: str
    version: str
    erasure_id: str
    rows: int
    fitted: int
    erased_at: str | None = None
    artifacts: str = ""
    through: str | None = None


ModelEvent = ModelTrained | ModelValidated | ModelPromoted | ModelRejected | ModelDataErased
KINDS = {
    kind.__name__: kind
    for kind in (ModelTrained, ModelValidated, ModelPromoted, ModelRejected, ModelDataErased)
}


def to_dict(event: ModelEvent) -> dict[str, Any]:
    out: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "type": type(event).__name__,
        "model": event.model,
        "version": event.version,
        "artifacts": event.artifacts,
        "manifest": event.artifacts + "manifest.json",
    }
    match event:
        case ModelTrained():
            out.update(
                trainer=event.trainer,
                trained_at=event.trained_at,
                seed=event.seed,
                snapshot=event.snapshot.to_dict(),
                train_rows=event.train_rows,
                holdout_rows=event.holdout_rows,
                parent_version=event.parent_version,
                warm_start=event.warm_start,
                describe=dict(event.describe),
            )
            if event.fit_until is not None:
                out["fit_until"] = event.fit_until
            for name in ("weights_sha256", "artifact_sha256", "environment"):
                if getattr(event, name) is not None:
                    out[name] = getattr(event, name)
        case ModelValidated():
            out.update(
                report=dict(event.report),
                decision=event.decision.to_dict() if event.decision else None,
                validated_at=event.validated_at,
            )
        case ModelPromoted():
            out.update(
                promoted_at=event.promoted_at,
                by=event.by,
                reasons=list(event.reasons),
                improvement=event.improvement,
            )
        case ModelRejected():
            out.update(
                rejected_at=event.rejected_at,
                reasons=list(event.reasons),
                improvement=event.improvement,
            )
        case ModelDataErased():
            out.update(
                erasure_id=event.erasure_id,
                rows=event.rows,
                fitted=event.fitted,
                erased_at=event.erased_at,
                through=event.through,
            )
    return out


def encode(event: ModelEvent) -> bytes:
    return orjson.dumps(to_dict(event))


def decode(raw: bytes | None) -> ModelEvent:
    try:
        data = orjson.loads(raw or b"null")
    except orjson.JSONDecodeError as exc:
        raise InvalidModelEvent(f"not valid JSON: {exc}") from None
    return from_dict(data)


def from_dict(data: Any) -> ModelEvent:
    if not isinstance(data, dict):
        raise InvalidModelEvent("a model event must be a JSON object")
    schema = data.get("schema_version", SCHEMA_VERSION)
    if schema != SCHEMA_VERSION or isinstance(schema, bool):
        raise InvalidModelEvent(
            f"schema_version: unsupported version {schema!r} (supported: {SCHEMA_VERSION})"
        )
    kind = data.get("type")
    if kind not in KINDS:
        raise InvalidModelEvent(f"type must be one of {', '.join(KINDS)}, not {kind!r}")
    head = {name: _string(data, name) for name in ("model", "version")}
    head["artifacts"] = _optional(data, "artifacts", str) or ""
    try:
        if kind == "ModelTrained":
            return ModelTrained(
                **head,
                trainer=_string(data, "trainer"),
                trained_at=_string(data, "trained_at"),
                seed=_optional(data, "seed", int) or 0,
                snapshot=Manifest.from_dict(_object(data, "snapshot")),
                train_rows=_optional(data, "train_rows", int) or 0,
                holdout_rows=_optional(data, "holdout_rows", int) or 0,
                parent_version=_optional(data, "parent_version", str),
                warm_start=bool(_optional(data, "warm_start", bool)),
                describe=_optional(data, "describe", dict) or {},
                fit_until=_optional(data, "fit_until", str),
                weights_sha256=_optional(data, "weights_sha256", str),
                artifact_sha256=_optional(data, "artifact_sha256", str),
                environment=_optional(data, "environment", dict),
            )
        if kind == "ModelValidated":
            report = _object(data, "report")
            decision = _legacy(data, report, "decision")
            return ModelValidated(
                **head,
                report=report,
                decision=_decision(decision) if decision is not None else None,
                validated_at=_legacy(data, report, "validated_at"),
            )
        if kind == "ModelPromoted":
            return ModelPromoted(
                **head,
                promoted_at=_optional(data, "promoted_at", str),
                by=_optional(data, "by", str) or "manual",
                reasons=_reasons(data),
                improvement=_number(data, "improvement"),
            )
        if kind == "ModelDataErased":
            return ModelDataErased(
                **head,
                erasure_id=_string(data, "erasure_id"),
                rows=_optional(data, "rows", int) or 0,
                fitted=_optional(data, "fitted", int) or 0,
                erased_at=_optional(data, "erased_at", str),
                through=_optional(data, "through", str),
            )
        return ModelRejected(
            **head,
            rejected_at=_optional(data, "rejected_at", str),
            reasons=_reasons(data),
            improvement=_number(data, "improvement"),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, InvalidModelEvent):
            raise
        raise InvalidModelEvent(f"{kind}: malformed field: {exc!r}") from None


def _legacy(data: Mapping[str, Any], report: Mapping[str, Any], name: str) -> Any:
    """A ModelValidated field that events logged before it had its own kept in the report."""
    return data[name] if name in data else report.get(name)


def _string(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidModelEvent(f"{name}: required, a non-empty string")
    return value


def _optional(data: Mapping[str, Any], name: str, kind: type) -> Any:
    value = data.get(name)
    if value is not None and (
        not isinstance(value, kind) or isinstance(value, bool) != (kind is bool)
    ):
        raise InvalidModelEvent(f"{name}: must be {kind.__name__} or null, got {value!r}")
    return value


def _object(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    if not isinstance(value, dict):
        raise InvalidModelEvent(f"{name}: required, an object")
    return value


def _number(data: Mapping[str, Any], name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidModelEvent(f"{name}: must be a number or null, got {value!r}")
    return float(value)


def _reasons(data: Mapping[str, Any]) -> tuple[str, ...]:
    value = data.get("reasons") or []
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        raise InvalidModelEvent("reasons: must be a list of strings")
    return tuple(value)


def _decision(value: Any) -> Decision:
    if not isinstance(value, dict) or not isinstance(value.get("promote"), bool):
        raise InvalidModelEvent("decision: must be an object with a boolean 'promote'")
    _reasons(value), _number(value, "improvement")  # their types, with a clear error
    return Decision.from_dict(value)
