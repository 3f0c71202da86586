"""Batch scoring checks a Parquet file's features a column at a time, as the codec and the
model's own check would."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.domain.codec import InvalidEvent, check_features
from app.learning.base import Expected
from app.models.scoring import ScoringError, _instances, column_checks, column_problems
from app.settings import Settings


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


def test_the_types_of_columns_answer_as_each_rows_check_would() -> None:
    """Where every column is of a type its feature takes, the missing features found a
    column at a time are those `Expected.check_all` finds row by row."""
    expected = Expected(numbers=frozenset({"distance", "late"}), strings=frozenset({"carrier"}))
    tables = [
        pa.table(
            {
                "distance": [1.0, None, 3.0],
                "late": [True, None, False],
                "carrier": ["AA", None, "B6"],
            }
        ),
        pa.table({"distance": pa.array([1, 2, None], pa.int8()), "other": ["x", "y", "z"]}),
        pa.table(
            {"distance": [None, None, None], "late": [1, 2, 3], "carrier": [None, None, None]}
        ),
        pa.table(
            {"carrier": pa.array(["AA", None, "AA"]).dictionary_encode(), "late": [0.5, 1.5, None]}
        ),
        pa.concat_tables(
            [pa.table({"distance": [1.0, None]}), pa.table({"distance": [None, 4.0]})]
        ),
    ]
    for table in tables:
        found = column_checks(expected, table)
        problems, missing = expected.check_all(table.to_pylist())
        assert not problems and found == missing, table


@pytest.mark.parametrize(
    "column",
    [
        {"distance": ["1", None]},
        {"carrier": [1, 2]},
        {"carrier": [True, None]},
        {"distance": [[1.0], []]},
    ],
)
def test_a_column_of_a_type_its_feature_does_not_take_is_left_to_each_rows_check(
    column: dict[str, Any],
) -> None:
    expected = Expected(numbers=frozenset({"distance"}), strings=frozenset({"carrier"}))
    table = pa.table(column)
    assert column_checks(expected, table) is None
    assert expected.check_all(table.to_pylist())[0]  # a problem: the rows' check names it


async def test_a_file_with_two_columns_of_one_name_is_refused_whole(tmp_path: Path) -> None:
    file = tmp_path / "twice.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array([1]), pa.array([2])], ["x", "x"]), file)
    # Which of the two would a feature be? pyarrow's reader refuses the file, and so the job.
    with pytest.raises(ScoringError, match=r"cannot read .*twice.parquet: Multiple matches"):
        await _instances(Settings(), None, file)
