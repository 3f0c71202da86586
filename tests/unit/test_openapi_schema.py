"""The OpenAPI document describes the events the codec accepts: same fields, same limits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from app.domain.codec import (
    MAX_DATASETS,
    PREDICTION_FIELDS,
    TAG_FIELDS,
    InvalidEvent,
    prediction_from_dict,
    tag_from_dict,
)
from app.web.openapi import document
from tests.factories import prediction, tag

EVENTS: list[tuple[str, set[str], dict[str, Any], Callable[[dict[str, Any]], object]]] = [
    # `erased: false` is what every unredacted record means; the example names it too.
    ("PredictionEvent", PREDICTION_FIELDS, prediction() | {"erased": False}, prediction_from_dict),
    ("TagEvent", TAG_FIELDS, tag("9b2f6c1e-4d3a-4f7e-9a51-2c8d0e6f7a10"), tag_from_dict),
]


@pytest.mark.parametrize(("name", "fields", "example", "decode"), EVENTS)
def test_described_fields_are_the_codecs_and_so_are_the_required_ones(
    name: str, fields: set[str], example: dict[str, Any], decode: Callable[..., object]
) -> None:
    described = document()["components"]["schemas"][name]
    assert set(described["properties"]) == fields
    assert set(example) == fields, "the example should carry every field"
    for field in fields:
        without = {k: v for k, v in example.items() if k != field}
        if field in described["required"]:
            with pytest.raises(InvalidEvent, match=field):
                decode(without)
        else:
            decode(without)


def test_described_dataset_limit_is_the_codecs() -> None:
    tag_event = document()["components"]["schemas"]["TagEvent"]
    assert tag_event["properties"]["datasets"]["maxItems"] == MAX_DATASETS
