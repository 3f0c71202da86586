"""Validation reports and the promotion gate, on hand-made scored events."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import orjson
import pytest

from app.domain.gate import (
    Gate,
    Scored,
    ValidationError,
    ValidationReport,
    decide,
    decide_in_time,
    periods,
    report,
)


def events(
    n: int, served_error: float, challenger_error: float, segment: str = "EWR", seed: int = 0
) -> list[Scored]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = rng.uniform(-10, 60)
        out.append(
            Scored(
                f"e{segment}{i}",
                f"2013-01-{1 + i % 5:02d}T10:00:00Z",
                "1",
                segment,
                label,
                label + rng.choice((-1, 1)) * served_error * rng.uniform(0.5, 1.5),
                label + rng.choice((-1, 1)) * challenger_error * rng.uniform(0.5, 1.5),
            )
        )
    return out


def test_report_has_overall_segment_and_time_metrics_and_a_paired_interval() -> None:
    scored = events(200, served_error=10, challenger_error=5)
    result = report("regression", scored, segment_by="origin")
    assert result.n == 200
    assert result.challenger["mae"] < result.served["mae"]
    assert math.isclose(
        result.served["rmse"] ** 2,
        sum((e.served - e.label) ** 2 for e in scored) / 200,  # type: ignore[operator]
    )
    low, high = result.difference["mae"]["ci"]
    assert low < result.difference["mae"]["mean"] < high < 0
    assert set(result.segments) == {"time:day", "served_by", "feature:origin"}
    assert sum(g["n"] for g in result.segments["time:day"].values()) == 200
    assert list(result.segments["time:day"]) == [f"2013-01-0{d}" for d in range(1, 6)]


def test_a_better_challenger_is_promoted_with_its_gain() -> None:
    decision = decide(report("regression", events(300, 10, 5)), Gate(min_improvement=0.2))
    assert decision.promote, decision.reasons
    assert decision.improvement is not None and 0.4 < decision.improvement < 0.6


def test_a_worse_challenger_is_rejected_with_the_reason() -> None:
    decision = decide(report("regression", events(300, 5, 10)), Gate())
    assert not decision.promote
    assert any("needs at least" in r for r in decision.reasons)
    assert any("does not exclude no gain" in r for r in decision.reasons)


def test_too_few_events_and_a_regressing_segment_each_block_promotion() -> None:
    few = decide(report("regression", events(50, 10, 5)), Gate(min_samples=100))
    assert not few.promote and few.reasons == ("too few events to judge: 50 < 100",)
    mixed = events(400, 10, 2, "EWR") + events(60, 5, 8, "JFK", seed=1)
    decision = decide(report("regression", mixed, segment_by="origin"), Gate())
    assert not decision.promote
    assert [r for r in decision.reasons if "segment feature:origin=JFK (60 events)" in r]
    # The same events pass when that segment is too small to count.
    assert decide(
        report("regression", mixed, segment_by="origin"), Gate(min_segment_samples=100)
    ).promote


def test_classification_uses_accuracy_and_a_number_where_a_class_is_due() -> None:
    rows = [
        Scored(f"e{i}", "2013-01-01T00:00:00Z", "1", None, i % 3 == 0, False, i % 3 == 0)
        for i in range(300)
    ]
    result = report("classification", rows)
    assert result.challenger["accuracy"] == 1.0
    assert math.isclose(result.served["accuracy"], 2 / 3)
    assert decide(result, Gate()).promote
    with pytest.raises(ValidationError, match="does not apply to classification"):
        decide(result, Gate(metric="mae"))
    broken = [Scored("x", "2013-01-01T00:00:00Z", "1", None, 1.0, 1.0, "late") for _ in range(200)]
    decision = decide(report("regression", broken), Gate())
    assert not decision.promote and "cannot be computed" in decision.reasons[0]


def test_a_report_round_trips_through_its_json() -> None:
    measured = report("regression", events(120, 10, 5), segment_by="origin")
    decision = decide(measured, Gate())
    done = ValidationReport(
        measured=measured,
        model="delay",
        version="2",
        champion="1",
        compared_with={"model": "delay", "version": "1"},
        unseen_events=130,
        as_of={"modelview.predictions": {0: 120, 1: 7}},
        validated_at="2026-12-02T10:00:00Z",
        decision=decision,
        periods=periods("regression", events(10, 1, 1), "2013-01-03T00:00:00Z").to_dict(),
        decided_on="all",
    )
    raw = orjson.loads(orjson.dumps(done.to_dict()))
    assert raw["periods"]["out_of_time"]["n"] == 6 and raw["decided_on"] == "all"
    assert raw["n"] == 120 and raw["decision"]["promote"] == decision.promote
    assert raw["as_of"] == {"modelview.predictions": {"0": 120, "1": 7}}
    assert ValidationReport.from_dict(raw).to_dict() == raw


def test_the_gate_decides_on_the_future_when_there_is_enough_of_it() -> None:
    # Around its training days the challenger looks far better; on the days after, worse.
    fitted_days = [
        replace(e, occurred_at="2013-01-02T10:00:00Z") for e in events(300, 10, 2, seed=1)
    ]
    later = [
        replace(e, event_id=f"later-{e.event_id}", occurred_at="2013-01-05T10:00:00+00:00")
        for e in events(200, 5, 10, seed=2)
    ]
    unseen = fitted_days + later
    split = periods("regression", unseen, "2013-01-03T00:00:00Z")
    assert (split.in_time.n, split.out_of_time.n) == (300, 200)
    assert split.to_dict()["trained_until"] == "2013-01-03T00:00:00Z"
    whole = report("regression", unseen)
    used, decision = decide_in_time(whole, split, Gate())
    assert used == "out_of_time" and not decision.promote
    assert decision.reasons[-1].startswith("decided on the 200 out-of-time events")
    # Too few out-of-time events: every unseen one, and the reason says so. There the
    # challenger's in-time advantage wins (unless a time segment's regression is checked):
    # exactly the optimism the split exposes.
    lenient = Gate(min_samples=201, max_segment_regression=100)
    used, decision = decide_in_time(whole, split, lenient)
    assert used == "all" and decision.promote
    assert "only 200 occurred after the last training row" in decision.reasons[-1]
    assert periods("regression", unseen, None).out_of_time.n == 0
