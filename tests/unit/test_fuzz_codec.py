"""Property-based fuzzing of the codec and the fold: whatever arrives on a topic is either an
event or refused with a reason, never an exception the worker would retry for ever."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain.batch import SourceRecord, fold_batch
from app.domain.codec import InvalidEvent, decode_prediction, decode_tag
from app.topics import PREDICTIONS, TAGS
from tests.factories import prediction, tag

FUZZ = settings(
    max_examples=500,
    derandomize=True,  # the same examples on every run: CI never meets a new one by chance
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    deadline=None,
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=40),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


def dumps(value: Any) -> bytes:
    # The standard library writes what orjson will not: NaN, Infinity, integers past 64 bits.
    return json.dumps(value).encode()


def decodes_or_refuses(raw: bytes) -> None:
    for decode in (decode_prediction, decode_tag):
        try:
            decode(raw)
        except InvalidEvent as exc:
            assert str(exc)  # a reason, always


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes(raw: bytes) -> None:
    decodes_or_refuses(raw)


@FUZZ
@given(json_values)
def test_any_json(value: Any) -> None:
    decodes_or_refuses(dumps(value))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid prediction or tag with one field removed, replaced or added."""
    event: dict[str, Any] = draw(st.sampled_from([prediction(), tag(prediction()["event_id"])]))
    event = dict(event)
    field = draw(st.sampled_from([*event, "extra", "features", "prediction", "context"]))
    action = draw(st.sampled_from(["drop", "replace", "nest"]))
    if action == "drop":
        event.pop(field, None)
    elif action == "replace":
        event[field] = draw(json_values)
    else:  # deep nesting where objects are allowed
        depth = draw(st.integers(min_value=1, max_value=60))
        nested: Any = 1
        for _ in range(depth):
            nested = {"x": nested}
        event[field] = nested
    return dumps(event)


@FUZZ
@given(mutated())
def test_one_field_wrong(raw: bytes) -> None:
    decodes_or_refuses(raw)


@FUZZ
@given(st.lists(st.tuples(st.booleans(), st.one_of(mutated(), st.binary(max_size=80))), max_size=8))
def test_the_fold_dead_letters_what_it_cannot_read_and_never_raises(
    records: list[tuple[bool, bytes]],
) -> None:
    source = [
        SourceRecord(
            "prediction" if is_prediction else "tag",
            PREDICTIONS if is_prediction else TAGS,
            0,
            offset,
            b"key",
            raw,
        )
        for offset, (is_prediction, raw) in enumerate(records)
    ]
    result = fold_batch(lambda key: None, 0, {}, source, 4096)
    assert result.applied + result.duplicates + len(result.dead_letters) == len(records)
    assert all(letter.reason for letter in result.dead_letters)
