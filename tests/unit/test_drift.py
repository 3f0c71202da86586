"""Feature statistics as counters that add up, and PSI between two of them."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from app.domain import drift
from app.domain.batch import SourceRecord, agg_key, fold_batch
from app.domain.codec import decode_prediction
from app.domain.stats import AggKey, split_hour, total
from app.views import viewcodec
from tests import factories


@dataclass
class FakeRow:
    features: dict[str, Any]
    prediction: Any
    label: Any


def events(
    n: int, seed: int, shift: float = 0.0, carriers: tuple[str, ...] = ("UA", "DL")
) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        out.append(
            factories.prediction(
                features={
                    "distance": rng.gauss(1000, 200) + shift,
                    "carrier": rng.choice(carriers),
                    "hour": rng.randrange(24),
                },
                prediction={"value": rng.gauss(10, 3)},
            )
        )
    return out


def counters(raw: list[dict[str, Any]]) -> dict[str, float]:
    return total(drift.of_inputs(decode_prediction(_dumps(e))) for e in raw)


def _dumps(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


def test_buckets_are_ordered_signed_and_within_ten_percent() -> None:
    values = [-5e6, -3.0, -1e-12, 0.0, 1e-12, 0.5, 1.0, 1.04, 7.0, 1e9]
    indices = [drift.bucket(v) for v in values]
    assert indices == sorted(indices)
    assert drift.bucket(0.0) == drift.bucket(1e-12) == drift.bucket(-1e-12) == 0
    for v in (0.5, 3.0, 1234.5, -77.0):
        middle = drift.bucket_value(drift.bucket(v))
        assert abs(middle - v) <= 0.1 * abs(v)


def test_statistics_of_a_sample_are_its_own_within_the_sketch_accuracy() -> None:
    raw = events(2_000, seed=1)
    counts = counters(raw)
    fields = drift.fields(counts)
    distance = drift.summary(fields["distance"], drift.events(counts))
    values = sorted(e["features"]["distance"] for e in raw)
    assert distance["count"] == 2_000 and distance["missing"] == 0
    assert distance["mean"] == pytest.approx(sum(values) / len(values))
    assert distance["quantiles"]["p50"] == pytest.approx(values[1_000], rel=0.1)
    carrier = drift.summary(fields["carrier"], drift.events(counts))
    assert carrier["kind"] == "categorical" and carrier["categories"] == 2
    assert sum(t["count"] for t in carrier["top"]) == 2_000


def test_counters_add_up_whatever_the_split() -> None:
    raw = events(300, seed=2)
    whole = counters(raw)
    assert total([counters(raw[:100]), counters(raw[100:])]) == pytest.approx(whole)


def test_psi_rises_on_the_shifted_feature_only() -> None:
    reference = counters(events(3_000, seed=3))
    same = drift.compare(reference, counters(events(3_000, seed=4)))
    shifted = drift.compare(reference, counters(events(3_000, seed=5, shift=400)))
    assert all(not f["drifted"] for f in same.values()), same
    assert [name for name, f in shifted.items() if f["drifted"]] == ["distance"]
    assert shifted["distance"]["psi"] > 10 * same["distance"]["psi"]


def test_a_new_category_and_a_feature_that_stops_arriving_drift() -> None:
    reference = counters(events(2_000, seed=6))
    new_carrier = drift.compare(reference, counters(events(2_000, seed=7, carriers=("AA",))))
    assert new_carrier["carrier"]["drifted"]
    gone = events(2_000, seed=8)
    for e in gone:
        del e["features"]["hour"]
    found = drift.compare(reference, counters(gone))
    assert found["hour"]["drifted"] and found["hour"]["live"]["missing"] == 2_000
    assert not found["carrier"]["drifted"]


def test_a_snapshot_gives_the_same_counters_as_its_events_and_its_labels() -> None:
    raw = events(50, seed=9)
    rows = [FakeRow(e["features"], e["prediction"]["value"], 1.0) for e in raw]
    from_rows = drift.of_rows(rows)
    labels = total(drift.of_label(1.0) for _ in rows)
    assert from_rows == pytest.approx(total([counters(raw), labels]))


def test_the_fold_counts_inputs_once_and_moves_labels_with_corrections() -> None:
    event = factories.prediction(features={"distance": 500.0}, prediction={"value": 3.0})
    first = factories.tag(event["event_id"], label=10.0, tagged_at="2026-11-27T11:00:00Z")
    fix = factories.tag(event["event_id"], label=20.0, tagged_at="2026-11-27T12:00:00Z")
    key = event["event_id"].encode()
    records = [
        SourceRecord("prediction", "modelview.predictions", 0, 0, key, _dumps(event)),
        SourceRecord("tag", "modelview.tags", 0, 0, key, _dumps(first)),
        SourceRecord("tag", "modelview.tags", 0, 1, key, _dumps(fix)),
    ]
    result = fold_batch(lambda k: None, 0, {}, records, 1 << 20)
    hour = event["occurred_at"][:13]
    window = result.writes[agg_key(0, AggKey("hour", event["model"], "3", hour))]
    metrics, inputs, labels = split_hour(window.counts)
    assert drift.events(inputs) == 1
    assert drift.fields(labels)[drift.LABEL]["sum"] == 20.0  # the correction, alone
    assert drift.LABEL not in drift.fields(inputs)
    assert metrics["labeled"] == 1 and metrics["abs_err_sum"] == 17.0


def test_extreme_values_give_finite_counters_that_survive_json() -> None:
    # Found by the fuzz test: 1e308 / 1e-9 overflowed, and the fold retried for ever.
    values = [1e308, -1e308, 5e-324, -2.5e-300, 1.7976931348623157e308]
    event = factories.prediction(features={f"x{i}": v for i, v in enumerate(values)})
    counts = drift.of_inputs(decode_prediction(_dumps(event)))
    assert all(math.isfinite(v) for v in counts.values())
    assert orjson.loads(orjson.dumps(counts)) == counts
    sketch = drift.fields(counts)["x0"]["b"]
    assert drift.bucket_value(next(iter(sketch))) == pytest.approx(1e308, rel=0.1)


def test_extreme_predictions_and_labels_never_poison_a_view() -> None:
    # Before: pred_sumsq of 1e200 was inf, stored as JSON null, and the next event's sum
    # raised in the fold, which then retried the batch for ever.
    store: dict[str, bytes] = {}
    records = []
    for offset in range(3):
        event = factories.prediction(prediction={"value": 1e200 if offset else -1e308})
        key = event["event_id"].encode()
        tag = factories.tag(event["event_id"], label=1e308)
        records += [
            SourceRecord("prediction", "modelview.predictions", 0, offset, key, _dumps(event)),
            SourceRecord("tag", "modelview.tags", 0, offset, key, _dumps(tag)),
        ]
    for record in records:  # a batch each: every value goes through its JSON encoding
        result = fold_batch(lambda k: viewcodec.decode(k, store.get(k)), 0, {}, [record], 1 << 20)
        store.update({k: viewcodec.encode(k, v) for k, v in result.writes.items()})
    for key, raw in store.items():
        if key.startswith("agg/"):
            counts = orjson.loads(raw)["counts"]
            assert all(isinstance(v, int | float) and math.isfinite(v) for v in counts.values())


def test_a_sum_that_cancels_in_one_batch_leaves_no_counter_as_one_at_a_time() -> None:
    # The fold adds a new prediction's inputs in place and drops zeros at the end of the
    # batch: the same views as folding each record alone, where a zero went at once.
    at = "2026-11-27T10:00:00Z"
    raw = [
        factories.prediction(features={"x": x}, prediction={"value": x}, occurred_at=at)
        for x in (1.5, -1.5, 0.0)
    ]
    records = [
        SourceRecord("prediction", "modelview.predictions", 0, i, e["event_id"].encode(), _dumps(e))
        for i, e in enumerate(raw)
    ]
    together = fold_batch(lambda k: None, 0, {}, records, 1 << 20).writes
    store: dict[str, Any] = {}
    for record in records:
        store |= fold_batch(store.get, 0, {}, [record], 1 << 20).writes
    window = together[agg_key(0, AggKey("hour", raw[0]["model"], "3", at[:13]))]
    assert drift.counter("sum", "x") not in window.counts
    assert drift.counter("sumsq", "x") in window.counts
    assert window == store[agg_key(0, AggKey("hour", raw[0]["model"], "3", at[:13]))]
    assert together == {k: v for k, v in store.items() if k in together}
