"""Batch scoring's pure part: a job's ids, its status document, and each scored row's event.

A job is named by its model and a job name. Its event ids derive from those and each row's
key, so running the same job again gives the same ids: the views fold each once, and a job
already done is not run again at all.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from app.domain.blobs import joined
from app.domain.events import Value

NAMESPACE = uuid.UUID("5b0c2c8e-6f1d-4c55-9f0e-6d6f64656c76")  # modelview's own
JOB = "modelview.job"  # context keys of a scored row's PredictionEvent
ROW = "modelview.row"
MAX_BAD_LISTED = 1000  # bad rows named in the status; the count is always exact


def event_id(model: str, job: str, key: str) -> str:
    return job_ids(model, job)(key)


def job_ids(model: str, job: str) -> JobIds:
    return JobIds(model, job)


class JobIds:
    """`event_id` for one job's keys: `uuid.uuid5`'s very value, its SHA-1 of the job's
    prefix taken once (a job names millions of rows; `uuid5` costs about 4 µs a row).
    `many` gives a batch's ids at once: the SHA-1 is a row's, the text is numpy's."""

    def __init__(self, model: str, job: str) -> None:
        self._prefix = hashlib.sha1(
            NAMESPACE.bytes + f"{model}\n{job}\n".encode(), usedforsecurity=False
        )

    def __call__(self, key: str) -> str:
        return str(self.many([key])[0])

    def many(self, keys: Iterable[str]) -> pa.Array:
        """The keys' ids, in the keys' order, as an Arrow string array (no Python object a
        row)."""
        prefix = self._prefix

        def digest(key: str) -> bytes:
            sha = prefix.copy()
            sha.update(key.encode())
            return sha.digest()

        digests = np.frombuffer(b"".join(map(digest, keys)), dtype=np.uint8).reshape(-1, 20)
        raw = digests[:, :16].copy()
        raw[:, 6] = raw[:, 6] & 0x0F | 0x50  # version 5
        raw[:, 8] = raw[:, 8] & 0x3F | 0x80  # RFC 4122 variant
        hexed = _HEX[raw].reshape(len(raw), 32)
        text = np.full((len(raw), 36), ord("-"), dtype=np.uint8)
        for start, stop, at in _GROUPS:
            text[:, at : at + stop - start] = hexed[:, start:stop]
        fixed = pa.Array.from_buffers(pa.binary(36), len(text), [None, pa.py_buffer(text)])
        return fixed.cast(pa.string())


_HEX = np.frombuffer(b"".join(b"%02x" % i for i in range(256)), dtype=np.uint8).reshape(256, 2)
# The UUID's five groups: (first, stop) hex digit, and where each goes among 36 characters.
_GROUPS = ((0, 8, 0), (8, 12, 9), (12, 16, 14), (16, 20, 19), (20, 32, 24))


def scores_prefix(model: str, version: str, job: str) -> str:
    return f"scores/{model}/{version}/{job}/"


def status_key(model: str, job: str) -> str:
    """One status per model and job, whatever version it scored with."""
    return f"scores/{model}/_jobs/{job}.json"


@dataclass
class JobStatus:
    model: str
    version: str
    job: str
    source: str  # "dataset:NAME" or "parquet:FILE"
    state: str  # running, done
    started_at: str
    rows: int = 0
    scored: int = 0
    bad: int = 0
    bad_rows: list[dict[str, Any]] = field(default_factory=list)  # {"row", "key", "reason"}
    location: str = ""  # the Parquet file's key in the bucket
    finished_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobStatus:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def refuse(self, row: int, key: str, reason: str) -> None:
        self.bad += 1
        if len(self.bad_rows) < MAX_BAD_LISTED:
            self.bad_rows.append({"row": row, "key": key, "reason": reason})


class ScoredEvents:
    """A job's scored rows as PredictionEvent JSON, each made of the fields its job shares,
    encoded once, and its own (a job encodes millions: a dict a row, then its encoding,
    cost 2 µs a row more). `id_of` gives a row's event id from its key."""

    def __init__(self, status: JobStatus) -> None:
        self.id_of = job_ids(status.model, status.job)
        shared = {
            "schema_version": 1,
            "model": status.model,
            "model_version": status.version,
            "occurred_at": status.started_at,
        }
        self._head = orjson.dumps(shared)[:-1] + b',"event_id":"'
        self._context = b'},"context":{' + orjson.dumps(JOB) + b":" + orjson.dumps(status.job)
        self._context += b"," + orjson.dumps(ROW) + b":"

    def encode_batch(
        self,
        ids: pa.Array,
        rows: Sequence[int] | np.ndarray[Any, np.dtype[np.int64]],
        features: Sequence[Mapping[str, Any]] | pa.Array,
        values: Sequence[Value],
        contexts: Mapping[int, Mapping[str, Any]] | None = None,
    ) -> pa.Array:
        """A batch's events, joined a column at a time. `features` are each row's, or their
        JSON (`features_json`, `rows_json`). `contexts` (by index in the batch) add to the
        job's and the row's."""
        dumps = orjson.dumps
        if all(type(v) is float for v in values):  # a regression's: one call, then split
            texts = dumps(list(values))[1:-1].split(b",") if values else []
        else:
            # Classes repeat; keyed by type too, as True == 1 == 1.0 in a dict.
            memo: dict[tuple[type, Any], bytes] = {}
            texts = [
                memo.get((type(v), v)) or memo.setdefault((type(v), v), dumps(v)) for v in values
            ]
        extras: Any = b""
        if contexts:
            extras = pa.array(
                [
                    b"," + dumps(contexts[i])[1:-1] if contexts.get(i) else b""
                    for i in range(len(rows))
                ],
                pa.binary(),
            )
        pieces = (
            self._head,
            ids.cast(pa.binary()),
            b'","features":',
            features if isinstance(features, pa.Array) else rows_json(features),
            b',"prediction":{"value":',
            pa.array(texts, pa.binary()),
            self._context,
            pa.array(rows, pa.int64()).cast(pa.string()).cast(pa.binary()),
            extras,
            b"}}",
        )
        return joined(pieces)


def rows_json(rows: Sequence[Mapping[str, Any]]) -> pa.Array:
    """Each row's features as a JSON object, a row at a time."""
    dumps = orjson.dumps
    return pa.array([dumps(f if type(f) is dict else dict(f)) for f in rows], pa.binary())


def features_json(table: pa.Table) -> pa.Array | None:
    """`rows_json(table.to_pylist())` made a column at a time, with no Python object a row:
    the same objects, keys and values (a float's text may differ, as 1e+20 for 1e20). None
    where a column holds anything but numbers, strings, booleans and nulls (lists are left
    to `rows_json`), or two columns share a name. Floats must be finite."""
    if len(set(table.column_names)) < table.num_columns:
        return None
    pieces: list[Any] = []
    for i, (name, column) in enumerate(zip(table.column_names, table.columns, strict=True)):
        text = _values_json(column.combine_chunks())
        if text is None:
            return None
        pieces += [(b"," if i else b"{") + orjson.dumps(name) + b":", text]
    if not pieces:
        return pa.array([b"{}"] * table.num_rows, pa.binary())
    return joined([*pieces, b"}"])


def _values_json(column: pa.Array) -> pa.Array | None:
    """Each value of a column as JSON text (binary), null as `null`."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        return _categories_json(column)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _categories_json(pc.dictionary_encode(column))
    if pa.types.is_floating(kind):
        text = column.cast(pa.float64()).cast(pa.string())  # float32's as Python reads them
        # Arrow writes 2500.0 as "2500", which JSON reads as an integer.
        integral = pc.invert(pc.match_substring_regex(text, r"[.eEn]"))
        text = pc.if_else(integral, pc.binary_join_element_wise(text, ".0", ""), text)
    elif pa.types.is_integer(kind) or pa.types.is_boolean(kind) or pa.types.is_null(kind):
        text = column.cast(pa.string())
    else:
        return None
    return pc.fill_null(text.cast(pa.binary()), _NULL)


def _categories_json(column: pa.DictionaryArray) -> pa.Array | None:
    """A dictionary column's values: each category encoded once (strings escaped by orjson)."""
    dictionary = column.dictionary
    if pa.types.is_string(dictionary.type) or pa.types.is_large_string(dictionary.type):
        texts = pa.array(list(map(orjson.dumps, dictionary.to_pylist())), pa.binary())
    else:
        texts = _values_json(dictionary)
        if texts is None:
            return None
    return pc.fill_null(texts.take(column.indices), _NULL)


_NULL = pa.scalar(b"null", pa.binary())
