from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

from app.domain import drift
from app.domain.codec import prediction_from_dict, tag_from_dict
from app.domain.examples import Example
from app.domain.stats import (
    AggKey,
    add,
    contribution,
    delta,
    hour_of,
    split_hour,
    summarize_dataset,
    summarize_metrics,
    total,
)
from tests.factories import prediction, tag

EID = "6f1c7f7e-8a43-4b6e-9d47-2f3f0b7b1a11"
MODEL = AggKey("model", "flight-delay", "3")


def example(
    pred: dict[str, object] | None, label: object = 17.0, datasets: list[str] | None = None
) -> Example:
    p = prediction_from_dict(prediction(event_id=EID, **(pred or {}))) if pred is not None else None
    t = (
        tag_from_dict(tag(EID, label=label, datasets=datasets or ["train"]))
        if label != "none"
        else None
    )
    return Example(EID, p, t)


def test_waiting_tag_contributes_nothing() -> None:
    assert contribution(example(None)) == {}


def test_regression_contribution() -> None:
    c = contribution(example({"prediction": {"value": 12.5}}, label=17.0))
    assert c[MODEL] == {
        "predictions": 1,
        "pred_n": 1,
        "pred_sum": 12.5,
        "pred_sumsq": 156.25,
        "labeled": 1,
        "n_err": 1,
        "abs_err_sum": 4.5,
        "sq_err_sum": 20.25,
    }
    metrics, inputs, labels = split_hour(c[AggKey("hour", "flight-delay", "3", "2026-11-27T10")])
    assert metrics == c[MODEL]
    assert drift.events(inputs) == 1 and drift.fields(labels)[drift.LABEL]["sum"] == 17.0
    assert c[AggKey("dataset", "train")] == {
        "size": 1,
        "labeled": 1,
        "label_n": 1,
        "label_sum": 17.0,
        "label_sumsq": 289.0,
    }


def test_classification_contribution() -> None:
    c = contribution(example({"prediction": {"value": True}}, label=True))
    assert c[MODEL] == {
        "predictions": 1,
        "pred_class:true": 1,
        "labeled": 1,
        "n_cls": 1,
        "correct": 1,
    }
    wrong = contribution(example({"prediction": {"value": "late"}}, label="on-time"))
    assert "correct" not in wrong[MODEL] and wrong[MODEL]["n_cls"] == 1


def test_delta_moves_an_example_between_datasets() -> None:
    before = example({}, label=1.0, datasets=["a"])
    after = example({}, label=None, datasets=["b"])
    d = delta(before, after)
    assert d[AggKey("dataset", "a")] == {
        "size": -1,
        "labeled": -1,
        "label_n": -1,
        "label_sum": -1.0,
        "label_sumsq": -1.0,
    }
    assert d[AggKey("dataset", "b")] == {"size": 1}
    assert d[MODEL]["labeled"] == -1 and "predictions" not in d[MODEL]
    # Applying the delta to the old contribution gives the new one exactly.
    for key in d:
        assert add(contribution(before).get(key, {}), d[key]) == contribution(after).get(key, {})


def test_summaries() -> None:
    counts = total(
        [
            contribution(example({"prediction": {"value": v}}, label=v + 1))[MODEL]
            for v in (1.0, 3.0)
        ]
    )
    summary = summarize_metrics(counts)
    assert summary["predictions"] == 2 and summary["labeled"] == 2 and summary["mae"] == 1.0
    assert summary["prediction_distribution"]["numeric"] == {"count": 2, "mean": 2.0, "std": 1.0}
    ds = summarize_dataset({"size": 3, "labeled": 2, "label_class:a": 2})
    assert ds == {
        "size": 3,
        "labeled": 2,
        "new_since_training": 2,
        "label_summary": {"classes": {"a": 2}},
    }


def _whole_difference(old: Example, new: Example) -> dict[AggKey, dict[str, float]]:
    """`delta` as its definition reads: the contributions' difference, key by key."""
    before, after = contribution(old, inputs=False), contribution(new, inputs=False)
    out = {}
    for key in [*before, *(k for k in after if k not in before)]:
        diff = add(after.get(key, {}), before.get(key, {}), -1)
        if diff:
            out[key] = diff
    return out


def test_a_changed_tag_moves_the_same_numbers_as_the_whole_contributions() -> None:
    # `delta`'s path for a tag on a known prediction subtracts only the label's counters.
    rng = random.Random(7)
    values: list[object] = [12.5, -3.0, 0.0, 1e200, True, "late", 7]
    labels: list[object] = [None, 17.0, -3.0, 0.0, 1e200, True, False, "late", "on-time", 7]
    for _ in range(400):
        value = rng.choice(values)
        pred = prediction_from_dict(prediction(event_id=EID, prediction={"value": value}))
        tags = [
            tag_from_dict(
                tag(
                    EID,
                    label=rng.choice(labels),
                    datasets=rng.sample(["a", "b", "c"], rng.randint(0, 3)),
                )
            )
            for _ in range(2)
        ]
        old = Example(EID, pred, rng.choice([None, tags[0]]))
        new = Example(EID, pred, tags[1])
        got, want = delta(old, new), _whole_difference(old, new)
        assert got == want
        # The same counters in the same order: a view's bytes depend on it.
        assert all(list(got[key]) == list(want[key]) for key in want)


def test_the_hour_key_is_the_one_the_views_have_always_stored() -> None:
    # The stored keys were written with `isoformat()[:13]`, and with `strftime` before year
    # 1000; a new way of writing the hour must give the same text, or the hours split.
    zones = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    moments = [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(999, 12, 31, 23, 59, tzinfo=UTC),
        datetime(1000, 1, 1, 0, tzinfo=UTC),
        datetime(2024, 2, 29, 7, 30, tzinfo=UTC),
        datetime(2026, 12, 2, 16, 19, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
    ]
    rng = random.Random(7)
    moments += [
        datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(10**8))
        for _ in range(500)
    ]
    for moment in moments:
        for zone in zones:
            try:
                local = moment.astimezone(zone)
            except OverflowError:
                continue
            old = local.isoformat()[:13] if local.year >= 1000 else local.strftime("%Y-%m-%dT%H")
            assert hour_of(local) == old
    assert hour_of(datetime(999, 12, 31, 23, tzinfo=UTC)) == "999-12-31T23"
