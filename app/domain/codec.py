"""Events to and from JSON bytes (orjson), with validation that names exactly what is wrong."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from app.domain.events import (
    REDACTED,
    SCHEMA_VERSION,
    TEXT_TYPES,
    Feature,
    Prediction,
    PredictionEvent,
    TagEvent,
    Value,
    is_number,
    redacted_prediction,
)

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
MAX_DEPTH = 16
MAX_FEATURES = 1024
MAX_DATASETS = 64


class InvalidEvent(ValueError):
    """Input that is not a valid event; the message says why, precisely enough to fix it."""


PREDICTION_FIELDS = {
    "schema_version",
    "event_id",
    "model",
    "model_version",
    "occurred_at",
    "features",
    "prediction",
    "entity_id",
    "context",
    "erased",
}
PREDICTION_VALUE_FIELDS = {"value", "scores"}  # of an event's `prediction` object
TAG_FIELDS = {"schema_version", "tag_id", "event_id", "label", "datasets", "source", "tagged_at"}


def loads(raw: bytes | str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"not valid JSON: {exc}") from None


def decode_prediction(raw: bytes | str) -> PredictionEvent:
    return prediction_from_dict(loads(raw))


def decode_tag(raw: bytes | str) -> TagEvent:
    return tag_from_dict(loads(raw))


def prediction_from_dict(data: Any) -> PredictionEvent:
    obj = _object(data, "event", PREDICTION_FIELDS)
    erased = obj.get("erased", False)
    if erased is not False:
        if erased is not True:
            raise InvalidEvent("erased: must be true or absent")
        # A redacted record (cold segments rewritten by an erasure): only its skeleton counts.
        return redacted_prediction(
            PredictionEvent(
                schema_version=_schema_version(obj),
                event_id=_uuid(obj, "event_id"),
                model=_name(obj, "model"),
                model_version=_name(obj, "model_version"),
                occurred_at=_timestamp(obj, "occurred_at"),
                features={},
                prediction=REDACTED,
            )
        )
    context = obj.get("context", {})
    if not isinstance(context, dict):
        raise InvalidEvent("context: must be an object")
    _check_depth(context, "context")
    entity_id = obj.get("entity_id")
    if entity_id is not None and not isinstance(entity_id, str):
        raise InvalidEvent("entity_id: must be a string or null")
    return PredictionEvent(
        schema_version=_schema_version(obj),
        event_id=_uuid(obj, "event_id"),
        model=_name(obj, "model"),
        model_version=_name(obj, "model_version"),
        occurred_at=_timestamp(obj, "occurred_at"),
        features=_features(obj.get("features", _MISSING)),
        prediction=_prediction(obj.get("prediction", _MISSING)),
        entity_id=entity_id,
        context=context,
    )


def check_features(features: Any) -> None:
    """What `prediction_from_dict` checks of `features`, alone: for a caller that builds many
    events whose other fields it checked once (batch scoring)."""
    _features(features)


def check_value(value: Any, where: str = "prediction.value") -> None:
    _value(value, where)


def tag_from_dict(data: Any) -> TagEvent:
    obj = _object(data, "tag", TAG_FIELDS)
    label = obj.get("label")
    if label is not None:
        label = _value(label, "label")
    datasets = obj.get("datasets", [])
    if not isinstance(datasets, list):
        raise InvalidEvent("datasets: must be a list of dataset names")
    if len(datasets) > MAX_DATASETS:
        raise InvalidEvent(f"datasets: at most {MAX_DATASETS} names, got {len(datasets)}")
    for i, name in enumerate(datasets):
        if not isinstance(name, str) or not NAME.match(name):
            raise InvalidEvent(f"datasets[{i}]: {_name_rule()}, got {name!r}")
    source = obj.get("source", "")
    if not isinstance(source, str) or len(source) > 256:
        raise InvalidEvent("source: must be a string of at most 256 characters")
    return TagEvent(
        schema_version=_schema_version(obj),
        tag_id=_uuid(obj, "tag_id"),
        event_id=_uuid(obj, "event_id"),
        tagged_at=_timestamp(obj, "tagged_at"),
        label=label,
        datasets=tuple(sorted(set(datasets))),
        source=source,
    )


def format_time(moment: datetime) -> str:
    # Every time a fold meets is UTC already (`parse_time`): skip the conversion's new object.
    text = (moment if moment.tzinfo is UTC else moment.astimezone(UTC)).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def parse_time(text: str) -> datetime:
    # Python 3.11 reads "Z" itself; a lowercase "z" it does not.
    moment = datetime.fromisoformat(text.replace("z", "+00:00") if "z" in text else text)
    if moment.tzinfo is None:
        raise ValueError("no timezone")
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


def prediction_to_dict(
    event: PredictionEvent, time: Callable[[datetime], Any] = format_time
) -> dict[str, Any]:
    """The event's JSON fields; `time` writes its time (the views keep datetimes, which
    orjson writes as `format_time` would, in a seventh of the time)."""
    prediction: dict[str, Any] = {"value": event.prediction.value}
    if event.prediction.scores is not None:
        prediction["scores"] = dict(event.prediction.scores)
    out: dict[str, Any] = {
        "schema_version": event.schema_version,
        "event_id": event.event_id,
        "model": event.model,
        "model_version": event.model_version,
        "occurred_at": time(event.occurred_at),
        "features": dict(event.features),
        "prediction": prediction,
        "context": dict(event.context),
    }
    if event.entity_id is not None:
        out["entity_id"] = event.entity_id
    if event.erased:
        out["erased"] = True
    return out


def tag_to_dict(tag: TagEvent, time: Callable[[datetime], Any] = format_time) -> dict[str, Any]:
    return {
        "schema_version": tag.schema_version,
        "tag_id": tag.tag_id,
        "event_id": tag.event_id,
        "label": tag.label,
        "datasets": list(tag.datasets),
        "source": tag.source,
        "tagged_at": time(tag.tagged_at),
    }


def prediction_from_trusted(data: Mapping[str, Any]) -> PredictionEvent:
    """A prediction this code wrote itself (views, snapshots): checked once, at ingestion,
    and read back without checking again, since reading views is the hot path of a fold."""
    prediction = data["prediction"]
    return PredictionEvent(
        schema_version=data["schema_version"],
        event_id=data["event_id"],
        model=data["model"],
        model_version=data["model_version"],
        occurred_at=parse_time(data["occurred_at"]),
        features=data["features"],
        prediction=Prediction(prediction["value"], prediction.get("scores")),
        entity_id=data.get("entity_id"),
        context=data["context"],
        erased=data.get("erased", False),
    )


def tag_from_trusted(data: Mapping[str, Any]) -> TagEvent:
    """A tag this code wrote itself; see `prediction_from_trusted`."""
    return TagEvent(
        schema_version=data["schema_version"],
        tag_id=data["tag_id"],
        event_id=data["event_id"],
        tagged_at=parse_time(data["tagged_at"]),
        label=data["label"],
        datasets=tuple(data["datasets"]),
        source=data["source"],
    )


def encode_prediction(event: PredictionEvent) -> bytes:
    return orjson.dumps(prediction_to_dict(event))


def encode_tag(tag: TagEvent) -> bytes:
    return orjson.dumps(tag_to_dict(tag))


class _Missing:
    pass


_MISSING: Any = _Missing()


def _object(data: Any, what: str, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise InvalidEvent(f"{what} must be a JSON object, got {_kind(data)}")
    if not allowed.issuperset(data):  # the common case builds no set
        unknown = sorted(set(data) - allowed)
        raise InvalidEvent(f"unknown field(s) {unknown}; allowed: {sorted(allowed)}")
    return data


def _required(obj: Mapping[str, Any], key: str) -> Any:
    value = obj.get(key, _MISSING)
    if value is _MISSING:
        raise InvalidEvent(f"{key}: required")
    return value


def _schema_version(obj: Mapping[str, Any]) -> int:
    version = _required(obj, "schema_version")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise InvalidEvent(
            f"schema_version: unsupported version {version!r} (supported: {SCHEMA_VERSION})"
        )
    return SCHEMA_VERSION


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _uuid(obj: Mapping[str, Any], key: str) -> str:
    value = _required(obj, key)
    if not isinstance(value, str):
        raise InvalidEvent(f"{key}: must be a UUID string, got {_kind(value)}")
    if _CANONICAL_UUID.fullmatch(value):
        return value  # the common case, without building a UUID to compare its spelling
    try:
        canonical = str(uuid.UUID(value))
    except ValueError:
        raise InvalidEvent(f"{key}: not a UUID: {value[:64]!r}") from None
    if canonical != value:
        # The id is the Kafka key; two spellings of one UUID would land in different partitions.
        raise InvalidEvent(f"{key}: must be the canonical lowercase UUID form {canonical!r}")
    return value


def _name_rule() -> str:
    return (
        "must be 1-128 characters of letters, digits, '.', '_', ':' or '-', starting alphanumeric"
    )


def _name(obj: Mapping[str, Any], key: str) -> str:
    value = _required(obj, key)
    if not isinstance(value, str) or not NAME.match(value):
        raise InvalidEvent(f"{key}: {_name_rule()}, got {str(value)[:64]!r}")
    return value


def _timestamp(obj: Mapping[str, Any], key: str) -> datetime:
    value = _required(obj, key)
    if not isinstance(value, str):
        raise InvalidEvent(f"{key}: must be an ISO-8601 string, got {_kind(value)}")
    try:
        return parse_time(value)
    except ValueError:
        raise InvalidEvent(
            f"{key}: not an ISO-8601 time with a timezone (like 2026-11-27T10:00:00Z): "
            f"{value[:64]!r}"
        ) from None


def _features(value: Any) -> dict[str, Feature]:
    if value is _MISSING:
        raise InvalidEvent("features: required")
    if not isinstance(value, dict):
        raise InvalidEvent(f"features: must be an object, got {_kind(value)}")
    if len(value) > MAX_FEATURES:
        raise InvalidEvent(f"features: at most {MAX_FEATURES}, got {len(value)}")
    for name, feature in value.items():
        if feature is None or isinstance(feature, TEXT_TYPES):
            continue
        if is_number(feature):
            _finite(feature, f"features.{name}")
        elif isinstance(feature, list):
            for i, item in enumerate(feature):
                if not is_number(item):
                    raise InvalidEvent(
                        f"features.{name}[{i}]: lists hold numbers only, got {_kind(item)}"
                    )
                _finite(item, f"features.{name}[{i}]")
        else:
            raise InvalidEvent(
                f"features.{name}: must be a number, string, bool, null or list of numbers, "
                f"got {_kind(feature)}"
            )
    return value


def _prediction(value: Any) -> Prediction:
    if value is _MISSING:
        raise InvalidEvent("prediction: required")
    if not isinstance(value, dict):
        raise InvalidEvent(f"prediction: must be an object with a value, got {_kind(value)}")
    if not PREDICTION_VALUE_FIELDS.issuperset(value):
        unknown = sorted(set(value) - PREDICTION_VALUE_FIELDS)
        raise InvalidEvent(f"prediction: unknown field(s) {unknown}; allowed: ['scores', 'value']")
    if "value" not in value:
        raise InvalidEvent("prediction.value: required")
    scores = value.get("scores")
    if scores is not None:
        if not isinstance(scores, dict):
            raise InvalidEvent("prediction.scores: must be an object of numbers")
        for name, score in scores.items():
            if not is_number(score):
                raise InvalidEvent(f"prediction.scores.{name}: must be a number")
            _finite(score, f"prediction.scores.{name}")
    return Prediction(value=_value(value["value"], "prediction.value"), scores=scores)


def _value(value: Any, where: str) -> Value:
    if isinstance(value, TEXT_TYPES):
        return value
    if is_number(value):
        _finite(value, where)
        return value  # type: ignore[no-any-return]
    raise InvalidEvent(f"{where}: must be a number, string or bool, got {_kind(value)}")


def _finite(value: float | int, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidEvent(f"{where}: must be finite")


def _check_depth(value: Any, where: str, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise InvalidEvent(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for item in value.values():
            _check_depth(item, where, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_depth(item, where, depth + 1)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "bool", int: "number", float: "number", str: "string", list: "list"}.get(
        type(value), "object" if isinstance(value, dict) else type(value).__name__
    )
