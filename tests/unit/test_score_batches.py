"""Batch scoring's loop across batches: refusals in row order, exact counts, one capture a row."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.domain.scores import JobStatus
from app.learning.base import ConstantModel, Expected, Features
from app.models import scoring
from app.settings import Settings


class Echo(ConstantModel):
    """Reads the number `x` and predicts it; a negative `x` gives NaN."""

    def expects(self) -> Expected:
        return Expected(frozenset({"x"}))

    def predict(self, batch: Sequence[Features]) -> list[Any]:
        return [math.nan if row["x"] < 0 else float(row["x"]) for row in batch]  # type: ignore[operator]

    def predict_table(self, table: pa.Table) -> list[Any]:
        return self.predict(table.to_pylist())  # not the constant's


class Publisher:
    """Holds what a job sends, acknowledged at once (the loop, not the broker, is tested)."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []

    async def queue_keyed(self, topic: str, keys: pa.Array, values: pa.Array) -> Any:
        self.sent += zip(keys.to_pylist(), values.to_pylist(), strict=True)
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def run_job(
    model: Any,
    instances: list[tuple[str, Any]],
    refused: dict[int, str],
    table: pa.Table | None = None,
) -> tuple[JobStatus, dict[str, Any], Publisher]:
    """A job's scoring loop over `instances`, or over `table`'s columns (with the keys of
    `instances`): its status, its results and what it sent."""
    status = JobStatus("m", "1", "job", "parquet:f", "running", "2026-12-03T00:00:00Z")
    publisher = Publisher()
    keys = [key for key, _ in instances]
    rows = [features for _, features in instances] if table is None else None
    results = await scoring._score_all(
        Settings(),
        model,
        status,
        scoring.Source(keys, rows, refused, table),
        publisher,  # type: ignore[arg-type]
        None,
    )
    return status, pq.read_table(pa.py_buffer(results)).to_pydict(), publisher


async def test_refusals_are_listed_in_row_order_across_a_batch_edge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Four rows a batch: row 3, the last of batch 0, is refused only once it is predicted
    # (NaN), row 4, the first of batch 1, when batch 1 is checked, which the pipeline does
    # before batch 0 is captured.
    monkeypatch.setattr(scoring, "BATCH", 4)
    xs: list[Any] = [0, 1, 2, -1, "far", 5, -6, 7, 8, 9]
    instances = [(f"k{n}", {"x": x}) for n, x in enumerate(xs)]
    status, out, publisher = await run_job(
        Echo(0.0, "regression", 1), instances, {9: "features.x: must be finite"}
    )
    assert [(b["row"], b["key"]) for b in status.bad_rows] == [
        (3, "k3"),
        (4, "k4"),
        (6, "k6"),
        (9, "k9"),
    ]
    assert status.bad == 4 and status.scored == 6
    assert out["row"] == [0, 1, 2, 5, 7, 8] and out["prediction"] == [
        0.0,
        1.0,
        2.0,
        5.0,
        7.0,
        8.0,
    ]
    assert [orjson.loads(v)["context"]["modelview.row"] for _, v in publisher.sent] == out["row"]


class Imputing(Echo):
    """Echo, with a missing `x` imputed as 0; it reads `y` too (a row missing every feature
    is refused, not imputed)."""

    def expects(self) -> Expected:
        return Expected(frozenset({"x", "y"}))

    def predict(self, batch: Sequence[Features]) -> list[Any]:
        return [float(row.get("x") or 0) for row in batch]  # type: ignore[arg-type]


async def test_a_files_columns_checked_by_type_give_the_jobs_rows_checked_one_by_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The missing features of a Parquet file's rows, found from its columns, are imputed
    and named in the same rows' events as when each row is checked, across batch edges."""
    monkeypatch.setattr(scoring, "BATCH", 4)
    xs = [0.0, 1.0, None, 3.0, None, None, 6.0, 7.0, None]
    table = pa.table({"x": xs, "y": [1] * len(xs)})
    instances = [(f"k{n}", row) for n, row in enumerate(table.to_pylist())]
    runs = []
    for columns in (None, table):
        status, out, publisher = await run_job(
            Imputing(0.0, "regression", 1), instances, {}, columns
        )
        runs.append((status.scored, out["row"], publisher.sent))
    assert runs[0] == runs[1]
    imputed = [orjson.loads(v)["context"].get("modelview.imputed") for _, v in runs[1][2]]
    assert imputed == [None, None, ["x"], None, ["x"], ["x"], None, None, ["x"]]
