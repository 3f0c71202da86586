"""The ingest agent: predictions, tags and erasure orders, co-partitioned, folded into the views.

The worker's consumer hands over each fetch of these topics whole (`deliver`), as one event
on the agent's channel, rather than one Faust event per record: Faust's per-record path
costs more than the fold itself (`bench/ceiling.py`). The event is still Faust's: the
agent's stream tracks and acks it, and drops it if a rebalance began since the fetch.
What a dropped fetch held, and nothing delivered after it, is folded from the log on a
`CatchUp` event (`CatchUps`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import faust
from aiokafka.structs import ConsumerRecord
from faust.types import TP

from app.domain.delivery import source_records
from app.settings import Settings
from app.topic_admin import raw_topic
from app.topics import ERASURE_ORDERS, PREDICTIONS, TAGS
from app.views.cluster import ready_partitions
from app.views.compat import DeliverFetch, Sought, fetch_event
from app.views.ingestor import DurableCursor, Handover, Ingestor

# Fetches waiting for the agent: enough to keep it busy while the next is fetched.
FETCHES_QUEUED = 4
# How often to look for partitions whose handed-over records were dropped: a stalled
# partition is caught up within two looks.
CATCH_UP_SECONDS = 2.0
SOURCES = (PREDICTIONS, TAGS, ERASURE_ORDERS)

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


@dataclass(frozen=True)
class CatchUp:
    """An event's value asking the agent to fold, per (topic, partition), whatever the views
    lack below the offset given, from the log."""

    ends: dict[tuple[str, int], int]


class CatchUps:
    """Puts a `CatchUp` for the stalled partitions (`Handover.stalled`) on the agent's
    channel, behind the fetches already queued, one at a time and without blocking the
    caller: a stalled partition costs one look more, never a wait."""

    def __init__(
        self, app: faust.App, channel: Any, handover: Handover, durable: DurableCursor
    ) -> None:
        self.app, self.channel, self.handover, self.durable = app, channel, handover, durable
        self.putting: asyncio.Task[bool] | None = None

    def look(self, owned: Collection[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Ask for the stalled ones among `owned`; returns what was asked for."""
        if self.putting is not None and not self.putting.done():
            return {}
        stalled = self.handover.stalled(owned, self.durable)
        if not stalled:
            return {}
        (topic, partition), end = next(iter(stalled.items()))
        event = fetch_event(
            self.app,
            CatchUp(stalled),
            TP(topic, partition),
            end - 1,
            self.app.consumer_generation_id,
        )
        self.putting = asyncio.ensure_future(offer(self.channel, event))
        return stalled


def register(
    app: faust.App, ingestor: Ingestor, settings: Settings
) -> tuple[Any, DeliverFetch, Sought]:
    """The agent, the `deliver` the worker's consumer hands each fetch to, and the `sought`
    it tells the group's offsets of its partitions at each assignment."""
    # Subscribed (so partitions are assigned and fetched), but read through `deliver`.
    app.topics.add(raw_topic(app, *SOURCES, partitions=settings.partitions))
    fetched = app.channel(maxsize=FETCHES_QUEUED)
    handover = Handover()
    catch_ups = CatchUps(app, fetched, handover, ingestor.durable)

    async def deliver(records: Mapping[TP, Sequence[ConsumerRecord]]) -> None:
        batch = source_records(records.values())
        for tp, rs in records.items():
            handover.handed(tp.topic, tp.partition, rs[-1].offset + 1)
        first = next(iter(records))
        generation = app.consumer_generation_id
        await offer(fetched, fetch_event(app, batch, first, records[first][-1].offset, generation))

    def sought(offsets: Mapping[TP, int]) -> None:
        # Every record below the group's offset was folded once, here or by another worker:
        # views without them (their changelog dropped for a new epoch or layout, while the
        # group kept its offsets) are caught up from the log, as after a dropped fetch.
        for tp, offset in offsets.items():
            handover.handed(tp.topic, tp.partition, offset)

    async def ingest(stream: Any) -> None:
        async for batch in stream:
            if isinstance(batch, CatchUp):
                # What the views lack below these ends is then logged as skipped offsets
                # (a warning); this look comes after every assignment, for each partition
                # no fetch reached within two looks, so it is not news.
                log.debug(
                    "catching up to what was handed over or the group committed: %s",
                    {f"{t}[{p}]": end for (t, p), end in sorted(batch.ends.items())},
                )
                try:
                    await ingestor.process([], ends=batch.ends)
                except Exception as exc:  # not retried here: the next look asks again
                    log.warning("catching up failed (%s); asked again in a moment", exc)
            else:
                await ingestor.process_until_done(batch)

    @app.timer(CATCH_UP_SECONDS)  # type: ignore[untyped-decorator]
    async def catch_up() -> None:
        # None while a rebalance or recovery is under way: no partition is stalled then.
        catch_ups.look([(t, p) for t in SOURCES for p in ready_partitions(app, t)])

    return app.agent(fetched, name="ingest")(ingest), deliver, sought
