from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from app.domain.codec import (
    InvalidEvent,
    decode_prediction,
    decode_tag,
    encode_prediction,
    encode_tag,
    prediction_from_dict,
    tag_from_dict,
)
from tests.factories import prediction, tag


def test_contract_example_round_trips() -> None:
    raw = orjson.dumps(prediction())
    event = decode_prediction(raw)
    assert event.occurred_at == datetime(2026, 11, 27, 10, tzinfo=UTC)
    assert event.prediction.value == 12.5
    assert decode_prediction(encode_prediction(event)) == event


def test_tag_round_trips_and_normalizes_datasets() -> None:
    t = tag_from_dict(tag("6f1c7f7e-8a43-4b6e-9d47-2f3f0b7b1a11", datasets=["b", "a", "b"]))
    assert t.datasets == ("a", "b")
    assert decode_tag(encode_tag(t)) == t


def test_offsets_are_normalized_to_utc() -> None:
    event = prediction_from_dict(prediction(occurred_at="2026-11-27T12:00:00+02:00"))
    assert event.occurred_at == datetime(2026, 11, 27, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema_version": 2}, "schema_version: unsupported version 2"),
        ({"schema_version": True}, "schema_version: unsupported"),
        ({"event_id": "nope"}, "event_id: not a UUID"),
        ({"event_id": "6F1C7F7E-8A43-4B6E-9D47-2F3F0B7B1A11"}, "canonical lowercase"),
        ({"model": ""}, "model: must be"),
        ({"model": "a/b"}, "model: must be"),
        ({"model_version": 3}, "model_version: must be"),
        (
            {"occurred_at": "2026-11-27T10:00:00"},
            "occurred_at: not an ISO-8601 time with a timezone",
        ),
        ({"occurred_at": 5}, "occurred_at: must be an ISO-8601 string, got number"),
        ({"features": []}, "features: must be an object, got list"),
        ({"features": {"x": {"y": 1}}}, "features.x: must be a number, string, bool, null"),
        ({"features": {"x": [1, "a"]}}, "features.x[1]: lists hold numbers only"),
        ({"prediction": {"value": None}}, "prediction.value: must be a number, string or bool"),
        ({"prediction": {}}, "prediction.value: required"),
        ({"prediction": {"value": 1, "extra": 1}}, "prediction: unknown field"),
        (
            {"prediction": {"value": 1, "scores": {"a": "x"}}},
            "prediction.scores.a: must be a number",
        ),
        ({"occured_at": "typo"}, "unknown field(s) ['occured_at']"),
        ({"entity_id": 5}, "entity_id: must be a string or null"),
        ({"context": "x"}, "context: must be an object"),
    ],
)
def test_invalid_predictions_say_what_is_wrong(change: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidEvent, match=None) as info:
        prediction_from_dict(prediction(**change))
    assert message in str(info.value)


def test_missing_fields_are_named() -> None:
    for field in ("event_id", "model", "model_version", "occurred_at", "features", "prediction"):
        data = prediction()
        del data[field]
        with pytest.raises(InvalidEvent, match=f"{field}: required"):
            prediction_from_dict(data)


def test_non_json_and_non_objects() -> None:
    with pytest.raises(InvalidEvent, match="not valid JSON"):
        decode_prediction(b"\xff\xfe")
    with pytest.raises(InvalidEvent, match="not valid JSON"):
        decode_prediction(b'{"a": NaN}')
    with pytest.raises(InvalidEvent, match="must be a JSON object, got list"):
        decode_prediction(b"[1]")


def test_deep_context_is_refused() -> None:
    deep: object = 1
    for _ in range(40):
        deep = {"a": deep}
    with pytest.raises(InvalidEvent, match="nested deeper"):
        prediction_from_dict(prediction(context=deep))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"label": [1]}, "label: must be a number, string or bool"),
        ({"datasets": "x"}, "datasets: must be a list"),
        ({"datasets": ["ok", "bad name"]}, "datasets[1]: must be"),
        ({"tag_id": None}, "tag_id: must be a UUID string, got null"),
        ({"tagged_at": "yesterday"}, "tagged_at: not an ISO-8601"),
        ({"source": 1}, "source: must be a string"),
    ],
)
def test_invalid_tags_say_what_is_wrong(change: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        tag_from_dict(tag("6f1c7f7e-8a43-4b6e-9d47-2f3f0b7b1a11", **change))
    assert message in str(info.value)


def test_label_and_datasets_are_optional() -> None:
    data = tag("6f1c7f7e-8a43-4b6e-9d47-2f3f0b7b1a11")
    del data["label"], data["datasets"], data["source"]
    t = tag_from_dict(data)
    assert (t.label, t.datasets, t.source) == (None, (), "")
