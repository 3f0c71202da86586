"""What the model services take: the stores, the model-events publisher and the registry
reader. A worker builds them once (`app.bootstrap`); a command, for its run (`opened`);
tests pass in-memory ones (`tests/fakes.py`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from app.models.model_log import (
    EventPublisher,
    KafkaEventPublisher,
    LogRegistryReader,
    RegistryReader,
)
from app.models.stores import ModelStore, ReportStore, SnapshotStore
from app.objects import Objects
from app.settings import Settings


@dataclass
class Adapters:
    objects: Objects
    models: ModelStore
    reports: ReportStore
    snapshots: SnapshotStore
    events: EventPublisher
    registry: RegistryReader

    @classmethod
    def over(cls, objects: Objects, events: EventPublisher, registry: RegistryReader) -> Adapters:
        return cls(
            objects,
            ModelStore(objects),
            ReportStore(objects),
            SnapshotStore(objects),
            events,
            registry,
        )

    @classmethod
    def real(cls, settings: Settings) -> Adapters:
        """S3, Kafka and the model-events log."""
        from app.s3 import S3Objects

        return cls.over(
            S3Objects(settings), KafkaEventPublisher(settings), LogRegistryReader(settings)
        )

    async def close(self) -> None:
        await self.events.close()
        await self.objects.close()


@asynccontextmanager
async def opened(settings: Settings, given: Adapters | None = None) -> AsyncIterator[Adapters]:
    """`given`, left open for its owner; or real adapters for this call, closed after it."""
    if given is not None:
        yield given
        return
    adapters = Adapters.real(settings)
    try:
        yield adapters
    finally:
        await adapters.close()
