"""Batch scoring on the real stack: results in S3 that DuckDB reads, each score captured once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.client import HttpClient
from app.s3 import s3_client
from app.settings import Settings
from app.topics import PREDICTIONS
from tests.coldlog import kafka_records, publish
from tests.e2e.test_training import labeled, records
from tests.services import WorkerProcess, run_cli
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


def cli(settings: Settings, *args: str) -> str:
    done = run_cli(settings, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def captured(settings: Settings, job: str) -> list[dict]:
    logged = await kafka_records(settings, [PREDICTIONS])
    events = [orjson.loads(value) for _, value, _ in logged.values() if value]
    return [e for e in events if e.get("context", {}).get("modelview.job") == job]


async def test_a_job_scores_every_row_captures_each_once_and_reports_the_bad_ones(
    stack: Settings, worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    process = worker()
    await publish(stack, records(*labeled(120, 0)))
    cli(stack, "train", "flights-train", "--trainer", "linear")
    nothing = run_cli(stack, "score", "flights-train", "--dataset", "flights-train")
    assert nothing.returncode == 2 and "has no champion: give --version" in nothing.stderr
    cli(stack, "models", "promote", "flights-train", "1")

    rows = [
        {"id": f"f{i}", "distance": 100 + i, "carrier": "UA" if i % 2 else "DL"} for i in range(50)
    ]
    rows[7]["distance"] = "far"  # the wrong type: reported, skipped
    del rows[9]["distance"]  # missing: imputed, and said so
    file = tmp_path / "flights.parquet"
    pq.write_table(pa.Table.from_pylist([{k: str(v) for k, v in r.items()} for r in rows]), file)
    # Every column a string: the distances too. Each row is then refused, never the job.
    out = cli(stack, "score", "flights-train", "--parquet", str(file), "--job", "strings")
    assert "scored 1 of 50 rows" in out and "49 bad" in out, out  # row 9: distance missing
    assert "row 0 (f0): distance: expected a number, got str" in out, out

    file = tmp_path / "mixed.parquet"
    pq.write_table(
        pa.Table.from_pylist(
            [
                {**r, "distance": r.get("distance") if r.get("distance") != "far" else None}
                for r in rows
            ]
        ),
        file,
    )
    out = cli(stack, "score", "flights-train", "--parquet", str(file))
    assert "job file-mixed: scored 50 of 50 rows" in out and "0 bad" in out, out
    location = "scores/flights-train/1/file-mixed/scores.parquet"
    assert f"s3://{stack.s3_bucket}/{location}" in out

    # A number that is not finite: found by its column, reported by its row.
    file = tmp_path / "nan.parquet"
    pq.write_table(
        pa.table(
            {"id": ["a", "b", "c"], "distance": [1.0, float("nan"), 3.0], "carrier": ["UA"] * 3}
        ),
        file,
    )
    out = cli(stack, "score", "flights-train", "--parquet", str(file))
    assert "scored 2 of 3 rows" in out and "row 1 (b): features.distance: must be finite" in out

    # The results, as a table DuckDB reads.
    async with s3_client(stack) as client:
        response = await client.get_object(Bucket=stack.s3_bucket, Key=location)
        async with response["Body"] as body:
            (tmp_path / "scores.parquet").write_bytes(await body.read())
    table = duckdb.sql(
        f"select key, prediction from read_parquet('{tmp_path / 'scores.parquet'}') order by row"
    ).fetchall()
    assert [k for k, _ in table] == [r["id"] for r in rows]
    assert all(isinstance(p, float) for _, p in table)

    async def all_captured() -> bool:
        return len(await captured(stack, "file-mixed")) == 50

    await wait_until(all_captured, within=30, what="the 50 scores captured")
    events = await captured(stack, "file-mixed")
    imputed = [e for e in events if "modelview.imputed" in e["context"]]
    assert sorted(e["context"]["modelview.row"] for e in imputed) == [7, 9]

    # The same job again: done already, nothing captured twice.
    again = cli(stack, "score", "flights-train", "--parquet", str(file))
    assert "already scored (nothing captured again)" in again, again
    ids = sorted(e["event_id"] for e in await captured(stack, "file-mixed"))
    assert ids == sorted(e["event_id"] for e in events) and len(set(ids)) == 50

    # A dataset, scored by its examples; and the jobs' status over HTTP.
    out = cli(stack, "score", "flights-train", "--dataset", "flights-train", "--version", "1")
    assert "job dataset-flights-train: scored 120 of 120 rows" in out, out
    async with HttpClient(process.url) as http:
        status, body = await http.get("/v1/models/flights-train/scores/file-mixed")
        assert status == 200, body
        assert (body["state"], body["scored"], body["version"]) == ("done", 50, "1")
        assert body["url"] == f"s3://{stack.s3_bucket}/{location}"
        status, body = await http.get("/v1/models/flights-train/scores/strings")
        assert body["bad"] == 49 and body["bad_rows"][0]["row"] == 0
        status, body = await http.get("/v1/models/flights-train/scores/nope")
        assert status == 404 and body["error"] == "no such scoring job"
