"""The views' RocksDB memory is one budget, whatever the number of partitions."""

from __future__ import annotations

from pathlib import Path

import faust

from app.settings import Settings
from tables import views
from tables.memory import SharedBudget

BUDGET = 4 * 1024 * 1024


def test_partition_databases_share_one_budget(tmp_path: Path) -> None:
    budget = SharedBudget(BUDGET, write_buffer_size=1024 * 1024, max_write_buffer_number=2)
    dbs = [budget.open(tmp_path / f"p{p}") for p in range(4)]
    value = bytes(range(100))
    # 4 x 40,000 x ~110 bytes: over four times the budget, memtables and files alike.
    for db in dbs:
        for k in range(40_000):
            db[b"key-%06d" % k] = value
    for db in dbs:
        assert [db[b"key-%06d" % k] for k in range(0, 40_000, 997)] == [value] * 41
    used = budget.usage()
    # The memtables are charged to the cache; its capacity is not strict (a block in use
    # may take it a little over), so a tenth is allowed. Apart, four memtables alone could
    # take 8 MiB, and each cache its own.
    assert 0 < used["memtables"] <= used["cache"] <= BUDGET * 1.1
    for db in dbs:
        db.close()


def test_the_views_table_opens_its_partitions_under_the_budget(tmp_path: Path) -> None:
    app = faust.App("budget-test", store="rocksdb://", datadir=str(tmp_path))
    table = views.define(app, Settings(views_memory_mb=16), writer=None)  # type: ignore[arg-type]
    options = table.data.rocksdb_options  # type: ignore[attr-defined]
    assert isinstance(options, SharedBudget)
    assert options.budget_bytes == 16 * 1024 * 1024
