"""A replay meets predictions and tags in another interleaving than the live worker: same views.

Kafka orders each topic, not the two together, so a rebuild folds one topic then the other.
Every view value, `updated_at` included, must depend on the facts only; floats may differ in
their last bits (addition order), which `same` allows for.
"""

from __future__ import annotations

import random

import orjson

from app.domain.log_layout import LogRecord
from app.log.rebuild import differences
from app.topics import PREDICTIONS, TAGS
from app.views.refold import fold_records
from tests import factories


def history(rng: random.Random, n: int) -> tuple[list[LogRecord], list[LogRecord]]:
    """Predictions and tags, with corrections, dataset moves and tags that change nothing."""
    predictions, tags = [], []
    for i in range(n):
        p = factories.prediction(
            model=rng.choice(["late", "delay"]),
            occurred_at=f"2026-11-27T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00Z",
            prediction={"value": rng.choice([True, False]) if i % 2 else rng.uniform(0, 50)},
        )
        predictions.append(p)
        for _ in range(rng.randrange(4)):
            label = rng.choice([True, False]) if i % 2 else rng.choice([1.5, 20.25, None])
            tags.append(
                factories.tag(
                    p["event_id"],
                    label=label,
                    datasets=rng.sample(["a", "b", "c"], rng.randrange(1, 3)),
                    tagged_at=f"2026-11-28T{rng.randrange(24):02d}:00:00Z",
                )
            )
    rng.shuffle(tags)

    def records(topic: str, events: list[dict[str, object]]) -> list[LogRecord]:
        return [
            LogRecord(topic, 0, o, 0, str(e["event_id"]).encode(), orjson.dumps(e))
            for o, e in enumerate(events)
        ]

    return records(PREDICTIONS, predictions), records(TAGS, tags)


def interleave(rng: random.Random, a: list[LogRecord], b: list[LogRecord]) -> list[LogRecord]:
    out, i, j = [], 0, 0
    while i < len(a) or j < len(b):
        if j >= len(b) or (i < len(a) and rng.random() < 0.5):
            out.append(a[i])
            i += 1
        else:
            out.append(b[j])
            j += 1
    return out


def fold(records: list[LogRecord], batch: int) -> dict[str, bytes]:
    store: dict[str, bytes] = {}
    for start in range(0, len(records), batch):
        fold_records(store, 0, records[start : start + batch], 1 << 20)
    return store


def test_any_interleaving_folds_to_the_same_views() -> None:
    rng = random.Random(3)
    predictions, tags = history(rng, 300)
    replay = fold(predictions + tags, 500)
    assert any(k.startswith("agg/0/dataset/") for k in replay)
    for seed in range(20):
        order = random.Random(seed)
        live = fold(interleave(order, predictions, tags), order.randrange(1, 60))
        assert differences(live, replay, 0) == []


def test_differences_names_what_differs() -> None:
    rng = random.Random(4)
    predictions, tags = history(rng, 20)
    live = fold(predictions + tags, 7)
    rebuilt = dict(live)
    key = next(k for k in rebuilt if k.startswith("agg/"))
    rebuilt[key] = rebuilt[key].replace(b'"predictions":', b'"predictions":1')
    extra = "ex/00000000-0000-4000-8000-000000000000"
    rebuilt[extra] = b"{}"
    found = differences(live, rebuilt, 0)
    assert len(found) == 2
    assert found[0].startswith(key) or found[1].startswith(key)
    assert any(f.startswith(extra) and "missing from the live views" in f for f in found)
