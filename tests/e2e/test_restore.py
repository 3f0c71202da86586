"""A broker that loses its log (the local one keeps it in memory) gets it back from S3."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.client import HttpClient
from app.domain.batch import Agg, agg_key
from app.domain.stats import AggKey
from app.log import epoch
from app.log.rebuild import same
from app.settings import Settings
from app.stack.services import Stack
from app.topics import LOGGED, PREDICTIONS, TAGS
from app.views import viewcodec
from app.views.changelog import changelog_topic
from tests.coldlog import kafka_records, publish, s3_rows
from tests.e2e.workload import MODELS, build
from tests.reference import assert_close
from tests.services import (
    WorkerProcess,
    member_settings,
    run_cli,
    wait_cluster_caught_up,
    wait_cluster_ready,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


def as_records(items: list[Any]) -> list[tuple[str, bytes, bytes]]:
    return [(PREDICTIONS if i.kind == "prediction" else TAGS, i.key, i.raw) for i in items]


async def views(url: str) -> dict[str, Any]:
    async with HttpClient(url) as http:
        _, datasets = await http.get("/v1/datasets")
        out = {"datasets": datasets}
        for model in MODELS:
            # Two months of daily windows: wider than hourly ones may be (31 days).
            status, out[model] = await http.get(
                f"/v1/models/{model}/metrics?from=2026-11-01&to=2026-12-31&bucket=day"
            )
            assert status == 200 and out[model]["versions"], out[model]
        return out


async def wait_flushed(settings: Settings, process: WorkerProcess, records: int) -> None:
    async def done() -> bool:
        flush = (process.health() or {}).get("flush") or {}
        return flush.get("lag_records") == 0 and flush.get("records_written", 0) >= records  # type: ignore[union-attr,operator]

    await wait_until(done, within=90, what=f"{records} records flushed")


async def test_stack_down_and_up_loses_nothing_flushed(
    stack: Settings, worker: Callable[..., WorkerProcess]
) -> None:
    settings = stack.with_(flush_records=1_000, flush_seconds=0.5)
    workload = build(2_500, seed=11)
    first = worker(settings)
    sent = await publish(settings, as_records(workload.items))
    first.wait_caught_up()
    before = await views(first.url)
    assert first.stop() == 0  # a clean stop flushes everything
    logged = await kafka_records(settings, LOGGED)
    assert len(logged) == sent
    rows, _ = await s3_rows(settings)
    assert rows == logged

    assert run_cli(settings, "stack", "down").returncode == 0
    Stack(settings).forget_broker_log()  # Apache Kafka keeps its log on disk; Tansu never does
    up = run_cli(settings, "stack", "up")
    assert up.returncode == 0, up.stderr
    assert f"restored {sent} records" in up.stdout
    # Every record is back at its old offset, with its key, bytes and timestamp.
    assert await kafka_records(settings, LOGGED) == logged

    again = worker(settings)
    again.wait_caught_up()
    after = await views(again.url)
    # Folded again in another interleaving: equal, floats to within their last bits.
    assert same(after, before), (after, before)
    for dataset in after["datasets"]["datasets"]:
        assert_close(dataset, workload.reference.datasets()[dataset["name"]], dataset["name"])
    rebuilt = run_cli(settings, "rebuild")
    assert rebuilt.returncode == 0 and "views equal" in rebuilt.stdout, rebuilt.stdout


async def test_broker_killed_mid_stream_restores_all_but_the_unflushed_window(
    stack: Settings, worker: Callable[..., WorkerProcess]
) -> None:
    settings = stack.with_(flush_records=1_000, flush_seconds=1.0)
    workload = build(4_000, seed=12)
    records = as_records(workload.items)
    live = worker(settings)
    half = len(records) // 2
    await publish(settings, records[:half])
    await wait_flushed(settings, live, half)
    # More events stream in; the broker dies in the middle of them.
    for start in range(half, len(records) - 500, 500):
        await publish(settings, records[start : start + 500])
    local = Stack(settings)
    pid = local.broker.pid()
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)
    local.forget_broker_log()  # and its disk with it (Tansu's log is in memory anyway)

    # What the flusher had already read still reaches S3; then S3 is all there is. Read
    # means fetched, not only buffered: records the consumer fetched before the broker died
    # and hands over later count in its lag to the last high-water mark it saw, not in its
    # buffer (an empty buffer alone let 966 records reach S3 after the count below).
    def drained() -> bool:
        flush = (live.health() or {}).get("flush") or {}
        return flush.get("buffered_records") == 0 and flush.get("lag_records") == 0  # type: ignore[union-attr]

    await wait_until(drained, within=30, what="what the flusher fetched written")
    flushed, _ = await s3_rows(settings)
    published = len(records) - 500

    restored = local.up()
    assert restored == len(flushed)
    in_kafka = await kafka_records(settings, LOGGED)
    assert in_kafka == flushed  # every flushed record, at its old offset
    lost = published - len(flushed)
    print(
        f"\nbroker kill -9: {published} published, {len(flushed)} flushed and restored, {lost} lost (flush_seconds={settings.flush_seconds})"
    )

    # The running worker notices that its broker lost the log and stops; a restart rebuilds.
    await wait_until(
        lambda: live.process is not None and live.process.poll() is not None,
        within=60,
        what="worker to stop",
    )
    # Our check (exit 75) or Faust's own (its changelog offsets above the broker's) stops it.
    said = live.log_path.read_text()
    assert "the broker has lost the log" in said or "ConsistencyError" in said, live.log_tail()
    again = worker(settings)
    await publish(settings, records[-500:])
    again.wait_caught_up()
    rebuilt = run_cli(settings, "rebuild")
    assert rebuilt.returncode == 0 and "views equal" in rebuilt.stdout, rebuilt.stdout
    health = again.health() or {}
    ingest: dict[str, int] = health["ingest"]  # type: ignore[assignment]
    folded = sum(ingest.get(k, 0) for k in ("applied", "duplicates", "dead_letters"))
    assert folded == len(flushed) + 500


async def test_views_of_an_earlier_layout_are_folded_again_from_the_log(
    stack: Settings, worker: Callable[..., WorkerProcess]
) -> None:
    # A cluster of two, upgraded together: stopped, then started on the new layout.
    members = member_settings(stack, 2)
    workload = build(1_500, seed=13)
    first = [worker(s, alone=False) for s in members]
    await asyncio.to_thread(wait_cluster_ready, first)
    await publish(stack, as_records(workload.items))
    await asyncio.to_thread(wait_cluster_caught_up, first)
    before = await views(first[0].url)
    for member in first:
        assert member.stop() == 0  # its local tables stay, as after any clean stop

    # What a worker of layout 1 leaves behind: its marker, not this layout's, and views this
    # layout must not take for its own; here a model version's totals, far off.
    model = next(iter(MODELS))
    version = next(iter(before[model]["versions"]))
    key = agg_key(0, AggKey("model", model, version))
    older = f"{stack.app_id}-log-epoch"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics([epoch.marker_topic(stack)])
        await admin.create_topics([NewTopic(older, 1, 1)])
    finally:
        await admin.close()
    await publish(
        stack,
        [
            (
                changelog_topic(stack),
                key.encode(),
                viewcodec.encode(key, Agg({"predictions": 10**6}, None)),
            )
        ],
    )

    again = [worker(s, alone=False) for s in members]
    await asyncio.to_thread(wait_cluster_caught_up, again)
    for member in again:
        after = await views(member.url)
        assert same(after, before), (after, before)
    names = await epoch.topics(stack)
    assert epoch.marker_topic(stack) in names and older not in names
    logs = [m.log_path.read_text(errors="replace") for m in again]
    # One of them opened the new epoch, and said why; the other waited for it.
    assert sum("log epoch opened by this worker" in text for text in logs) == 1
    assert any("earlier layout" in text for text in logs)
