"""Creates the contract topics with the configured partition count, and checks existing ones;
declares them to Faust as raw bytes.

Faust creates only its internal topics; a source topic left to the broker's auto-creation
gets the broker's default count, and predictions and tags must have the same count as each
other and as the views' changelog for a prediction and its tags to meet in one partition.
"""

from __future__ import annotations

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
        described = await admin.describe_topics(list(CO_PARTITIONED))
        counts = {d["topic"]: len(d["partitions"]) for d in described}
        wrong = {t: n for t, n in counts.items() if n != settings.partitions}
        if wrong:
            raise TopicLayoutError(
                f"topics {wrong} do not have MODELVIEW_PARTITIONS={settings.partitions} partitions; "
                "predictions and tags must be co-partitioned: set MODELVIEW_PARTITIONS to match"
            )
    finally:
        await admin.close()
