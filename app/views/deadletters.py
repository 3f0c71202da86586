"""Dead-letter records: the reason, the raw bytes, and where they came from."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import orjson

from app.domain.batch import DeadLetter
from app.domain.codec import format_time


def encode_dead_letter(letter: DeadLetter, now: datetime | None = None) -> bytes:
    record = letter.record
    raw = record.value or b""
    try:
        text: str | None = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return orjson.dumps(
        {
            "schema_version": 1,
            "reason": letter.reason,
            "source": {
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
            },
            "key_base64": base64.b64encode(record.key).decode() if record.key is not None else None,
            "raw_base64": base64.b64encode(raw).decode(),
            "raw_text": text,
            "dead_lettered_at": format_time(now or datetime.now(UTC)),
        }
    )
