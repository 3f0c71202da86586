"""Dataset specs, snapshot rows, hashes and deltas; the baseline trainer."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.domain.codec import prediction_from_dict, tag_from_dict
from app.domain.datasets import (
    DatasetSpec,
    Manifest,
    content_hash,
    delta,
    fit_cutoff,
    fitted_rows,
    in_holdout,
    rows_of,
)
from app.domain.examples import Example
from app.learning.base import BaselineTrainer, task_of
from tests import factories


def example(label: object = 3.0, datasets: tuple[str, ...] = ("train",), **pred: object) -> Example:
    p = prediction_from_dict(factories.prediction(**pred))
    t = tag_from_dict(factories.tag(p.event_id, label=label, datasets=list(datasets)))
    return Example(p.event_id, p, t, frozenset({t.tag_id}))


def test_rows_are_labeled_examples_of_the_dataset_that_match_the_spec() -> None:
    keep = example(model="late", occurred_at="2026-11-10T00:00:00Z")
    examples = [
        keep,
        example(label=None),
        example(datasets=("audit",)),
        example(model="other"),
        example(occurred_at="2026-12-10T00:00:00Z"),
        Example("x", prediction=None),
    ]
    spec = DatasetSpec(
        "train", model=None, until=datetime(2026, 12, 1, tzinfo=UTC), features=("distance",)
    )
    rows = rows_of(examples, spec)
    assert [r.event_id for r in rows] == sorted(e.event_id for e in (keep, examples[3]))
    assert all(set(r.features) == {"distance"} for r in rows)
    assert [r.event_id for r in rows_of(examples, DatasetSpec("train", model="late"))] == [
        keep.event_id
    ]


def test_hash_depends_on_rows_not_their_input_order() -> None:
    examples = [example(label=float(i)) for i in range(20)]
    spec = DatasetSpec("train")
    assert content_hash(rows_of(examples, spec)) == content_hash(rows_of(examples[::-1], spec))
    assert content_hash(rows_of(examples, spec)) != content_hash(rows_of(examples[1:], spec))


def test_holdout_is_stable_and_about_the_share_asked() -> None:
    ids = [f"{i:08d}-0000-4000-8000-000000000000" for i in range(4000)]
    held = [i for i in ids if in_holdout(i, 0.2)]
    assert 0.17 < len(held) / len(ids) < 0.23
    assert held == [i for i in ids if in_holdout(i, 0.2)]
    assert not any(in_holdout(i, 0.0) for i in ids)


def test_delta_names_new_and_relabeled_rows() -> None:
    a, b = example(), example()
    spec = DatasetSpec("train")
    before = rows_of([a, b], spec)
    relabeled = example(label=9.0)
    relabeled = Example(a.event_id, a.prediction, relabeled.tag, frozenset())
    c = example()
    after = rows_of([relabeled, b, c], spec)
    d = delta(before, after)
    assert d.added == (c.event_id,) and d.relabeled == (a.event_id,) and d.removed == ()


def test_manifest_round_trips() -> None:
    rows = rows_of([example()], DatasetSpec("train", holdout=0.1))
    manifest = Manifest(
        "train",
        DatasetSpec("train", holdout=0.1),
        {"t": {0: 5, 1: 7}},
        1,
        content_hash(rows),
        "now",
    )
    assert Manifest.from_dict(manifest.to_dict()) == manifest


def test_baseline_is_the_mean_or_the_majority_class() -> None:
    trainer = BaselineTrainer()
    assert trainer.fit([{}] * 3, [1.0, 2.0, 6.0]).predict([{}, {}]) == [3.0, 3.0]
    model = trainer.fit([{}] * 5, ["a", "b", "b", "a", "c"])
    assert model.value == "a" and model.task == "classification"  # a tie goes to the smaller name
    assert task_of([True, False]) == "classification" and task_of([1, 2.5]) == "regression"
    with pytest.raises(ValueError, match="no labeled rows"):
        trainer.fit([], [])


def test_baseline_saves_and_loads(tmp_path: Path) -> None:
    model = BaselineTrainer().fit([{}] * 2, [True, True])
    model.save(tmp_path)
    assert BaselineTrainer().load(tmp_path) == model


def test_leaving_the_recent_rows_out_of_the_fit() -> None:
    days = [example(occurred_at=f"2026-11-{d:02d}T10:00:00Z") for d in (1, 2, 3, 4)]
    rows = [
        replace(r, holdout=r.occurred_at.startswith("2026-11-01"))
        for r in rows_of(days, DatasetSpec("train"))
    ]
    cutoff = fit_cutoff(rows, timedelta(hours=36))
    assert cutoff == "2026-11-02T22:00:00Z"
    assert [r.occurred_at[:10] for r in fitted_rows(rows, cutoff)] == ["2026-11-02"]
    assert len(fitted_rows(rows)) == 3  # no cutoff: all but the held out
    assert fit_cutoff([], timedelta(hours=1)) is None
