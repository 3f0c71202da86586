"""One RocksDB memory budget for all of a table's partition databases in a worker.

Faust opens a database per partition, each with its own block cache and memtables, and
keeps index and filter blocks outside any cache. A worker's RocksDB memory then grows with
its partitions and with the data until each cache is full: eight partitions at 8 MiB x 2
memtables and a 32 MiB cache each could reach 384 MiB, and bench.memory's RSS still rose
by tens of MB a million events after the first million (BENCHMARKS.md, 2026-12-07). Here
every partition's database shares one LRU cache, its memtables are charged to that cache,
and index and filter blocks live in it too, so RocksDB's memory is one number however many
partitions the worker owns.
"""

from __future__ import annotations

from typing import Any

import rocksdict
from faust.stores.rocksdb import RocksDBOptions

# Of the budget, the most the memtables may take before RocksDB flushes the largest one.
MEMTABLE_SHARE = 0.5


class SharedBudget(RocksDBOptions):
    """`RocksDBOptions` (rocksdict) whose databases share `budget_bytes` of memory."""

    def __init__(self, budget_bytes: int, **kwargs: Any) -> None:
        super().__init__(use_rocksdict=True, **kwargs)
        self.budget_bytes = budget_bytes
        self.cache = rocksdict.Cache(budget_bytes)
        # No stall: a write past the limit only flushes sooner (allow_stall=False).
        self.memtables = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
            int(budget_bytes * MEMTABLE_SHARE), False, self.cache
        )

    def as_options(self) -> Any:
        options = super().as_options()
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, True)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        table.set_block_cache(self.cache)
        table.set_cache_index_and_filter_blocks(True)
        # The newest files' index and filter stay cached: the fold reads recent keys most.
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        options.set_block_based_table_factory(table)
        options.set_write_buffer_manager(self.memtables)
        return options

    def usage(self) -> dict[str, int]:
        """Bytes in use: the cache's (memtables included) and the memtables' alone."""
        return {"cache": self.cache.get_usage(), "memtables": self.memtables.get_usage()}
