"""The ingest agent: predictions, tags and erasure orders, co-partitioned, folded into the views.

The worker's consumer hands over each fetch of these topics whole (`deliver`), as one event
on the agent's channel, rather than one Faust event per record: Faust's per-record path
costs more than the fold itself (`bench/ceiling.py`). The event is still Faust's: the
agent's stream tracks and acks it, and drops it if a rebalance began since the fetch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import faust
from aiokafka.structs import ConsumerRecord
from faust.types import TP

from app.settings import Settings
from app.topic_admin import raw_topic
from app.topics import ERASURE_ORDERS, PREDICTIONS, TAGS
from app.views.compat import DeliverFetch, fetch_event
from app.views.ingestor import Ingestor, source_record

# Fetches waiting for the agent: enough to keep it busy while the next is fetched.
FETCHES_QUEUED = 4

log = logging.getLogger(__name__)


async def offer(channel: Any, event: Any) -> bool:
    """Put `event` on the agent's channel, waiting while it is full; False if it was dropped.

    At a rebalance Faust clears the agents' queues, and a put waiting on a full one is
    woken by a cancel of its own (the task itself is not being cancelled). That fetch is
    dropped as the queued ones are: the next owner reads from the committed offset, below
    anything folded and not yet durable. Let through, the cancel would crash the fetcher
    (Faust 0.15.3 then calls `wakeup()` on a supervisor it does not have) and so the worker.
    """
    try:
        await channel.put(event)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.info("a fetch was dropped: its queue was cleared for a rebalance")
        return False
    return True


def register(app: faust.App, ingestor: Ingestor, settings: Settings) -> tuple[Any, DeliverFetch]:
    """The agent, and the `deliver` the worker's consumer hands each fetch to."""
    # Subscribed (so partitions are assigned and fetched), but read through `deliver`.
    app.topics.add(
        raw_topic(app, PREDICTIONS, TAGS, ERASURE_ORDERS, partitions=settings.partitions)
    )
    fetched = app.channel(maxsize=FETCHES_QUEUED)

    async def deliver(records: Mapping[TP, Sequence[ConsumerRecord]]) -> None:
        batch = [source_record(r) for rs in records.values() for r in rs]
        first = next(iter(records))
        generation = app.consumer_generation_id
        await offer(fetched, fetch_event(app, batch, first, records[first][-1].offset, generation))

    async def ingest(stream: Any) -> None:
        async for batch in stream:
            await ingestor.process_until_done(batch)

    return app.agent(fetched, name="ingest")(ingest), deliver
