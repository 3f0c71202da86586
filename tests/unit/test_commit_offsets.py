"""The consumer's next offset to commit: the views' durable end for the topics they fold,
Faust's rules without the duplicates that stall them for the others."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

from faust.transport.drivers.aiokafka import Consumer
from faust.types import TP
from intervaltree import IntervalTree

from app.views.compat import CommittingConsumer, SeekingThread, next_offset
from app.views.ingestor import DurableCursor

TOPIC = TP("modelview.predictions", 1)


def after_restart() -> SimpleNamespace:
    """What the three-kills test left behind: 23..191 acked before the seek to the committed
    offset 28, then a jump from 28 to 192 filled by Faust's gap rule, then 192..200 acked."""
    acked = [*range(23, 192), *range(192, 201)]
    durable = DurableCursor()
    state = SimpleNamespace(
        durable=durable,
        committable=durable.committable,
        durable_topics=frozenset(),
        _acked=defaultdict(list, {TOPIC: list(acked)}),
        _acked_index=defaultdict(set, {TOPIC: set(acked)}),
        _gap=defaultdict(IntervalTree),
        _committed_offset=defaultdict(lambda: None, {TOPIC: 28}),
    )
    state._gap[TOPIC].addi(29, 193)
    return state


def commits(new_offset: object, state: SimpleNamespace, n: int) -> list[int | None]:
    out = []
    for _ in range(n):
        offset = new_offset(state, TOPIC)  # type: ignore[operator]
        if offset is not None:
            state._committed_offset[TOPIC] = offset  # as Faust's commit does
        out.append(offset)
    return out


def test_faust_alone_advances_one_offset_a_commit_after_a_restart() -> None:
    assert commits(Consumer._new_offset, after_restart(), 4) == [30, 31, 32, 33]


def test_acked_offsets_and_gaps_merge_once_so_the_commit_reaches_the_last_record() -> None:
    state = after_restart()
    assert commits(CommittingConsumer._new_offset, state, 2) == [201, None]
    assert state._acked[TOPIC] == [] and state._acked_index[TOPIC] == set()
    assert not state._gap[TOPIC]


def test_commits_stop_at_the_first_offset_not_yet_acked() -> None:
    acked, index, gaps = [10, 11, 13], {10, 11, 13}, IntervalTree()
    assert next_offset(acked, index, gaps, committed=10) == 12
    assert acked == [13] and index == {13}


def test_a_missing_head_waits_but_a_single_missing_offset_is_committed_over_as_in_faust() -> None:
    acked = [12, 13]
    assert next_offset(acked, set(acked), IntervalTree(), committed=10) is None
    assert acked == [12, 13]
    assert next_offset([11, 12], {11, 12}, IntervalTree(), committed=10) == 13


def test_gaps_beyond_the_acked_offsets_wait_for_them() -> None:
    gaps = IntervalTree()
    gaps.addi(50, 60)
    assert next_offset([10, 11, 12], {10, 11, 12}, gaps, committed=10) == 13
    assert sorted((g.begin, g.end) for g in gaps) == [(50, 60)]


def test_for_the_views_topics_the_commit_is_the_views_durable_end() -> None:
    state = after_restart()
    state.durable_topics = frozenset({TOPIC.topic})
    assert CommittingConsumer._new_offset(state, TOPIC) is None  # nothing folded yet
    state.durable.advance(TOPIC.topic, TOPIC.partition, 150)
    assert CommittingConsumer._new_offset(state, TOPIC) == 150
    # Faust's bookkeeping below it is dropped, the rest kept.
    assert min(state._acked[TOPIC]) == 150 and min(state._acked_index[TOPIC]) == 150
    assert min(g.begin for g in state._gap[TOPIC]) == 150


def test_every_assigned_partition_of_the_views_topics_is_committed_not_only_those_acked() -> None:
    # A fetch event is acked under its first partition alone; after a rebalance Faust's
    # list of acked partitions starts empty again (modelview.tags[3] was never committed).
    tags = [TP("modelview.tags", p) for p in range(4)]
    other = TP("modelview.model-events", 0)
    state = SimpleNamespace(
        durable_topics=frozenset({TOPIC.topic, "modelview.tags"}),
        _acked=defaultdict(list, {TOPIC: [5], other: [2]}),
        assignment=lambda: {TOPIC, other, *tags},
    )
    asked = list(CommittingConsumer._filter_tps_with_pending_acks(state))  # type: ignore[arg-type]
    assert sorted(asked) == sorted([TOPIC, other, *tags])
    assert len(asked) == len(set(asked))
    only_tags = CommittingConsumer._filter_tps_with_pending_acks(state, {"modelview.tags"})  # type: ignore[arg-type]
    assert sorted(only_tags) == tags


class OffsetsBroker:
    """A consumer's view of the group's committed offsets, counting the requests for them."""

    def __init__(self, committed: dict[TP, int]) -> None:
        self.committed, self.requests, self.sought = committed, 0, {}
        self._coordinator = self

    def assignment(self) -> set[TP]:
        return {TP("modelview.predictions", p) for p in range(4)}

    async def fetch_committed_offsets(self, partitions: set[TP]) -> dict[TP, SimpleNamespace]:
        self.requests += 1
        return {
            tp: SimpleNamespace(offset=o) for tp, o in self.committed.items() if tp in partitions
        }

    def seek(self, tp: TP, offset: int) -> None:
        self.sought[tp] = offset


async def test_the_group_offsets_of_every_partition_come_in_one_request() -> None:
    p = [TP("modelview.predictions", n) for n in range(4)]
    broker = OffsetsBroker({p[0]: 120, p[1]: -1, p[2]: 0})  # p[3]: never committed
    thread = SimpleNamespace(_ensure_consumer=lambda: broker)

    found = await SeekingThread._seek_to_committed(thread)  # type: ignore[arg-type]

    assert broker.requests == 1
    # aiokafka's own rule: no commit (-1 or absent) is None, and only an offset past 0 is
    # sought; the rest start where the consumer's reset policy puts them.
    assert found == {p[0]: 120, p[1]: None, p[2]: 0, p[3]: None}
    assert broker.sought == {p[0]: 120}
