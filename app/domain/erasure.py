"""Erasure: forgetting an entity's or an event's data everywhere it lives, as facts in the log.

An erasure is carried out in steps, each a record, so every step can be replayed and seen:
1. `ErasureRequested` (topic `modelview.erasures`, keyed by erasure id): who, when, what, why,
   and where the predictions log ended then (`log_end`).
2. One `ErasureOrder` per source partition concerned (topic `modelview.erasure-orders`,
   co-partitioned with the predictions), a pure function of the request (`orders`). The views
   fold it with the predictions and tags, so it applies exactly once and every fold of the
   log (live, rebuild, snapshot as of any offset) applies it alike.
3. What the views erased in each partition (`ErasureApplied`), back on `modelview.erasures`.
4. The stages that follow (`ErasureStage`): cold segments, snapshots, validation files, the
   registry's flags. Their status is the fold of these records (`fold`).

An entity's predictions are erased up to where the log ended at the request: what it sends
later is new data, not forgotten data. Event ids are erased whenever they arrive.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson

from app.domain.codec import (
    decode_prediction,
    decode_tag,
    encode_prediction,
    encode_tag,
    format_time,
    parse_time,
)
from app.domain.events import redacted_prediction, redacted_tag

MAX_ITEMS = 10_000
MAX_TEXT = 256
STAGES = ("cold", "snapshots", "validations", "lineage", "registry")


class InvalidErasure(ValueError):
    """A request or record that is not a valid erasure; the message says why."""


@dataclass(frozen=True, slots=True)
class ErasureRequested:
    erasure_id: str
    requested_by: str
    requested_at: datetime
    reason: str
    events: tuple[str, ...] = ()
    entities: tuple[str, ...] = ()
    # predictions partition -> its next offset when the request was made
    log_end: Mapping[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ErasureOrder:
    """What one source partition's views must forget."""

    erasure_id: str
    partition: int
    events: tuple[str, ...] = ()
    # entity -> erase its predictions at offsets below this one
    entities: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ErasureApplied:
    """A partition's views carried out (part of) an erasure.

    `erased` had data there; `absent` were not seen yet and are redacted when they come.
    """

    erasure_id: str
    partition: int
    erased: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    order: bool = True  # False: an entity's late event, redacted after its order


@dataclass(frozen=True, slots=True)
class ErasureStage:
    erasure_id: str
    stage: str
    detail: Mapping[str, Any] = field(default_factory=dict)


Record = ErasureRequested | ErasureApplied | ErasureStage


def request(
    body: Any, requested_by: str, requested_at: datetime, log_end: Mapping[int, int]
) -> ErasureRequested:
    """A request from the API's JSON body: `{"events": [...], "entities": [...], "reason"}`."""
    if not isinstance(body, dict):
        raise InvalidErasure("the body must be a JSON object")
    unknown = set(body) - {"events", "entities", "reason", "requested_by"}
    if unknown:
        raise InvalidErasure(f"unknown fields: {sorted(unknown)}")
    events = _ids(body.get("events", []), "events", _event_id)
    entities = _ids(body.get("entities", []), "entities", _entity)
    if not events and not entities:
        raise InvalidErasure("name at least one of events or entities")
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 1000:
        raise InvalidErasure("reason: must be a string of at most 1000 characters")
    by = body.get("requested_by", requested_by)
    if not isinstance(by, str) or not by or len(by) > MAX_TEXT:
        raise InvalidErasure(f"requested_by: must be a string of 1 to {MAX_TEXT} characters")
    return ErasureRequested(
        erasure_id=str(uuid.uuid4()),
        requested_by=by,
        requested_at=requested_at,
        reason=reason,
        events=events,
        entities=entities,
        log_end=dict(log_end),
    )


def orders(
    req: ErasureRequested, partitions: int, partition_of: Callable[[str], int]
) -> list[ErasureOrder]:
    """The orders a request makes, one per partition concerned: every partition for an
    entity (its events are spread by event id), the owning partition for an event."""
    events: dict[int, list[str]] = {}
    for event_id in req.events:
        events.setdefault(partition_of(event_id), []).append(event_id)
    out = []
    for p in range(partitions):
        until = req.log_end.get(p, 0)
        entities = {e: until for e in req.entities}
        if p in events or entities:
            out.append(ErasureOrder(req.erasure_id, p, tuple(events.get(p, ())), entities))
    return out


def redact(kind: str, raw: bytes) -> bytes:
    """A logged prediction or tag as an erasure leaves it in cold storage: its skeleton.

    The record keeps its offset, so the log has no hole, and what every fold of it touches
    (the event's model, hour and datasets, by time) stays the same; the data is gone.
    """
    if kind == "prediction":
        return encode_prediction(redacted_prediction(decode_prediction(raw)))
    return encode_tag(redacted_tag(decode_tag(raw)))


# ---- status: the fold of an erasure's records ----


@dataclass(frozen=True, slots=True)
class ErasureStatus:
    request: ErasureRequested | None = None
    applied: frozenset[int] = frozenset()  # partitions whose order the views carried out
    erased: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    absent: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    stages: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def ordered(self, partitions: int, partition_of: Callable[[str], int]) -> frozenset[int]:
        if self.request is None:
            return frozenset()
        return frozenset(o.partition for o in orders(self.request, partitions, partition_of))

    def views_done(self, partitions: int, partition_of: Callable[[str], int]) -> bool:
        return self.request is not None and self.ordered(partitions, partition_of) <= self.applied

    def next_stage(self) -> str | None:
        """The first stage not run on every event erased so far. An entity's event the views
        erase late (delivered after its order) may be in S3 or a snapshot already: the
        stages run again, on all of them, each being idempotent."""
        return next((s for s in STAGES if not self.covered(s)), None)

    def covered(self, stage: str) -> bool:
        detail = self.stages.get(stage)
        return detail is not None and detail.get("events", 0) >= len(self.erased_ids())

    def erased_ids(self) -> set[str]:
        return {e for ids in self.erased.values() for e in ids}


def fold(status: ErasureStatus | None, record: Record) -> ErasureStatus:
    """Idempotent: a record delivered twice changes nothing the second time."""
    status = status or ErasureStatus()
    if isinstance(record, ErasureRequested):
        return status if status.request is not None else replace(status, request=record)
    if isinstance(record, ErasureApplied):
        p = record.partition
        erased = {**status.erased, p: _union(status.erased.get(p, ()), record.erased)}
        absent = {**status.absent, p: _union(status.absent.get(p, ()), record.absent)}
        applied = status.applied | {p} if record.order else status.applied
        return replace(status, applied=applied, erased=erased, absent=absent)
    held = status.stages.get(record.stage)
    if held is not None and held.get("events", 0) >= record.detail.get("events", 0):
        return status  # the same run again, or an older one
    return replace(status, stages={**status.stages, record.stage: dict(record.detail)})


def status_json(
    status: ErasureStatus, partitions: int, partition_of: Callable[[str], int]
) -> dict[str, Any]:
    """The public shape of `GET /v1/erasures/{id}`."""
    req = status.request
    assert req is not None
    ordered = status.ordered(partitions, partition_of)
    views = {
        "done": ordered <= status.applied,
        "partitions": len(ordered),
        "applied": len(ordered & status.applied),
        "erased": len(status.erased_ids()),
        # Named, not seen when the order was carried out (a fold of the log after a restore
        # meets orders before the redacted records of what they erased: those were seen).
        "not_seen_yet": len(
            {e for ids in status.absent.values() for e in ids} - status.erased_ids()
        ),
    }
    stages: dict[str, Any] = {"views": views}
    for stage in STAGES:
        detail = status.stages.get(stage)
        stages[stage] = {**(detail or {}), "done": status.covered(stage)}
    done = views["done"] and all(status.covered(s) for s in STAGES)
    return {
        "erasure_id": req.erasure_id,
        "requested_by": req.requested_by,
        "requested_at": format_time(req.requested_at),
        "reason": req.reason,
        "events": list(req.events),
        "entities": list(req.entities),
        "done": done,
        "stages": stages,
    }


def encode_status(status: ErasureStatus) -> bytes:
    """The erasures table's value."""
    return orjson.dumps(
        {
            "request": to_dict(status.request) if status.request else None,
            "applied": sorted(status.applied),
            "erased": {str(p): list(ids) for p, ids in sorted(status.erased.items())},
            "absent": {str(p): list(ids) for p, ids in sorted(status.absent.items())},
            "stages": dict(status.stages),
        }
    )


def decode_status(raw: bytes | None) -> ErasureStatus | None:
    if raw is None:
        return None
    data = orjson.loads(raw)
    request = decode(orjson.dumps(data["request"])) if data["request"] else None
    assert request is None or isinstance(request, ErasureRequested)
    return ErasureStatus(
        request=request,
        applied=frozenset(data["applied"]),
        erased={int(p): tuple(ids) for p, ids in data["erased"].items()},
        absent={int(p): tuple(ids) for p, ids in data["absent"].items()},
        stages=data["stages"],
    )


# ---- wire format ----


def encode(record: Record | ErasureOrder) -> bytes:
    return orjson.dumps(to_dict(record))


def to_dict(record: Record | ErasureOrder) -> dict[str, Any]:
    if isinstance(record, ErasureRequested):
        return {
            "type": "requested",
            "schema_version": 1,
            "erasure_id": record.erasure_id,
            "requested_by": record.requested_by,
            "requested_at": format_time(record.requested_at),
            "reason": record.reason,
            "events": list(record.events),
            "entities": list(record.entities),
            "log_end": {str(p): o for p, o in sorted(record.log_end.items())},
        }
    if isinstance(record, ErasureOrder):
        return {
            "type": "order",
            "schema_version": 1,
            "erasure_id": record.erasure_id,
            "partition": record.partition,
            "events": list(record.events),
            "entities": dict(record.entities),
        }
    if isinstance(record, ErasureApplied):
        return {
            "type": "applied",
            "schema_version": 1,
            "erasure_id": record.erasure_id,
            "partition": record.partition,
            "erased": list(record.erased),
            "absent": list(record.absent),
            "order": record.order,
        }
    return {
        "type": "stage",
        "schema_version": 1,
        "erasure_id": record.erasure_id,
        "stage": record.stage,
        "detail": dict(record.detail),
    }


def decode(raw: bytes | None) -> Record:
    """A record of `modelview.erasures`."""
    data = _loads(raw)
    kind = data.get("type")
    try:
        if kind == "requested":
            return ErasureRequested(
                erasure_id=_event_id(data["erasure_id"], "erasure_id"),
                requested_by=str(data["requested_by"]),
                requested_at=parse_time(data["requested_at"]),
                reason=str(data["reason"]),
                events=tuple(data["events"]),
                entities=tuple(data["entities"]),
                log_end={int(p): int(o) for p, o in data["log_end"].items()},
            )
        if kind == "applied":
            return ErasureApplied(
                erasure_id=_event_id(data["erasure_id"], "erasure_id"),
                partition=int(data["partition"]),
                erased=tuple(data["erased"]),
                absent=tuple(data["absent"]),
                order=bool(data["order"]),
            )
        if kind == "stage":
            stage = data["stage"]
            if stage not in STAGES:
                raise InvalidErasure(f"stage: one of {list(STAGES)}, got {stage!r}")
            erasure_id = _event_id(data["erasure_id"], "erasure_id")
            return ErasureStage(erasure_id, stage, dict(data["detail"]))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, InvalidErasure):
            raise
        raise InvalidErasure(f"{kind} record: missing or invalid field ({exc})") from None
    raise InvalidErasure(f"type: one of requested, applied, stage; got {kind!r}")


def decode_order(raw: bytes | None) -> ErasureOrder:
    """A record of `modelview.erasure-orders`."""
    data = _loads(raw)
    if data.get("type") != "order":
        raise InvalidErasure(f"type: must be 'order', got {data.get('type')!r}")
    try:
        entities = data["entities"]
        if not isinstance(entities, dict):
            raise InvalidErasure("entities: must be an object of entity -> offset")
        return ErasureOrder(
            erasure_id=_event_id(data["erasure_id"], "erasure_id"),
            partition=int(data["partition"]),
            events=tuple(_event_id(e, "events") for e in data["events"]),
            entities={_entity(e, "entities"): int(o) for e, o in entities.items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, InvalidErasure):
            raise
        raise InvalidErasure(f"order: missing or invalid field ({exc})") from None


def _loads(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        raise InvalidErasure("empty record (no value)")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidErasure("not JSON") from None
    if not isinstance(data, dict):
        raise InvalidErasure("must be a JSON object")
    return data


def _ids(value: Any, where: str, check: Callable[[Any, str], str]) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise InvalidErasure(f"{where}: must be a list")
    if len(value) > MAX_ITEMS:
        raise InvalidErasure(f"{where}: at most {MAX_ITEMS}, got {len(value)}")
    return tuple(dict.fromkeys(check(v, where) for v in value))


def _event_id(value: Any, where: str) -> str:
    try:
        parsed = uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or str(parsed) != value:
        raise InvalidErasure(f"{where}: {value!r} is not a canonical lowercase UUID")
    return str(parsed)


def _entity(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise InvalidErasure(f"{where}: {value!r} must be a string of 1 to {MAX_TEXT} characters")
    return value


def _union(a: Iterable[str], b: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(a) | set(b)))
