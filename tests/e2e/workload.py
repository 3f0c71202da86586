"""A shuffled, messy workload of predictions and tags, and the reference views it must produce."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from tests.reference import Reference


@dataclass
class Item:
    kind: str  # "prediction" | "tag"
    event: dict[str, Any] | None  # None for a malformed record
    key: bytes
    raw: bytes
    expected_reason: str = ""  # for malformed records: a part of the dead letter's reason


@dataclass
class Workload:
    items: list[Item] = field(default_factory=list)
    reference: Reference = field(default_factory=Reference)
    tags_first: int = 0
    tags_total: int = 0

    @property
    def malformed(self) -> list[Item]:
        return [i for i in self.items if i.event is None]


MODELS = {"flight-delay": "regression", "late": "classification"}


def build(n_predictions: int, seed: int = 7) -> Workload:
    rng = random.Random(seed)
    start = datetime(2026, 11, 27, tzinfo=UTC)
    timeline: list[tuple[float, Item]] = []
    workload = Workload()
    for i in range(n_predictions):
        model = rng.choice(list(MODELS))
        regression = MODELS[model] == "regression"
        event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        value: Any = round(rng.uniform(-10, 90), 3) if regression else rng.random() < 0.3
        p = {
            "schema_version": 1,
            "event_id": event_id,
            "model": model,
            "model_version": rng.choice(["1", "2", "3"]),
            "occurred_at": (start + timedelta(seconds=30 * i)).isoformat().replace("+00:00", "Z"),
            "features": {
                "distance": rng.randint(100, 3000),
                "carrier": rng.choice(["UA", "AA", "DL"]),
            },
            "prediction": {"value": value},
        }
        at = rng.random()
        timeline.append((at, Item("prediction", p, event_id.encode(), orjson.dumps(p))))
        for j in range(
            rng.choice([0, 1, 1, 1, 2])
        ):  # some predictions are tagged twice: corrections
            label: Any = round(rng.uniform(-10, 90), 3) if regression else rng.random() < 0.3
            if rng.random() < 0.05:
                label = None
            t = {
                "schema_version": 1,
                "tag_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "event_id": event_id,
                "label": label,
                "datasets": rng.sample(
                    ["flights-train", "flights-eval", "audit"], rng.choice([0, 1, 1, 2])
                ),
                "source": "arrivals",
                "tagged_at": (start + timedelta(days=1, seconds=30 * i + rng.randint(0, 5000) + j))
                .isoformat()
                .replace("+00:00", "Z"),
            }
            first = rng.random() < 0.25
            workload.tags_total += 1
            workload.tags_first += first
            offset = rng.uniform(0.001, 0.05)
            timeline.append(
                (
                    at - offset if first else at + offset,
                    Item("tag", t, event_id.encode(), orjson.dumps(t)),
                )
            )
    timeline.sort(key=lambda x: x[0])
    items = [item for _, item in timeline]
    for _ in range(len(items) // 20):  # 5% duplicate deliveries, somewhere later in the stream
        original = rng.randrange(len(items))
        items.insert(rng.randrange(original, len(items) + 1), items[original])
    for _ in range(len(items) // 100):  # 1% malformed
        items.insert(rng.randrange(len(items) + 1), _malformed(rng))
    workload.items = items
    workload.reference.add_all((i.kind, i.event) for i in items if i.event is not None)
    return workload


def _malformed(rng: random.Random) -> Item:
    event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))  # seeded, as the rest
    good = {
        "schema_version": 1,
        "event_id": event_id,
        "model": "flight-delay",
        "model_version": "1",
        "occurred_at": "2026-11-27T10:00:00Z",
        "features": {},
        "prediction": {"value": 1.0},
    }
    choice = rng.randrange(6)
    key = event_id.encode()
    if choice == 0:
        return Item("prediction", None, key, b"\xff\xfe not json", "not valid JSON")
    if choice == 1:
        return Item(
            "prediction",
            None,
            key,
            orjson.dumps({**good, "schema_version": 9}),
            "unsupported version 9",
        )
    if choice == 2:
        bad = dict(good)
        del bad["prediction"]
        return Item("prediction", None, key, orjson.dumps(bad), "prediction: required")
    if choice == 3:
        return Item(
            "prediction",
            None,
            b"wrong-key",
            orjson.dumps(good),
            "must be the prediction's event_id",
        )
    if choice == 4:
        tag = {
            "schema_version": 1,
            "tag_id": "x",
            "event_id": event_id,
            "tagged_at": "2026-11-27T10:00:00Z",
        }
        return Item("tag", None, key, orjson.dumps(tag), "tag_id: not a UUID")
    return Item("tag", None, key, b"[1, 2", "not valid JSON")
