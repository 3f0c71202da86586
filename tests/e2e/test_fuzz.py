"""Over ten thousand generated bad events at a running worker, over Kafka and over HTTP.

Each record on a topic is judged beforehand by the codec itself (the oracle), so the test
knows which must be dead-lettered and with which reason; valid control events interleaved
with them must all reach the views; the worker must stay up throughout.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.client import HttpClient
from app.domain.batch import SourceRecord, decode_record
from app.domain.codec import InvalidEvent
from app.settings import Settings
from app.topics import DEAD_LETTERS, PREDICTIONS, TAGS
from tests import factories
from tests.coldlog import publish
from tests.services import WorkerProcess
from tests.unit.test_fuzz_codec import json_values, mutated

pytestmark = pytest.mark.e2e

BAD_WANTED = 10_000
LIMIT = Settings().max_event_bytes


def generate(n: int) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value) records: n values from hypothesis (the same on every run), each
    sent to both topics, keyed by its event_id when it has one and by another key."""
    values: list[bytes] = []

    @settings(
        max_examples=n,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        st.one_of(
            mutated(),
            mutated(),
            st.binary(max_size=120),  # invalid UTF-8, truncated JSON, noise
            json_values.map(lambda v: json.dumps(v).encode()),  # NaN, Infinity, huge numbers
        )
    )
    def collect(raw: bytes) -> None:
        values.append(raw)

    collect()
    rng = random.Random(5)
    values += [  # above the event size limit
        b'{"x": "' + b"a" * (LIMIT + rng.randrange(1000)) + b'"}' for _ in range(3)
    ]
    out = []
    for raw in values:
        try:
            event_id = json.loads(raw).get("event_id")
        except (ValueError, AttributeError, UnicodeDecodeError, RecursionError):
            event_id = None
        keys = {b"fuzz", str(event_id).encode()} if event_id is not None else {b"fuzz"}
        out += [(topic, key, raw) for topic in (PREDICTIONS, TAGS) for key in sorted(keys)]
    return out


def verdict(topic: str, key: bytes, raw: bytes) -> str | None:
    """None for a valid event, else the reason the worker must give."""
    kind = "prediction" if topic == PREDICTIONS else "tag"
    try:
        decode_record(SourceRecord(kind, topic, 0, 0, key, raw), LIMIT)
    except InvalidEvent as exc:
        return str(exc)
    return None


def controls(n: int) -> list[tuple[str, bytes, bytes]]:
    out = []
    for i in range(n):
        event = factories.prediction(features={"i": i})
        tag = factories.tag(event["event_id"], label=float(i), datasets=["fuzz-control"])
        out += [
            (PREDICTIONS, event["event_id"].encode(), orjson.dumps(event)),
            (TAGS, event["event_id"].encode(), orjson.dumps(tag)),
        ]
    return out


async def dead_letters(settings_: Settings, expected: int) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        DEAD_LETTERS,
        bootstrap_servers=settings_.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120
        while len(found) < expected and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            found += [orjson.loads(m.value) for ms in batch.values() for m in ms]
    finally:
        await consumer.stop()
    return found


async def test_bad_events_are_dead_lettered_with_their_reason_and_lose_nothing(
    stack: Settings, worker: Callable[..., WorkerProcess]
) -> None:
    records = generate(3_600)
    judged = [(r, verdict(*r)) for r in records]
    bad = [(r, why) for r, why in judged if why is not None]
    assert len(bad) >= BAD_WANTED, len(bad)
    mixed = controls(500) + records
    random.Random(3).shuffle(mixed)  # controls interleaved with the bad ones

    process = worker()
    await publish(stack, mixed)
    process.wait_caught_up(within=300)

    letters = await dead_letters(stack, len(bad))
    # One dead letter per bad record, with exactly the reason the codec gives, and its bytes.
    by_raw: dict[tuple[str, bytes], list[str]] = {}
    for (topic, _, raw), why in bad:
        by_raw.setdefault((topic, raw), []).append(why)
    conflicts = 0
    for letter in letters:
        raw = base64.b64decode(letter["raw_base64"])
        reasons = by_raw.get((letter["source"]["topic"], raw))
        if reasons is None:  # a valid-looking event whose id was used before: a conflict
            assert "already used" in letter["reason"], letter
            conflicts += 1
            continue
        assert letter["reason"] in reasons, (letter["reason"], reasons)
        reasons.remove(letter["reason"])
    assert all(not left for left in by_raw.values())  # every bad record got its letter
    assert len(letters) == len(bad) + conflicts

    async with HttpClient(process.url) as http:
        _, dataset = await http.get("/v1/datasets/fuzz-control")
        assert dataset["labeled"] == 500 and dataset["size"] == 500  # no valid event lost
        health = process.health() or {}
        counts: Any = health["ingest"]
        assert counts["applied"] + counts["duplicates"] + counts["dead_letters"] == len(mixed)

        # Over HTTP: bodies from the same strategies; every answer a 4xx or success, JSON.
        statuses: dict[int, int] = {}
        for i, ((_, _, raw), _why) in enumerate(judged[:600]):
            path = ("/v1/predictions", "/v1/tags", f"/v1/models/m{i % 3}/predict")[i % 3]
            async with http._session.post(
                process.url + path, data=raw, headers={"content-type": "application/json"}
            ) as response:
                body = await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
                assert response.status < 500, (path, raw[:200], body[:300])
                if response.status >= 400:
                    assert orjson.loads(body)["error"], body
        assert statuses.get(400, 0) > 300, statuses
        assert process.process is not None and process.process.poll() is None  # still up
        assert (await http.get("/healthz"))[0] == 200
