"""The model-events log as the model services use it: one long-lived publisher of model
events, and the registry read back by folding the log (cold segments, then Kafka)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from aiokafka import AIOKafkaProducer

from app.domain import lineage, model_events, registry
from app.domain.lineage import LineageRecord
from app.domain.model_events import ModelEvent
from app.domain.registry import RegistryEntry
from app.log.replay import consumer_for, read_partition, stop_consumer
from app.log.segment_store import segment_store
from app.settings import Settings
from app.topics import LINEAGE, MODEL_EVENTS


class EventPublisher(Protocol):
    async def publish(self, event: ModelEvent) -> None: ...

    async def record_lineage(self, records: Sequence[LineageRecord]) -> None:
        """Log which snapshot or validation used each event; returns once all are logged."""
        ...

    async def close(self) -> None: ...


class RegistryReader(Protocol):
    async def entries(self, model: str | None = None) -> dict[str, RegistryEntry]:
        """Registry entries by model (or only `model`'s)."""
        ...


class KafkaEventPublisher:
    """Logs model events, each keyed by its model so one model's events stay in order, and
    waits for every replica's ack. One producer, started on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None

    async def publish(self, event: ModelEvent) -> None:
        producer = await self._started()
        await producer.send_and_wait(
            MODEL_EVENTS, key=event.model.encode(), value=model_events.encode(event)
        )

    async def record_lineage(self, records: Sequence[LineageRecord]) -> None:
        producer = await self._started()
        sent = [
            await producer.send(LINEAGE, key=key, value=value)
            for key, value in lineage.keyed(records)
        ]
        await asyncio.gather(*sent)

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.bootstrap_servers,
                acks="all",
                linger_ms=10,
                max_batch_size=1024 * 1024,
            )
            await producer.start()
            self._producer = producer
        return self._producer

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()


class LogRegistryReader:
    """The registry as the fold of the whole model-events log, read on each call: what a
    command or a training process sees, with no worker to ask."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def entries(self, model: str | None = None) -> dict[str, RegistryEntry]:
        entries: dict[str, RegistryEntry] = {}
        consumer = consumer_for(self.settings)
        await consumer.start()
        try:
            async with segment_store(self.settings) as cold:
                for p in range(self.settings.partitions):
                    async for batch in read_partition(cold, consumer, MODEL_EVENTS, p):
                        for record in batch:
                            if model is not None and record.key != model.encode():
                                continue
                            try:
                                event = model_events.decode(record.value)
                            except model_events.InvalidModelEvent:
                                continue  # the registry agent dead-letters these
                            entries[event.model] = registry.apply(entries.get(event.model), event)
        finally:
            await stop_consumer(consumer)
        return entries
