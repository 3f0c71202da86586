"""In-memory stand-ins for the adapters that bootstrap and the services take as parameters."""

from __future__ import annotations

from collections.abc import Sequence

from app.domain.lineage import LineageRecord
from app.domain.model_events import ModelEvent
from app.domain.registry import RegistryEntry, apply
from app.models.adapters import Adapters


class MemoryObjects:
    """`app.objects.Objects` over a dictionary: the bucket as the stores see it."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.closed = False

    async def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    async def put(
        self, key: str, data: bytes, *, if_absent: bool = False, content_type: str | None = None
    ) -> bool:
        if if_absent and key in self.data:
            return False
        self.data[key] = data
        return True

    async def keys(self, prefix: str, after: str = "") -> list[str]:
        return sorted(k for k in self.data if k.startswith(prefix) and k > after)

    async def folders(self, prefix: str) -> list[str]:
        return sorted(
            {
                k[len(prefix) :].split("/", 1)[0]
                for k in self.data
                if k.startswith(prefix) and "/" in k[len(prefix) :]
            }
        )

    async def close(self) -> None:
        self.closed = True


class FoldedRegistry:
    """A model-events log in memory: what is published is folded into the registry."""

    def __init__(self) -> None:
        self.published: list[ModelEvent] = []
        self.lineage: list[LineageRecord] = []

    async def publish(self, event: ModelEvent) -> None:
        self.published.append(event)

    async def record_lineage(self, records: Sequence[LineageRecord]) -> None:
        self.lineage.extend(records)

    async def close(self) -> None:
        return None

    async def entries(self, model: str | None = None) -> dict[str, RegistryEntry]:
        entries: dict[str, RegistryEntry] = {}
        for event in self.published:
            if model is None or event.model == model:
                entries[event.model] = apply(entries.get(event.model), event)
        return entries


def memory_adapters() -> Adapters:
    """The model services' adapters, all in memory."""
    log = FoldedRegistry()
    return Adapters.over(MemoryObjects(), log, log)
