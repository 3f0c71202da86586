"""Whatever Faust delivers, in whatever order, the views end as the fold of the log."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Sequence

import orjson
import pytest

from app.domain.batch import SourceRecord
from app.domain.log_layout import LogRecord
from app.log.rebuild import differences
from app.topics import PREDICTIONS, TAGS
from app.views.ingestor import Backfill, DurableCursor, Handover, Ingestor
from app.views.refold import fold_records
from tests.factories import prediction, tag


def log(n: int) -> tuple[list[SourceRecord], list[SourceRecord]]:
    predictions = [prediction() for _ in range(n)]
    tags = [tag(p["event_id"]) for p in predictions]

    def records(topic: str, events: list[dict[str, object]]) -> list[SourceRecord]:
        kind = "prediction" if topic == PREDICTIONS else "tag"
        return [
            SourceRecord(kind, topic, 0, o, str(e["event_id"]).encode(), orjson.dumps(e))  # type: ignore[arg-type]
            for o, e in enumerate(events)
        ]

    return records(PREDICTIONS, predictions), records(TAGS, tags)


async def no_letters(letters: Sequence[tuple[bytes | None, bytes]]) -> None:
    raise AssertionError("no dead letters expected")


def from_log(
    predictions: list[SourceRecord],
    tags: list[SourceRecord],
    asked: list[tuple[str, int, int, int]],
) -> Backfill:
    """A backfill reading these records, noting what it was asked for."""

    async def backfill(topic: str, partition: int, start: int, stop: int) -> list[SourceRecord]:
        asked.append((topic, partition, start, stop))
        source = predictions if topic == PREDICTIONS else tags
        return [r for r in source if start <= r.offset < stop]

    return backfill


def assert_is_the_fold_of(store: dict[str, bytes], records: list[SourceRecord]) -> None:
    expected: dict[str, bytes] = {}
    as_log = [LogRecord(r.topic, 0, r.offset, 0, r.key, r.value) for r in records]
    fold_records(expected, 0, as_log, 1 << 20)
    assert differences(store, expected, 0) == []


async def test_views_that_never_saw_a_topic_fold_what_the_group_skipped() -> None:
    predictions, tags = log(30)
    asked: list[tuple[str, int, int, int]] = []
    store: dict[str, bytes] = {}
    ingestor = Ingestor(store, no_letters, 1 << 20, backfill=from_log(predictions, tags, asked))
    # The group's offsets say 12 and 20: delivery starts there.
    await ingestor.process_partition(0, predictions[12:] + tags[20:])
    assert sorted(asked) == [(PREDICTIONS, 0, 0, 12), (TAGS, 0, 0, 20)]
    # Later batches start where the views are: nothing more to fill.
    await ingestor.process_partition(0, predictions[25:])
    assert len(asked) == 2

    assert_is_the_fold_of(store, predictions + tags)


async def test_a_gap_after_the_views_cursor_is_folded_from_the_log() -> None:
    predictions, tags = log(30)
    asked: list[tuple[str, int, int, int]] = []
    store: dict[str, bytes] = {}
    ingestor = Ingestor(store, no_letters, 1 << 20, backfill=from_log(predictions, tags, asked))
    await ingestor.process_partition(0, predictions[:10] + tags)
    # The views end at 9; delivery resumes at 17 (offsets committed past the views).
    await ingestor.process_partition(0, predictions[17:])
    assert asked == [(PREDICTIONS, 0, 10, 17)]

    assert_is_the_fold_of(store, predictions + tags)


async def test_records_delivered_out_of_order_are_folded_in_log_order() -> None:
    # After a start Faust can deliver prefetched records before those it fetches again.
    predictions, tags = log(30)

    async def nothing_missed(
        topic: str, partition: int, start: int, stop: int
    ) -> list[SourceRecord]:
        raise AssertionError(f"nothing to backfill, asked {start}..{stop}")

    store: dict[str, bytes] = {}
    ingestor = Ingestor(store, no_letters, 1 << 20, backfill=nothing_missed)
    await ingestor.process_partition(0, predictions[:10])
    cursor = await ingestor.process_partition(0, predictions[20:] + tags + predictions[5:20])
    assert cursor == {PREDICTIONS: 29, TAGS: 29}
    assert ingestor.counts["applied"] == 60 and ingestor.counts["replayed"] == 5

    assert_is_the_fold_of(store, predictions + tags)


async def test_holes_inside_a_batch_are_folded_from_the_log_in_order() -> None:
    # Seen in the three-kills test: after a start, tags 45 then 48 on in one batch.
    predictions, tags = log(30)
    asked: list[tuple[str, int, int, int]] = []
    store: dict[str, bytes] = {}
    ingestor = Ingestor(store, no_letters, 1 << 20, backfill=from_log(predictions, tags, asked))
    await ingestor.process_partition(0, predictions[:10] + tags[:10])
    delivered = predictions[10:12] + predictions[15:30] + tags[10:11] + tags[13:20] + tags[25:]
    await ingestor.process_partition(0, delivered)
    assert asked == [(PREDICTIONS, 0, 12, 15), (TAGS, 0, 11, 13), (TAGS, 0, 20, 25)]

    assert_is_the_fold_of(store, predictions + tags)


async def test_a_hole_the_log_cannot_fill_fails_the_batch_instead_of_skipping_it() -> None:
    predictions, _ = log(10)

    async def short(topic: str, partition: int, start: int, stop: int) -> list[SourceRecord]:
        return [r for r in predictions if start <= r.offset < stop - 1]

    store: dict[str, bytes] = {}
    ingestor = Ingestor(store, no_letters, 1 << 20, backfill=short)
    with pytest.raises(RuntimeError, match="the log gave back 2 of"):
        await ingestor.process_partition(0, predictions[:2] + predictions[5:])
    assert store == {}


async def test_a_failed_batch_is_retried_until_folded_never_skipped() -> None:
    predictions, tags = log(10)
    bad = SourceRecord("prediction", PREDICTIONS, 0, 10, b"junk", b"not json")
    failures = [RuntimeError("broker away"), RuntimeError("still away")]
    letters: list[bytes] = []

    async def flaky_letters(sent: Sequence[tuple[bytes | None, bytes]]) -> None:
        if failures:
            raise failures.pop(0)
        letters.extend(value for _, value in sent)

    store: dict[str, bytes] = {}
    ingestor = Ingestor(store, flaky_letters, 1 << 20)
    ingestor.backoff = 0.001
    await ingestor.process_until_done([*predictions, bad, *tags], backoff=0.001)
    await ingestor.settle()  # the letters are sent in the background, retried there
    assert ingestor.counts["retries"] == 2 and len(letters) == 1
    assert ingestor.durable.committable(PREDICTIONS, 0) == 11
    assert_is_the_fold_of(store, [*predictions, bad, *tags])


async def test_a_batch_s_dead_letters_go_together_in_log_order() -> None:
    predictions, tags = log(5)
    bad = [SourceRecord("prediction", PREDICTIONS, 0, o, b"junk", b"{") for o in (5, 6, 7)]
    sends: list[list[int]] = []

    async def letters(sent: Sequence[tuple[bytes | None, bytes]]) -> None:
        sends.append([orjson.loads(value)["source"]["offset"] for _, value in sent])

    ingestor = Ingestor({}, letters, 1 << 20)
    await ingestor.process([*predictions, *reversed(bad), *tags])
    await ingestor.settle()
    assert sends == [[5, 6, 7]]  # one send, one wait for its acks, not one a letter


async def test_a_stopping_worker_leaves_a_failing_batch_to_the_next_start() -> None:
    predictions, tags = log(10)

    async def away() -> None:
        raise RuntimeError("the broker lost the changelog's topic")

    ingestor = Ingestor({}, no_letters, 1 << 20, away)
    await ingestor.stop_retrying()
    await ingestor.process_until_done([*predictions, *tags], backoff=60.0)  # no retry
    with pytest.raises(RuntimeError, match="lost the changelog"):
        await ingestor.drain()
    assert ingestor.counts["retries"] == 0
    assert ingestor.durable.committable(PREDICTIONS, 0) is None  # so nothing is committed


async def test_records_handed_over_and_dropped_at_a_partition_s_end_are_folded_from_the_log() -> (
    None
):
    predictions, tags = log(30)
    asked: list[tuple[str, int, int, int]] = []
    store: dict[str, bytes] = {}
    ingestor = Ingestor(store, no_letters, 1 << 20, backfill=from_log(predictions, tags, asked))
    await ingestor.process(predictions[:10] + tags[:10])
    # The fetch after them was dropped on the way, and nothing of the partition came since.
    await ingestor.process([], ends={(PREDICTIONS, 0): 30, (TAGS, 0): 25})
    await ingestor.settle()
    assert sorted(asked) == [(PREDICTIONS, 0, 10, 30), (TAGS, 0, 10, 25)]
    committable = ingestor.durable.committable
    assert committable(PREDICTIONS, 0) == 30 and committable(TAGS, 0) == 25
    # Asked again once the views hold it: nothing is read.
    await ingestor.process([], ends={(PREDICTIONS, 0): 30, (TAGS, 0): 20})
    assert len(asked) == 2
    assert_is_the_fold_of(store, predictions + tags[:25])


def test_a_partition_is_stalled_when_short_of_what_was_handed_over_and_not_moving() -> None:
    handover, durable = Handover(), DurableCursor()
    owned = [(PREDICTIONS, 0), (PREDICTIONS, 1), (TAGS, 0)]
    handover.handed(PREDICTIONS, 0, 50)
    handover.handed(PREDICTIONS, 0, 40)  # a seek back: what went over must still be folded
    handover.handed(PREDICTIONS, 1, 20)
    handover.handed(TAGS, 0, 7)
    durable.advance(PREDICTIONS, 0, 30)
    durable.advance(PREDICTIONS, 1, 20)
    assert handover.stalled(owned, durable) == {}  # the first look: it may be on its way
    durable.advance(TAGS, 0, 3)  # moving
    assert handover.stalled(owned, durable) == {(PREDICTIONS, 0): 50}
    assert handover.stalled(owned, durable) == {(PREDICTIONS, 0): 50, (TAGS, 0): 7}
    assert handover.stalled([(PREDICTIONS, 1)], durable) == {}  # not owned: not asked
    durable.advance(PREDICTIONS, 0, 50)
    durable.advance(TAGS, 0, 7)
    assert handover.stalled(owned, durable) == {}


async def test_offsets_are_reported_durable_only_once_the_changelog_has_them() -> None:
    predictions, tags = log(10)
    acked = asyncio.Event()
    flushes: list[Exception | None] = [RuntimeError("changelog away"), None]

    async def flush() -> None:
        await acked.wait()
        failure = flushes.pop(0)
        if failure is not None:
            raise failure

    ingestor = Ingestor({}, no_letters, 1 << 20, flush)
    ingestor.backoff = 0.001
    await ingestor.process([*predictions, *tags[:4]])
    committable = ingestor.durable.committable
    assert committable(PREDICTIONS, 0) is None and committable(TAGS, 0) is None
    acked.set()  # the first write fails, and is retried until acked
    await ingestor.settle()
    assert ingestor.counts["retries"] == 1
    assert committable(PREDICTIONS, 0) == 10 and committable(TAGS, 0) == 4


async def test_the_next_batch_folds_while_the_last_one_s_changelog_waits_for_its_acks() -> None:
    predictions, tags = log(10)
    acked = asyncio.Event()
    calls: list[str] = []

    async def letters(sent: Sequence[tuple[bytes | None, bytes]]) -> None:
        calls.append("letters")

    async def flush() -> None:
        calls.append("changelog")
        await acked.wait()

    store: dict[str, bytes] = {}
    bad = SourceRecord("prediction", PREDICTIONS, 0, 5, b"junk", b"{")
    first = [*predictions[:5], bad]
    ingestor = Ingestor(store, letters, 1 << 20, flush)
    await ingestor.process(first)
    assert calls == ["letters", "changelog"]  # the letters acked before the changelog is sent
    second = asyncio.ensure_future(ingestor.process([*predictions[6:], *tags]))
    await wait_for(lambda: ingestor.counts["applied"] == 19)  # folded, the write still waiting
    assert not second.done() and ingestor.durable.committable(PREDICTIONS, 0) is None
    acked.set()
    await second
    await ingestor.settle()
    assert ingestor.durable.committable(PREDICTIONS, 0) == 10
    assert_is_the_fold_of(store, [*first, *predictions[6:], *tags])


async def test_a_rebalance_waits_for_the_write_in_flight_for_a_while_only() -> None:
    predictions, _ = log(3)
    acked = asyncio.Event()

    async def flush() -> None:
        await acked.wait()

    ingestor = Ingestor({}, no_letters, 1 << 20, flush)
    await ingestor.process(predictions)
    await ingestor.before_rebalance(within=0.01)  # not acked: it gives up waiting
    assert ingestor.durable.committable(PREDICTIONS, 0) is None
    acked.set()
    await ingestor.before_rebalance()
    assert ingestor.durable.committable(PREDICTIONS, 0) == 3


async def wait_for(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


async def test_the_cycle_collector_is_paused_while_a_fetch_is_folded_and_back_after() -> None:
    predictions, tags = log(5)
    seen: list[bool] = []

    class Watched(dict[str, bytes]):
        def write_batch(self, partition: int, items: Sequence[tuple[str, bytes | None]]) -> None:
            seen.append(gc.isenabled())
            self.update({k: v for k, v in items if v is not None})

    class Failing(Watched):
        def write_batch(self, partition: int, items: Sequence[tuple[str, bytes | None]]) -> None:
            raise RuntimeError("store away")

    assert gc.isenabled()
    await Ingestor(Watched(), no_letters, 1 << 20).process([*predictions, *tags])
    assert seen == [False] and gc.isenabled()
    with pytest.raises(RuntimeError, match="store away"):
        await Ingestor(Failing(), no_letters, 1 << 20).process(predictions)
    assert gc.isenabled()  # back on, whatever the batch's end


async def test_the_first_and_last_fold_are_the_first_and_last_fetch_with_records() -> None:
    predictions, tags = log(20)
    ingestor = Ingestor({}, no_letters, 1 << 20, backfill=from_log(predictions, tags, []))
    await ingestor.process([], ends={})  # a look that found nothing: not a fold
    assert ingestor.first_fold is None and ingestor.last_fold is None
    await ingestor.process(predictions[:10])
    first, after_one = ingestor.first_fold, ingestor.last_fold
    assert first is not None and after_one is not None and first <= after_one
    await ingestor.process(predictions[10:] + tags)
    assert ingestor.first_fold == first
    assert ingestor.last_fold is not None and ingestor.last_fold >= after_one
    await ingestor.settle()


async def test_the_loop_turns_between_a_partitions_fold_and_its_commit() -> None:
    # The rest of the worker (the next fetch's hand-over, the changelog write's hand-offs)
    # moves a step a turn: it must not wait for the whole partition.
    predictions, tags = log(5)
    turns = 0
    at_commit: list[int] = []

    async def tick() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    class Watched(dict[str, bytes]):
        def write_batch(self, partition: int, items: Sequence[tuple[str, bytes | None]]) -> None:
            at_commit.append(turns)
            self.update({k: v for k, v in items if v is not None})

    ticker = asyncio.ensure_future(tick())
    await asyncio.sleep(0)  # the ticker has begun
    try:
        await Ingestor(Watched(), no_letters, 1 << 20).process([*predictions, *tags])
    finally:
        ticker.cancel()
    assert at_commit[0] >= 3  # it turned after the fold and after the encoding, too
