"""The model-events codec: every kind round-trips, old logs still read, bad events say why."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from app.domain.gate import Decision
from app.domain.model_events import (
    InvalidModelEvent,
    ModelEvent,
    ModelPromoted,
    ModelRejected,
    ModelValidated,
    decode,
    encode,
    to_dict,
)
from tests.unit.test_registry import trained

EVENTS: list[ModelEvent] = [
    trained("3"),
    replace(
        trained("5"),
        fit_until="2026-11-29T10:00:00Z",
        weights_sha256="ab" * 32,
        artifact_sha256="cd" * 32,
        environment={"python": "3.11.7", "cpu_flags": ["avx2"]},
    ),
    ModelValidated(
        model="delay",
        version="3",
        report={"n": 40, "task": "regression"},
        decision=Decision(True, "mae", ("better by 12%",), 0.12),
        validated_at="2026-11-30T10:01:00Z",
    ),
    ModelPromoted(model="delay", version="3", promoted_at="2026-11-30T10:01:01Z", by="gate"),
    ModelRejected(model="delay", version="4", reasons=("too few events to judge: 3 < 30",)),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_every_kind_round_trips_and_names_where_the_version_lives(event: ModelEvent) -> None:
    assert decode(encode(event)) == event
    raw = to_dict(event)
    assert raw["type"] == type(event).__name__ and raw["schema_version"] == 1
    assert raw["artifacts"] == f"models/delay/{event.version}/"
    assert raw.get("fit_until") == getattr(event, "fit_until", None)  # absent unless set
    assert raw["manifest"] == f"models/delay/{event.version}/manifest.json"


def test_events_logged_before_the_schema_version_still_read() -> None:
    # As validation logged them before: no schema_version, no artifacts, the decision only
    # inside the report.
    decision = {"promote": False, "metric": "mae", "improvement": None, "reasons": ["worse"]}
    old = {
        "type": "ModelValidated",
        "model": "delay",
        "version": "1",
        "report": {"n": 9, "decision": decision, "validated_at": "2026-11-01T00:00:00Z"},
    }
    event = decode(orjson.dumps(old))
    assert isinstance(event, ModelValidated)
    assert event.decision == Decision(False, "mae", ("worse",), None)
    assert event.validated_at == "2026-11-01T00:00:00Z"
    assert event.artifacts == "models/delay/1/"


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"{", "not valid JSON"),
        (b"[]", "JSON object"),
        (b'{"type": "ModelExploded", "model": "m", "version": "1"}', "type must be one of"),
        (b'{"type": "ModelPromoted", "version": "1"}', "model: required"),
        (b'{"type": "ModelPromoted", "model": "m", "version": 1}', "version: required"),
        (
            b'{"schema_version": 2, "type": "ModelPromoted", "model": "m", "version": "1"}',
            "unsupported version 2",
        ),
        (b'{"type": "ModelTrained", "model": "m", "version": "1"}', "trainer: required"),
        (
            b'{"type": "ModelValidated", "model": "m", "version": "1", "report": {},'
            b' "decision": {"promote": "yes"}}',
            "boolean 'promote'",
        ),
        (
            b'{"type": "ModelRejected", "model": "m", "version": "1", "reasons": "worse"}',
            "reasons: must be a list",
        ),
        (
            b'{"type": "ModelTrained", "model": "m", "version": "1", "trainer": "baseline",'
            b' "trained_at": "2026-11-30T10:00:00Z", "snapshot": {"dataset": "d"}}',
            "ModelTrained: malformed field",
        ),
    ],
)
def test_bad_events_say_why(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidModelEvent, match=reason):
        decode(raw)
