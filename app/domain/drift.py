"""Feature, prediction and label statistics as counters that add up, and drift (PSI) between
two of them.

The live views keep, per model version and hour, the counters of the inputs (each feature
and the prediction, counted once when the prediction arrives) and of the labels (moved as
tags correct them), in the hour's aggregate with its metrics (`stats.AggKey`): the same
sums-of-contributions as every other aggregate, so they are exact, order-free and add up
over partitions and hours. A training snapshot's rows give the same counters (`of_rows`),
stored with it, which is what live traffic is compared with.

Per field: numbers count `sum`, `sumsq` and a log-bucketed sketch (each bucket covers
values within 10% of each other, so quantiles are known to that much and the buckets of any
two counter sets line up); strings and booleans count each category; `null` counts missing
values, and a list (an embedding) is counted, not profiled.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import orjson

from app.domain.events import (
    NUMBER_TYPES,
    TEXT_TYPES,
    Feature,
    PredictionEvent,
    Value,
    class_name,
)

# Counters are ints and sums floats, kept as they came: not `float`, which a compiled build
# (mypyc) holds as a C double, so that a count of 3 would be stored as 3.0.
Amount = int | float
Counts = dict[str, Amount]

GAMMA = 1.1
_LOG_GAMMA = math.log(GAMMA)
TINY = 1e-9  # |x| below this is bucket 0
_LOG_TINY = math.log(TINY)
_LOG_MAX = math.log(sys.float_info.max)
# Moments of values beyond this would overflow (a square past 1.8e308 is inf, which JSON
# cannot hold): they are summed clipped; the sketch still places them exactly.
MOMENT_LIMIT = 1e150
BINS = 10  # PSI bins: the reference's deciles
PSI_EPSILON = 1e-4  # a bin empty on one side counts as this share, as is usual for PSI
DRIFTED = 0.2  # PSI above this: the usual reading is "significant shift"
TOP_K = 10

PREDICTION = "@prediction"
LABEL = "@label"


@lru_cache(maxsize=65536)
def counter(stat: str, field: str, extra: str | int | None = None) -> str:
    """A counter's name: unambiguous JSON, since feature names and categories are free text."""
    return orjson.dumps([stat, field] if extra is None else [stat, field, extra]).decode()


def clip(x: float) -> float:
    """`x` within ±MOMENT_LIMIT: what moments (sums, squares) are summed of."""
    return x if -MOMENT_LIMIT <= x <= MOMENT_LIMIT else math.copysign(MOMENT_LIMIT, x)


def bucket(x: float) -> int:
    """The sketch bucket of `x`: signed, log-spaced by GAMMA; 0 around zero."""
    magnitude = abs(x)
    if magnitude < TINY:
        return 0
    # log(x) - log(TINY), not log(x / TINY): the quotient of a finite 1e308 overflows.
    index = 1 + math.floor((math.log(magnitude) - _LOG_TINY) / _LOG_GAMMA)
    return index if x > 0 else -index


def bucket_value(index: int) -> float:
    """A representative value of a bucket (its geometric middle)."""
    if index == 0:
        return 0.0
    exponent = _LOG_TINY + (abs(index) - 0.5) * _LOG_GAMMA
    magnitude = math.exp(exponent) if exponent < _LOG_MAX else sys.float_info.max
    return magnitude if index > 0 else -magnitude


@lru_cache(maxsize=16384)
def _moments(field: str) -> tuple[str, str]:
    return counter("sum", field), counter("sumsq", field)


def settle(counts: Counts) -> None:
    """Drop the moments of fields with no value left (their sketch is empty), in place.

    Subtraction leaves a float sum at rounding noise, not at zero, when its last value is
    taken away (a label corrected, an event erased); a fold that never added them has no sum.
    """
    fields = set()
    moments = []
    for name in counts:
        if name.startswith('["b",'):
            fields.add(orjson.loads(name)[1])
        elif name.startswith(('["sum",', '["sumsq",')):
            moments.append(name)
    for name in moments:
        if orjson.loads(name)[1] not in fields:
            del counts[name]


def _profile(field: str, value: Feature | Value, into: Counts) -> None:
    """Add one value's counters. Run for every prediction the views fold, so it is lean:
    three counters a number (its count is its sketch's total)."""
    if value is None:
        key = counter("null", field)
        into[key] = into.get(key, 0) + 1
    elif isinstance(value, NUMBER_TYPES) and not isinstance(value, bool):
        v = float(value)
        key = counter("b", field, bucket(v))
        v = clip(v)
        first, second = _moments(field)
        into[first] = into.get(first, 0) + v
        into[second] = into.get(second, 0) + v * v
        into[key] = into.get(key, 0) + 1
    elif isinstance(value, TEXT_TYPES):
        key = counter("c", field, class_name(value))
        into[key] = into.get(key, 0) + 1
    else:
        key = counter("vec", field)
        into[key] = into.get(key, 0) + 1


def _add_inputs(features: Mapping[str, Feature], prediction: Value, into: Counts) -> None:
    """One event's inputs: its count, each feature, and the prediction."""
    events = counter("events", "")
    into[events] = into.get(events, 0) + 1
    for name, value in features.items():
        _profile(name, value, into)
    _profile(PREDICTION, prediction, into)


def of_inputs(event: PredictionEvent) -> Counts:
    counts: Counts = {}
    _add_inputs(event.features, event.prediction.value, counts)
    return counts


def add_inputs(event: PredictionEvent, into: Counts) -> None:
    """`of_inputs(event)` added into `into` in place, which may leave a sum at zero: the
    caller drops those (absent and zero are the same, `stats.add`)."""
    _add_inputs(event.features, event.prediction.value, into)


def of_label(label: Value) -> Counts:
    counts: Counts = {}
    _profile(LABEL, label, counts)
    return counts


def add_label(label: Value, into: Counts) -> None:
    """`of_label(label)` added into `into` in place."""
    _profile(LABEL, label, into)


@lru_cache(maxsize=65536)
def is_label(name: str) -> bool:
    """Whether a counter is the label's: a counter set that holds the inputs' and the label's
    together (a version's hour, a snapshot's rows) is parted by the field, `@label`, which a
    feature of that name shares, as `@prediction` is shared with the prediction's."""
    return bool(orjson.loads(name)[1] == LABEL)


def of_rows(rows: Iterable[Any]) -> Counts:
    """The counters of a snapshot's rows (`Row`: features, prediction, label)."""
    counts: Counts = {}
    for row in rows:
        _add_inputs(row.features, row.prediction, counts)
        _profile(LABEL, row.label, counts)
    return counts


def fields(counts: Mapping[str, Amount]) -> dict[str, dict[str, Any]]:
    """Counter set -> per field: numbers' moments and sketch, categories, nulls."""
    out: dict[str, dict[str, Any]] = {}
    for name, amount in counts.items():
        stat, field, *extra = orjson.loads(name)
        if stat == "events":
            continue
        f = out.setdefault(field, {})
        if stat in ("b", "c"):
            f.setdefault(stat, {})[extra[0]] = f.get(stat, {}).get(extra[0], 0) + amount
        else:
            f[stat] = amount
    for f in out.values():
        if f.get("b"):
            f["n"] = sum(f["b"].values())
    return out


def events(counts: Mapping[str, Amount]) -> int:
    return int(counts.get(counter("events", ""), 0))


def summary(f: Mapping[str, Any], events: int) -> dict[str, Any]:
    """A field's public statistics: count, missing, mean/std and quantiles, or top-k."""
    out: dict[str, Any] = {"missing": int(f.get("null", 0))}
    n = f.get("n", 0)
    if n:
        mean = f.get("sum", 0.0) / n
        std = max(f.get("sumsq", 0.0) / n - mean * mean, 0.0) ** 0.5
        sketch = f.get("b", {})
        out |= {
            "kind": "numeric",
            "count": int(n),
            "mean": mean,
            "std": std,
            "quantiles": {f"p{int(q * 100)}": quantile(sketch, q) for q in (0.05, 0.5, 0.95)},
        }
    elif f.get("c"):
        categories = f["c"]
        top = sorted(categories.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_K]
        out |= {
            "kind": "categorical",
            "count": int(sum(categories.values())),
            "categories": len(categories),
            "top": [{"value": k, "count": int(v)} for k, v in top],
        }
    else:
        out |= {"kind": "vector" if f.get("vec") else "empty", "count": int(f.get("vec", 0))}
    # Absent from an event is missing too: events that did not carry the field at all.
    if events:
        out["missing"] = max(events - out["count"], 0)
    return out


def quantile(sketch: Mapping[int, Amount], q: float) -> float | None:
    total = sum(sketch.values())
    if not total:
        return None
    seen = 0.0
    for index in sorted(sketch):
        seen += sketch[index]
        if seen >= q * total:
            return bucket_value(index)
    return bucket_value(max(sketch))


def psi(reference: Mapping[Any, Amount], live: Mapping[Any, Amount], numeric: bool) -> float | None:
    """Population stability index of `live` against `reference`.

    Numbers: the reference's deciles (whole sketch buckets) are the bins, so a shift of the
    whole distribution lands in the outer bins. Categories: each reference category is a bin,
    and every category the reference never saw shares one more.
    """
    ref_total, live_total = sum(reference.values()), sum(live.values())
    if not ref_total or not live_total:
        return None
    if numeric:
        edges = _decile_edges(reference)  # upper bucket of each bin but the last
        ref_bins, live_bins = _binned(reference, edges), _binned(live, edges)
    else:
        known = sorted(reference, key=str)
        ref_bins = [reference[k] for k in known] + [0.0]
        live_bins = [live.get(k, 0.0) for k in known]
        live_bins.append(sum(v for k, v in live.items() if k not in reference))
    value = 0.0
    for r, a in zip(ref_bins, live_bins, strict=True):
        expected = max(r / ref_total, PSI_EPSILON)
        actual = max(a / live_total, PSI_EPSILON)
        value += (actual - expected) * math.log(actual / expected)
    return value


def _decile_edges(sketch: Mapping[Any, Amount]) -> list[int]:
    total, seen = sum(sketch.values()), 0.0
    edges: list[int] = []
    indices = sorted(int(i) for i in sketch)
    for index in indices[:-1]:
        seen += sketch[index]
        if seen >= (len(edges) + 1) * total / BINS:
            edges.append(index)
    return edges


def _binned(sketch: Mapping[Any, Amount], edges: list[int]) -> list[float]:
    bins = [0.0] * (len(edges) + 1)
    for index, amount in sketch.items():
        i = 0
        while i < len(edges) and int(index) > edges[i]:
            i += 1
        bins[i] += amount
    return bins


def compare(reference: Mapping[str, Amount], live: Mapping[str, Amount]) -> dict[str, Any]:
    """Per field of the reference: its PSI and both sides' statistics; the fields drifted."""
    ref_fields, live_fields = fields(reference), fields(live)
    ref_events, live_events = events(reference), events(live)
    out: dict[str, Any] = {}
    for name in sorted(ref_fields):
        ref, now = ref_fields[name], live_fields.get(name, {})
        numeric = bool(ref.get("n"))
        side = "b" if numeric else "c"
        live_n = live_events if name != LABEL else sum(now.get(side, {}).values())
        value = psi(_with_missing(ref, side, ref_events), _with_missing(now, side, live_n), numeric)
        out[name] = {
            "psi": value,
            "drifted": value is not None and value > DRIFTED,
            "reference": summary(ref, ref_events if name != LABEL else 0),
            "live": summary(now, live_events if name != LABEL else 0),
        }
    return out


def _with_missing(f: Mapping[str, Any], side: str, events: int) -> dict[Any, Amount]:
    """The distribution PSI compares, with missing values as one more bin: a feature that
    stops arriving drifts too."""
    dist: dict[Any, Amount] = dict(f.get(side, {}))
    present = sum(dist.values()) + f.get("vec", 0)
    missing = max(events - present, f.get("null", 0), 0) if events else f.get("null", 0)
    if missing:
        dist["\x00missing" if side == "c" else -(10**9)] = missing
    return dist
