"""The registry agent: folds model events into the `registry` table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import faust

from app.domain import model_events, registry
from app.settings import Settings
from app.topic_admin import raw_topic
from app.topics import MODEL_EVENTS

# (key, raw value, reason): dead-letters a record it cannot use.
Reject = Callable[[Any, str], Awaitable[None]]


def register(
    app: faust.App,
    table: Any,
    settings: Settings,
    reject: Reject,
    champion_changed: Callable[[str, str | None], None] | None = None,
) -> Any:
    source = raw_topic(app, MODEL_EVENTS, partitions=settings.partitions)

    async def fold(stream: Any) -> None:
        async for event in stream.events():
            try:
                body = model_events.decode(event.message.value)
            except model_events.InvalidModelEvent as exc:
                await reject(event.message, str(exc))
                continue
            key = body.model.encode()
            current = table.get(key)
            state = registry.decode(current) if current is not None else None
            entry = registry.apply(state, body)
            table[key] = registry.encode(entry)
            if champion_changed is not None and isinstance(body, model_events.ModelPromoted):
                champion_changed(body.model, entry.champion)

    return app.agent(source, name="registry")(fold)
