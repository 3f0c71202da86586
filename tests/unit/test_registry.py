"""The registry fold: idempotent, and it knows each model's champion."""

from __future__ import annotations

import pytest

from app.domain.registry import InvalidModelEvent, apply, check, rollback_target


def trained(version: str) -> dict[str, object]:
    return {
        "type": "ModelTrained",
        "model": "delay",
        "version": version,
        "parent_version": None,
        "snapshot": {"snapshot_id": "s" + version, "delta": {"added": ["a", "b"], "relabeled": []}},
    }


def test_trained_versions_with_lineage_and_idempotent() -> None:
    state = apply(None, trained("1"))
    assert apply(state, trained("1")) == state
    state = apply(state, trained("2"))
    assert set(state["versions"]) == {"1", "2"}
    assert state["versions"]["2"]["snapshot"]["delta"] == {"added": 2, "relabeled": 0}
    assert state["champion"] is None


def test_promotion_retires_the_previous_champion_and_rejection_keeps_reasons() -> None:
    state = apply(apply(None, trained("1")), trained("2"))
    state = apply(state, {"type": "ModelPromoted", "model": "delay", "version": "1"})
    state = apply(state, {"type": "ModelPromoted", "model": "delay", "version": "2"})
    assert state["champion"] == "2" and state["versions"]["1"]["status"] == "retired"
    state = apply(
        state, {"type": "ModelRejected", "model": "delay", "version": "3", "reasons": ["worse"]}
    )
    assert state["versions"]["3"]["status"] == "rejected" and state["versions"]["3"]["reasons"] == [
        "worse"
    ]
    # A late ModelTrained for a rejected version does not undo the rejection.
    assert apply(state, trained("3"))["versions"]["3"]["status"] == "rejected"


@pytest.mark.parametrize(
    "event, reason",
    [
        ([], "JSON object"),
        ({"type": "Nope", "model": "m", "version": "1"}, "type must be one of"),
        ({"type": "ModelTrained", "version": "1"}, "model: required"),
        ({"type": "ModelTrained", "model": "m", "version": 1}, "version: required"),
    ],
)
def test_bad_events_say_why(event: object, reason: str) -> None:
    with pytest.raises(InvalidModelEvent, match=reason):
        check(event)


def test_rollback_goes_back_one_champion_at_a_time() -> None:
    state = None
    for version in ("1", "2", "3"):
        state = apply(state, {"type": "ModelPromoted", "model": "delay", "version": version})
    assert state is not None and rollback_target(state) == "2"
    state = apply(
        state, {"type": "ModelPromoted", "model": "delay", "version": "2", "by": "rollback"}
    )
    assert state["champion"] == "2" and state["versions"]["3"]["status"] == "retired"
    assert rollback_target(state) == "1"
    state = apply(
        state, {"type": "ModelPromoted", "model": "delay", "version": "1", "by": "rollback"}
    )
    assert state["champions"] == ["1"] and rollback_target(state) is None


def test_the_gate_decision_reaches_the_registry_also_from_events_logged_before() -> None:
    decision = {"promote": False, "metric": "mae", "reasons": ["worse on mae"]}
    validated = {"type": "ModelValidated", "model": "delay", "version": "1", "report": {"n": 9}}
    now = apply(None, {**validated, "decision": decision})
    assert now["versions"]["1"]["decision"] == decision
    # Before the decision had its own field, validation put it inside the report only.
    older = apply(None, {**validated, "report": {"n": 9, "decision": decision}})
    assert older["versions"]["1"]["decision"] == decision
