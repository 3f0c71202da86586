"""A worker process fed 20k+ messy events over Kafka and HTTP: views, dead letters, restart."""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from app import native
from app.client import HttpClient, KafkaPublisher
from app.settings import Settings
from app.topic_admin import key_partition
from app.topics import DEAD_LETTERS, PREDICTIONS, TAGS
from tests.e2e.workload import MODELS, Item, Workload, build
from tests.reference import assert_close
from tests.services import WorkerProcess, run_cli
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

TOPIC = {"prediction": PREDICTIONS, "tag": TAGS}


async def publish(
    workload: Workload, kafka: KafkaPublisher, http: HttpClient, rng: random.Random
) -> int:
    """Half over Kafka, half over HTTP, in timeline order chunk by chunk; returns records sent."""
    sent = 0
    items = workload.items
    for start in range(0, len(items), 400):
        chunk = items[start : start + 400]
        # Malformed records go over Kafka: HTTP refuses them before they reach the log.
        via_http = [i.event is not None and rng.random() < 0.5 for i in chunk]
        over_http = [i for i, h in zip(chunk, via_http, strict=True) if h]
        over_kafka = [i for i, h in zip(chunk, via_http, strict=True) if not h]
        await asyncio.gather(send_kafka(kafka, over_kafka), send_http(http, over_http))
        sent += len(chunk)
    return sent


async def send_kafka(kafka: KafkaPublisher, items: list[Item]) -> None:
    for kind in ("prediction", "tag"):
        await kafka.send_records(TOPIC[kind], [(i.key, i.raw) for i in items if i.kind == kind])


async def send_http(http: HttpClient, items: list[Item]) -> None:
    for kind, send in (("prediction", http.predictions), ("tag", http.tags)):
        batch = [i.event for i in items if i.kind == kind]
        if batch:
            await send(batch)  # type: ignore[arg-type]


async def views(http: HttpClient) -> dict[str, Any]:
    status, datasets = await http.get("/v1/datasets")
    assert status == 200
    out: dict[str, Any] = {"datasets": datasets}
    for model in MODELS:
        status, metrics = await http.get(f"/v1/models/{model}/metrics")
        assert status == 200, metrics
        out[model] = metrics
    return out


def check_against_reference(views: dict[str, Any], workload: Workload) -> None:
    """Datasets and both models' metrics, as read over HTTP, equal the reference fold."""
    expected = workload.reference.datasets()
    assert sorted(d["name"] for d in views["datasets"]["datasets"]) == sorted(expected)
    for dataset in views["datasets"]["datasets"]:
        assert_close(dataset, expected[dataset["name"]], dataset["name"])
    for model in MODELS:
        assert_close(views[model]["versions"], workload.reference.metrics(model), model)


async def partitions_of(settings: Settings, topic: str) -> list[int]:
    """Asked of the broker: a new consumer's metadata lists only what it was assigned."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [p["partition"] for p in described["partitions"]]
    assert partitions, f"{topic} has partitions"
    return partitions


async def dead_letters(settings: Settings, expected: int) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    letters: list[dict[str, Any]] = []
    misplaced: list[bytes] = []  # keys of letters outside their key's partition
    try:
        partitions = await partitions_of(settings, DEAD_LETTERS)
        consumer.assign([TopicPartition(DEAD_LETTERS, p) for p in partitions])
        await consumer.seek_to_beginning()

        async def got_all() -> bool:
            batches = await consumer.getmany(timeout_ms=200)
            for m in (m for ms in batches.values() for m in ms):
                letters.append(orjson.loads(m.value))
                if m.key is not None and m.partition != key_partition(m.key, len(partitions)):
                    misplaced.append(m.key)
            return len(letters) >= expected

        await wait_until(got_all, within=30, what=f"{expected} dead letters")
        # A keyed letter is where a producer's default partitioner puts its key.
        assert misplaced == []
    finally:
        await consumer.stop()
    return letters


async def test_messy_stream_folds_exactly_and_survives_restart(
    stack: Settings, worker: Callable[..., WorkerProcess]
) -> None:
    workload = build(n_predictions=11_000)
    assert len(workload.items) >= 20_000
    assert 0.2 < workload.tags_first / workload.tags_total < 0.3
    process = worker()
    rng = random.Random(1)
    async with (
        KafkaPublisher(stack.bootstrap_servers, validate=False) as kafka,
        HttpClient(process.url) as http,
    ):
        # HTTP refuses bad input outright, with per-item reasons, and publishes nothing of that batch.
        good = next(
            i.event for i in workload.items if i.event is not None and i.kind == "prediction"
        )
        status, body = await http.request("POST", "/v1/predictions", [good, {"schema_version": 1}])
        assert (
            status == 400
            and body["details"][0]["index"] == 1
            and "event_id: required" in body["details"][0]["error"]
        )

        sent = await publish(workload, kafka, http, rng)

        async def all_processed() -> bool:
            health = process.health() or {}
            counts: dict[str, int] = health.get("ingest", {})  # type: ignore[assignment]
            return (
                counts.get("applied", 0)
                + counts.get("duplicates", 0)
                + counts.get("dead_letters", 0)
                >= sent
            )

        await wait_until(all_processed, within=240, what="every record processed")
        # Folded by the compiled modules wherever setup built them (`app.native`): the
        # reference below checks what they stored.
        built = native.unusable() is None
        assert ((process.health() or {}).get("native") or {}).get("compiled") is built
        live = await views(http)
        check_against_reference(live, workload)

        # Single events: joined with their latest tag, or waiting for a prediction that never came.
        ref = workload.reference
        for event_id in rng.sample(sorted(ref.predictions), 200):
            status, body = await http.get(f"/v1/predictions/{event_id}")
            assert status == 200
            assert body["event"]["event_id"] == event_id
            tag = ref.tags.get(event_id)
            assert (body["latest_tag"] or {}).get("tag_id") == (tag or {}).get("tag_id")
        status, body = await http.get("/v1/predictions/00000000-0000-4000-8000-000000000000")
        assert status == 404 and body["error"]

        malformed = workload.malformed
        letters = await dead_letters(stack, len(malformed))
        assert len(letters) == len(malformed)
        by_raw = {base64.b64decode(d["raw_base64"]): d for d in letters}
        for item in malformed:
            letter = by_raw[item.raw]
            assert item.expected_reason in letter["reason"], (
                item.expected_reason,
                letter["reason"],
            )
            assert letter["source"]["topic"] == TOPIC[item.kind]

        # A restart recovers the tables from their changelog: the same views, to the bit.
        assert process.stop() == 0
        again = worker()
        again.wait_caught_up()
        async with HttpClient(again.url) as http2:
            assert await views(http2) == live

    # The log alone (cold segments, then Kafka) folds to the same views, key for key.
    rebuilt = run_cli(stack, "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "views equal" in rebuilt.stdout
