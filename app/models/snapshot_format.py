"""Dataset snapshots as files: the rows, and the fold state they were taken from, as Parquet.

Rows are one per example, with features, prediction and label as JSON text, so any Arrow
tool reads them. The state is the fold's key-value map per partition, as of the snapshot.
"""

from __future__ import annotations

import orjson
import pyarrow as pa

from app.domain.datasets import Row
from app.log.segments import from_parquet, to_parquet

# partition -> the fold's key-value state (views plus wal), as of a snapshot's offsets
FoldState = dict[int, dict[str, bytes]]


def encode_state(state: FoldState) -> bytes:
    items = [(p, k, v) for p, store in sorted(state.items()) for k, v in sorted(store.items())]
    table = pa.Table.from_pydict(
        {
            "partition": pa.array([i[0] for i in items], pa.int32()),
            "key": [i[1] for i in items],
            "value": pa.array([i[2] for i in items], pa.binary()),
        }
    )
    return to_parquet(table)


def decode_state(data: bytes) -> FoldState:
    columns = from_parquet(data).to_pydict()
    state: FoldState = {}
    for p, k, v in zip(columns["partition"], columns["key"], columns["value"], strict=True):
        state.setdefault(p, {})[k] = v
    return state


def encode_rows(rows: list[Row]) -> bytes:
    """Parquet, one row per example; features, prediction and label as JSON text."""
    table = pa.Table.from_pydict(
        {
            "event_id": [r.event_id for r in rows],
            "model": [r.model for r in rows],
            "model_version": [r.model_version for r in rows],
            "occurred_at": [r.occurred_at for r in rows],
            "features": [orjson.dumps(r.features).decode() for r in rows],
            "prediction": [orjson.dumps(r.prediction).decode() for r in rows],
            "label": [orjson.dumps(r.label).decode() for r in rows],
            "tag_id": [r.tag_id for r in rows],
            "tagged_at": [r.tagged_at for r in rows],
            "holdout": [r.holdout for r in rows],
        }
    )
    return to_parquet(table)


def decode_rows(data: bytes) -> list[Row]:
    columns = from_parquet(data).to_pydict()
    return [
        Row(
            event_id=columns["event_id"][i],
            model=columns["model"][i],
            model_version=columns["model_version"][i],
            occurred_at=columns["occurred_at"][i],
            features=orjson.loads(columns["features"][i]),
            prediction=orjson.loads(columns["prediction"][i]),
            label=orjson.loads(columns["label"][i]),
            tag_id=columns["tag_id"][i],
            tagged_at=columns["tagged_at"][i],
            holdout=columns["holdout"][i],
        )
        for i in range(len(columns["event_id"]))
    ]
