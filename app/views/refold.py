"""Fold a stretch of the log again, off-line, with the agents' own fold: for rebuilds and snapshots."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from aiokafka import AIOKafkaConsumer

from app.domain.batch import fold_batch
from app.domain.delivery import source_records
from app.domain.log_layout import LogRecord
from app.log.replay import read_partition
from app.log.segment_store import SegmentStore
from app.settings import Settings
from app.topics import LOGGED
from app.views import viewcodec
from app.views.wal import PartitionTxn, Reads, keys_under, read_cursor


def fold_records(
    store: dict[str, bytes], partition: int, records: Sequence[LogRecord], max_event_bytes: int
) -> None:
    """The live ingest step minus the I/O: fold, then commit through the same wal."""
    txn = PartitionTxn(store)
    reads = Reads(store, partition, viewcodec.decode)
    cursor = txn.cursor(partition)
    result = fold_batch(
        reads,
        partition,
        cursor,
        source_records([records]),
        max_event_bytes,
        scan=lambda prefix: keys_under(store, prefix, partition),
    )
    txn.commit(partition, viewcodec.encode_all(result.writes), result.cursor, reads.before)


async def fold_partition(
    settings: Settings,
    cold: SegmentStore,
    consumer: AIOKafkaConsumer,
    partition: int,
    stops: Mapping[str, int | None],
    progress: Callable[[int], None] | None = None,
    store: dict[str, bytes] | None = None,
) -> tuple[dict[str, bytes], int]:
    """Partition `partition`'s views as of offsets `stops` (per topic, exclusive; None: all).

    Given `store`, a fold of this partition up to its wal cursor, only what lies between
    that cursor and `stops` is read: the incremental case.
    """
    store = {} if store is None else store
    count = 0
    cursor = read_cursor(store, partition)
    for topic in LOGGED:
        start = cursor.get(topic, -1) + 1
        stop = stops.get(topic)
        if stop is not None and stop <= start:
            continue
        async for batch in read_partition(cold, consumer, topic, partition, start=start, stop=stop):
            fold_records(store, partition, batch, settings.max_event_bytes)
            count += len(batch)
            if progress:
                progress(len(batch))
    return store, count
