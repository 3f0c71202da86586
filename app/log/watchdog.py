"""Notice a broker that lost its log under a running worker, and say why.

The local broker keeps topics in memory: after its restart, a running worker's views hold
records the broker no longer has, and the marker topic of `app.log.epoch` is gone. Carrying on would serve
views that no log backs, so the worker stops (exit code 75, "try again"); on restart it finds
the log restored from S3 and folds its views again from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition

from app.log.replay import consumer_for, kafka_bounds, stop_consumer
from app.settings import Settings

EXIT_LOG_LOST = 75  # EX_TEMPFAIL: a supervisor should start the worker again

TP = tuple[str, int]


class LogWatch:
    def __init__(
        self,
        settings: Settings,
        marker: str,
        owned: Callable[[], Iterable[TP]],
        applied: Callable[[int], Mapping[str, int]],
        flushed: Callable[[], Mapping[TP, int]],
    ) -> None:
        """`applied(p)`: last offset folded per topic; `flushed()`: first offset not in S3."""
        self.settings = settings
        self.marker = marker
        self.owned = owned
        self.applied = applied
        self.flushed = flushed
        self._consumer: AIOKafkaConsumer | None = None

    async def lost(self, views_settled: bool = True) -> str | None:
        """Why the broker's log no longer backs this worker, or None while all is well.

        The marker is checked always: a broker that lost its log can keep the worker in a
        rebalance for good (its changelog topics are gone too). The partitions' ends are
        compared with the views only once they are `views_settled` (no rebalance, tables
        recovered), when what they hold is known.
        """
        consumer = await self._started()
        # Read what we hold before asking the broker: a healthy log can only have grown since.
        owned = sorted(self.owned()) if views_settled else []
        applied = {tp: self.applied(tp[1]).get(tp[0], -1) for tp in owned}
        flushed = dict(self.flushed())
        if self.marker not in await consumer.topics():
            return f"its marker topic {self.marker} is gone"
        for topic, partition in owned:
            _, end = await kafka_bounds(consumer, TopicPartition(topic, partition))
            if end <= applied[(topic, partition)]:
                return (
                    f"{topic}[{partition}] ends at offset {end}, but the views hold records up "
                    f"to {applied[(topic, partition)]}"
                )
            if end < flushed.get((topic, partition), 0):
                return (
                    f"{topic}[{partition}] ends at offset {end}, but S3 holds records up to "
                    f"{flushed[(topic, partition)] - 1}"
                )
        return None

    async def stop(self) -> None:
        if self._consumer is not None:
            await stop_consumer(self._consumer)
            self._consumer = None

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = consumer_for(self.settings)
            try:
                await consumer.start()
            except Exception:
                await stop_consumer(consumer)  # or it is left open, once per failed check
                raise
            self._consumer = consumer
        return self._consumer
