"""The README's cold-data example runs as written against real segments in the object store."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import orjson
import pytest

from app.settings import Settings
from app.topic_admin import ensure_topics
from app.topics import LOGGED, PREDICTIONS, TAGS
from tests import factories
from tests.coldlog import flush_head, kafka_records, publish

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"


def example(settings: Settings) -> str:
    text = README.read_text()
    code = re.search(r"<!-- cold-data-example -->\n```python\n(.*?)```", text, re.S)
    assert code, "the README lost its cold-data example"
    return (
        code.group(1)
        .replace('"127.0.0.1:8333"', repr(f"127.0.0.1:{settings.s3_port}"))
        .replace('"modelview-secret"', repr(settings.s3_secret_key))
    )


async def test_readme_reads_segments_with_pyarrow_and_duckdb(stack: Settings) -> None:
    await ensure_topics(stack)
    models = ["late"] * 7 + ["delay"] * 5
    events = [factories.prediction(model=m) for m in models]
    records = [(PREDICTIONS, e["event_id"].encode(), orjson.dumps(e)) for e in events]
    records.append((PREDICTIONS, b"junk", b"\xff\xfe not utf-8"))  # logged, dead-lettered, kept
    records.append(
        (TAGS, events[0]["event_id"].encode(), orjson.dumps(factories.tag(events[0]["event_id"])))
    )
    await publish(stack, records)
    await flush_head(stack, await kafka_records(stack, LOGGED), 1.0)

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(example(stack), "README.md", "exec"), {})
    printed = out.getvalue()
    assert printed.startswith("13 ['partition', 'offset', 'timestamp', 'key', 'value']"), printed
    assert re.search(r"delay\s*│\s*5", printed) and re.search(r"late\s*│\s*7", printed), printed
