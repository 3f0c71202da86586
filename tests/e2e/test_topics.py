"""The worker creates the contract topics co-partitioned, and refuses a layout that is not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.settings import Settings
from app.topics import DEAD_LETTERS, MODEL_EVENTS, PREDICTIONS, TAGS
from tests.services import WorkerProcess
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


async def partition_counts(settings: Settings) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics([PREDICTIONS, TAGS, MODEL_EVENTS, DEAD_LETTERS])
    finally:
        await admin.close()
    return {d["topic"]: len(d["partitions"]) for d in described}


async def test_worker_creates_the_topics_with_the_configured_partitions(
    stack: Settings, worker: Callable[..., WorkerProcess]
) -> None:
    worker()
    counts = await partition_counts(stack)
    assert counts == dict.fromkeys(
        (PREDICTIONS, TAGS, MODEL_EVENTS, DEAD_LETTERS), stack.partitions
    )


async def test_worker_refuses_topics_that_are_not_co_partitioned(
    stack: Settings, tmp_path: Path
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
    await admin.start()
    # `stack up` created the contract topics; someone re-creates one with another count.
    # Apache Kafka deletes and creates asynchronously: wait for each to take effect.
    await admin.delete_topics([TAGS])

    async def deleted() -> bool:
        return TAGS not in await admin.list_topics()

    await wait_until(deleted, within=30, what="tags deleted")
    await admin.create_topics([NewTopic(TAGS, stack.partitions + 1, 1)])
    await admin.close()

    async def recreated() -> bool:
        return (await partition_counts(stack)).get(TAGS) == stack.partitions + 1

    await wait_until(recreated, within=30, what="tags re-created with another count")
    process = WorkerProcess(stack, tmp_path / "refused.log").start()
    assert process.process is not None
    assert process.process.wait(60) != 0
    assert "must be co-partitioned" in process.log_path.read_text()
