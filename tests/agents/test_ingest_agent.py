"""The ingest agent under Faust's test_context: memory store, no broker."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faust
import orjson
import pytest
from faust.types import TP

from agents.ingest import CatchUps, offer
from app.bootstrap import Modelview, create
from app.domain.batch import SourceRecord
from app.domain.delivery import KINDS
from app.settings import Settings
from app.topics import PREDICTIONS, TAGS
from app.views.compat import fetch_event
from app.views.ingestor import Handover
from tables.views import Unit
from tests.factories import prediction, tag
from tests.fakes import memory_adapters
from tests.waiting import wait_until


class Unlogged:
    """A changelog writer that keeps nothing: there is no broker under test_context."""

    whole_bytes = 0

    async def write(self, units: Sequence[Unit]) -> dict[int, int]:
        return {}

    async def stop(self) -> None:
        return None


def build(tmp_path: Path) -> tuple[Modelview, list[bytes]]:
    settings = Settings(data_dir=tmp_path, partitions=2, batch_size=10, batch_within=0.05)
    letters: list[bytes] = []

    async def capture(sent: Sequence[tuple[bytes | None, bytes]]) -> None:
        letters.extend(value for _, value in sent)

    mv = create(
        settings,
        adapters=memory_adapters(),
        dead_letters=capture,
        changelog=Unlogged(),
        store="memory://",
    )
    return mv, letters


async def put(ctx: Any, topic: str, key: bytes, value: bytes, partition: int, offset: int) -> None:
    """One record, delivered as the worker's consumer delivers a fetch."""
    record = SourceRecord(KINDS[topic], topic, partition, offset, key, value)
    app = ctx.app
    event = fetch_event(app, [record], TP(topic, partition), offset, app.consumer_generation_id)
    await ctx.stream().channel.put(event)


async def test_agent_joins_counts_and_dead_letters(tmp_path: Path) -> None:
    mv, letters = build(tmp_path)
    agent = mv.app.agents["ingest"]
    p = prediction(prediction={"value": 10.0})
    t = tag(p["event_id"], label=12.0, datasets=["train"])
    key = p["event_id"].encode()
    async with agent.test_context() as ctx:
        await put(ctx, TAGS, key, orjson.dumps(t), 1, 0)  # the tag comes first
        await put(ctx, PREDICTIONS, key, orjson.dumps(p), 1, 0)
        await put(ctx, PREDICTIONS, key, orjson.dumps(p), 1, 1)  # a duplicate delivery
        await put(ctx, TAGS, b"x", b"{not json", 1, 1)
        await wait_until(lambda: mv.ingestor.counts["dead_letters"] == 1)
        await wait_until(lambda: (mv.queries.read().dataset("train") or {}).get("size") == 1)
        metrics = mv.queries.read().model_metrics("flight-delay")
        assert metrics is not None
        assert metrics["3"]["predictions"] == 1 and metrics["3"]["mae"] == 2.0
        example = mv.queries.read().example(p["event_id"])
        assert example is not None and example.joined
        assert mv.ingestor.counts["duplicates"] == 1
        letter = orjson.loads(letters[0])
        assert letter["reason"].startswith("not valid JSON")
        assert letter["source"] == {"topic": TAGS, "partition": 1, "offset": 1}


async def test_key_must_match_event_id(tmp_path: Path) -> None:
    mv, letters = build(tmp_path)
    p = prediction()
    async with mv.app.agents["ingest"].test_context() as ctx:
        await put(ctx, PREDICTIONS, b"some-other-key", orjson.dumps(p), 0, 0)
        await wait_until(lambda: len(letters) == 1)
    assert "must be the prediction's event_id" in orjson.loads(letters[0])["reason"]
    assert mv.queries.read().example(p["event_id"]) is None


async def test_a_fetch_waiting_on_a_full_queue_is_dropped_when_a_rebalance_clears_it() -> None:
    app = faust.App("offer-test", store="memory://")
    app.flow_control.resume()
    channel = app.channel(maxsize=1)
    # The agent's reader of the channel, held: a channel keeps its subscribers in a WeakSet,
    # and a reader the cycle collector freed took its queue out of `put`'s way (a put then
    # never waited; CI, 2026-12-07). The collection here makes that certain if unheld.
    reader = channel.clone(is_iterator=True)
    queue = reader.queue
    gc.collect()
    assert await offer(channel, "first")
    waiting = asyncio.ensure_future(offer(channel, "second"))
    await wait_until(lambda: bool(queue._putters))  # type: ignore[attr-defined]
    app.flow_control.clear()  # what Faust does to the agents' queues at a rebalance
    assert await asyncio.wait_for(waiting, 5) is False
    # A cancel of the fetcher itself still goes through.
    assert await offer(channel, "third")  # the cleared queue is full again
    stopped = asyncio.ensure_future(offer(channel, "fourth"))
    await wait_until(lambda: bool(queue._putters))  # type: ignore[attr-defined]
    stopped.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopped


async def test_a_fetch_dropped_at_a_partition_s_end_is_folded_from_the_log(tmp_path: Path) -> None:
    mv, _ = build(tmp_path)
    events = [prediction() for _ in range(3)]
    records = [
        SourceRecord("prediction", PREDICTIONS, 1, o, e["event_id"].encode(), orjson.dumps(e))
        for o, e in enumerate(events)
    ]
    asked: list[tuple[int, int]] = []

    async def from_log(topic: str, partition: int, start: int, stop: int) -> list[SourceRecord]:
        asked.append((start, stop))
        return [r for r in records if start <= r.offset < stop]

    mv.ingestor.backfill = from_log
    handover = Handover()
    app = mv.app
    async with app.agents["ingest"].test_context() as ctx:
        channel = ctx.stream().channel
        catch_ups = CatchUps(app, channel, handover, mv.ingestor.durable)
        tp = TP(PREDICTIONS, 1)
        handover.handed(PREDICTIONS, 1, 1)
        await channel.put(fetch_event(app, records[:1], tp, 0, app.consumer_generation_id))
        # Stamped before a rebalance and taken after it: the stream drops it.
        handover.handed(PREDICTIONS, 1, 3)
        await channel.put(fetch_event(app, records[1:], tp, 2, app.consumer_generation_id - 1))
        await wait_until(lambda: mv.ingestor.durable.committable(PREDICTIONS, 1) == 1)
        await wait_until(channel.empty)
        owned = [(PREDICTIONS, 1), (PREDICTIONS, 0)]
        assert catch_ups.look(owned) == {}  # the first look: they may be on their way
        assert catch_ups.look(owned) == {(PREDICTIONS, 1): 3}
        await wait_until(lambda: mv.ingestor.durable.committable(PREDICTIONS, 1) == 3)
        assert asked == [(1, 3)]
        assert all(mv.queries.read().example(e["event_id"]) is not None for e in events)
        assert catch_ups.look(owned) == {}  # caught up
