"""The lineage agent: folds lineage records into the `lineage` table, under their key.

An `erased` marker for an event, logged by an erasure, is passed on to the keys of the
event's tags, which only the owner of the event's key knows."""

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
            current = table.get(key)
            folded = lineage.fold(current, record)
            if folded is not None:  # delivered again: already there
                table[key] = folded
            if record.kind == "erased" and not record.tag_id:
                # The event's tags index the same records under their own keys: forget there too.
                tags = {r.tag_id for r in lineage.entries(current) if r.tag_id}
                for tag_id in sorted(tags):
                    marker = lineage.erased(record.event_id, record.at, tag_id)
                    await (await source.send(key=tag_id.encode(), value=lineage.encode(marker)))

    return app.agent(source, name="lineage")(fold)
