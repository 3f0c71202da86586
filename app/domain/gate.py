"""Validation by replay, and the promotion gate: pure arithmetic over scored past events.

A challenger is scored on labeled prediction events it was not trained on. Each event also
carries what the serving model predicted then (the log holds it), so the comparison is with
the live record, paired event by event: the confidence interval is on the mean of per-event
loss differences, which is far tighter than comparing two separate averages.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from statistics import NormalDist
from typing import Any

from app.domain.codec import parse_time
from app.domain.datasets import Row
from app.domain.events import Value, class_name, is_number

METRICS = {"regression": ("mae", "rmse"), "classification": ("accuracy",)}
HIGHER_IS_BETTER = {"accuracy"}
BUCKETS = {"hour": 13, "day": 10, "month": 7}  # prefix length of an ISO-8601 UTC time


class ValidationError(ValueError):
    """The gate or the report was asked for something that does not fit the task."""


@dataclass(frozen=True)
class Scored:
    """One replayed event: its label, what was served then, and what the challenger says."""

    event_id: str
    occurred_at: str
    served_by: str  # the model version that made the logged prediction
    segment: str | None
    label: Value
    served: Value
    challenger: Value


def scored(
    rows: Sequence[Row], predictions: Sequence[Value], segment_by: str | None
) -> list[Scored]:
    if len(rows) != len(predictions):
        raise ValidationError(f"{len(predictions)} predictions for {len(rows)} events")
    return [
        Scored(
            r.event_id,
            r.occurred_at,
            r.model_version,
            _segment_value(r.features.get(segment_by)) if segment_by else None,
            r.label,
            r.prediction,
            p,
        )
        for r, p in zip(rows, predictions, strict=True)
    ]


def _segment_value(value: object) -> str:
    if value is None:
        return "(missing)"
    if isinstance(value, bool | str):
        return class_name(value)
    if is_number(value):
        return str(value)
    return "(list)"


def loss(task: str, metric: str, predicted: Value, label: Value) -> float:
    """Per event: absolute or squared error, or 0/1 error for classes (lower is better)."""
    if task == "classification":
        return 0.0 if class_name(predicted) == class_name(label) else 1.0
    if not is_number(predicted):
        return math.inf  # a class where a number was due: as wrong as it gets
    error = float(predicted) - float(label)
    return error * error if metric == "rmse" else abs(error)


def summarize(task: str, metric: str, losses: Sequence[float]) -> float | None:
    """The metric from per-event losses; None when there are none, or any is infinite."""
    if not losses or any(math.isinf(x) for x in losses):
        return None
    mean = sum(losses) / len(losses)
    if metric == "rmse":
        return math.sqrt(mean)
    if metric == "accuracy":
        return 1.0 - mean
    return mean


def _metrics(task: str, events: Sequence[Scored], which: str) -> dict[str, float | None]:
    out = {}
    for metric in METRICS[task]:
        values = [
            loss(task, metric, e.challenger if which == "challenger" else e.served, e.label)
            for e in events
        ]
        out[metric] = summarize(task, metric, values)
    return out


def paired_difference(
    task: str, metric: str, events: Sequence[Scored], confidence: float
) -> dict[str, Any]:
    """Mean per-event loss of the challenger minus the served model's, with its interval.

    Negative means the challenger errs less. The interval is the normal approximation of
    the paired mean (events are many; the losses are bounded in practice).
    """
    diffs = [
        loss(task, metric, e.challenger, e.label) - loss(task, metric, e.served, e.label)
        for e in events
    ]
    finite = [d for d in diffs if math.isfinite(d)]
    n = len(finite)
    if n == 0:
        return {"metric": metric, "n": 0, "mean": None, "ci": None, "confidence": confidence}
    mean = sum(finite) / n
    spread = 0.0
    if n > 1:
        variance = sum((d - mean) ** 2 for d in finite) / (n - 1)
        spread = NormalDist().inv_cdf(0.5 + confidence / 2) * math.sqrt(variance / n)
    return {
        "metric": "squared error" if metric == "rmse" else metric,
        "n": n,
        "mean": mean,
        "ci": [mean - spread, mean + spread],
        "confidence": confidence,
    }


def _group(task: str, events: Iterable[Scored], key: Any) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[Scored]] = defaultdict(list)
    for e in events:
        groups[key(e)].append(e)
    return {
        name: {
            "n": len(members),
            "challenger": _metrics(task, members, "challenger"),
            "served": _metrics(task, members, "served"),
        }
        for name, members in sorted(groups.items())
    }


@dataclass(frozen=True)
class Measured:
    """What a replay measured: both models' metrics, their paired per-event difference, and
    the same per segment (time bucket, serving version, a feature's values)."""

    task: str
    n: int
    challenger: Mapping[str, float | None]
    served: Mapping[str, float | None]
    difference: Mapping[str, Mapping[str, Any]]
    segments: Mapping[str, Mapping[str, Mapping[str, Any]]]
    first_event_at: str | None
    last_event_at: str | None


@dataclass(frozen=True)
class ValidationReport:
    """A validation: what was measured, on which events, against which model, and the gate's
    decision if one was asked. Its JSON (`to_dict`) is report.json and the ModelValidated
    event's `report`."""

    measured: Measured
    model: str
    version: str
    champion: str | None
    compared_with: Mapping[str, str] | None  # the champion whose served events were judged
    unseen_events: int
    as_of: Mapping[str, Mapping[int, int]]  # the log's end when it ran, per topic and partition
    validated_at: str
    decision: Decision | None = None
    # In-time against out-of-time (`Periods.to_dict`), and which set the gate decided on.
    periods: Mapping[str, Any] | None = None
    decided_on: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self.measured),
            "model": self.model,
            "version": self.version,
            "champion": self.champion,
            "compared_with": self.compared_with,
            "unseen_events": self.unseen_events,
            "as_of": {t: {str(p): o for p, o in parts.items()} for t, parts in self.as_of.items()},
            "validated_at": self.validated_at,
            "decision": self.decision.to_dict() if self.decision else None,
            "periods": self.periods,
            "decided_on": self.decided_on,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ValidationReport:
        decision = data.get("decision")
        return cls(
            measured=Measured(
                task=data["task"],
                n=int(data["n"]),
                challenger=data["challenger"],
                served=data["served"],
                difference=data["difference"],
                segments=data.get("segments", {}),
                first_event_at=data.get("first_event_at"),
                last_event_at=data.get("last_event_at"),
            ),
            model=data["model"],
            version=data["version"],
            champion=data.get("champion"),
            compared_with=data.get("compared_with"),
            unseen_events=data.get("unseen_events", 0),
            as_of={
                t: {int(p): o for p, o in parts.items()}
                for t, parts in (data.get("as_of") or {}).items()
            },
            validated_at=data.get("validated_at", ""),
            decision=Decision.from_dict(decision) if decision else None,
            periods=data.get("periods"),
            decided_on=data.get("decided_on"),
        )


def report(
    task: str,
    events: Sequence[Scored],
    segment_by: str | None = None,
    bucket: str = "day",
    confidence: float = 0.95,
) -> Measured:
    """Overall and per-segment metrics of challenger and served model, and their difference."""
    if task not in METRICS:
        raise ValidationError(f"task must be regression or classification, not {task!r}")
    if bucket not in BUCKETS:
        raise ValidationError(f"bucket must be one of {', '.join(BUCKETS)}, not {bucket!r}")
    width = BUCKETS[bucket]
    segments: dict[str, dict[str, dict[str, Any]]] = {
        f"time:{bucket}": _group(task, events, lambda e: e.occurred_at[:width]),
        "served_by": _group(task, events, lambda e: e.served_by),
    }
    if segment_by:
        segments[f"feature:{segment_by}"] = _group(task, events, lambda e: e.segment)
    return Measured(
        task=task,
        n=len(events),
        challenger=_metrics(task, events, "challenger"),
        served=_metrics(task, events, "served"),
        difference={
            metric: paired_difference(task, metric, events, confidence) for metric in METRICS[task]
        },
        segments=segments,
        first_event_at=min((e.occurred_at for e in events), default=None),
        last_event_at=max((e.occurred_at for e in events), default=None),
    )


@dataclass(frozen=True)
class Gate:
    """When a challenger may replace the champion.

    `min_improvement` and `max_segment_regression` are relative to the served model's metric
    (0.02: 2%). With `confidence` above 0, the paired interval must also exclude no gain.
    """

    metric: str = "auto"
    min_improvement: float = 0.0
    max_segment_regression: float = 0.1
    min_samples: int = 100
    min_segment_samples: int = 30
    confidence: float = 0.95

    def metric_for(self, task: str) -> str:
        if self.metric == "auto":
            return METRICS[task][0]
        if self.metric not in METRICS[task]:
            raise ValidationError(
                f"gate metric {self.metric!r} does not apply to {task}: {', '.join(METRICS[task])}"
            )
        return self.metric


@dataclass(frozen=True)
class Decision:
    promote: bool
    metric: str
    reasons: tuple[str, ...] = field(default_factory=tuple)
    improvement: float | None = None  # relative, positive is better

    def to_dict(self) -> dict[str, Any]:
        return {
            "promote": self.promote,
            "metric": self.metric,
            "improvement": self.improvement,
            "reasons": list(self.reasons),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        return cls(
            promote=bool(data["promote"]),
            metric=str(data.get("metric", "")),
            reasons=tuple(data.get("reasons") or ()),
            improvement=data.get("improvement"),
        )


def improvement(metric: str, challenger: float, served: float) -> float:
    """Relative gain of the challenger over the served model, positive when it is better."""
    gain = challenger - served if metric in HIGHER_IS_BETTER else served - challenger
    if served == 0:
        return 0.0 if gain == 0 else math.copysign(math.inf, gain)
    return gain / abs(served)


def decide(validation: Measured, gate: Gate) -> Decision:
    """Promote only with enough evidence, a large enough gain, and no segment much worse."""
    task = validation.task
    metric = gate.metric_for(task)
    reasons: list[str] = []
    n = validation.n
    if n < gate.min_samples:
        reasons.append(f"too few events to judge: {n} < {gate.min_samples}")
        return Decision(False, metric, tuple(reasons))
    mine, theirs = validation.challenger[metric], validation.served[metric]
    if mine is None or theirs is None:
        reasons.append(f"{metric} cannot be computed: a prediction is not a number")
        return Decision(False, metric, tuple(reasons))
    gain = improvement(metric, mine, theirs)
    promote = True
    verdict = f"{metric} {mine:.4g} against {theirs:.4g} served ({gain:+.2%})"
    if gain < gate.min_improvement or gain <= 0:
        promote = False
        reasons.append(f"{verdict}: needs at least {gate.min_improvement:+.2%} and a gain")
    else:
        reasons.append(verdict)
    difference = validation.difference[metric]
    if gate.confidence > 0 and difference["ci"] is not None:
        # Differences are of per-event losses (0/1 errors for accuracy): negative is a gain.
        low, high = difference["ci"]
        if not high < 0:
            promote = False
            reasons.append(
                f"the {difference['confidence']:.0%} interval of the per-event difference "
                f"[{low:.4g}, {high:.4g}] does not exclude no gain"
            )
    for family, groups in validation.segments.items():
        if family == "served_by":
            continue
        for name, group in groups.items():
            if group["n"] < gate.min_segment_samples:
                continue
            a, b = group["challenger"][metric], group["served"][metric]
            if a is None or b is None:
                continue
            change = improvement(metric, a, b)
            if -change > gate.max_segment_regression:
                promote = False
                reasons.append(
                    f"segment {family}={name} ({group['n']} events): {metric} {a:.4g} "
                    f"against {b:.4g} ({change:+.2%}), worse than the "
                    f"{gate.max_segment_regression:.0%} allowed"
                )
    return Decision(promote, metric, tuple(reasons), gain)


@dataclass(frozen=True)
class Periods:
    """The unseen events split in time at the last training row.

    In-time events (the snapshot's hash holdout, and late labels of its days) come from the
    days the version was fitted around; out-of-time ones occurred after all of them, the
    future it would serve. A version judged on the first looks better than it will be.
    """

    trained_until: str | None  # the latest `occurred_at` among the rows fitted on
    in_time: Measured
    out_of_time: Measured

    def to_dict(self) -> dict[str, Any]:
        return {
            "trained_until": self.trained_until,
            "in_time": _summary(self.in_time),
            "out_of_time": _summary(self.out_of_time),
        }


def _summary(measured: Measured) -> dict[str, Any]:
    return {
        "n": measured.n,
        "challenger": dict(measured.challenger),
        "served": dict(measured.served),
        "first_event_at": measured.first_event_at,
        "last_event_at": measured.last_event_at,
    }


def periods(
    task: str,
    events: Sequence[Scored],
    trained_until: str | None,
    segment_by: str | None = None,
    bucket: str = "day",
    confidence: float = 0.95,
) -> Periods:
    cut = parse_time(trained_until) if trained_until else None
    later = [e for e in events if cut is not None and parse_time(e.occurred_at) > cut]
    ids = {e.event_id for e in later}
    earlier = [e for e in events if e.event_id not in ids]
    return Periods(
        trained_until,
        report(task, earlier, segment_by, bucket, confidence),
        report(task, later, segment_by, bucket, confidence),
    )


def decide_in_time(whole: Measured, split: Periods, gate: Gate) -> tuple[str, Decision]:
    """Decide on the out-of-time events when there are `gate.min_samples` of them, else on
    every unseen event; (the set used, the decision, whose last reason names it)."""
    later = split.out_of_time
    if later.n >= gate.min_samples:
        used, decision = "out_of_time", decide(later, gate)
        why = (
            f"decided on the {later.n} out-of-time events (after the last training row, "
            f"{split.trained_until})"
        )
    else:
        used, decision = "all", decide(whole, gate)
        why = (
            f"decided on all {whole.n} unseen events: only {later.n} occurred after the last "
            f"training row, fewer than {gate.min_samples}"
        )
    return used, replace(decision, reasons=(*decision.reasons, why))
