"""The ingest agent: predictions and tags, co-partitioned by event_id, folded into the views."""

from __future__ import annotations

from typing import Any

import faust

from app.settings import Settings
from app.topic_admin import raw_topic
from app.topics import PREDICTIONS, TAGS
from app.views.ingestor import Ingestor


def register(app: faust.App, ingestor: Ingestor, settings: Settings) -> Any:
    source = raw_topic(app, PREDICTIONS, TAGS, partitions=settings.partitions)

    async def ingest(stream: Any) -> None:
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within):
            await ingestor.process_until_done(events)

    return app.agent(source, name="ingest")(ingest)
