"""Where a flusher resumes each partition it is given: after the last segment in S3."""

from __future__ import annotations

from app.domain.log_layout import Segment
from app.log.flusher import Flusher, _Partition
from app.log.segment_store import SegmentStore
from app.settings import Settings
from tests.fakes import MemoryObjects


class CountedObjects(MemoryObjects):
    """The bucket, counting its listings: each one is an S3 call a worker makes."""

    def __init__(self) -> None:
        super().__init__()
        self.listings: list[str] = []
        self.refuse = False

    async def keys(self, prefix: str, after: str = "") -> list[str]:
        self.listings.append(prefix)
        if self.refuse:
            raise ConnectionError("S3 away")
        return await super().keys(prefix, after)

    async def folders(self, prefix: str) -> list[str]:
        self.listings.append(prefix)
        if self.refuse:
            raise ConnectionError("S3 away")
        return await super().folders(prefix)


def flusher_owning(topics: dict[str, int]) -> Flusher:
    flusher = Flusher(Settings(), owned=lambda: (), topics=topics)
    for topic, count in topics.items():
        for p in range(count):
            flusher.parts[(topic, p)] = _Partition(topic, p)
    return flusher


async def test_partitions_without_segments_are_learned_from_one_listing_of_their_topic() -> None:
    objects = CountedObjects()
    cold = SegmentStore(objects)
    await cold.put(Segment(0, 9, "preds", 2), b"a")
    await cold.put(Segment(10, 24, "preds", 2), b"b")
    await cold.put(Segment(0, 4, "tags", 5), b"c")
    flusher = flusher_owning({"preds": 8, "tags": 8, "erasures": 8})

    await flusher._learn(cold, now=0.0)

    assert flusher.flushed() == {
        **{(t, p): 0 for t in ("preds", "tags", "erasures") for p in range(8)},
        ("preds", 2): 25,
        ("tags", 5): 5,
    }
    assert flusher.parts[("preds", 2)].last_key == Segment(10, 24, "preds", 2).key
    # One listing a topic, then one for each partition that has segments: 5 calls, not 24.
    assert len(objects.listings) == 5


async def test_a_failed_listing_leaves_its_topic_unknown_and_retried_later() -> None:
    objects = CountedObjects()
    cold = SegmentStore(objects)
    flusher = flusher_owning({"preds": 4})
    objects.refuse = True

    await flusher._learn(cold, now=0.0)

    assert flusher.flushed() == {}
    assert all(p.retry_at > 0.0 for p in flusher.parts.values())
    assert flusher.stats.failures == 4
    objects.refuse = False
    await flusher._learn(cold, now=0.0)  # not due yet: no call
    assert len(objects.listings) == 1
    await flusher._learn(cold, now=60.0)
    assert flusher.flushed() == {("preds", p): 0 for p in range(4)}
