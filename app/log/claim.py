"""Run a piece of start-up work in one worker of many: a claim is a topic only one can create.

Kafka has no lock, but CreateTopics succeeds for one caller only; the others are answered
TOPIC_ALREADY_EXISTS. The claimant appends a heartbeat record to its claim topic every `beat`
seconds while it works. A worker that watches the claim's end offset stand still for
`stale_after` seconds of its own monotonic clock (no clocks are compared across machines)
takes the claimant for dead and claims the next generation, a topic of its own: two workers
that both see a claim go stale cannot both win the next one. A claimant that finds a newer
generation than its own stops before its last step (`ClaimLost`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, UnknownTopicOrPartitionError

from app.log.replay import consumer_for, stop_consumer
from app.settings import Settings
from app.topic_admin import create_topics

log = logging.getLogger(__name__)


class ClaimLost(RuntimeError):
    """Another worker took this worker's claim for abandoned and claimed the work itself."""


class ClaimTimeout(RuntimeError):
    """The work was neither done nor claimable within the deadline."""


@dataclass
class _Progress:
    """What a waiter has seen of one claim generation: its end offset, and since when."""

    end: int = -1
    since: float = 0.0


@dataclass
class TopicClaim:
    settings: Settings
    prefix: str  # claim topics are named f"{prefix}-{generation}"
    beat: float = 1.0
    stale_after: float = 15.0
    poll: float = 0.5
    _seen: dict[int, _Progress] = field(default_factory=dict)

    async def run_once(
        self,
        done: Callable[[set[str]], bool],
        work: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]],
        within: float = 900.0,
    ) -> bool:
        """Until `done(topics)` holds, claim and run `work`, or wait for the claimant's.

        True if this worker ran `work` (which must make `done` true), False if another did.
        `work` gets a check to call before its last, visible step: it raises `ClaimLost`
        if a newer claim exists. The claim topics are deleted once the work is done.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.bootstrap_servers)
        consumer = consumer_for(self.settings)
        await admin.start()
        await consumer.start()
        try:
            while True:
                names = set(await admin.list_topics())
                if done(names):
                    return False
                generations = self._generations(names)
                newest = max(generations, default=-1)
                if newest < 0 or await self._stale(consumer, newest, loop.time()):
                    mine = newest + 1
                    if await self._create(admin, mine):
                        return await self._hold(admin, mine, done, work)
                if loop.time() > deadline:
                    raise ClaimTimeout(
                        f"{self.prefix}: not done within {within:g}s; claims {sorted(generations)}"
                    )
                await asyncio.sleep(self.poll)
        finally:
            await stop_consumer(consumer)
            await admin.close()

    def _generations(self, names: set[str]) -> set[int]:
        pattern = re.compile(re.escape(self.prefix) + r"-(\d+)")
        return {int(m.group(1)) for name in names if (m := pattern.fullmatch(name))}

    def _topic(self, generation: int) -> str:
        return f"{self.prefix}-{generation}"

    async def _create(self, admin: AIOKafkaAdminClient, generation: int) -> bool:
        if not await create_topics(admin, [NewTopic(self._topic(generation), 1, 1)]):
            return False  # another worker's, or the broker refused: look again
        log.info("claimed %s", self._topic(generation))
        return True

    async def _stale(self, consumer: AIOKafkaConsumer, generation: int, now: float) -> bool:
        """The claim's heartbeats stood still for `stale_after` seconds of our watching."""
        # Heartbeats are sent one by one: the local broker's ListOffsets is right for those.
        tp = TopicPartition(self._topic(generation), 0)
        try:
            end = int((await consumer.end_offsets([tp]))[tp])
        except KafkaError:  # deleted since listed: its claimant finished, or gave up
            end = -1
        seen = self._seen.setdefault(generation, _Progress())
        if end != seen.end:
            seen.end, seen.since = end, now
            return False
        if now - seen.since < self.stale_after:
            return False
        log.warning(
            "%s: no heartbeat for %.0fs, its claimant is taken for dead",
            self._topic(generation),
            now - seen.since,
        )
        return True

    async def _hold(
        self,
        admin: AIOKafkaAdminClient,
        generation: int,
        done: Callable[[set[str]], bool],
        work: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]],
    ) -> bool:
        """Run `work` under the claim unless it is done already; whether it ran."""

        async def still_mine() -> None:
            newer = {g for g in self._generations(set(await admin.list_topics())) if g > generation}
            if newer:
                taken = ", ".join(self._topic(g) for g in sorted(newer))
                raise ClaimLost(f"{self._topic(generation)} was taken over: {taken}")

        async with self._heartbeat(generation):
            # The work may have been done between our look and our claim: a worker slow to
            # claim can find the claimant's topic already deleted, its work done. Then it
            # did not do the work, and must not say it did (CI, 2026-12-07: two workers
            # logged "log epoch opened by this worker").
            ran = not done(set(await admin.list_topics()))
            if ran:
                await work(still_mine)
        names = set(await admin.list_topics())
        stale = [self._topic(g) for g in self._generations(names) if g <= generation]
        with contextlib.suppress(UnknownTopicOrPartitionError):
            await admin.delete_topics(stale)
        return ran

    @contextlib.asynccontextmanager
    async def _heartbeat(self, generation: int) -> AsyncIterator[None]:
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.bootstrap_servers)
        await producer.start()

        async def beat() -> None:
            while True:
                try:
                    await producer.send_and_wait(self._topic(generation), b"", partition=0)
                except Exception as exc:  # a missed beat or two is what `stale_after` allows
                    log.warning("%s: heartbeat failed: %s", self._topic(generation), exc)
                await asyncio.sleep(self.beat)

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await producer.stop()
