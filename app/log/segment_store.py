"""Where cold segments are kept: the object store, under keys laid out by
`app.domain.log_layout`. What is in them is `app.log.segments`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.domain.log_layout import Segment, parse_segment_key, partition_prefix, topic_prefix
from app.objects import Objects
from app.settings import Settings

PARQUET = "application/vnd.apache.parquet"


class SegmentStore:
    def __init__(self, objects: Objects) -> None:
        self.objects = objects

    async def segments(self, topic: str, partition: int, after: str = "") -> list[Segment]:
        """The partition's segments in offset order (keys sort by first offset), after key
        `after`."""
        found = []
        for key in await self.objects.keys(partition_prefix(topic, partition), after):
            segment = parse_segment_key(key)
            if segment is not None and segment.topic == topic and segment.partition == partition:
                found.append(segment)
        return sorted(found)

    async def partitions(self, topic: str) -> list[int]:
        """The partitions of `topic` that have segments."""
        names = await self.objects.folders(topic_prefix(topic))
        return sorted(int(n.split("=", 1)[1]) for n in names if n.startswith("partition="))

    async def put(self, segment: Segment, data: bytes) -> None:
        await self.objects.put(segment.key, data, content_type=PARQUET)

    async def get(self, segment: Segment) -> bytes:
        data = await self.objects.get(segment.key)
        if data is None:
            raise FileNotFoundError(f"segment {segment.key} is listed but cannot be read")
        return data


@asynccontextmanager
async def segment_store(settings: Settings) -> AsyncIterator[SegmentStore]:
    """A SegmentStore over S3 for one job, closed after it."""
    from app.s3 import S3Objects

    objects = S3Objects(settings)
    try:
        yield SegmentStore(objects)
    finally:
        await objects.close()
