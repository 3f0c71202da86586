"""Fold a batch of one partition's records into the views: the step every agent and replay runs.

The state is a key-value map holding, per source partition `p`:
  ex/{event_id}           Example
  agg/{p}/{kind}/...      Agg: counters of a dataset, a model version, or a model version-hour
                          (its metrics, inputs and labels: `stats.AggKey`)
  idx/{p}                 Index: which datasets and model versions partition p has seen
  ent/{p}/{entity}/{id}   an entity's prediction in partition p (entity as a JSON string,
                          so a prefix names one entity): its offset
  xent/{p}/{entity_id}    the entity's erasures: [erasure_id, erase below this offset]...
Aggregates are kept per source partition so that every write of a batch lands in the
partition's own changelog, in order; readers add the partitions up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Any, Final, Literal, NamedTuple

import orjson

from app.domain import drift
from app.domain.codec import InvalidEvent, decode_prediction, decode_tag
from app.domain.erasure import ErasureApplied, ErasureOrder, InvalidErasure, decode_order
from app.domain.events import PredictionEvent, TagEvent, frozen_reduce
from app.domain.examples import Example, Outcome, apply_prediction, apply_tag, redacted
from app.domain.stats import (
    AggKey,
    Counts,
    contribution,
    dataset_key,
    delta,
    example_time,
    model_keys,
    prediction_metrics,
    settle,
)

Kind = Literal["prediction", "tag", "erasure", "model_event", "lineage"]


class SourceRecord(NamedTuple):
    """A record as read from a topic, before decoding: a named tuple, made for every record
    a worker reads, and a tuple is made in less than half a frozen dataclass's time."""

    kind: Kind
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(slots=True, init=False, unsafe_hash=True)
class Agg:
    counts: Final[Counts]
    updated_at: Final[datetime | None]

    def __init__(self, counts: Counts, updated_at: datetime | None = None) -> None:
        self.counts = counts
        self.updated_at = updated_at

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return frozen_reduce(self)


@dataclass(frozen=True, slots=True)
class Index:
    datasets: frozenset[str] = frozenset()
    # model -> version -> (first hour, last hour) seen
    models: Mapping[str, Mapping[str, tuple[str, str]]] = field(default_factory=dict)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return frozen_reduce(self)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: SourceRecord
    reason: str

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return frozen_reduce(self)


@dataclass
class BatchResult:
    writes: dict[str, Any] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    erasures: list[ErasureApplied] = field(default_factory=list)
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


def entity_prefix(partition: int, entity_id: str) -> str:
    """The keys of an entity's predictions in a partition: one key each, so an index entry
    is one write, never a read-modify-write of a list that grows with the entity."""
    return f"ent/{partition}/{orjson.dumps(entity_id).decode()}/"


def erased_entity_key(partition: int, entity_id: str) -> str:
    return f"xent/{partition}/{entity_id}"


def fold_batch(
    read: Callable[[str], Any],
    partition: int,
    cursor: Mapping[str, int],
    records: Sequence[SourceRecord],
    max_event_bytes: int,
    scan: Callable[[str], Iterable[str]] | None = None,
) -> BatchResult:
    """Apply `records` (all from `partition`) on top of the state `read` sees.

    Records at or below `cursor[topic]` were applied before a restart and are skipped; the
    result holds every key to write, the dead letters, and the advanced cursor. `scan` lists
    the state's keys under a prefix: an entity's erasure order needs it (and nothing else).
    """
    result = BatchResult(cursor=dict(cursor))
    writes = result.writes

    def get(key: str) -> Any:
        return writes[key] if key in writes else read(key)

    aggregates = _Aggregates(read, partition)
    erasing = _Erasing(get, writes, aggregates, partition, scan)

    for record in records:
        if record.offset <= result.cursor.get(record.topic, -1):
            result.skipped += 1
            continue
        result.cursor[record.topic] = record.offset
        if record.kind == "erasure":
            try:
                erasing.order(decode_order(record.value), record)
            except InvalidErasure as exc:
                result.dead_letters.append(DeadLetter(record, str(exc)))
            continue
        try:
            event = decode_record(record, max_event_bytes)
        except InvalidEvent as exc:
            result.dead_letters.append(DeadLetter(record, str(exc)))
            continue
        key = example_key(event.event_id)
        old = get(key)
        if isinstance(event, PredictionEvent):
            erasure = erasing.erasure_of(event, record.offset)
            if erasure is not None:
                old = erasing.erase(event.event_id, erasure, order=False)
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
        aggregates.apply(old, new, applied_tag)
        if isinstance(event, PredictionEvent) and not new.erased:
            erasing.index(new, record.offset)
    aggregates.write(writes)
    result.erasures = erasing.applied()
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


class _Erasing:
    """A batch's erasures: orders carried out, late events of erased entities redacted.

    Every path ends in the same state whatever the interleaving of an order with the
    records it names, as a rebuild (which reads one topic after another) needs: an erased
    example keeps the redacted skeletons of its facts (`examples.redacted`), an entity's
    index lists its unerased predictions, and an order names the offset below which an
    entity's predictions are erased, so an event that comes after its order is judged by
    the same rule as one that came before.
    """

    def __init__(
        self,
        get: Callable[[str], Any],
        writes: dict[str, Any],
        aggregates: _Aggregates,
        partition: int,
        scan: Callable[[str], Iterable[str]] | None,
    ) -> None:
        self.get, self.writes, self.aggregates, self.partition = get, writes, aggregates, partition
        self.scan = scan
        self.done: dict[tuple[str, bool], tuple[list[str], list[str]]] = {}

    def order(self, order: ErasureOrder, record: SourceRecord) -> None:
        if order.partition != self.partition:
            raise InvalidErasure(
                f"an order for partition {order.partition} was found in partition {self.partition}"
            )
        self.done.setdefault((order.erasure_id, True), ([], []))
        for event_id in order.events:
            self.erase(event_id, order.erasure_id, order=True)
        for entity, until in order.entities.items():
            key = erased_entity_key(self.partition, entity)
            past: list[list[Any]] = self.get(key) or []
            if any(e == order.erasure_id for e, _ in past):
                continue  # the same order again
            self.writes[key] = [*past, [order.erasure_id, until]]
            for event_id, offset in self._indexed(entity_prefix(self.partition, entity)):
                if offset < until:
                    self.erase(event_id, order.erasure_id, order=True)

    def erasure_of(self, event: PredictionEvent, offset: int) -> str | None:
        """The first erasure that covers this prediction of an entity, if any."""
        if event.entity_id is None or event.erased:
            return None
        for erasure_id, until in self.get(erased_entity_key(self.partition, event.entity_id)) or []:
            if offset < until:
                return str(erasure_id)
        return None

    def erase(self, event_id: str, erasure_id: str, order: bool) -> Example:
        """Redact the example in place, moving every aggregate by what it took away."""
        key = example_key(event_id)
        old: Example | None = self.get(key)
        erased, absent = self.done.setdefault((erasure_id, order), ([], []))
        if old is not None and old.erased:
            return old
        new = redacted(old, event_id)
        self.writes[key] = new
        self.aggregates.apply(old, new, None)
        if old is not None and old.prediction is not None:
            self._unindex(old.prediction)
        # An order's event not seen yet is absent; a late event (no order) is arriving now.
        seen = not order or (old is not None and old.prediction is not None)
        (erased if seen else absent).append(event_id)
        return new

    def index(self, example: Example, offset: int) -> None:
        pred = example.prediction
        if pred is not None and pred.entity_id is not None:
            self.writes[entity_prefix(self.partition, pred.entity_id) + pred.event_id] = offset

    def _unindex(self, pred: PredictionEvent) -> None:
        if pred.entity_id is None:
            return
        key = entity_prefix(self.partition, pred.entity_id) + pred.event_id
        if self.get(key) is not None:
            self.writes[key] = None

    def _indexed(self, prefix: str) -> list[tuple[str, int]]:
        """(event_id, offset) of the entity's indexed predictions, this batch's writes included."""
        if self.scan is None:
            raise RuntimeError("an entity's erasure needs the fold to be given `scan`")
        keys = {*self.scan(prefix), *[k for k in self.writes if k.startswith(prefix)]}
        found = []
        for key in keys:
            offset = self.writes[key] if key in self.writes else self.get(key)
            if offset is not None:
                found.append((key[len(prefix) :], int(offset)))
        return sorted(found, key=lambda item: (item[1], item[0]))

    def applied(self) -> list[ErasureApplied]:
        return [
            ErasureApplied(erasure_id, self.partition, tuple(erased), tuple(absent), order)
            for (erasure_id, order), (erased, absent) in self.done.items()
        ]


class _Aggregates:
    """The batch's aggregates and index, moved in place record by record and written once at
    the end: a key touched by 500 records of a batch is read once and encoded once.

    Every aggregate value depends only on the facts, not on their order: a replay may meet a
    prediction and its tags in another interleaving than the live worker did.
    - A model version's aggregates never lose a member, and an example's newest fact only
      grows, so they take the newest fact of every member, on every change of the member.
    - A dataset takes the `tagged_at` of every tag that named it when applied, whether or not
      the prediction had arrived, and is listed from then on.
    The counters are summed in log order, as one record at a time would sum them, so the
    result is the same to the last bit whatever the batch boundaries.
    """

    def __init__(self, get: Callable[[str], Any], partition: int) -> None:
        # Keyed by `AggKey`, not by the key's string, which only `write` needs.
        self.get, self.partition = get, partition
        self.before: dict[AggKey, Agg | None] = {}
        self.counts: dict[AggKey, Counts] = {}
        self.updated: dict[AggKey, datetime | None] = {}
        self.index_key = index_key(partition)
        self.index_before: Index = get(self.index_key) or Index()
        self.index = self.index_before
        self.subtracted: set[AggKey] = set()
        self.swept: set[AggKey] = set()  # may hold a zero, to drop at `write`

    def apply(self, old: Example | None, new: Example, tag: TagEvent | None) -> None:
        """Move the aggregates by `new - old`, and their `updated_at`."""
        touch = self._touch
        pred = new.prediction
        if pred is not None:
            moment = example_time(new)
            keys = model_keys(pred)
            touch(keys.model, moment)
            touch(keys.hour, moment)
        if tag is not None:
            for name in tag.datasets:
                touch(dataset_key(name), tag.tagged_at)
        if pred is not None and not new.erased and (old is None or old.prediction is None):
            # A prediction's first arrival, the commonest step: `delta` is its whole
            # contribution, and its inputs' counters, only ever added, go straight into
            # its hour rather than through a dict of their own (`write` drops a sum left
            # at zero, as `stats.add` would have at once).
            drift.add_inputs(pred, self.counts[keys.hour])
            self.swept.add(keys.hour)
            if new.tag is None:
                # Before its tag, its metrics are its whole contribution to the model and
                # the hour, both touched above: `contribution` without its dicts.
                metrics = prediction_metrics(pred)
                self._move(keys.model, metrics, self.counts[keys.model])
                self._move(keys.hour, metrics, self.counts[keys.hour])
                return
            changes = contribution(new, inputs=False)
        else:
            changes = delta(old, new)
        touched = self.counts
        for agg, change in changes.items():
            if change:
                # Most were touched above, with their moment: a look-up, not a call.
                counts = touched.get(agg)
                self._move(agg, change, touch(agg, None) if counts is None else counts)

    def _move(self, agg: AggKey, change: Counts, counts: Counts) -> None:
        if min(change.values()) < 0:
            self.subtracted.add(agg)
        for name, value in change.items():
            total = counts.get(name, 0) + value
            if total == 0:
                counts.pop(name, None)  # absent and zero are the same (`stats.add`)
            else:
                counts[name] = total

    def _touch(self, agg: AggKey, moment: datetime | None) -> Counts:
        """The aggregate's counts, to move in place; `moment` may advance its `updated_at`."""
        counts = self.counts.get(agg)
        if counts is None:
            current: Agg | None = self.get(agg_key(self.partition, agg))
            self.before[agg] = current
            counts = self.counts[agg] = dict(current.counts) if current else {}
            self.updated[agg] = current.updated_at if current else None
            self.index = _indexed(self.index, agg)
        if moment is not None:
            updated = self.updated[agg]
            if updated is None or moment > updated:
                self.updated[agg] = moment
        return counts

    def write(self, writes: dict[str, Any]) -> None:
        for agg, counts in self.counts.items():
            key = agg_key(self.partition, agg)
            current, updated = self.before[agg], self.updated[agg]
            if agg in self.swept:
                for name in [name for name, value in counts.items() if value == 0]:
                    del counts[name]
            if agg in self.subtracted:
                settle(counts)
                if not counts and updated is None:
                    # Nothing left, and never a moment: a fold without its members has no key.
                    if current is not None:
                        writes[key] = None
                    continue
            if current is None or counts != current.counts or updated != current.updated_at:
                writes[key] = Agg(counts, updated)
        if self.index is not self.index_before:
            writes[self.index_key] = self.index


def _indexed(index: Index, agg: AggKey) -> Index:
    if agg.kind == "dataset":
        if agg.name in index.datasets:
            return index
        return replace(index, datasets=index.datasets | {agg.name})
    if agg.kind != "hour":
        return index
    versions = index.models.get(agg.name, {})
    first, last = versions.get(agg.version, (agg.hour, agg.hour))
    span = (min(first, agg.hour), max(last, agg.hour))
    if versions.get(agg.version) == span:
        return index
    models = dict(index.models)
    models[agg.name] = {**versions, agg.version: span}
    return replace(index, models=models)
