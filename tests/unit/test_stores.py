"""The stores over an in-memory object store: what a service writes is what it reads back."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.domain.datasets import Row
from app.domain.gate import Scored, ValidationReport, report
from app.domain.log_layout import Segment
from app.log.segment_store import SegmentStore
from app.models.adapters import Adapters
from app.models.stores import AlreadyStored, NotStored
from app.models.training import TrainingError
from app.models.validation import promote, rollback
from app.settings import Settings
from tests.fakes import MemoryObjects, memory_adapters
from tests.unit.test_registry import trained


@pytest.fixture
def stores() -> Adapters:
    return memory_adapters()


async def test_a_version_is_its_manifest_and_artifact_and_is_never_overwritten(
    stores: Adapters, tmp_path: Path
) -> None:
    assert await stores.models.versions("delay") == []
    record = trained("1")
    await stores.models.save(record, [("model.json", b"{}"), ("weights/a.bin", b"\x00\x01")])
    await stores.models.save(trained("2"), [("model.json", b"{}")])
    assert await stores.models.versions("delay") == [1, 2]
    assert await stores.models.manifest("delay", 1) == record
    directory = await stores.models.artifact(record, tmp_path)
    assert (directory / "weights" / "a.bin").read_bytes() == b"\x00\x01"
    with pytest.raises(AlreadyStored, match="version 1 of delay"):
        await stores.models.save(record, [])
    with pytest.raises(NotStored, match="no version 9"):
        await stores.models.manifest("delay", 9)


async def test_a_snapshot_reads_back_its_rows_and_fold_state(stores: Adapters) -> None:
    manifest = trained("1").snapshot
    rows = [
        Row("e1", "delay", "1", "2026-11-01T00:00:00Z", {"d": 1.5}, 2.0, 3.0, "t1", "x", False),
        Row("e2", "delay", "1", "2026-11-01T00:01:00Z", {"c": "UA"}, 1.0, 0.0, "t2", "y", True),
    ]
    state = {0: {"ex/e1": b"{}", "wal/0": b'{"cursor": {}}'}}
    await stores.snapshots.save(manifest, rows, state)
    assert await stores.snapshots.load(manifest.dataset, manifest.snapshot_id) == (manifest, rows)
    assert await stores.snapshots.state(manifest.dataset, manifest.snapshot_id) == state
    with pytest.raises(NotStored):
        await stores.snapshots.load(manifest.dataset, "nope")
    assert await stores.snapshots.state(manifest.dataset, "nope") is None


async def test_a_report_and_its_events(stores: Adapters) -> None:
    assert await stores.reports.report("delay", "1") is None
    measured = report("regression", [Scored("e", "2013-01-01T00:00:00Z", "0", None, 1.0, 2.0, 1.5)])
    done = ValidationReport(measured, "delay", "1", None, None, 1, {}, "2026-12-02T10:00:00Z")
    await stores.reports.save(done, b"PAR1")
    assert await stores.reports.report("delay", "1") == done
    assert await stores.reports.events("delay", "1") == b"PAR1"
    await stores.close()
    assert stores.objects.closed  # type: ignore[attr-defined]


async def test_segments_list_in_offset_order_after_a_key_and_name_their_partitions() -> None:
    cold = SegmentStore(MemoryObjects())
    for first, last, partition in [(100, 199, 0), (0, 99, 0), (0, 9, 3)]:
        await cold.put(Segment(first, last, "modelview.tags", partition), b"PAR1")
    await cold.put(Segment(0, 5, "modelview.predictions", 0), b"PAR1")
    found = await cold.segments("modelview.tags", 0)
    assert [(s.first, s.last) for s in found] == [(0, 99), (100, 199)]
    assert [s.first for s in await cold.segments("modelview.tags", 0, after=found[0].key)] == [100]
    assert await cold.partitions("modelview.tags") == [0, 3]
    assert await cold.get(found[1]) == b"PAR1"


async def test_promote_and_rollback_publish_through_the_given_adapters(stores: Adapters) -> None:
    for version in ("1", "2"):
        await stores.models.save(trained(version), [])
    settings = Settings()
    await promote(settings, "delay", 1, adapters=stores)
    await promote(settings, "delay", 2, "gate", ["better"], 0.1, stores)
    back = await rollback(settings, "delay", stores)
    assert (back.version, back.by) == ("1", "rollback")
    entry = (await stores.registry.entries("delay"))["delay"]
    assert entry.champion == "1" and entry.champions == ("1",)
    with pytest.raises(TrainingError, match="no version 7"):
        await promote(settings, "delay", 7, adapters=stores)
