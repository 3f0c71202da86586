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

from app.settings import Settings
from app.topics import CONTRACT, PREDICTIONS, TAGS

CO_PARTITIONED = (PREDICTIONS, TAGS)


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


class TopicLayoutError(RuntimeError):
    """The broker's topics cannot serve this configuration."""


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
