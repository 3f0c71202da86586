"""Know whether the broker still holds the log the views were built from.

A small marker topic is created once the views and the broker's log agree. A broker that
loses its log loses the marker with it, so its absence at start-up means "whatever the
broker holds about our views (changelog, consumer offsets) may be from another life":
the changelog is dropped, and the views are folded again from the log, which
`restore_log` has put back from S3.

The marker also names the layout the views are stored in (`VIEWS_LAYOUT`): a worker whose
layout differs from the one its views were written in finds no marker of its own, and
folds them again the same way, as an upgrade needs.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

from app.log.claim import TopicClaim
from app.settings import Settings

log = logging.getLogger(__name__)


# The views' stored layout. 2 (2026-12-07): a model version's hour is one aggregate (its
# metrics, inputs and labels), where layout 1 kept three.
VIEWS_LAYOUT = 2


def marker_topic(settings: Settings) -> str:
    return f"{settings.app_id}-log-epoch-v{VIEWS_LAYOUT}"


def older_markers(settings: Settings) -> list[str]:
    """The markers of the views' earlier layouts; layout 1's named none."""
    return [f"{settings.app_id}-log-epoch"] + [
        f"{settings.app_id}-log-epoch-v{n}" for n in range(2, VIEWS_LAYOUT)
    ]


async def topics(settings: Settings) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def begin(settings: Settings, replication: int) -> None:
    """The views and the log agree from now on: create the marker, and delete the older
    layouts' markers, so that a worker of an older release still running sees its marker
    gone and stops (`LogWatch`) rather than write its layout next to this one."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(marker_topic(settings), 1, replication)])
        older = set(older_markers(settings)) & set(await admin.list_topics())
        if older:
            await admin.delete_topics(sorted(older))
    finally:
        await admin.close()


async def open_new(
    settings: Settings,
    replication: int,
    start: Callable[[], Awaitable[None]],
    within: float = 900.0,
    claim: TopicClaim | None = None,
) -> bool:
    """Run `start` (restore the log, forget the views), then create the marker, in one worker.

    Workers started together on a broker with no marker all find it missing; each used to
    forget the views, and a slower one could drop the changelog a faster one had just made
    and was writing to. Now one claims the new epoch; the others wait for its marker. True
    if this worker opened the epoch.
    """
    claim = claim or TopicClaim(settings, f"{marker_topic(settings)}-claim")

    async def work(still_mine: Callable[[], Awaitable[None]]) -> None:
        await start()
        await still_mine()
        await begin(settings, replication)

    return await claim.run_once(lambda names: marker_topic(settings) in names, work, within)


async def forget_views(settings: Settings, changelog: str) -> None:
    """Drop the views' changelog: a worker may have written to it after the broker's restart.

    The group's offsets may be from then too; the ingestor folds what lies below them from
    the log (see `Ingestor._missed`), so they need no reset (this broker refuses commits
    from outside a group that still lists a dead member).
    """
    if settings.broker == "tansu":
        leader = f"{settings.app_id}-__assignor-__leader"  # Faust's own, written at rebalances
        await recreate_empty(settings, [changelog, leader], settings.partitions)
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        if changelog in await admin.list_topics():
            await admin.delete_topics([changelog])
    finally:
        await admin.close()


async def recreate_empty(settings: Settings, names: list[str], partitions: int) -> None:
    """Leave `names` deleted, whatever a producer did to them since the broker restarted.

    Measured on the local broker: a producer that kept its metadata across the restart can
    write to a topic that no longer exists; the topic stays unlisted, and once created again
    it reports the old end offset with no records behind it, which stalls Faust's recovery.
    Creating the topic, then deleting it, clears that state.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
        with contextlib.suppress(UnknownTopicOrPartitionError):
            await admin.delete_topics(names)
    finally:
        await admin.close()
