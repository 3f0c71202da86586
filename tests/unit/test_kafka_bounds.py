"""`kafka_bounds` says when the broker never answers a fetch, instead of waiting for ever."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import TopicPartition

from app.log import replay
from app.log.replay import BrokerUnanswered, kafka_bounds

TP = TopicPartition("modelview.predictions", 0)


class Silent:
    """A consumer whose broker lists offsets but never answers a fetch."""

    def __init__(self) -> None:
        self.fetches = 0

    def assign(self, tps: list[TopicPartition]) -> None:
        pass

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {TP: 0}

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {TP: 5}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        pass

    def highwater(self, tp: TopicPartition) -> int | None:
        return None

    async def getmany(self, *tps: TopicPartition, **kwargs: Any) -> dict[Any, Any]:
        self.fetches += 1
        return {}


class Cluster:
    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}


async def test_a_fetch_never_answered_is_an_error_naming_the_partition(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def metadata(consumer: Any) -> Cluster:
        return Cluster()

    monkeypatch.setattr(replay, "all_metadata", metadata)
    consumer = Silent()
    with pytest.raises(BrokerUnanswered, match=r"modelview.predictions\[0\].*0..5"):
        await kafka_bounds(consumer, TP, within=0.0)  # type: ignore[arg-type]
    assert consumer.fetches == 0  # the deadline is checked before each fetch
