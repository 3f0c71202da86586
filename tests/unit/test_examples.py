from __future__ import annotations

from app.domain.codec import prediction_from_dict, tag_from_dict
from app.domain.examples import Outcome, apply_prediction, apply_tag
from tests.factories import prediction, tag

EID = "6f1c7f7e-8a43-4b6e-9d47-2f3f0b7b1a11"


def test_tag_first_waits_for_its_prediction() -> None:
    t = tag_from_dict(tag(EID))
    waiting, outcome = apply_tag(None, t)
    assert outcome is Outcome.APPLIED and waiting.prediction is None and not waiting.joined
    p = prediction_from_dict(prediction(event_id=EID))
    joined, outcome = apply_prediction(waiting, p)
    assert outcome is Outcome.APPLIED and joined.joined and joined.tag == t


def test_duplicate_prediction_counts_once_and_conflict_is_reported() -> None:
    p = prediction_from_dict(prediction(event_id=EID))
    first, _ = apply_prediction(None, p)
    again, outcome = apply_prediction(first, p)
    assert outcome is Outcome.DUPLICATE and again is first
    other = prediction_from_dict(prediction(event_id=EID, model_version="4"))
    kept, outcome = apply_prediction(first, other)
    assert outcome is Outcome.CONFLICT and kept.prediction == p


def test_latest_tag_by_tagged_at_then_log_order() -> None:
    early = tag_from_dict(tag(EID, label=1.0, tagged_at="2026-11-27T13:00:00Z"))
    late = tag_from_dict(tag(EID, label=2.0, tagged_at="2026-11-27T14:00:00Z"))
    tie = tag_from_dict(tag(EID, label=3.0, tagged_at="2026-11-27T14:00:00Z"))
    ex, _ = apply_tag(None, late)
    ex, outcome = apply_tag(ex, early)  # an older correction arriving late does not win
    assert outcome is Outcome.SUPERSEDED and ex.tag == late and len(ex.tag_ids) == 2
    ex, outcome = apply_tag(ex, tie)  # same time: the later in the log wins
    assert outcome is Outcome.APPLIED and ex.tag == tie
    ex2, outcome = apply_tag(ex, tie)
    assert outcome is Outcome.DUPLICATE and ex2 is ex
