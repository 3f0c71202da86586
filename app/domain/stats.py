"""Aggregate views (datasets, model metrics) as sums of each example's contribution.

An example contributes fixed counters to a few aggregate keys. When an example changes, the
aggregates change by `contribution(new) - contribution(old)`, so every aggregate equals the
sum of contributions of the current examples, however tags were corrected along the way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from functools import lru_cache
from typing import Any, NamedTuple

from app.domain import drift
from app.domain.events import PredictionEvent, Value, class_name, is_number
from app.domain.examples import Example

Counts = drift.Counts


class AggKey(NamedTuple):
    """Which aggregate: a dataset, a model version, or a model version in one hour.

    A version's hour holds its metrics' counters, and the counters of its inputs and labels
    (`app.domain.drift`): one key, not three, since every event that moves one moves the
    others, and a fold's writes were two thirds hours (`split_hour` parts them again).

    A named tuple, not a dataclass: the fold hashes a few of these per event, and a tuple's
    hash is native (measured: 20 hashes per event, 6% of the in-memory fold as a dataclass).
    """

    kind: str  # "dataset" | "model" | "hour"
    name: str
    version: str = ""
    hour: str = ""

    def parts(self) -> tuple[str, ...]:
        return tuple(p for p in (self.kind, self.name, self.version, self.hour) if p)


class ModelKeys(NamedTuple):
    """A model version's aggregate keys in one hour of its predictions."""

    model: AggKey
    hour: AggKey


def model_keys(pred: PredictionEvent) -> ModelKeys:
    return _model_keys(pred.model, pred.model_version, hour_of(pred.occurred_at))


@lru_cache(maxsize=16384)
def _model_keys(model: str, version: str, hour: str) -> ModelKeys:
    # Made once: a fold asks for an event's keys up to six times, and a named tuple's
    # construction costs about 0.4 µs, a cached lookup a fifth of that.
    return ModelKeys(AggKey("model", model, version), AggKey("hour", model, version, hour))


@lru_cache(maxsize=4096)
def dataset_key(name: str) -> AggKey:
    return AggKey("dataset", name)


def hour_of(moment: datetime) -> str:
    """The hour of `moment` in its own zone, as the views key it: "2026-12-02T16"."""
    return _hour_text(moment.toordinal() * 24 + moment.hour)


@lru_cache(maxsize=65536)
def _hour_text(hours: int) -> str:
    # Cached by the hour's number, so every event of an hour shares an entry: a cache keyed
    # by the datetime missed for each new event, and an aware datetime's `isoformat` took
    # 2.4 µs where `toordinal` takes 0.25 (`vm`, 2026-12-07). Before year 1000 the year is
    # written unpadded, as `strftime`'s %Y writes it, which the stored keys hold.
    day = date.fromordinal(hours // 24)
    if day.year < 1000:
        return datetime(day.year, day.month, day.day, hours % 24).strftime("%Y-%m-%dT%H")
    return f"{day.isoformat()}T{hours % 24:02d}"


def contribution(example: Example | None, inputs: bool = True) -> dict[AggKey, Counts]:
    """What `example` adds to each aggregate. `inputs=False` leaves out its inputs' counters
    (`app.domain.drift`), which only its prediction decides: unchanged when a tag arrives."""
    if example is None or example.prediction is None or example.erased:
        return {}
    pred = example.prediction
    tag = example.tag
    label = tag.label if tag is not None else None
    metrics = _metric_counts(pred, label)
    keys = model_keys(pred)
    hour = dict(metrics)
    if inputs:
        drift.add_inputs(pred, hour)
    if label is not None:
        drift.add_label(label, hour)
    out = {keys.model: metrics, keys.hour: hour}
    if tag is not None:
        counts = _dataset_counts(tag.label)
        for name in tag.datasets:
            out[dataset_key(name)] = counts
    return out


def delta(old: Example | None, new: Example) -> dict[AggKey, Counts]:
    # A prediction, once there, never changes (a different one is a conflict, refused).
    inputs = old is None or old.prediction is not new.prediction
    if not inputs and old is not None and not old.erased and not new.erased:
        return _tag_delta(old, new)
    before, after = contribution(old, inputs), contribution(new, inputs)
    if not before:  # a new example: its whole contribution (each `after` is a fresh dict)
        return {key: counts for key, counts in after.items() if counts}
    out: dict[AggKey, Counts] = {}
    for key in before.keys() | after.keys():
        diff = subtract(after.get(key, {}), before.get(key, {}))
        if diff:
            out[key] = diff
    return out


def _tag_delta(old: Example, new: Example) -> dict[AggKey, Counts]:
    """`delta` when only the tag changed, the commonest step of a fold: the prediction's own
    counters cancel (x - x is exactly 0), so only the label's are subtracted, and the model
    takes the hour's difference less drift's counters. The same numbers, in the same order,
    as the whole contributions' difference (a unit test holds the two equal)."""
    pred = old.prediction
    if pred is None:  # a tag waiting for its prediction counts nowhere yet
        return {}
    value = pred.prediction.value
    before, after = old.tag, new.tag
    label_before = before.label if before is not None else None
    label_after = after.label if after is not None else None
    keys = model_keys(pred)
    out: dict[AggKey, Counts] = {}
    # The hour's label counters: the metrics' (words), then drift's (JSON arrays).
    after_counts = _label_counts(value, label_after)
    if label_after is not None:
        drift.add_label(label_after, after_counts)
    before_counts = _label_counts(value, label_before)
    if label_before is not None:
        drift.add_label(label_before, before_counts)
    hour = subtract(after_counts, before_counts)
    if hour:
        metrics = metrics_of(hour)
        if metrics:
            out[keys.model] = metrics
        out[keys.hour] = hour
    names_before = before.datasets if before is not None else ()
    names_after = after.datasets if after is not None else ()
    if names_before or names_after:
        counts_before = _dataset_counts(label_before) if before is not None else {}
        counts_after = _dataset_counts(label_after) if after is not None else {}
        for name in dict.fromkeys((*names_before, *names_after)):
            diff = subtract(
                counts_after if name in names_after else {},
                counts_before if name in names_before else {},
            )
            if diff:
                out[dataset_key(name)] = diff
    return out


# Float sums and the count that says whether they have any member left.
_MOMENTS = {
    "pred_sum": "pred_n",
    "pred_sumsq": "pred_n",
    "abs_err_sum": "n_err",
    "sq_err_sum": "n_err",
    "label_sum": "label_n",
    "label_sumsq": "label_n",
}


def metrics_of(counts: Mapping[str, drift.Amount]) -> Counts:
    """A version's hour less drift's counters: the metrics' names are words, drift's JSON
    arrays (`drift.counter`)."""
    return {name: value for name, value in counts.items() if not _is_drift(name)}


def split_hour(counts: Mapping[str, drift.Amount]) -> tuple[Counts, Counts, Counts]:
    """A version's hour parted into its metrics', its inputs' and its labels' counters."""
    metrics: Counts = {}
    inputs: Counts = {}
    labels: Counts = {}
    for name, value in counts.items():
        if not _is_drift(name):
            metrics[name] = value
        elif drift.is_label(name):
            labels[name] = value
        else:
            inputs[name] = value
    return metrics, inputs, labels


def _is_drift(name: str) -> bool:
    return name.startswith("[")


def settle(counts: Counts) -> None:
    """Drop float sums whose last member was subtracted, in place: rounding leaves them near
    zero, not at it, and a fold that never added that member has no such counter."""
    for name, count in _MOMENTS.items():
        if name in counts and not counts.get(count):
            del counts[name]
    drift.settle(counts)


def add(
    into: Mapping[str, drift.Amount], more: Mapping[str, drift.Amount], sign: int = 1
) -> Counts:
    out = dict(into)
    for name, value in more.items():
        total = out.get(name, 0) + sign * value
        if total == 0:
            out.pop(name, None)  # absent and zero are the same, so views compare exactly
        else:
            out[name] = total
    return out


def subtract(a: Mapping[str, drift.Amount], b: Mapping[str, drift.Amount]) -> Counts:
    return add(a, b, -1)


def total(parts: Iterable[Mapping[str, drift.Amount]]) -> Counts:
    out: Counts = {}
    for part in parts:
        out = add(out, part)
    return out


def example_time(example: Example) -> datetime | None:
    """The event time an aggregate was last updated by: the newest fact in the example."""
    pred, tag = example.prediction, example.tag
    if tag is None:
        return pred.occurred_at if pred is not None else None
    if pred is None:
        return tag.tagged_at
    return max(pred.occurred_at, tag.tagged_at)


def prediction_metrics(pred: PredictionEvent) -> Counts:
    """What a prediction without a label adds to its model's metrics."""
    return _metric_counts(pred, None)


def _metric_counts(pred: PredictionEvent, label: Value | None) -> Counts:
    value = pred.prediction.value
    counts: Counts = {"predictions": 1}
    if is_number(value):
        # Clipped: a square of a finite 1e200 is inf, which JSON stores as null, and the next
        # event's sum then failed the fold for ever (found by a test of extreme values).
        v = drift.clip(float(value))
        counts["pred_n"] = 1
        counts["pred_sum"] = v
        counts["pred_sumsq"] = v * v
    else:
        counts[f"pred_class:{class_name(value)}"] = 1
    if label is not None:
        counts.update(_label_counts(value, label))
    return counts


def _label_counts(value: Value, label: Value | None) -> Counts:
    """The counters of a model's metrics that the label decides."""
    if label is None:
        return {}
    if is_number(value) and is_number(label):
        error = drift.clip(abs(drift.clip(float(value)) - drift.clip(float(label))))
        return {"labeled": 1, "n_err": 1, "abs_err_sum": error, "sq_err_sum": error * error}
    if class_name(value) == class_name(label):
        return {"labeled": 1, "n_cls": 1, "correct": 1}
    return {"labeled": 1, "n_cls": 1}


def _dataset_counts(label: Value | None) -> Counts:
    counts: Counts = {"size": 1}
    if label is None:
        return counts
    counts["labeled"] = 1
    if is_number(label):
        v = drift.clip(float(label))
        counts |= {"label_n": 1, "label_sum": v, "label_sumsq": v * v}
    else:
        counts[f"label_class:{class_name(label)}"] = 1
    return counts


def summarize_metrics(counts: Mapping[str, drift.Amount]) -> dict[str, Any]:
    """The public shape of a model version's metrics, derived from its counters."""
    out: dict[str, Any] = {
        "predictions": int(counts.get("predictions", 0)),
        "labeled": int(counts.get("labeled", 0)),
    }
    if counts.get("n_err"):
        n = counts["n_err"]
        out["mae"] = counts.get("abs_err_sum", 0.0) / n
        out["rmse"] = (counts.get("sq_err_sum", 0.0) / n) ** 0.5
    if counts.get("n_cls"):
        out["accuracy"] = counts.get("correct", 0) / counts["n_cls"]
    out["prediction_distribution"] = _distribution(counts, "pred")
    return out


def summarize_dataset(counts: Mapping[str, drift.Amount]) -> dict[str, Any]:
    labeled = int(counts.get("labeled", 0))
    return {
        "size": int(counts.get("size", 0)),
        "labeled": labeled,
        # The API subtracts the rows of the last snapshot trained on (see registry).
        "new_since_training": labeled,
        "label_summary": _distribution(counts, "label"),
    }


def _distribution(counts: Mapping[str, drift.Amount], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    n = counts.get(f"{prefix}_n", 0)
    if n:
        mean = counts.get(f"{prefix}_sum", 0.0) / n
        var = max(counts.get(f"{prefix}_sumsq", 0.0) / n - mean * mean, 0.0)
        out["numeric"] = {"count": int(n), "mean": mean, "std": var**0.5}
    marker = f"{prefix}_class:"
    classes = {k[len(marker) :]: int(v) for k, v in counts.items() if k.startswith(marker)}
    if classes:
        out["classes"] = dict(sorted(classes.items()))
    return out
