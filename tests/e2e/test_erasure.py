"""Erasure on the real stack with two workers: an entity and an event are forgotten in every
place their data lived, and nothing modelview reads brings it back."""

from __future__ import annotations

import asyncio
import io
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from app.client import HttpClient
from app.domain.codec import format_time
from app.domain.datasets import in_holdout
from app.log.segment_store import segment_store
from app.log.segments import decode
from app.models.adapters import Adapters
from app.models.training import version_manifest
from app.settings import Settings
from app.stack.services import Stack
from app.topics import LINEAGE, PREDICTIONS, TAGS
from tests import factories
from tests.coldlog import kafka_records, publish
from tests.e2e.test_serving import cli
from tests.services import WorkerProcess, member_settings, run_cli, wait_cluster_ready
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e
HOLDOUT = 0.3
SECRET = 7_777.0  # a feature value only the erased events have


async def _erased_lineage(traced: Callable[[], Any]) -> bool:
    found = await traced()
    return bool(found["erased"]) and all(s["label"] is None for s in found["snapshots"])


def _events(rng: random.Random) -> tuple[list[tuple[str, bytes, bytes]], dict[str, list[str]]]:
    """60 labeled events; "alice" has 3 fitted and 2 held-out ones, "bob" 3 of any kind;
    only alice's and bob's first have the distance SECRET."""
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
    owners: dict[str, list[str]] = {"alice": [], "bob": [], "others": []}
    want = {"alice": {False: 3, True: 2}}
    records: list[tuple[str, bytes, bytes]] = []
    i = 0
    while len(records) < 120:
        event_id = str(factories.prediction()["event_id"])
        held = in_holdout(event_id, HOLDOUT)
        if want["alice"][held] > 0:
            entity, want["alice"][held] = "alice", want["alice"][held] - 1
        elif len(owners["bob"]) < 3:
            entity = "bob"
        else:
            entity = f"e{i}"
        # What is to be erased: alice's events and bob's first.
        secret = entity == "alice" or (entity == "bob" and not owners["bob"])
        event = factories.prediction(
            event_id=event_id,
            model="delay",
            model_version="legacy",
            entity_id=entity,
            occurred_at=format_time(start + timedelta(minutes=20 * i)),
            features={"distance": SECRET if secret else 100.0 + i, "carrier": "UA"},
            prediction={"value": rng.uniform(10, 40)},
        )
        tag = factories.tag(event_id, label=rng.uniform(10, 40), datasets=["flights"])
        records += [
            (PREDICTIONS, event_id.encode(), orjson.dumps(event)),
            (TAGS, event_id.encode(), orjson.dumps(tag)),
        ]
        owners[entity if entity in owners else "others"].append(event_id)
        i += 1
    return records, owners


async def test_forgetting_reaches_views_cold_segments_snapshots_validations_and_models(
    stack: Settings, worker: Callable[..., WorkerProcess]
) -> None:
    fast = stack.with_(flush_seconds=1.0, erasure_seconds=1.0)
    members = [worker(s, alone=False) for s in member_settings(fast, 2)]
    await asyncio.to_thread(wait_cluster_ready, members)
    records, owners = _events(random.Random(11))
    await publish(stack, records)
    alice, bob = owners["alice"], owners["bob"]
    erased = {*alice, bob[0]}
    url = members[0].url

    async def get(path: str, at: str = url) -> tuple[int, Any]:
        async with HttpClient(at) as http:
            return await http.get(path)

    async def folded() -> bool:
        status, body = await get("/v1/datasets/flights")
        return status == 200 and body["size"] == 60

    await wait_until(folded, within=60, what="60 examples folded")
    cli(stack, "train", "flights", "--model", "delay", "--holdout", str(HOLDOUT))
    cli(stack, "validate", "delay", "1")
    trained = await version_manifest(stack, "delay", 1)
    before = (await get("/v1/models/delay/metrics"))[1]

    answer = orjson.loads(
        cli(
            stack,
            "forget",
            "--entity",
            "alice",
            "--event",
            bob[0],
            "--reason",
            "GDPR art. 17 request #12",
            "--by",
            "dpo@example.com",
            "--url",
            url,
            "--wait",
            "120",
        )
    )
    assert answer["done"] is True
    assert answer["requested_by"] == "dpo@example.com" and answer["entities"] == ["alice"]
    views = answer["stages"]["views"]
    assert (views["erased"], views["not_seen_yet"]) == (6, 0)
    assert answer["stages"]["snapshots"]["rows_removed"] == 6
    fitted_gone = sum(not in_holdout(e, HOLDOUT) for e in erased)
    held_gone = 6 - fitted_gone
    assert answer["stages"]["validations"]["rows_removed"] == held_gone
    assert answer["stages"]["registry"]["versions_flagged"] == 1
    assert answer["stages"]["lineage"]["markers"] == 6
    # Both workers answer for it: the status is read from its owner.
    status, again = await get(f"/v1/erasures/{answer['erasure_id']}", members[1].url)
    assert status == 200 and again == answer

    # Views: the examples are gone and every aggregate is corrected to the count.
    for event_id in erased:
        for member in members:
            status, body = await get(f"/v1/predictions/{event_id}", member.url)
            assert status == 410, body
    status, kept = await get(f"/v1/predictions/{bob[1]}")
    assert status == 200 and kept["event"]["entity_id"] == "bob"
    dataset = (await get("/v1/datasets/flights"))[1]
    assert dataset["size"] == 54 and dataset["labeled"] == 54
    after = (await get("/v1/models/delay/metrics"))[1]
    assert before["versions"]["legacy"]["predictions"] == 60
    assert after["versions"]["legacy"]["predictions"] == 54

    # Cold segments: the erased records are redacted skeletons at the same offsets.
    found = 0
    async with segment_store(stack) as cold:
        for topic in (PREDICTIONS, TAGS):
            for p in range(stack.partitions):
                for segment in await cold.segments(topic, p):
                    for record in decode(topic, await cold.get(segment)):
                        assert record.value is not None
                        if record.key is not None and record.key.decode() in erased:
                            body = orjson.loads(record.value)
                            assert "entity_id" not in body and body.get("label") is None
                            assert str(SECRET) not in record.value.decode()
                            found += 1
                        else:
                            assert b"alice" not in record.value
    assert found == 12  # each erased event's prediction and tag, all flushed

    # Snapshot files, fold state and validation rows: none holds them.
    adapters = Adapters.real(stack)
    try:
        manifest, rows = await adapters.snapshots.load("flights", trained.snapshot.snapshot_id)
        assert not erased & {r.event_id for r in rows} and manifest.rows == 54
        assert len(manifest.erased[answer["erasure_id"]]) == 6
        state = await adapters.snapshots.state("flights", trained.snapshot.snapshot_id)
        assert state is not None
        assert not any(b"alice" in v for s in state.values() for v in s.values())
        events = await adapters.reports.events("delay", "1")
        assert events is not None
        validated = set(pq.read_table(io.BytesIO(events)).column("event_id").to_pylist())
        assert validated and not erased & validated
    finally:
        await adapters.close()

    # Lineage still says which snapshot used an erased event, without its label.
    async def traced() -> dict[str, Any]:
        status, found = await get(f"/v1/predictions/{alice[0]}/lineage")
        assert status == 200, found
        return found  # type: ignore[no-any-return]

    await wait_until(lambda: _erased_lineage(traced), within=30, what="lineage forgets")
    found = await traced()
    assert [s["snapshot_id"] for s in found["snapshots"]] == [trained.snapshot.snapshot_id]
    assert all(s["label"] is None for s in found["snapshots"])
    async with segment_store(stack) as cold:
        named = 0
        for p in await cold.partitions(LINEAGE):
            for segment in await cold.segments(LINEAGE, p):
                for record in decode(LINEAGE, await cold.get(segment)):
                    body = orjson.loads(record.value or b"{}")
                    if body.get("event_id") in erased:
                        named += 1
                        assert body["label"] is None and body.get("prediction") is None, body
    assert named >= 12  # under the event's key and under its tag's, at least

    # The registry flags the version, with how many of its fitted rows went.
    async def flagged() -> dict[str, Any] | None:
        versions = (await get("/v1/models/delay"))[1]["versions"]
        version = next(v for v in versions if v["version"] == "1")
        return version.get("erased")  # type: ignore[no-any-return]

    await wait_until(flagged, within=30, what="version 1 flagged")
    assert await flagged() == {
        "rows": 6,
        "fitted": fitted_gone,
        "erasures": {answer["erasure_id"]: {"rows": 6, "fitted": fitted_gone}},
    }

    # Nothing brings it back: a rebuild of the views from the log equals the live views...
    assert "views equal" in cli(stack, "rebuild")
    # ...a snapshot as of the offsets from before the erasure has none of the rows...
    as_of = orjson.dumps(trained.snapshot.to_dict()["as_of"]).decode()
    cli(stack, "train", "flights", "--model", "delay", "--holdout", str(HOLDOUT), "--as-of", as_of)
    second = await version_manifest(stack, "delay", 2)
    assert second.snapshot.rows == 54
    # ...and a version retrained without them is fitted on the same offsets minus them.
    out = cli(stack, "models", "retrain-without", "delay", "1")
    assert "version 3" in out and "fresh weights" in out
    third = await version_manifest(stack, "delay", 3)
    assert third.snapshot.as_of == second.snapshot.as_of
    assert third.train_rows == trained.train_rows - fitted_gone
    assert not third.warm_start

    # ...nor does a broker that lost its log and got it back from S3.
    for member in members:
        assert member.stop() == 0  # a clean stop flushes everything
    assert run_cli(stack, "stack", "down").returncode == 0
    Stack(stack).forget_broker_log()
    up = run_cli(stack, "stack", "up")
    assert up.returncode == 0 and "restored" in up.stdout, up.stderr
    logged = await kafka_records(stack, [PREDICTIONS, TAGS])
    assert len(logged) == 120
    assert not [v for _, v, _ in logged.values() if b"alice" in v or str(SECRET).encode() in v]
    assert sum(b'"erased":true' in v for _, v, _ in logged.values()) == 6
    again = worker(fast)
    again.wait_caught_up()
    assert (await get(f"/v1/predictions/{alice[0]}", again.url))[0] == 410
    assert (await get("/v1/datasets/flights", again.url))[1]["size"] == 54
    assert (await get(f"/v1/erasures/{answer['erasure_id']}", again.url))[1] == answer
    assert "views equal" in cli(stack, "rebuild")
