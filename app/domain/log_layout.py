"""Cold segments: how the log is cut into S3 objects, and how a replay stitches them to Kafka.

A segment holds one topic-partition's records `first..last` (offsets, inclusive). Its object
key says so, zero-padded so that keys sort in offset order. Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PREFIX = "log"
_KEY = re.compile(
    r"^log/(?P<topic>[^/]+)/partition=(?P<p>\d+)/(?P<first>\d{20})-(?P<last>\d{20})\.parquet$"
)


class LogGap(RuntimeError):
    """Part of the log is in neither the cold segments nor Kafka: it cannot be replayed."""


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One Kafka record, exactly as it was logged."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True, order=True)
class Segment:
    first: int
    last: int
    topic: str
    partition: int

    @property
    def key(self) -> str:
        return segment_key(self.topic, self.partition, self.first, self.last)

    @property
    def count(self) -> int:
        return self.last - self.first + 1


def topic_prefix(topic: str) -> str:
    return f"{PREFIX}/{topic}/"


def partition_prefix(topic: str, partition: int) -> str:
    return f"{topic_prefix(topic)}partition={partition}/"


def segment_key(topic: str, partition: int, first: int, last: int) -> str:
    return f"{partition_prefix(topic, partition)}{first:020d}-{last:020d}.parquet"


def parse_segment_key(key: str) -> Segment | None:
    """The segment an object key names, or None for any other object."""
    match = _KEY.match(key)
    if match is None:
        return None
    first, last = int(match["first"]), int(match["last"])
    if last < first:
        return None
    return Segment(first, last, match["topic"], int(match["p"]))


def next_offset(segments: Iterable[Segment], default: int = 0) -> int:
    """The first offset not yet in cold storage."""
    return max((s.last + 1 for s in segments), default=default)


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    """Which segments to read, then from which offset Kafka takes over, up to `stop`."""

    segments: tuple[Segment, ...]
    kafka_from: int
    stop: int


def plan_replay(
    segments: Sequence[Segment], start: int, stop: int, kafka_start: int, kafka_end: int
) -> ReplayPlan:
    """Cover offsets `start..stop-1` with segments first and Kafka after, with no gap.

    `kafka_start..kafka_end-1` is what the broker still holds (its log start and high-water
    mark). Segments may overlap if two flushers raced during a rebalance; the reader drops
    offsets it has already passed, so overlap costs time, never a duplicate.
    """
    chosen: list[Segment] = []
    position = start
    for segment in sorted(segments):
        if position >= stop or segment.first > position:
            break
        if segment.last >= position:
            chosen.append(segment)
            position = segment.last + 1
    if position >= stop:
        return ReplayPlan(tuple(chosen), stop, stop)
    if kafka_end <= position:
        # Kafka holds nothing past the segments (it lost its log, or nothing is newer).
        return ReplayPlan(tuple(chosen), position, position)
    if kafka_start > position:
        raise LogGap(
            f"offsets {position}..{kafka_start - 1} are neither in cold segments nor in Kafka "
            f"(Kafka starts at {kafka_start})"
        )
    return ReplayPlan(tuple(chosen), position, min(stop, kafka_end))
