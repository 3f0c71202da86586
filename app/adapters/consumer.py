"""Faust's Kafka consumer, with the offset bookkeeping that stalls its commits mended.

After a worker starts, Faust 0.15.3 resumes the stream partitions before it seeks them to
the committed offsets (faust-streaming#216). Records fetched before the seek are delivered
and acked; the seek then moves Faust's read offset back, the next prefetched record looks
like a jump, and Faust's gap rule (meant for compacted topics) marks the whole range as
done again. Its acked list then holds those offsets twice, and `_new_offset`, which commits
the first run of consecutive numbers, finds a run of two: the group's offset advances by one
a commit for the rest of the worker's life (robinhood/faust#625). The three-kills test saw
offsets stuck near 37 while the views were past 390, so each restart re-read nearly
everything since the first one.

Here the acked offsets and the gap ranges are merged as a set. Faust's other rules are kept:
a gap of one at the head is still committed over, and records its read offset makes it drop
are still dropped. Neither costs data: `Ingestor._missed` folds from the log whatever lies
between the views' cursor and the first record delivered.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers.aiokafka import Consumer


class CommittingConsumer(Consumer):
    def _new_offset(self, tp: Any) -> int | None:
        return next_offset(
            self._acked[tp], self._acked_index[tp], self._gap[tp], self._committed_offset[tp]
        )


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
