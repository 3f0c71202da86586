"""Fold a batch of one partition's records into the views: the step every agent and replay runs.

The state is a key-value map holding, per source partition `p`:
  ex/{event_id}           Example
  agg/{p}/{kind}/...      Agg: counters of a dataset, a model version, or a model version-hour
  idx/{p}                 Index: which datasets and model versions partition p has seen
Aggregates are kept per source partition so that every write of a batch lands in the
partition's own changelog, in order; readers add the partitions up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from app.domain.codec import InvalidEvent, decode_prediction, decode_tag
from app.domain.events import PredictionEvent, TagEvent
from app.domain.examples import Example, Outcome, apply_prediction, apply_tag
from app.domain.stats import AggKey, Counts, add, delta, example_time, hour_of

Kind = Literal["prediction", "tag", "model_event"]


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """A record as read from a topic, before decoding."""

    kind: Kind
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Agg:
    counts: Counts
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Index:
    datasets: frozenset[str] = frozenset()
    # model -> version -> (first hour, last hour) seen
    models: Mapping[str, Mapping[str, tuple[str, str]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: SourceRecord
    reason: str


@dataclass
class BatchResult:
    writes: dict[str, Any] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    cursor: dict[str, int] = field(default_factory=dict)
    applied: int = 0
    duplicates: int = 0
    skipped: int = 0


def example_key(event_id: str) -> str:
    return f"ex/{event_id}"


@lru_cache(maxsize=65536)
def agg_key(partition: int, key: AggKey) -> str:
    return f"agg/{partition}/" + "/".join(key.parts())


def index_key(partition: int) -> str:
    return f"idx/{partition}"


def fold_batch(
    read: Callable[[str], Any],
    partition: int,
    cursor: Mapping[str, int],
    records: Sequence[SourceRecord],
    max_event_bytes: int,
) -> BatchResult:
    """Apply `records` (all from `partition`) on top of the state `read` sees.

    Records at or below `cursor[topic]` were applied before a restart and are skipped; the
    result holds every key to write, the dead letters, and the advanced cursor.
    """
    result = BatchResult(cursor=dict(cursor))
    writes = result.writes

    def get(key: str) -> Any:
        return writes[key] if key in writes else read(key)

    for record in records:
        if record.offset <= result.cursor.get(record.topic, -1):
            result.skipped += 1
            continue
        result.cursor[record.topic] = record.offset
        try:
            event = decode_record(record, max_event_bytes)
        except InvalidEvent as exc:
            result.dead_letters.append(DeadLetter(record, str(exc)))
            continue
        key = example_key(event.event_id)
        old = get(key)
        if isinstance(event, PredictionEvent):
            new, outcome = apply_prediction(old, event)
        else:
            new, outcome = apply_tag(old, event)
        if outcome is Outcome.CONFLICT:
            result.dead_letters.append(
                DeadLetter(
                    record, "event_id already used by a different prediction; kept the first"
                )
            )
            continue
        if outcome is Outcome.DUPLICATE:
            result.duplicates += 1
            continue
        result.applied += 1
        writes[key] = new
        applied_tag = event if isinstance(event, TagEvent) and new.tag is event else None
        _apply_delta(get, writes, partition, old, new, applied_tag)
    return result


def decode_record(record: SourceRecord, max_event_bytes: int) -> PredictionEvent | TagEvent:
    if record.value is None:
        raise InvalidEvent("empty record (no value)")
    if len(record.value) > max_event_bytes:
        raise InvalidEvent(f"record of {len(record.value)} bytes exceeds {max_event_bytes}")
    event: PredictionEvent | TagEvent
    event = (
        decode_prediction(record.value) if record.kind == "prediction" else decode_tag(record.value)
    )
    expected = event.event_id.encode()
    if record.key != expected:
        # Predictions and tags meet in one partition only when keyed by the prediction's id.
        shown = record.key[:64] if record.key is not None else None
        raise InvalidEvent(
            f"message key {shown!r} must be the prediction's event_id {event.event_id!r}"
        )
    return event


def _apply_delta(
    get: Callable[[str], Any],
    writes: dict[str, Any],
    partition: int,
    old: Example | None,
    new: Example,
    tag: TagEvent | None,
) -> None:
    """Move the aggregates by `new - old`, and their `updated_at`, the same whatever the order.

    A replay may meet a prediction and its tags in another interleaving than the live worker
    did, so every aggregate value must depend only on the facts, not on their order:
    - a model version's aggregates never lose a member, and an example's newest fact only
      grows, so they take the newest fact of every member, on every change of the member;
    - a dataset takes the `tagged_at` of every tag that named it when applied, whether or not
      the prediction had arrived, and is listed from then on.
    """
    changes = delta(old, new)
    idx_key = index_key(partition)
    index: Index = get(idx_key) or Index()
    touched: dict[AggKey, datetime | None] = {}
    if new.prediction is not None:
        moment = example_time(new)
        pred = new.prediction
        touched[AggKey("model", pred.model, pred.model_version)] = moment
        touched[AggKey("model_hour", pred.model, pred.model_version, hour_of(pred.occurred_at))] = (
            moment
        )
    if tag is not None:
        for name in tag.datasets:
            touched[AggKey("dataset", name)] = tag.tagged_at
    for agg in changes:
        touched.setdefault(agg, None)
    new_index = index
    for agg, moment in touched.items():
        key = agg_key(partition, agg)
        current: Agg | None = get(key)
        counts = current.counts if current else {}
        updated = current.updated_at if current else None
        if moment is not None and (updated is None or moment > updated):
            updated = moment
        if agg in changes:
            counts = add(counts, changes[agg])
        if current is None or counts != current.counts or updated != current.updated_at:
            writes[key] = Agg(counts, updated)
        new_index = _indexed(new_index, agg)
    if new_index is not index:
        writes[idx_key] = new_index


def _indexed(index: Index, agg: AggKey) -> Index:
    if agg.kind == "dataset":
        if agg.name in index.datasets:
            return index
        return replace(index, datasets=index.datasets | {agg.name})
    if agg.kind != "model_hour":
        return index
    versions = index.models.get(agg.name, {})
    first, last = versions.get(agg.version, (agg.hour, agg.hour))
    span = (min(first, agg.hour), max(last, agg.hour))
    if versions.get(agg.version) == span:
        return index
    models = dict(index.models)
    models[agg.name] = {**versions, agg.version: span}
    return replace(index, models=models)
