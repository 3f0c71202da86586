"""Batch scoring checks a Parquet file's features a column at a time, as the codec would."""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa
import pytest

from app.domain.codec import InvalidEvent, check_features
from app.models.scoring import column_problems


def codec_verdicts(rows: list[dict[str, Any]]) -> dict[int, str]:
    out = {}
    for n, row in enumerate(rows):
        try:
            check_features(row)
        except InvalidEvent as exc:
            out[n] = str(exc)
    return out


def test_the_column_check_refuses_the_rows_the_codec_refuses_and_no_others() -> None:
    table = pa.table(
        {
            "distance": pa.array([1.0, math.nan, None, math.inf, 5.0]),
            "hour": pa.array([1, 2, None, 4, 5]),
            "carrier": pa.array(["UA", None, "DL", "AA", "B6"]).dictionary_encode(),
            "late": pa.array([True, False, None, True, False]),
            "embedding": pa.array([[1.0, 2.0], [], None, [3.0, -math.inf], [None, 1.0]]),
        }
    )
    refused = column_problems(table)
    assert refused == {
        1: "features.distance: must be finite",
        3: "features.distance: must be finite",
        4: "features.embedding: lists hold numbers only, got null",
    }
    assert sorted(refused) == sorted(codec_verdicts(table.to_pylist()))


@pytest.mark.parametrize(
    ("column", "reason"),
    [
        (pa.array([{"a": 1}, None]), "features.x: must be a number, string, bool, null or list"),
        (pa.array([["a"], []]), "features.x: lists hold numbers only, got string"),
        (pa.array([b"raw", None]), "features.x: must be a number, string, bool, null or list"),
    ],
)
def test_a_column_of_a_type_no_feature_takes_refuses_its_rows_with_a_value(
    column: pa.Array, reason: str
) -> None:
    refused = column_problems(pa.table({"x": column}))
    assert list(refused) == [0] and refused[0].startswith(reason)
    assert list(codec_verdicts(pa.table({"x": column}).to_pylist())) == [0]


def test_too_many_columns_refuse_every_row() -> None:
    table = pa.table({f"f{i}": [1, 2] for i in range(1025)})
    assert set(column_problems(table)) == {0, 1}
