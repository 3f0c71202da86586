"""The Keras trainer on in-memory rows: it learns, it is deterministic, it round-trips."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from app.learning.base import BaselineTrainer

keras_module = pytest.importorskip("app.learning.keras")


def rows(n: int, seed: int) -> tuple[list[dict[str, object]], list[float]]:
    rng = random.Random(seed)
    features = [
        {
            "distance": rng.uniform(0, 100),
            "carrier": rng.choice(["UA", "DL", "AA"]),
            "late": rng.random() < 0.5,
        }
        for _ in range(n)
    ]
    labels = [
        2 * f["distance"] + (10 if f["carrier"] == "UA" else 0) + rng.gauss(0, 1) for f in features
    ]  # type: ignore[operator]
    return features, labels


def mae(predicted: list[object], labels: list[float]) -> float:
    return sum(abs(float(p) - y) for p, y in zip(predicted, labels, strict=True)) / len(labels)  # type: ignore[arg-type]


def test_learns_what_the_baseline_cannot_and_is_deterministic(tmp_path: Path) -> None:
    features, labels = rows(400, 1)
    trainer = keras_module.KerasTrainer()
    model = trainer.fit(features, labels, seed=3)
    baseline = BaselineTrainer().fit(features, labels)
    assert mae(model.predict(features), labels) < mae(baseline.predict(features), labels) / 5
    again = trainer.fit(features, labels, seed=3)
    assert again.predict(features[:20]) == model.predict(features[:20])
    model.save(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"model.keras", "saved_model", "schema.json"}
    loaded = trainer.load(tmp_path)
    assert loaded.predict(features[:20]) == model.predict(features[:20])
    # Unseen categories and wrong types at prediction time do not break it.
    assert len(model.predict([{"distance": "far", "carrier": "ZZ"}, {}])) == 2
    # An absurd number is clipped to the training range: the answer stays near the edge's.
    edge, absurd = loaded.predict(
        [
            {"distance": max(f["distance"] for f in features), "carrier": "UA"},  # type: ignore[type-var]
            {"distance": 1e9, "carrier": "UA"},
        ]
    )
    assert edge == absurd


def test_classification_gives_the_training_classes() -> None:
    features, _ = rows(300, 2)
    labels = [f["carrier"] == "UA" for f in features]
    model = keras_module.KerasTrainer().fit(features, labels, seed=1)
    predicted = model.predict(features)
    assert set(predicted) <= {True, False}
    assert sum(p == y for p, y in zip(predicted, labels, strict=True)) / len(labels) > 0.95
