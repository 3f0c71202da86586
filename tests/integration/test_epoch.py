"""One worker of many opens a new log epoch (restore, forget the views, mark), on the real broker."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.log import epoch
from app.log.claim import ClaimLost, TopicClaim
from app.settings import Settings
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


async def listed(settings: Settings) -> set[str]:
    return await epoch.topics(settings)


def claim_topics(settings: Settings, names: set[str]) -> set[str]:
    return {n for n in names if n.startswith(f"{epoch.marker_topic(settings)}-claim")}


async def test_workers_starting_together_open_the_epoch_once(stack: Settings) -> None:
    running: list[int] = []
    ran: list[int] = []
    marked_before: list[bool] = []

    def starter(worker: int) -> Callable[[], Awaitable[None]]:
        async def start() -> None:
            running.append(worker)
            marked_before.append(epoch.marker_topic(stack) in await listed(stack))
            # Long enough for every other worker to look, find no marker, and try to claim.
            await asyncio.sleep(1.0)
            ran.append(worker)
            running.remove(worker)

        return start

    opened = await asyncio.gather(*(epoch.open_new(stack, 1, starter(w)) for w in range(4)))

    assert sorted(opened) == [False, False, False, True]
    assert ran == [opened.index(True)]
    assert marked_before == [False]  # the marker comes after the work, never before
    names = await listed(stack)
    assert epoch.marker_topic(stack) in names
    assert claim_topics(stack, names) == set()  # claims are gone once the epoch is open
    # A later start finds the marker and has nothing to open.
    assert await epoch.open_new(stack, 1, starter(9)) is False
    assert ran == [opened.index(True)]


async def test_a_claim_won_after_the_work_was_done_says_it_did_not_do_it(
    stack: Settings,
) -> None:
    # The claimant finished and deleted its claim between this worker's look and its claim.
    looks: list[set[str]] = []

    def done(names: set[str]) -> bool:
        looks.append(names)
        return len(looks) > 1  # not done at the first look; done by the time it is claimed

    async def work(still_mine: Callable[[], Awaitable[None]]) -> None:
        raise AssertionError("the work was done already")

    prefix = f"{epoch.marker_topic(stack)}-late"
    claimed = await TopicClaim(stack, prefix).run_once(done, work, within=30)
    assert claimed is False and len(looks) == 2


async def test_a_claim_whose_heartbeat_stopped_is_taken_over(stack: Settings) -> None:
    dead = f"{epoch.marker_topic(stack)}-claim-0"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(dead, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(dead, b"", partition=0)  # one beat, then the claimant died
    finally:
        await producer.stop()
    ran: list[str] = []

    async def start() -> None:
        ran.append("started")

    claim = TopicClaim(stack, f"{epoch.marker_topic(stack)}-claim", stale_after=2.0, poll=0.2)
    assert await epoch.open_new(stack, 1, start, within=60, claim=claim) is True
    assert ran == ["started"]
    names = await listed(stack)
    assert epoch.marker_topic(stack) in names
    assert claim_topics(stack, names) == set()


async def test_a_live_claim_is_waited_for_and_a_taken_over_one_stops(stack: Settings) -> None:
    prefix = f"{epoch.marker_topic(stack)}-claim"

    async def hold(still_mine: Callable[[], Awaitable[None]]) -> None:
        # Works for twice the waiter's stale_after, beating: a live claim is not taken over.
        await asyncio.sleep(3.0)
        await still_mine()
        await epoch.begin(stack, 1)

    async def never(still_mine: Callable[[], Awaitable[None]]) -> None:
        raise AssertionError("the waiter took over a claim that was still beating")

    def marked(names: set[str]) -> bool:
        return epoch.marker_topic(stack) in names

    holder = TopicClaim(stack, prefix, beat=0.2)
    waiter = TopicClaim(stack, prefix, stale_after=1.5, poll=0.2)
    holding = asyncio.create_task(holder.run_once(marked, hold, within=30))

    async def claimed() -> bool:
        return bool(claim_topics(stack, await listed(stack)))

    await wait_until(claimed, within=30, what="the holder's claim")
    assert await asyncio.wait_for(waiter.run_once(marked, never, within=30), 60) is False
    assert await holding is True

    # A claimant that finds a newer claim than its own stops before its last step.
    other = f"{stack.app_id}-other-claim"

    async def overtaken(still_mine: Callable[[], Awaitable[None]]) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(f"{other}-5", 1, 1)])
        finally:
            await admin.close()

        # CreateTopics answers before the broker's metadata shows the topic; a claim is
        # found once it is listed, so wait for that rather than race it.
        async def newer_listed() -> bool:
            return f"{other}-5" in await listed(stack)

        await wait_until(newer_listed, within=30, what="the newer claim in the metadata")
        await still_mine()
        raise AssertionError("went on past a newer claim")

    with pytest.raises(ClaimLost, match="other-claim-5"):
        await TopicClaim(stack, other).run_once(lambda names: False, overtaken, within=30)
