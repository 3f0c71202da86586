"""Creates the contract topics with the configured partition count, and checks existing ones;
declares them to Faust as raw bytes.

Faust creates only its internal topics; a source topic left to the broker's auto-creation
gets the broker's default count, and predictions and tags must have the same count as each
other and as the views' changelog for a prediction and its tags to meet in one partition.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import faust
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import murmur2

from app.settings import Settings
from app.topics import CONTRACT, ERASURE_ORDERS, PREDICTIONS, TAGS

CO_PARTITIONED = (PREDICTIONS, TAGS, ERASURE_ORDERS)


def raw_topic(app: faust.App, *names: str, partitions: int | None = None) -> Any:
    """A Faust topic of raw key and value bytes: records are decoded by our codecs, once."""
    return app.topic(
        *names,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )


def key_partition(key: bytes, partitions: int) -> int:
    """The partition a keyed record goes to: the producers' default partitioner (murmur2)."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


class TopicLayoutError(RuntimeError):
    """The broker's topics cannot serve this configuration."""


async def create_topics(admin: AIOKafkaAdminClient, topics: list[NewTopic]) -> set[str]:
    """The names of `topics` that this call created.

    aiokafka hands back the broker's per-topic error codes instead of raising them: a topic
    that exists already (another worker's) is code 36 in the answer, not an exception.
    """
    response = await admin.create_topics(topics)
    return {error[0] for error in response.topic_errors if error[1] == 0}


async def ensure_topics(settings: Settings, replication: int = 1) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        wanted = CONTRACT
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            new = [NewTopic(t, settings.partitions, replication) for t in missing]
            # Another worker may win the race; the check below applies either way.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
        counts = await _partition_counts(admin, list(CO_PARTITIONED))
        wrong = {t: n for t, n in counts.items() if n != settings.partitions}
        if wrong:
            raise TopicLayoutError(
                f"topics {wrong} do not have MODELVIEW_PARTITIONS={settings.partitions} partitions; "
                "predictions and tags must be co-partitioned: set MODELVIEW_PARTITIONS to match"
            )
    finally:
        await admin.close()


async def ensure_changelogs(
    settings: Settings, partitions: dict[str, int], replication: int = 1, within: float = 30.0
) -> None:
    """Create the tables' compacted changelogs, and wait until the broker's metadata lists them.

    Faust creates them itself, but only as its consumer subscribes: Apache Kafka may then
    answer the consumer's one metadata request without a topic it has just created, and the
    consumer does not ask again for five minutes. Until then a table's source-partition check
    reads 0 partitions for its changelog and crashes the agent with PartitionsMismatch at its
    first event (seen in CI: the registry never folded). Created here, before Faust starts,
    the topics are in the consumer's first metadata; Faust then finds them and leaves them.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        deadline = asyncio.get_running_loop().time() + within
        while True:
            existing = set(await admin.list_topics())
            new = [
                NewTopic(name, n, replication, topic_configs={"cleanup.policy": "compact"})
                for name, n in partitions.items()
                if name not in existing
            ]
            # A topic still being deleted (`forget_views`) refuses a create for a moment.
            with contextlib.suppress(TopicAlreadyExistsError):
                if new:
                    await admin.create_topics(new)
            counts = await _partition_counts(admin, list(partitions), within=5.0)
            if all(counts.values()) or asyncio.get_running_loop().time() > deadline:
                break
        wrong = {t: n for t, n in counts.items() if n != partitions[t]}
        if wrong:
            raise TopicLayoutError(
                f"changelog topics {wrong} do not have the partitions their tables need "
                f"({partitions}): a table's changelog must match its source topic"
            )
    finally:
        await admin.close()


async def _partition_counts(
    admin: AIOKafkaAdminClient, topics: list[str], within: float = 15.0
) -> dict[str, int]:
    """Each topic's partition count, once the broker's metadata lists them.

    Apache Kafka can answer a describe right after the create with no partitions (or an
    unknown-topic error) until its metadata has caught up: seen here in the replay test.
    """
    deadline = asyncio.get_running_loop().time() + within
    while True:
        described = await admin.describe_topics(topics)
        counts = {d["topic"]: len(d["partitions"]) for d in described if not d["error_code"]}
        settled = len(counts) == len(topics) and all(counts.values())
        if settled or asyncio.get_running_loop().time() > deadline:
            return {t: counts.get(t, 0) for t in topics}
        await asyncio.sleep(0.1)
