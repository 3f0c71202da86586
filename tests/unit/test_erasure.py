"""Erasure in the fold: exact, independent of interleaving, and what a redacted log folds to."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from app.domain import erasure, lineage, registry
from app.domain.batch import SourceRecord, fold_batch
from app.domain.codec import InvalidEvent
from app.domain.erasure import ErasureApplied, ErasureOrder, ErasureStage, InvalidErasure
from app.domain.model_events import ModelDataErased
from app.domain.registry import RegistryEntry, VersionEntry
from app.erasure_stages import _redacted_lineage, _warm_from, erased_in_views
from app.log.rebuild import differences
from app.log.segments import Records
from app.views import viewcodec
from app.views.wal import PartitionTxn, put_each
from app.web.events import client_prediction
from tests import factories

P, T, ORDERS = "modelview.predictions", "modelview.tags", "modelview.erasure-orders"
ERASURE = "5d1c6a0e-8f2b-4c3d-9e7a-1b2c3d4e5f60"
LIMIT = 1 << 20


def _pred(offset: int, event: dict[str, Any]) -> SourceRecord:
    return SourceRecord("prediction", P, 0, offset, event["event_id"].encode(), orjson.dumps(event))


def _tag(offset: int, tag: dict[str, Any]) -> SourceRecord:
    return SourceRecord("tag", T, 0, offset, tag["event_id"].encode(), orjson.dumps(tag))


def _order(offset: int, order: ErasureOrder) -> SourceRecord:
    return SourceRecord("erasure", ORDERS, 0, offset, b"k", erasure.encode(order))


def _fold(records: Sequence[SourceRecord]) -> tuple[dict[str, bytes], list[ErasureApplied]]:
    """Each record a batch of its own, as a live worker may meet them."""
    store: dict[str, bytes] = {}
    applied: list[ErasureApplied] = []
    for record in records:
        result = fold_batch(
            lambda k: viewcodec.decode(k, store.get(k)),
            0,
            {},
            [record],
            LIMIT,
            scan=lambda prefix: [k for k in store if k.startswith(prefix)],
        )
        put_each(
            store, ((key, viewcodec.encode(key, value)) for key, value in result.writes.items())
        )
        applied += result.erasures
    return store, applied


def _redacted(record: SourceRecord) -> SourceRecord:
    assert record.value is not None
    value = erasure.redact(record.kind, record.value)
    return SourceRecord(record.kind, record.topic, 0, record.offset, record.key, value)


def _interleavings(*topics: list[SourceRecord]) -> list[list[SourceRecord]]:
    """Every merge of the topics that keeps each topic in log order."""
    slots = [i for i, records in enumerate(topics) for _ in records]
    out = []
    for order in set(itertools.permutations(slots)):
        queues = [list(records) for records in topics]
        out.append([queues[i].pop(0) for i in order])
    return out


def _examples() -> tuple[list[SourceRecord], list[SourceRecord], dict[str, Any], dict[str, Any]]:
    kept = factories.prediction(entity_id="kept", prediction={"value": 3.0})
    gone = factories.prediction(entity_id="gone", prediction={"value": 40.0})
    predictions = [_pred(0, kept), _pred(1, gone)]
    tags = [
        _tag(0, factories.tag(kept["event_id"], label=5.0)),
        _tag(1, factories.tag(gone["event_id"], label=50.0)),
    ]
    return predictions, tags, kept, gone


def test_erasing_an_event_leaves_what_the_redacted_log_folds_to() -> None:
    predictions, tags, kept, gone = _examples()
    order = _order(0, ErasureOrder(ERASURE, 0, events=(gone["event_id"],)))
    live, applied = _fold([*predictions, *tags, order])
    redacted_log = [predictions[0], _redacted(predictions[1]), tags[0], _redacted(tags[1])]
    refolded, _ = _fold([*redacted_log, order])
    assert differences(live, refolded, 0) == []
    assert applied == [ErasureApplied(ERASURE, 0, erased=(gone["event_id"],))]

    example = orjson.loads(live[f"ex/{gone['event_id']}"])
    assert example["erased"] is True
    assert example["prediction"]["features"] == {} and "entity_id" not in example["prediction"]
    assert example["tag"]["label"] is None
    # The aggregates hold the kept example alone, to the count.
    dataset = orjson.loads(live["agg/0/dataset/flights-train"])["counts"]
    assert dataset == {"size": 1, "labeled": 1, "label_n": 1, "label_sum": 5.0, "label_sumsq": 25.0}
    metrics = orjson.loads(live["agg/0/model/flight-delay/3"])["counts"]
    assert metrics["predictions"] == 1 and metrics["pred_sum"] == 3.0
    assert not any(k.startswith('ent/0/"gone"/') for k in live)
    assert live[f'ent/0/"kept"/{kept["event_id"]}'] == b"0"


@pytest.mark.parametrize("by", ["event", "entity"])
def test_every_interleaving_of_an_order_with_its_records_gives_one_state(by: str) -> None:
    predictions, tags, _, gone = _examples()
    if by == "event":
        order = ErasureOrder(ERASURE, 0, events=(gone["event_id"],))
    else:
        order = ErasureOrder(ERASURE, 0, entities={"gone": 2})
    states = [
        _fold(records)[0] for records in _interleavings(predictions, tags, [_order(0, order)])
    ]
    assert len(states) == 30
    first = states[0]
    for state in states[1:]:
        assert differences(first, state, 0) == []
    assert orjson.loads(first[f"ex/{gone['event_id']}"])["erased"] is True


def test_an_entity_is_erased_up_to_where_the_log_ended_at_the_request() -> None:
    before = factories.prediction(entity_id="gone")
    after = factories.prediction(entity_id="gone")
    order = _order(0, ErasureOrder(ERASURE, 0, entities={"gone": 1}))
    # The order is folded before the entity's earlier prediction is delivered: the rule
    # (offset below 1) still erases it, and says so.
    state, applied = _fold([order, _pred(0, before), _pred(1, after)])
    assert orjson.loads(state[f"ex/{before['event_id']}"])["erased"] is True
    assert "erased" not in orjson.loads(state[f"ex/{after['event_id']}"])
    assert [k for k in state if k.startswith("ent/")] == [f'ent/0/"gone"/{after["event_id"]}']
    assert ErasureApplied(ERASURE, 0, erased=(before["event_id"],), order=False) in applied
    assert ErasureApplied(ERASURE, 0) in applied  # the order itself, with nothing yet to erase


def test_an_order_for_an_event_not_yet_seen_redacts_it_on_arrival() -> None:
    event = factories.prediction()
    order = _order(0, ErasureOrder(ERASURE, 0, events=(event["event_id"],)))
    state, applied = _fold([order, _pred(0, event), _tag(0, factories.tag(event["event_id"]))])
    assert applied[0] == ErasureApplied(ERASURE, 0, absent=(event["event_id"],))
    example = orjson.loads(state[f"ex/{event['event_id']}"])
    assert example["erased"] is True and example["tag"]["label"] is None
    hour = orjson.loads(state["agg/0/hour/flight-delay/3/2026-11-27T10"])
    assert hour["counts"] == {}  # neither its metrics nor its inputs count


def test_the_same_order_twice_changes_nothing() -> None:
    predictions, tags, _, _ = _examples()
    order = ErasureOrder(ERASURE, 0, entities={"gone": 2})
    once, _ = _fold([*predictions, *tags, _order(0, order)])
    twice, applied = _fold([*predictions, *tags, _order(0, order), _order(1, order)])
    assert differences(once, twice, 0) == []
    assert [a.erased for a in applied] == [(predictions[1].key.decode(),), ()]  # type: ignore[union-attr]


def test_an_order_in_the_wrong_partition_is_dead_lettered() -> None:
    record = _order(0, ErasureOrder(ERASURE, 3, events=()))
    result = fold_batch(lambda k: None, 0, {}, [record], LIMIT)
    assert "partition 3 was found in partition 0" in result.dead_letters[0].reason
    bad = SourceRecord("erasure", ORDERS, 0, 1, b"k", b"{")
    assert fold_batch(lambda k: None, 0, {}, [bad], LIMIT).dead_letters[0].reason == "not JSON"


def test_clients_cannot_send_redacted_records() -> None:
    with pytest.raises(InvalidEvent, match="erased: set only by modelview"):
        client_prediction(factories.prediction(erased=True))


def test_requests_are_checked_and_orders_go_where_the_events_are() -> None:
    now = datetime(2026, 12, 3, tzinfo=UTC)
    with pytest.raises(InvalidErasure, match="at least one"):
        erasure.request({"reason": "x"}, "ops", now, {})
    with pytest.raises(InvalidErasure, match="canonical lowercase UUID"):
        erasure.request({"events": ["not-a-uuid"]}, "ops", now, {})
    with pytest.raises(InvalidErasure, match="unknown fields"):
        erasure.request({"entities": ["a"], "who": 1}, "ops", now, {})
    event = "0f0e0d0c-0b0a-4909-8807-060504030201"
    req = erasure.request(
        {"events": [event, event], "entities": ["a"], "reason": "GDPR art. 17"},
        "ops",
        now,
        {0: 10, 1: 20},
    )
    assert req.events == (event,)
    orders = erasure.orders(req, 2, lambda e: 1)
    assert orders == [
        ErasureOrder(req.erasure_id, 0, (), {"a": 10}),
        ErasureOrder(req.erasure_id, 1, (event,), {"a": 20}),
    ]
    only = erasure.request({"events": [event]}, "ops", now, {})
    assert erasure.orders(only, 2, lambda e: 1) == [ErasureOrder(only.erasure_id, 1, (event,), {})]
    assert erasure.decode(erasure.encode(req)) == req


def test_status_is_an_idempotent_fold_of_the_records() -> None:
    now = datetime(2026, 12, 3, tzinfo=UTC)
    req = erasure.request({"entities": ["a"]}, "ops", now, {0: 1, 1: 1})
    records: list[erasure.Record] = [
        req,
        ErasureApplied(req.erasure_id, 0, erased=("e1",)),
        ErasureApplied(req.erasure_id, 1, absent=("e2",)),
        ErasureApplied(req.erasure_id, 1, erased=("e3",), order=False),
        ErasureApplied(req.erasure_id, 1, absent=("e1",)),  # refolded: seen before
        *(ErasureStage(req.erasure_id, s, {"n": 1, "events": 2}) for s in erasure.STAGES),
    ]
    status = None
    for record in [*records, *records]:
        status = erasure.fold(status, erasure.decode(erasure.encode(record)))
    assert status is not None
    shown = erasure.status_json(status, 2, lambda e: 0)
    assert shown["done"] is True
    assert shown["stages"]["views"] == {
        "done": True,
        "partitions": 2,
        "applied": 2,
        "erased": 2,
        "not_seen_yet": 1,
    }
    assert shown["stages"]["cold"] == {"done": True, "n": 1, "events": 2}
    # An entity's event erased late, after the stages ran: they run again, on all three.
    late = erasure.fold(status, ErasureApplied(req.erasure_id, 0, erased=("e4",), order=False))
    assert late.next_stage() == "cold"
    assert erasure.status_json(late, 2, lambda e: 0)["done"] is False
    rerun = erasure.fold(late, ErasureStage(req.erasure_id, "cold", {"n": 2, "events": 3}))
    assert rerun.next_stage() == "snapshots"
    assert erasure.fold(rerun, ErasureStage(req.erasure_id, "cold", {"events": 2})) == rerun
    partial = erasure.fold(None, req)
    assert erasure.status_json(partial, 2, lambda e: 0)["done"] is False
    assert partial.next_stage() == "cold"


def test_the_flusher_redacts_what_the_views_erased_and_reads_nothing_otherwise() -> None:
    predictions, tags, kept, gone = _examples()
    order = _order(0, ErasureOrder(ERASURE, 0, events=(gone["event_id"],)))
    store: dict[str, bytes] = {}
    txn = PartitionTxn(store)
    for record in [*predictions, *tags]:
        result = fold_batch(
            lambda k: viewcodec.decode(k, store.get(k)), 0, txn.cursor(0), [record], LIMIT
        )
        txn.commit(0, {k: viewcodec.encode(k, v) for k, v in result.writes.items()}, result.cursor)
    batch = Records(P, 0)
    for record in predictions:
        batch.append(record.offset, 0, record.key, record.value)
    redact = erased_in_views(store)
    assert redact(batch) is batch  # no order folded in this partition: not looked at
    result = fold_batch(
        lambda k: viewcodec.decode(k, store.get(k)), 0, txn.cursor(0), [order], LIMIT
    )
    txn.commit(0, {k: viewcodec.encode(k, v) for k, v in result.writes.items()}, result.cursor)
    written = redact(batch)
    assert written.values[0] == batch.values[0]
    assert orjson.loads(written.values[1] or b"") == {
        "schema_version": 1,
        "event_id": gone["event_id"],
        "model": "flight-delay",
        "model_version": "3",
        "occurred_at": "2026-11-27T10:00:00Z",
        "features": {},
        "prediction": {"value": ""},
        "context": {},
        "erased": True,
    }
    assert kept["event_id"].encode() == written.keys[0]


def test_an_entity_index_entry_is_one_write_whatever_the_entity_has_already() -> None:
    # A list per entity would be read and written whole for each of its predictions: a
    # frequent entity (one per carrier, say) would make ingestion quadratic.
    events = [factories.prediction(entity_id="often") for _ in range(50)]
    store, _ = _fold([_pred(i, e) for i, e in enumerate(events)])
    last = factories.prediction(entity_id="often")
    result = fold_batch(
        lambda k: viewcodec.decode(k, store.get(k)), 0, {}, [_pred(50, last)], LIMIT
    )
    assert [k for k in result.writes if k.startswith("ent/")] == [
        f'ent/0/"often"/{last["event_id"]}'
    ]
    assert result.writes[f'ent/0/"often"/{last["event_id"]}'] == 50


def test_versions_started_from_a_flagged_versions_weights_are_flagged_through_it() -> None:
    def version(v: str, parent: str | None, reused: bool) -> VersionEntry:
        describe = {"warm_start": {"reused": reused}}
        return VersionEntry(v, lineage={"parent_version": parent, "describe": describe})

    entry = RegistryEntry(
        "delay",
        {
            "1": version("1", None, False),
            "2": version("2", "1", True),  # from 1's weights
            "3": version("3", "2", False),  # a cold start: learned nothing from 2
            "4": version("4", "2", True),  # from 2's, so from 1's
        },
    )
    assert _warm_from({"delay": entry}, {("delay", "1"): (5, 3)}) == [
        (("delay", "2"), "1"),
        (("delay", "4"), "2"),
    ]
    flagged = registry.apply(
        entry,
        ModelDataErased("delay", "4", ERASURE, rows=0, fitted=0, through="2"),
    )
    shown = registry.version_to_dict(flagged.versions["4"])["erased"]
    assert shown == {
        "rows": 0,
        "fitted": 0,
        "erasures": {ERASURE: {"rows": 0, "fitted": 0, "through": "2"}},
    }
    again = registry.from_dict(registry.to_dict(flagged))
    assert again.versions["4"].erased == {ERASURE: (0, 0, "2")}


def test_lineage_keeps_which_snapshots_used_an_erased_event_but_not_its_label() -> None:
    used = lineage.LineageRecord(
        "snapshot",
        "e1",
        "t1",
        "2026-11-27T10:00:00Z",
        42.0,
        "2026-11-28T00:00:00Z",
        dataset="flights",
        snapshot_id="s1",
    )
    scored = lineage.LineageRecord(
        "validation",
        "e1",
        "t1",
        "2026-11-27T10:00:00Z",
        42.0,
        "2026-11-29T00:00:00Z",
        model="delay",
        version="1",
        prediction=40.0,
        served_by="legacy",
    )
    value = lineage.fold(None, used)
    value = lineage.fold(value, lineage.decode(lineage.encode(lineage.erased("e1", "now"))))
    later = lineage.fold(value, scored)  # a record logged before the erasure, folded after
    assert later is not None
    held = lineage.entries(later)
    assert [(r.kind, r.label, r.prediction) for r in held] == [
        ("snapshot", None, None),
        ("erased", None, None),
        ("validation", None, None),
    ]
    shown = lineage.answer(held, [], event_id="e1")
    assert shown["erased"] is True and shown["snapshots"][0]["snapshot_id"] == "s1"
    assert lineage.fold(later, lineage.erased("e1", "again")) is None  # once is enough
    # The cold copy of a lineage record: rewritten without its label, others untouched.
    raw = lineage.encode(used)
    assert b"42.0" not in (_redacted_lineage(raw, {"e1"}) or b"")
    assert _redacted_lineage(raw, {"e2"}) is raw
