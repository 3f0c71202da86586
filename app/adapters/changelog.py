"""The live views as the broker holds them: the `views` table's changelog, read directly.

Reading the changelog rather than asking a worker gives every key, byte for byte, from any
machine, whether or not a worker holds the partition right now.
"""

from __future__ import annotations

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from app.adapters.replay import kafka_bounds
from app.adapters.txn import wal_key
from app.settings import Settings
from tables.views import TABLE_NAME


def changelog_topic(settings: Settings) -> str:
    return f"{settings.app_id}-{TABLE_NAME}-changelog"


async def read_views(
    settings: Settings, consumer: AIOKafkaConsumer, partition: int
) -> dict[str, bytes] | None:
    """Partition `partition` of the views as of its last complete batch; None without a changelog."""
    tp = TopicPartition(changelog_topic(settings), partition)
    start, end = await kafka_bounds(consumer, tp)
    if end == 0 and tp.topic not in await consumer.topics():
        return None
    state: dict[str, bytes] = {}
    consumer.assign([tp])
    consumer.seek(tp, start)
    position = start
    while position < end:
        fetched = await consumer.getmany(tp, timeout_ms=1000, max_records=20_000)
        for m in fetched.get(tp, []):
            if m.offset >= end:
                break
            key = m.key.decode()
            if m.value is None:
                state.pop(key, None)
            else:
                state[key] = m.value
            position = m.offset + 1
        if not fetched and (consumer.highwater(tp) or 0) <= position:
            break
    return rolled_back(state, partition)


def rolled_back(state: dict[str, bytes], partition: int) -> dict[str, bytes]:
    """`state` without the batch a crash cut short, if any: what the next batch will see."""
    raw = state.get(wal_key(partition))
    pending = orjson.loads(raw)["pending"] if raw is not None else None
    if pending:
        for key, old in pending["undo"].items():
            if old is None:
                state.pop(key, None)
            else:
                state[key] = old.encode()
    return state
