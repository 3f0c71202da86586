"""Local table state the log no longer backs is discarded, never trusted: after kill -9, after a broker reset."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from app.client import HttpClient, KafkaPublisher
from app.log.replay import log_end
from app.record_batch import CODECS
from app.settings import Settings
from app.stack.services import Stack
from app.topics import PREDICTIONS, TAGS
from app.views.changelog import changelog_topic
from tests.e2e.workload import MODELS, build
from tests.reference import assert_close
from tests.services import WorkerProcess
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


async def publish_all(settings: Settings, n: int, seed: int) -> tuple[int, Any]:
    workload = build(n_predictions=n, seed=seed)
    valid = [i for i in workload.items if i.event is not None]
    async with KafkaPublisher(settings.bootstrap_servers) as kafka:
        await send_one_by_one(kafka, valid)
    return len(valid), workload.reference


async def send_one_by_one(kafka: KafkaPublisher, items: list[Any]) -> None:
    """Each workload item to its topic, in order, one record at a time."""
    for item in items:
        send = kafka.predictions if item.kind == "prediction" else kafka.tags
        await send([item.event])


async def processed(process: WorkerProcess, total: int) -> None:
    def done() -> bool:
        counts: dict[str, int] = (process.health() or {}).get("ingest", {})  # type: ignore[assignment]
        return counts.get("applied", 0) + counts.get("duplicates", 0) >= total

    await wait_until(done, within=120, what=f"{total} records processed")


async def check_views(process: WorkerProcess, reference: Any) -> None:
    async with HttpClient(process.url) as http:
        for model in MODELS:
            status, body = await http.get(f"/v1/models/{model}/metrics")
            assert status == 200, body
            assert_close(body["versions"], reference.metrics(model), model)
        for name, want in reference.datasets().items():
            status, body = await http.get(f"/v1/datasets/{name}")
            assert_close(body, want, name)


def changelog_codecs(settings: Settings) -> Counter[int]:
    """How many of the views' changelog batches on the broker's disk use each codec: a
    segment file holds the record batches as they were produced (KIP-98 layout)."""
    codecs: Counter[int] = Counter()
    for segment in settings.data_dir.rglob(f"{changelog_topic(settings)}-*/*.log"):
        data, at = segment.read_bytes(), 0
        while at + 23 <= len(data):
            length = int.from_bytes(data[at + 8 : at + 12], "big")
            if not length:
                break  # the preallocated rest of the segment
            attributes = int.from_bytes(data[at + 21 : at + 23], "big")
            codecs[attributes & 0x7] += 1
            at += 12 + length
    return codecs


async def wal_records(settings: Settings) -> Counter[str]:
    """The views' changelog's wal records, by kind: "pending" (a batch's undo, written
    before its keys) and "done" (its cursor, after them)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    kinds: Counter[str] = Counter()
    try:
        topic = changelog_topic(settings)
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        left = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + 60
        while left:
            assert time.monotonic() < deadline, f"changelog not read to its end: {left}"
            for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                if records[-1].offset + 1 >= ends[tp]:
                    left.discard(tp)
                for r in records:
                    if r.key is not None and r.key.startswith(b"wal/") and r.value is not None:
                        kinds["pending" if orjson.loads(r.value)["pending"] else "done"] += 1
    finally:
        await consumer.stop()
    return kinds


async def group_behind(settings: Settings) -> dict[str, int]:
    """Per topic-partition, how far the group's committed offset is from the log's end."""
    ends = await log_end(settings)
    tps = [TopicPartition(t, p) for t, parts in ends.items() for p in parts]
    held = await committed(settings, tps)
    behind = {tp: ends[tp.topic][tp.partition] - (held[tp] or 0) for tp in tps}
    return {f"{tp.topic}[{tp.partition}]": n for tp, n in behind.items() if n > 0}


async def committed(
    settings: Settings, tps: list[TopicPartition]
) -> dict[TopicPartition, int | None]:
    """The group's committed offset of each of `tps`, read as the worker reads it
    (OffsetFetch through a group consumer that joins nothing): aiokafka's admin client
    cannot decode the local broker's answer."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, group_id=settings.app_id
    )
    await consumer.start()
    try:
        return {tp: await consumer.committed(tp) for tp in tps}
    finally:
        await consumer.stop()


async def wait_committed_to_the_end(settings: Settings) -> None:
    """Until the group's committed offsets reach the log's end; says how far behind if not."""
    behind: dict[str, int] = {}

    async def committed_to_the_end() -> bool:
        behind.clear()
        behind.update(await group_behind(settings))
        return not behind

    try:
        await wait_until(committed_to_the_end, within=30, what="group offsets at the log end")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; records behind: {behind}") from None


async def paced_stream(
    settings: Settings, items: list[Any], until: asyncio.Event, chunk: int = 25
) -> None:
    """The items to their topics in order, `chunk` at a time every 0.2 s: a stream, not
    one burst, so that it flows while a test kills or stops workers. Its last chunk waits
    for `until`: however slow the workers' restarts, the stream still flows when the test
    has done its worst (it used to run dry first on a busy machine)."""
    async with KafkaPublisher(settings.bootstrap_servers) as kafka:
        for start in range(0, len(items), chunk):
            if start + chunk >= len(items):
                await until.wait()
            await send_one_by_one(kafka, items[start : start + chunk])
            await asyncio.sleep(0.2)  # the pace; nothing waits on this


async def test_kill_9_then_restart_rebuilds_from_the_changelog(
    stack: Settings, worker: Callable[..., WorkerProcess]
) -> None:
    process = worker()
    total, reference = await publish_all(stack, 600, seed=3)
    await processed(process, total)
    process.kill()
    if stack.broker == "kafka":  # compressed there; the restart below reads them back
        assert CODECS["zstd"] in changelog_codecs(stack), changelog_codecs(stack)
        # Each batch's writes went in one record batch, whole or not at all: no undo.
        kinds = await wal_records(stack)
        assert kinds["done"] > 0 and kinds["pending"] == 0, kinds
    again = worker()
    assert "did not stop cleanly" in again.log_path.read_text()
    # Records whose table writes had not reached the changelog were not committed either:
    # they are folded again, and skipped where they had been.
    again.wait_caught_up()
    await check_views(again, reference)


async def test_group_offsets_past_the_log_end_are_read_from_its_start(
    stack: Settings, worker: Callable[..., WorkerProcess]
) -> None:
    """What a worker on a lost log can leave behind: the group's offsets past the end of the
    log restored from S3. Apache Kafka resets such a fetch; Tansu answered nothing, for ever."""
    workload = build(n_predictions=300, seed=5)
    valid = [i for i in workload.items if i.event is not None]
    half = len(valid) // 2
    async with KafkaPublisher(stack.bootstrap_servers) as kafka:
        await send_one_by_one(kafka, valid[:half])
    # Committed before any worker joins: Tansu refuses a commit from outside a group that
    # still lists a member, even one that left cleanly.
    ends = await log_end(stack, (PREDICTIONS, TAGS))
    past = {
        TopicPartition(topic, p): end + 1_000
        for topic, parts in ends.items()
        for p, end in parts.items()
    }
    await commit(stack, past)

    again = worker()
    async with KafkaPublisher(stack.bootstrap_servers) as kafka:
        await send_one_by_one(kafka, valid[half:])
    again.wait_caught_up()
    await check_views(again, workload.reference)  # nothing lost, nothing counted twice
    assert "is past the log's end" in again.log_path.read_text()
    # The views' cursor replaces the offsets past the end: the group holds the log's end.
    ends = await log_end(stack, (PREDICTIONS, TAGS))
    want = {TopicPartition(t, p): end for t, parts in ends.items() for p, end in parts.items()}
    held: dict[TopicPartition, int | None] = {}

    async def committed_at_the_end() -> bool:
        held.update(await committed(stack, list(want)))
        return held == want

    try:
        await wait_until(committed_at_the_end, within=30, what="group offsets at the log's end")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: want {want}, the group holds {held}") from None


async def commit(settings: Settings, offsets: dict[TopicPartition, int]) -> None:
    """Commit for the workers' group from outside it (the group is empty)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=settings.app_id,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


async def test_three_kills_at_random_moments_lose_nothing_and_count_nothing_twice(
    stack: Settings, worker: Callable[..., WorkerProcess]
) -> None:
    """kill -9 three times while events flow, each after a random number of records."""
    rng = random.Random(29)
    workload = build(n_predictions=1500, seed=29)
    valid = [i for i in workload.items if i.event is not None]
    process = await asyncio.to_thread(worker)
    killed = asyncio.Event()
    publishing = asyncio.create_task(paced_stream(stack, valid, until=killed))
    for _ in range(3):
        # The moment: some records into this worker's life, mid-batch or between batches.
        await processed(process, rng.randint(50, 400))
        process.kill()
        process = await asyncio.to_thread(worker)
        assert "did not stop cleanly" in process.log_path.read_text()
    killed.set()
    await publishing
    await asyncio.to_thread(process.wait_caught_up)
    await check_views(process, workload.reference)
    # Offsets keep up too: after restarts Faust alone advanced them one a commit, so every
    # restart re-read nearly all since the first (app/views/compat.py).
    await wait_committed_to_the_end(stack)


async def test_broker_that_lost_its_log_gets_it_back_and_refolds(
    stack: Settings, worker: Callable[..., WorkerProcess]
) -> None:
    process = worker()
    total, reference = await publish_all(stack, 300, seed=4)
    await processed(process, total)
    assert process.stop() == 0  # a clean stop flushes every record to S3
    local = Stack(stack)
    local.forget_broker_log()
    assert local.up() == total  # the broker kept nothing; S3 gives it all back
    again = worker()
    assert "the broker has lost the log" in again.log_path.read_text()
    again.wait_caught_up()
    await check_views(again, reference)


async def test_sigterm_while_batches_are_in_flight_stops_cleanly_and_loses_nothing(
    stack: Settings, worker: Callable[..., WorkerProcess]
) -> None:
    rng = random.Random(31)
    workload = build(n_predictions=1200, seed=31)
    valid = [i for i in workload.items if i.event is not None]
    process = await asyncio.to_thread(worker)
    stopped = asyncio.Event()
    publishing = asyncio.create_task(paced_stream(stack, valid, until=stopped))
    await processed(process, rng.randint(200, 600))
    assert await asyncio.to_thread(process.stop) == 0
    said = process.log_path.read_text()
    # Faust's log lines end with a space.
    steps = [ln.split("stopping: ", 1)[1].strip() for ln in said.splitlines() if "stopping: " in ln]
    assert steps[0].startswith("refuse new predictions") and steps[-3:] == [
        "write the views' last changes to the changelog",  # dead letters first
        "stop the changelog writer",
        "stop the dead-letter producer",
    ], steps
    assert "not a clean stop" not in said
    again = await asyncio.to_thread(worker)
    stopped.set()
    assert "did not stop cleanly" not in again.log_path.read_text()  # it trusts its tables
    await publishing
    await asyncio.to_thread(again.wait_caught_up)
    await check_views(again, workload.reference)
    await wait_committed_to_the_end(stack)
