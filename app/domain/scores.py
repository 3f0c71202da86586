"""Batch scoring's pure part: a job's ids, its status document, and each scored row's event.

A job is named by its model and a job name. Its event ids derive from those and each row's
key, so running the same job again gives the same ids: the views fold each once, and a job
already done is not run again at all.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from app.domain.events import Value

NAMESPACE = uuid.UUID("5b0c2c8e-6f1d-4c55-9f0e-6d6f64656c76")  # modelview's own
JOB = "modelview.job"  # context keys of a scored row's PredictionEvent
ROW = "modelview.row"
MAX_BAD_LISTED = 1000  # bad rows named in the status; the count is always exact


def event_id(model: str, job: str, key: str) -> str:
    return job_ids(model, job)(key)


def job_ids(model: str, job: str) -> Callable[[str], str]:
    """`event_id` for one job's keys: `uuid.uuid5`'s very value, its SHA-1 of the job's
    prefix taken once (a job names millions of rows; `uuid5` costs about 4 µs a row)."""
    prefix = hashlib.sha1(NAMESPACE.bytes + f"{model}\n{job}\n".encode(), usedforsecurity=False)

    def of(key: str) -> str:
        sha = prefix.copy()
        sha.update(key.encode())
        digest = bytearray(sha.digest()[:16])
        digest[6] = digest[6] & 0x0F | 0x50  # version 5
        digest[8] = digest[8] & 0x3F | 0x80  # RFC 4122 variant
        h = digest.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    return of


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

    def encode(
        self,
        event_id: str,
        row: int,
        features: Mapping[str, Any],
        value: Value,
        context: Mapping[str, Any] | None = None,
    ) -> bytes:
        """The event's JSON; `context` adds to the job's and the row's."""
        extra = orjson.dumps(context)[1:-1] if context else b""
        return b"".join(
            (
                self._head,
                event_id.encode(),
                b'","features":',
                orjson.dumps(features if type(features) is dict else dict(features)),
                b',"prediction":{"value":',
                orjson.dumps(value),
                self._context,
                b"%d" % row,
                b"," + extra if extra else b"",
                b"}}",
            )
        )
