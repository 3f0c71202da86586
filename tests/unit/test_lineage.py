"""Lineage back from an event: records, their fold per key, and the answer joined with the
registry."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from app.domain import lineage
from app.domain.datasets import DatasetSpec, Manifest, Row
from app.domain.lineage import InvalidLineage, LineageRecord
from app.domain.model_events import ModelPromoted, ModelTrained
from app.domain.registry import RegistryEntry, apply


def row(event_id: str, hour: int, holdout: bool = False) -> Row:
    return Row(
        event_id=event_id,
        model="delay",
        model_version="1",
        occurred_at=f"2026-11-30T{hour:02d}:00:00Z",
        features={"distance": 100.0},
        prediction=1.0,
        label=float(hour),
        tag_id=f"tag-{event_id}",
        tagged_at="2026-11-30T23:00:00Z",
        holdout=holdout,
    )


def manifest(content: str, created_at: str = "2026-12-01T00:00:00Z") -> Manifest:
    return Manifest(
        dataset="flights",
        spec=DatasetSpec("flights"),
        as_of={"modelview.predictions": {0: 10}},
        rows=3,
        content_hash=content * 64,
        created_at=created_at,
    )


def trained(version: str, snapshot: Manifest, fit_until: str | None = None) -> ModelTrained:
    return ModelTrained(
        model="delay",
        version=version,
        trainer="baseline",
        trained_at="2026-12-01T00:01:00Z",
        seed=0,
        snapshot=snapshot,
        train_rows=2,
        holdout_rows=1,
        parent_version=None,
        warm_start=False,
        describe={},
        fit_until=fit_until,
    )


def folded(records: list[LineageRecord]) -> dict[bytes, bytes]:
    """The table the agent keeps: what each key's records fold to."""
    table: dict[bytes, bytes] = {}
    for key, value in lineage.keyed(records):
        after = lineage.fold(table.get(key), lineage.decode(value))
        if after is not None:
            table[key] = after
    return table


def test_each_record_is_logged_under_its_event_and_its_tag_and_reads_back() -> None:
    records = lineage.of_snapshot(manifest("a"), [row("e1", 1), row("e2", 2, holdout=True)])
    keys = [key for key, _ in lineage.keyed(records)]
    assert keys == [b"e1", b"tag-e1", b"e2", b"tag-e2"]
    assert [lineage.decode(v) for _, v in lineage.keyed(records)][::2] == records
    assert records[1].holdout and records[1].snapshot_id == "a" * 16


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{", "not JSON"),
        (b"[]", "JSON object"),
        (b'{"kind": "snapshot"}', "schema_version"),
        (b'{"schema_version": 1, "kind": "guess"}', "kind"),
        (b'{"schema_version": 1, "kind": "snapshot", "extra": 1}', "extra"),
        (
            b'{"schema_version": 1, "kind": "snapshot", "event_id": "e", "tag_id": "t",'
            b' "occurred_at": "x", "label": 1, "at": "y"}',
            "needs ['dataset', 'snapshot_id']",
        ),
        (
            b'{"schema_version": 1, "kind": "validation", "event_id": 5, "tag_id": "t",'
            b' "occurred_at": "x", "label": 1, "at": "y", "model": "m", "version": "1"}',
            "event_id must be a string",
        ),
    ],
)
def test_a_record_this_code_cannot_fold_is_refused_with_the_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidLineage, match=reason.replace("[", r"\[").replace("]", r"\]")):
        lineage.decode(raw)


def test_folding_again_adds_nothing_and_the_same_rows_taken_twice_are_one_snapshot() -> None:
    rows = [row("e1", 1)]
    first = lineage.of_snapshot(manifest("a"), rows)
    again = lineage.of_snapshot(manifest("a", created_at="2026-12-02T00:00:00Z"), rows)
    other = lineage.of_snapshot(manifest("b"), rows)
    table = folded(first + first + again + other)
    held = lineage.entries(table[b"e1"])
    assert [r.snapshot_id for r in held] == ["a" * 16, "b" * 16]
    assert lineage.fold(table[b"e1"], first[0]) is None


def test_the_answer_names_snapshots_versions_fitted_or_not_and_validations() -> None:
    snap = manifest("a")
    rows = [row("early", 1), row("late", 20), row("held", 2, holdout=True)]
    records = lineage.of_snapshot(snap, rows)
    records += lineage.of_validation("delay", "2", "2026-12-02T00:00:00Z", rows[1:2], [19.5])
    entry: RegistryEntry | None = None
    # v1 fitted on every row not held out; v2 left the last hours out (fit_until).
    for event in (
        trained("1", snap),
        trained("2", snap, fit_until="2026-11-30T12:00:00Z"),
        ModelPromoted(model="delay", version="2", by="gate"),
    ):
        entry = apply(entry, event)
    assert entry is not None
    table = folded(records)

    def fitted(event_id: str) -> list[tuple[str, bool]]:
        found = lineage.answer(lineage.entries(table[event_id.encode()]), [entry], event_id)
        return [(v["version"], v["fitted"]) for v in found["versions"]]

    assert fitted("early") == [("1", True), ("2", True)]
    assert fitted("late") == [("1", True), ("2", False)]
    assert fitted("held") == [("1", False), ("2", False)]

    late = lineage.answer(lineage.entries(table[b"late"]), [entry], event_id="late")
    assert late["snapshots"] == [
        {
            "dataset": "flights",
            "snapshot_id": "a" * 16,
            "created_at": "2026-12-01T00:00:00Z",
            "event_id": "late",
            "tag_id": "tag-late",
            "label": 20.0,
            "holdout": False,
        }
    ]
    assert late["validations"] == [
        {
            "model": "delay",
            "version": "2",
            "validated_at": "2026-12-02T00:00:00Z",
            "event_id": "late",
            "tag_id": "tag-late",
            "label": 20.0,
            "prediction": 19.5,
            "served_by": "1",
        }
    ]
    assert [v["champion"] for v in late["versions"]] == [False, True]
    # By tag: the same, found under the tag's key.
    by_tag = lineage.answer(lineage.entries(table[b"tag-late"]), [entry], tag_id="tag-late")
    assert orjson.dumps(by_tag) == orjson.dumps(late)


def test_an_event_no_snapshot_used_has_an_empty_lineage() -> None:
    found = lineage.answer([], [], event_id="nobody")
    assert found == {
        "erased": False,
        "event_ids": [],
        "tag_ids": [],
        "snapshots": [],
        "versions": [],
        "validations": [],
    }


def test_a_version_trained_on_a_snapshot_the_event_was_not_in_is_not_named() -> None:
    entry = apply(None, trained("1", manifest("b")))
    records = lineage.of_snapshot(manifest("a"), [row("e1", 1)])
    assert lineage.answer(records, [entry], event_id="e1")["versions"] == []
    assert replace(records[0], holdout=True).identity == records[0].identity
