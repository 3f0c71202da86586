"""The lineage agent: folds lineage records into the `lineage` table, under their key."""

from __future__ import annotations

from typing import Any

import faust

from agents.registry import Reject
from app.domain import lineage
from app.settings import Settings
from app.topic_admin import raw_topic
from app.topics import LINEAGE


def register(app: faust.App, table: Any, settings: Settings, reject: Reject) -> Any:
    source = raw_topic(app, LINEAGE, partitions=settings.partitions)

    async def fold(stream: Any) -> None:
        async for event in stream.events():
            key = event.message.key
            try:
                if not key:
                    raise lineage.InvalidLineage("a lineage record is keyed by an event or tag id")
                record = lineage.decode(event.message.value)
            except lineage.InvalidLineage as exc:
                await reject(event.message, str(exc))
                continue
            folded = lineage.fold(table.get(key), record)
            if folded is not None:  # delivered again: already there
                table[key] = folded

    return app.agent(source, name="lineage")(fold)
