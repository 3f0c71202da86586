"""The registry fold: idempotent, and it knows each model's champion."""

from __future__ import annotations

from app.domain.datasets import DatasetSpec, Delta, Manifest
from app.domain.gate import Decision
from app.domain.model_events import (
    ModelPromoted,
    ModelRejected,
    ModelTrained,
    ModelValidated,
    decode,
    encode,
)
from app.domain.registry import RegistryEntry, apply, from_dict, rollback_target, to_dict
from app.domain.registry import decode as decode_entry
from app.domain.registry import encode as encode_entry


def trained(version: str) -> ModelTrained:
    return ModelTrained(
        model="delay",
        version=version,
        trainer="baseline",
        trained_at="2026-11-30T10:00:00Z",
        seed=0,
        snapshot=Manifest(
            dataset="flights",
            spec=DatasetSpec("flights"),
            as_of={"modelview.predictions": {0: 10}},
            rows=2,
            content_hash=f"{version:0>64}",
            created_at="2026-11-30T10:00:00Z",
            delta=Delta(added=("a", "b")),
        ),
        train_rows=2,
        holdout_rows=0,
        parent_version=None,
        warm_start=False,
        describe={"kind": "baseline"},
    )


def promoted(version: str, by: str = "manual") -> ModelPromoted:
    return ModelPromoted(model="delay", version=version, by=by)


def test_trained_versions_with_lineage_and_idempotent() -> None:
    state = apply(None, trained("1"))
    assert apply(state, trained("1")) == state
    state = apply(state, trained("2"))
    assert set(to_dict(state)["versions"]) == {"1", "2"}
    assert to_dict(state)["versions"]["2"]["snapshot"]["delta"] == {
        "added": 2,
        "relabeled": 0,
        "removed": 0,
    }
    assert to_dict(state)["versions"]["2"]["artifacts"] == "models/delay/2/"
    assert to_dict(state)["champion"] is None


def test_promotion_retires_the_previous_champion_and_rejection_keeps_reasons() -> None:
    state = apply(apply(None, trained("1")), trained("2"))
    state = apply(state, promoted("1"))
    state = apply(state, promoted("2"))
    assert (
        to_dict(state)["champion"] == "2" and to_dict(state)["versions"]["1"]["status"] == "retired"
    )
    state = apply(state, ModelRejected(model="delay", version="3", reasons=("worse",)))
    assert to_dict(state)["versions"]["3"]["status"] == "rejected"
    assert to_dict(state)["versions"]["3"]["reasons"] == ["worse"]
    # A late ModelTrained for a rejected version does not undo the rejection.
    assert to_dict(apply(state, trained("3")))["versions"]["3"]["status"] == "rejected"


def test_rollback_goes_back_one_champion_at_a_time() -> None:
    state = None
    for version in ("1", "2", "3"):
        state = apply(state, promoted(version))
    assert state is not None and rollback_target(state) == "2"
    state = apply(state, promoted("2", by="rollback"))
    assert (
        to_dict(state)["champion"] == "2" and to_dict(state)["versions"]["3"]["status"] == "retired"
    )
    assert rollback_target(state) == "1"
    state = apply(state, promoted("1", by="rollback"))
    assert to_dict(state)["champions"] == ["1"] and rollback_target(state) is None


def test_the_gate_decision_reaches_the_registry_through_the_log() -> None:
    decision = Decision(promote=False, metric="mae", reasons=("worse on mae",))
    validated = ModelValidated(model="delay", version="1", report={"n": 9}, decision=decision)
    # As the registry agent sees it: encoded by validation, decoded from the topic.
    state = apply(None, decode(encode(validated)))
    assert to_dict(state)["versions"]["1"]["decision"] == decision.to_dict()
    assert to_dict(state)["versions"]["1"]["status"] == "validated"


def test_an_entry_round_trips_and_entries_stored_before_typing_still_read() -> None:
    decision = Decision(promote=True, metric="mae", reasons=("better",), improvement=0.2)
    state: RegistryEntry | None = None
    for event in (
        trained("1"),
        ModelValidated(model="delay", version="1", report={"n": 9}, decision=decision),
        ModelPromoted(model="delay", version="1", by="gate", reasons=("better",)),
        ModelRejected(model="delay", version="2", reasons=("worse",)),
    ):
        state = apply(state, event)
    assert state is not None and decode_entry(encode_entry(state)) == state
    # As the untyped fold stored it: the same JSON reads to the same entry.
    assert from_dict(to_dict(state)) == state
    old = {
        "model": "delay",
        "versions": {"3": {"version": "3", "status": "rejected", "reasons": ["worse"]}},
        "champion": None,
    }
    assert to_dict(from_dict(old)) == {**old, "champions": []}
