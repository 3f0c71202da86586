"""The compiled fold (`app.native`): used only while current, and the same to the byte."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app import native
from tests.services import ROOT

# Folds a workload in batches, then reads every aggregate as the endpoints do, and prints
# a digest of the stored bytes and of the answers, and whether the compiled modules ran.
FOLD = """
import hashlib, orjson
from app import native
from app.domain import drift, stats
from app.settings import Settings
from app.views import viewcodec
from app.views.refold import fold_records
from bench.fold import records

limit = Settings().max_event_bytes
stored, answers = hashlib.sha256(), hashlib.sha256()
option = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
hours = []
for partition, batch in sorted(records(1500).items()):
    store = {}
    for start in range(0, len(batch), 300):
        fold_records(store, partition, batch[start : start + 300], limit)
    for key in sorted(store):
        stored.update(key.encode() + b"=" + (store[key] or b"-") + b";")
        if not key.startswith("agg/") or store[key] is None:
            continue
        counts = viewcodec.decode(key, store[key]).counts
        if "/dataset/" in key:
            answer = stats.summarize_dataset(counts)
        else:
            metrics, inputs, labels = stats.split_hour(counts)
            answer = [stats.summarize_metrics(metrics), drift.fields(inputs), drift.fields(labels)]
            hours.append(inputs)
        answers.update(orjson.dumps(answer, option=option))
for before, after in zip(hours, hours[1:]):
    answers.update(orjson.dumps(drift.compare(before, after), option=option))
print(native.in_use(), stored.hexdigest(), answers.hexdigest())
"""


def fold(compiled: bool) -> list[str]:
    env = {**os.environ, "MODELVIEW_NATIVE": "1" if compiled else "0"}
    done = subprocess.run(
        [sys.executable, "-c", FOLD], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.split()


def test_the_compiled_fold_stores_and_answers_the_same_bytes_as_the_source() -> None:
    """mypyc holds a `float` as a C double: a count typed so would be stored as 3.0, not 3.
    The build must change nothing a worker stores or answers, only its speed."""
    if native.unusable() is not None and shutil.which("cc") is None:
        pytest.skip("no C compiler here: the fold runs as Python only")
    source, compiled = fold(compiled=False), fold(compiled=True)
    assert source[0] == "False"
    assert compiled[0] == "True", f"the build is not in use: {native.reason}"
    assert compiled[1:] == source[1:]


def test_a_build_is_used_only_for_the_source_and_interpreter_it_was_made_from() -> None:
    current = native.current()
    assert native.stale(current) is None
    assert native.stale(None) is not None
    other = {**current, "interpreter": "cpython-312 3.12.0"}
    assert "another interpreter" in str(native.stale(other))
    edited = {**current, "modules": {**current["modules"], "app.domain.batch": "0" * 64}}
    assert str(native.stale(edited)).startswith("app.domain.batch changed")


def test_a_build_missing_a_library_is_not_loaded(tmp_path: Path) -> None:
    """A finder pointing at a missing library would fail the import, and the worker."""
    assert str(native.unusable(tmp_path)).startswith("not built")
    current = native.current()
    (tmp_path / native.MANIFEST.name).write_text(json.dumps(current))
    assert str(native.unusable(tmp_path)).startswith("the build lacks app.domain.events")
    for path in native.libraries(tmp_path).values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    assert native.unusable(tmp_path) is None


def test_with_native_off_the_source_runs_and_says_why() -> None:
    code = "import app.native as n, app.domain.batch as b; print(n.reason, b.__file__)"
    env = {**os.environ, "MODELVIEW_NATIVE": "0"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["MODELVIEW_NATIVE=0", str(ROOT / "app" / "domain" / "batch.py")]


# Every frozen value of the fold, pickled, copied and replaced: a compiled frozen class is
# not unpickled as a Python one is (`events.frozen_reduce`). Compiled, none takes an
# assignment; as Python, those frozen by `Final` leave that to mypy (`events`).
VALUES = """
import copy, dataclasses, pickle
from datetime import UTC, datetime
from app import native
from app.domain.batch import Agg, DeadLetter, Index, SourceRecord
from app.domain.events import Prediction, PredictionEvent, TagEvent
from app.domain.examples import Example

at = datetime(2026, 12, 7, tzinfo=UTC)
pred = PredictionEvent("e", "m", "1", at, {"x": 1}, Prediction(0.5, {"a": 0.5}), "u", {"c": 1})
tag = TagEvent("t", "e", at, True, ("d",), "s")
values = [
    pred, tag, Example("e", pred, tag, frozenset({"t"})), Agg({"n": 1}, at),
    Index(frozenset({"d"}), {"m": {"1": ("h", "h")}}),
    DeadLetter(SourceRecord("tag", "t", 0, 1, b"k", b"v"), "why"),
]
same = [
    pickle.loads(pickle.dumps(v)) == v == copy.deepcopy(v) == dataclasses.replace(v)
    for v in values
]


def refuses(value):
    name = dataclasses.fields(value)[0].name
    try:
        setattr(value, name, getattr(value, name))
    except AttributeError:  # dataclasses' FrozenInstanceError is one too
        return True
    return False


print(native.in_use(), all(same), all(refuses(v) for v in values))
"""


@pytest.mark.parametrize("compiled", [False, True])
def test_the_folds_values_pickle_copy_and_stay_frozen(compiled: bool) -> None:
    env = {**os.environ, "MODELVIEW_NATIVE": "1" if compiled else "0"}
    done = subprocess.run(
        [sys.executable, "-c", VALUES], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    in_use, same, refused = done.stdout.split()
    assert (in_use, same) == (str(compiled), "True")
    if compiled:
        assert refused == "True"
