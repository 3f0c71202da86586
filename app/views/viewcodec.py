"""View values to and from the bytes stored in the table (orjson); the key's prefix names the type."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from app.domain.batch import Agg, Index
from app.domain.codec import (
    format_time,
    parse_time,
    prediction_from_trusted,
    prediction_to_dict,
    tag_from_trusted,
    tag_to_dict,
)
from app.domain.examples import Example


def encode(key: str, value: Any) -> bytes | None:
    """None stays None: a delete."""
    return None if value is None else orjson.dumps(to_json(key, value), option=orjson.OPT_UTC_Z)


def encode_all(values: Mapping[str, Any]) -> dict[str, bytes | None]:
    """A fold's writes, encoded: a loop compiled with the codec (`app.native`)."""
    return {key: encode(key, value) for key, value in values.items()}


def decode(key: str, raw: bytes | None) -> Any:
    if raw is None:
        return None
    return from_json(key, orjson.loads(raw))


def to_json(key: str, value: Any) -> Any:
    """The value as `encode`'s orjson takes it: UTC times stay datetimes, which orjson
    writes (`OPT_UTC_Z`) byte for byte as `format_time` does, in Rust."""
    if isinstance(value, Example):
        out: dict[str, Any] = {
            "event_id": value.event_id,
            "prediction": prediction_to_dict(value.prediction, _time) if value.prediction else None,
            "tag": tag_to_dict(value.tag, _time) if value.tag else None,
            "tag_ids": sorted(value.tag_ids),
        }
        if value.erased:
            out["erased"] = True
        return out
    if isinstance(value, Agg):
        updated = _time(value.updated_at) if value.updated_at else None
        return {"counts": value.counts, "updated_at": updated}
    if isinstance(value, Index):
        models = {m: {v: list(span) for v, span in vs.items()} for m, vs in value.models.items()}
        return {"datasets": sorted(value.datasets), "models": models}
    if key.startswith(("ent/", "xent/")):
        return value  # plain JSON: an offset, or [[erasure_id, until], ...]
    raise TypeError(f"no view codec for {type(value).__name__} at {key!r}")


def _time(moment: datetime) -> datetime | str:
    return moment if moment.tzinfo is UTC else format_time(moment)


def from_json(key: str, data: Any) -> Any:
    if key.startswith("ex/"):
        return Example(
            event_id=data["event_id"],
            prediction=prediction_from_trusted(data["prediction"]) if data["prediction"] else None,
            tag=tag_from_trusted(data["tag"]) if data["tag"] else None,
            tag_ids=frozenset(data["tag_ids"]),
            erased=data.get("erased", False),
        )
    if key.startswith("agg/"):
        updated = parse_time(data["updated_at"]) if data["updated_at"] else None
        return Agg(data["counts"], updated)
    if key.startswith("idx/"):
        models = {m: {v: (s[0], s[1]) for v, s in vs.items()} for m, vs in data["models"].items()}
        return Index(frozenset(data["datasets"]), models)
    if key.startswith(("ent/", "xent/")):
        return data
    raise KeyError(f"no view codec for key {key!r}")
