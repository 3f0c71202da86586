"""The batch fold plus the wal: any crash, then redelivery from any committed point, gives exact views."""

from __future__ import annotations

import random
from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from app.domain.batch import SourceRecord, fold_batch
from app.views import viewcodec
from app.views.queries import Queries
from app.views.wal import PartitionTxn, put_each
from tests.factories import prediction, tag
from tests.reference import Reference, assert_close

TOPICS = {"prediction": "modelview.predictions", "tag": "modelview.tags"}


class RecordingStore(MutableMapping[str, bytes]):
    """A dict that logs every write in order, like a changelog partition."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.log: list[tuple[str, bytes | None]] = []

    def __getitem__(self, key: str) -> bytes:
        return self.data[key]

    def __setitem__(self, key: str, value: bytes) -> None:
        self.data[key] = value
        self.log.append((key, value))

    def __delitem__(self, key: str) -> None:
        del self.data[key]
        self.log.append((key, None))

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    @classmethod
    def replay(cls, log: list[tuple[str, bytes | None]]) -> RecordingStore:
        store = cls()
        put_each(store.data, log)
        store.log = list(log)
        return store


def make_log(rng: random.Random, n: int) -> tuple[list[SourceRecord], Reference]:
    """One partition's records: predictions and tags interleaved, tags often first, with dupes and junk."""
    base = datetime(2026, 11, 27, tzinfo=UTC)
    items: list[tuple[str, dict[str, Any]]] = []
    for i in range(n):
        value: Any = rng.choice([rng.uniform(0, 60), rng.choice(["late", "on-time"])])
        p = prediction(
            model_version=rng.choice(["1", "2"]),
            prediction={"value": value},
            occurred_at=(base + timedelta(minutes=7 * i)).isoformat(),
        )
        items.append(("prediction", p))
        for j in range(rng.choice([0, 1, 1, 2])):
            label = (
                rng.uniform(0, 60)
                if isinstance(value, float)
                else rng.choice(["late", "on-time", None])
            )
            stamp = (base + timedelta(hours=rng.randint(1, 50), seconds=j)).isoformat()
            items.append(
                (
                    "tag",
                    tag(
                        p["event_id"],
                        label=label,
                        datasets=rng.sample(["a", "b", "c"], rng.randint(0, 2)),
                        tagged_at=stamp,
                    ),
                )
            )
    rng.shuffle(items)
    items += [rng.choice(items) for _ in range(n // 10)]  # duplicate deliveries
    records, reference, offsets = [], Reference(), {"prediction": 0, "tag": 0}
    for kind, event in items:
        records.append(
            SourceRecord(
                kind,
                TOPICS[kind],
                0,
                offsets[kind],
                event["event_id"].encode(),
                orjson.dumps(event),
            )
        )  # type: ignore[arg-type]
        offsets[kind] += 1
        reference.add(kind, event)
        if rng.random() < 0.03:
            records.append(SourceRecord("tag", TOPICS["tag"], 0, offsets["tag"], b"k", b'{"broken'))
            offsets["tag"] += 1
    return records, reference


def run(store: MutableMapping[str, bytes], records: list[SourceRecord], batch: int) -> int:
    txn = PartitionTxn(store)
    dead = 0
    for start in range(0, len(records), batch):
        cursor = txn.cursor(0)
        result = fold_batch(
            lambda k: viewcodec.decode(k, store.get(k)),
            0,
            cursor,
            records[start : start + batch],
            10_000,
        )
        dead += len(result.dead_letters)
        txn.commit(0, {k: viewcodec.encode(k, v) for k, v in result.writes.items()}, result.cursor)
    return dead


def views(snapshot: Any) -> tuple[Any, ...]:
    datasets = [snapshot.dataset(n) for n in snapshot.dataset_names()]
    return datasets, snapshot.model_metrics("flight-delay")


def check(store: MutableMapping[str, bytes], reference: Reference) -> None:
    queries = Queries(store, partitions=1).read()
    expected = reference.datasets()
    assert queries.dataset_names() == sorted(expected)
    for name, want in expected.items():
        assert_close(queries.dataset(name), want, name)
    metrics = queries.model_metrics("flight-delay")
    assert metrics is not None
    assert_close({v: m for v, m in metrics.items()}, reference.metrics("flight-delay"))


@pytest.mark.parametrize("seed", range(5))
def test_views_equal_the_reference_fold(seed: int) -> None:
    records, reference = make_log(random.Random(seed), 300)
    store = RecordingStore()
    dead = run(store, records, batch=37)
    assert dead == sum(r.value == b'{"broken' for r in records)
    check(store, reference)


@pytest.mark.parametrize("seed", range(5))
def test_any_crash_then_redelivery_gives_exact_views(seed: int) -> None:
    rng = random.Random(100 + seed)
    records, reference = make_log(rng, 150)
    full = RecordingStore()
    run(full, records, batch=16)
    for _ in range(25):
        cut = rng.randrange(len(full.log))  # the changelog holds a prefix of the writes
        crashed = RecordingStore.replay(full.log[:cut])
        # Before any rollback, readers already see the state the rollback will restore.
        rolled_back = RecordingStore.replay(crashed.log)
        PartitionTxn(rolled_back).cursor(0)
        assert views(Queries(crashed, 1).read()) == views(Queries(rolled_back, 1).read())
        # Redelivery starts at the consumer's committed offset: anywhere up to the first
        # record the recovered cursor has not applied.
        cursor = PartitionTxn(crashed).cursor(0)
        applied = next(
            (i for i, r in enumerate(records) if r.offset > cursor.get(r.topic, -1)), len(records)
        )
        restart = rng.randint(0, applied)
        run(crashed, records[restart:], batch=rng.choice([1, 7, 50]))
        check(crashed, reference)
