"""Batch scoring's pure part: stable ids, the status document, the captured event."""

from __future__ import annotations

import random
import uuid
from types import MappingProxyType

import orjson
import pyarrow as pa

from app.domain.codec import prediction_from_dict
from app.domain.scores import (
    MAX_BAD_LISTED,
    NAMESPACE,
    JobStatus,
    ScoredEvents,
    event_id,
    features_json,
    job_ids,
    rows_json,
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
    (raw,) = events.encode_batch(events.id_of.many(["f7"]), [7], [{"distance": 100}], [12.5])
    parsed = prediction_from_dict(orjson.loads(raw.as_py()))
    assert parsed.model_version == "3" and parsed.context == {
        "modelview.job": "nightly",
        "modelview.row": 7,
    }
    assert parsed.event_id == event_id("delay", "nightly", "f7")


def test_job_ids_are_uuid5_of_model_job_and_key_so_jobs_run_before_keep_their_ids() -> None:
    ids = job_ids("delay", "nightly")
    for key in ("0", "f1", "é/ü with spaces", "x" * 300):
        assert ids(key) == str(uuid.uuid5(NAMESPACE, f"delay\nnightly\n{key}"))


def test_a_jobs_events_encoded_a_column_at_a_time_are_the_events_in_full() -> None:
    """Batch scoring encodes a batch's events from a template of what its job shares, a
    column at a time: each JSON must be exactly its event, whatever the job's name, the
    features, the value (of its own type: true is not 1) or the context hold."""
    status = JobStatus("delay", "3", "night.ly_1", "dataset:d", "running", "2026-12-03T00:00:00Z")
    events = ScoredEvents(status)
    keys = ["0", "f1", "é/ü with spaces", "x" * 300]
    ids = events.id_of.many(keys)
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
    contexts = {2: {"modelview.imputed": ["distance", "hour"]}, 3: {}}
    # A regression's floats (one encoding, split), classes, and numbers of both kinds.
    for values in (
        [12.5, 3.0, -0.0, 1e16],
        ["on time", "late", "on time", 'a,"b'],
        [1, 2.0, True, 3],
    ):
        for context in (contexts, None):
            encoded = events.encode_batch(ids, rows, features, values, context).to_pylist()
            for n, raw in enumerate(encoded):
                parsed = orjson.loads(raw)
                assert parsed == {
                    "schema_version": 1,
                    "event_id": ids[n].as_py(),
                    "model": "delay",
                    "model_version": "3",
                    "occurred_at": "2026-12-03T00:00:00Z",
                    "features": dict(features[n]),
                    "prediction": {"value": values[n]},
                    "context": {
                        "modelview.job": "night.ly_1",
                        "modelview.row": rows[n],
                        **(context or {}).get(n, {}),
                    },
                }
                assert type(parsed["prediction"]["value"]) is type(values[n])
                assert prediction_from_dict(parsed).context["modelview.row"] == rows[n]
    assert events.encode_batch(ids[:0], [], [], []).to_pylist() == []


def test_a_tables_features_json_made_by_column_reads_back_as_each_rows_own() -> None:
    rng = random.Random(5)
    rows = [
        {
            "f": rng.choice([1.5, 2500.0, -0.0, 1e20, 0.1, 5e-324, None]),
            "s": rng.choice(["UA", 'a "quoted" \\ one', "é\n", "", None]),
            "i": rng.choice([1, -5, 2**62, None]),
            "b": rng.choice([True, False, None]),
            "n": None,
        }
        for _ in range(500)
    ]
    table = pa.Table.from_pylist(rows)
    table = table.append_column("c", table.column("s").dictionary_encode())
    table = table.append_column("h", pa.array([0.1, None] * 250, pa.float32()))
    by_rows = [orjson.loads(t) for t in rows_json(table.to_pylist()).to_pylist()]
    by_columns = features_json(table)
    assert by_columns is not None
    read = [orjson.loads(t) for t in by_columns.to_pylist()]
    assert read == by_rows
    # The same types too: 2500.0 stays a float (1 == 1.0 in Python's eyes), 1 an int.
    assert [[type(v) for v in r.values()] for r in read] == [
        [type(v) for v in r.values()] for r in by_rows
    ]
    assert features_json(table.slice(0, 0)) is not None
    assert features_json(pa.table({"xs": [[1.0, 2.0]]})) is None  # lists: row by row
