"""Every use of Faust's and aiokafka's private internals, and the versions they suit.

An upgrade can change any private attribute without notice, so this module is the only one
that touches them, and `check_versions()` refuses, at start, versions it was not written and
tested for. Raise SUPPORTED only after the three-kills, restore and cluster tests pass.

The consumer, committing for the views what the views hold. Faust commits the highest offset below which every record was acked, from its own
bookkeeping, and that bookkeeping goes wrong at a start. Faust 0.15.3 resumes the stream
partitions before it seeks them to the committed offsets (faust-streaming#216): records
fetched before the seek are delivered and acked, the seek moves Faust's read offset back,
the next prefetched record looks like a jump, and the gap rule (meant for compacted topics)
marks the range done a second time. The acked list then holds those offsets twice, and
`_new_offset`, which commits the first run of consecutive numbers, finds a run of two: the
group's offset moved by one a commit for the rest of the worker's life (robinhood/faust#625;
in the three-kills test, 321 to 349 records behind on 7 of its 8 topic-partitions). A head
that is never acked, a record dropped in the same race, stalls it for good.

For the topics the views fold, the group commits what the Ingestor reports durable
(`app.views.ingestor.DurableCursor`, step 9 of its journey): the views' cursor + 1 once the
batch's changelog writes are acknowledged. Delivery can then
start nowhere but at the views' end; what Faust skips on the way in, `Ingestor._missed`
folds from the log. For other topics Faust's bookkeeping stays, with acked offsets and gap
ranges merged as a set so the duplicates cannot stall it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Collection
from importlib.metadata import version
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.cluster import ClusterMetadata
from faust.streams import _current_event
from faust.transport.drivers.aiokafka import Consumer

SUPPORTED = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}


class UnsupportedVersion(RuntimeError):
    """An installed Faust or aiokafka this module was not written for."""


def check_versions() -> None:
    found = {name: version(name) for name in SUPPORTED}
    wrong = {name: v for name, v in found.items() if v != SUPPORTED[name]}
    if wrong:
        raise UnsupportedVersion(
            f"installed {wrong}; app/views/compat.py uses private internals of "
            f"{SUPPORTED} only: install those (pip install -e .) or port that module first"
        )


def set_current_event(event: Any) -> None:
    """Make `event` Faust's current one: table writes are filed under its partition."""
    _current_event.set(weakref.ref(event))


async def all_metadata(consumer: AIOKafkaConsumer) -> ClusterMetadata:
    """Metadata of every topic (a consumer's own covers only what it was assigned)."""
    return await consumer._client.fetch_all_metadata()


class CommittingConsumer(Consumer):
    def __init__(
        self,
        *args: Any,
        committable: Callable[[str, int], int | None],
        topics: Collection[str],
        **kwargs: Any,
    ) -> None:
        self.committable, self.durable_topics = committable, frozenset(topics)
        super().__init__(*args, **kwargs)

    def _new_offset(self, tp: Any) -> int | None:
        acked, index, gaps = self._acked[tp], self._acked_index[tp], self._gap[tp]
        if tp.topic not in self.durable_topics:
            return next_offset(acked, index, gaps, self._committed_offset[tp])
        offset = self.committable(tp.topic, tp.partition)
        if offset is None:
            return None  # nothing folded here yet
        # Faust's record of acks below it is of no more use.
        acked[:] = [o for o in acked if o >= offset]
        index.difference_update([o for o in index if o < offset])
        gaps.chop(0, offset)
        return offset  # committed only if past the group's offset (`_should_commit`)


def next_offset(acked: list[int], index: set[int], gaps: Any, committed: int | None) -> int | None:
    """The offset to commit next, or None; what it commits leaves `acked`, `index` and `gaps`."""
    if not acked:
        return None
    done = set(acked)
    if gaps:
        highest = max(done)
        for gap in gaps.overlap(0, highest + 1):
            done.update(range(gap.begin, gap.end))
        gaps.chop(0, max(done) + 1)
    ordered = sorted(done)
    if committed and ordered[0] - committed > 1:
        acked[:] = ordered  # the record at the head is still on its way
        return None
    end = ordered[0]
    for offset in ordered[1:]:
        if offset != end + 1:
            break
        end = offset
    acked[:] = [o for o in ordered if o > end]
    index.difference_update(range(ordered[0], end + 1))
    return end + 1
