from __future__ import annotations

import base64
from datetime import UTC, datetime

import orjson

from app.domain.batch import DeadLetter, SourceRecord
from app.views.deadletters import encode_dead_letter


def test_dead_letter_keeps_reason_raw_bytes_and_source() -> None:
    record = SourceRecord("tag", "modelview.tags", 3, 42, b"k", b"\xff\x00junk")
    out = orjson.loads(
        encode_dead_letter(DeadLetter(record, "not valid JSON"), datetime(2026, 1, 1, tzinfo=UTC))
    )
    assert out["reason"] == "not valid JSON"
    assert out["source"] == {"topic": "modelview.tags", "partition": 3, "offset": 42}
    assert base64.b64decode(out["raw_base64"]) == b"\xff\x00junk"
    assert out["raw_text"] is None and base64.b64decode(out["key_base64"]) == b"k"
    assert out["dead_lettered_at"] == "2026-01-01T00:00:00Z"
