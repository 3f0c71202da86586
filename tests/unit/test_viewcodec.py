from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson

from app.domain.batch import Agg
from app.domain.codec import format_time, prediction_from_dict, tag_from_dict
from app.domain.examples import Example
from app.views import viewcodec
from tests.factories import prediction, tag

EID = "6f1c7f7e-8a43-4b6e-9d47-2f3f0b7b1a11"


def test_stored_times_are_written_as_format_time_writes_them() -> None:
    pred = prediction_from_dict(prediction(event_id=EID, occurred_at="0999-01-02T03:04:05.000007Z"))
    label = tag_from_dict(tag(EID, tagged_at="2026-11-27T13:00:00.5+00:00"))
    example = Example(EID, pred, label, frozenset({label.tag_id}))
    stored = orjson.loads(viewcodec.encode(f"ex/{EID}", example) or b"")
    assert stored["prediction"]["occurred_at"] == "0999-01-02T03:04:05.000007Z"
    assert stored["tag"]["tagged_at"] == "2026-11-27T13:00:00.500000Z"
    assert viewcodec.decode(f"ex/{EID}", viewcodec.encode(f"ex/{EID}", example)) == example


def test_a_time_in_another_zone_is_stored_in_utc() -> None:
    moment = datetime(2026, 11, 27, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    stored = orjson.loads(
        viewcodec.encode("agg/0/model/m/1", Agg({"predictions": 1}, moment)) or b""
    )
    assert stored["updated_at"] == "2026-11-27T10:00:00Z" == format_time(moment)
    decoded = viewcodec.decode("agg/0/model/m/1", orjson.dumps(stored))
    assert decoded.updated_at == moment and decoded.updated_at.tzinfo is UTC
