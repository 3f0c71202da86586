"""Batch scoring's pure part: stable ids, the status document, the captured event."""

from __future__ import annotations

import uuid
from types import MappingProxyType

import orjson

from app.domain.codec import prediction_from_dict
from app.domain.scores import (
    MAX_BAD_LISTED,
    NAMESPACE,
    JobStatus,
    ScoredEvents,
    event_id,
    id_array,
    job_ids,
    status_key,
)


def test_a_rerun_gets_the_same_ids_and_another_job_or_model_others() -> None:
    assert event_id("delay", "nightly", "f1") == event_id("delay", "nightly", "f1")
    assert (
        len(
            {
                event_id("delay", "nightly", "f1"),
                event_id("delay", "nightly", "f2"),
                event_id("delay", "weekly", "f1"),
                event_id("other", "nightly", "f1"),
            }
        )
        == 4
    )
    assert status_key("delay", "nightly") == "scores/delay/_jobs/nightly.json"


def test_bad_rows_are_counted_exactly_and_listed_up_to_a_limit() -> None:
    status = JobStatus(
        "delay", "3", "nightly", "parquet:x.parquet", "running", "2026-12-03T00:00:00Z"
    )
    for row in range(MAX_BAD_LISTED + 5):
        status.refuse(row, f"k{row}", "distance: missing")
    assert status.bad == MAX_BAD_LISTED + 5 and len(status.bad_rows) == MAX_BAD_LISTED
    assert JobStatus.from_dict(status.to_dict()) == status


def test_a_scored_row_is_a_valid_prediction_event_naming_its_job() -> None:
    status = JobStatus("delay", "3", "nightly", "dataset:d", "running", "2026-12-03T00:00:00Z")
    events = ScoredEvents(status)
    parsed = prediction_from_dict(
        orjson.loads(events.encode(events.id_of("f7"), 7, {"distance": 100}, 12.5))
    )
    assert parsed.model_version == "3" and parsed.context == {
        "modelview.job": "nightly",
        "modelview.row": 7,
    }
    assert parsed.event_id == event_id("delay", "nightly", "f7")


def test_job_ids_are_uuid5_of_model_job_and_key_so_jobs_run_before_keep_their_ids() -> None:
    ids = job_ids("delay", "nightly")
    for key in ("0", "f1", "é/ü with spaces", "x" * 300):
        assert ids(key) == str(uuid.uuid5(NAMESPACE, f"delay\nnightly\n{key}"))


def test_a_jobs_events_encoded_from_its_shared_fields_are_the_events_in_full() -> None:
    """Batch scoring encodes each event from a template of what its job shares: the JSON
    must be exactly the event, whatever the job's name, the value or the context holds."""
    status = JobStatus("delay", "3", "night.ly_1", "dataset:d", "running", "2026-12-03T00:00:00Z")
    events = ScoredEvents(status)
    cases = [
        (0, {"distance": 100, "carrier": 'U"A\\'}, 12.5, None),
        (7, MappingProxyType({"late": True, "gusts": [1.0, 2.5]}), "on time", None),
        (12345678901, {}, -0.0, {"modelview.imputed": ["distance", "hour"]}),
        (3, {"x": None}, 3, {}),
    ]
    for row, features, value, context in cases:
        raw = events.encode("0f8fad5b-d9cb-469f-a165-70867728950e", row, features, value, context)
        parsed = orjson.loads(raw)
        assert parsed == {
            "schema_version": 1,
            "event_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
            "model": "delay",
            "model_version": "3",
            "occurred_at": "2026-12-03T00:00:00Z",
            "features": dict(features),
            "prediction": {"value": value},
            "context": {"modelview.job": "night.ly_1", "modelview.row": row, **(context or {})},
        }
        assert prediction_from_dict(parsed).context["modelview.row"] == row


def test_a_batch_encoded_a_column_at_a_time_is_each_event_as_encode_makes_it() -> None:
    status = JobStatus("delay", "3", "night.ly_1", "dataset:d", "running", "2026-12-03T00:00:00Z")
    events = ScoredEvents(status)
    keys = ["0", "f1", "é/ü with spaces", "x" * 300]
    ids = id_array(events.id_of.many(keys))
    assert (
        ids.to_pylist()
        == [events.id_of(k) for k in keys]
        == [job_ids("delay", "night.ly_1")(k) for k in keys]
    )
    rows = [0, 7, 12345678901, 3]
    features = [
        {"distance": 100, "carrier": 'U"A\\\n'},
        MappingProxyType({"late": True, "gusts": [1.0, 2.5]}),
        {},
        {"x": None},
    ]
    contexts = {2: {"modelview.imputed": ["distance", "hour"]}}
    # A regression's floats (one encoding, split), classes, and numbers of both kinds.
    for values in (
        [12.5, 3.0, -0.0, 1e16],
        ["on time", "late", "on time", 'a,"b'],
        [1, 2.0, True, 3],
    ):
        for context in (contexts, None):
            got = events.encode_batch(ids, rows, features, values, context).to_pylist()
            want = [
                events.encode(i, row, f, v, (context or {}).get(n))
                for n, (i, row, f, v) in enumerate(
                    zip(ids.to_pylist(), rows, features, values, strict=True)
                )
            ]
            assert got == want
    assert events.encode_batch(ids[:0], [], [], []).to_pylist() == []
