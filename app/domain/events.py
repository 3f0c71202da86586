"""The immutable facts modelview keeps: predictions and the tags applied to them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

SCHEMA_VERSION = 1

# A feature value: number, string, bool, null, or a list of numbers.
Feature = float | int | str | bool | None | list[float | int]
# A prediction value or a label: a number for regression, a string or bool for classes.
Value = float | int | str | bool


def frozen_reduce(value: Any) -> tuple[Any, tuple[Any, ...]]:
    """How a frozen dataclass of the fold pickles and copies: built again from its fields.
    Compiled (`app.native`), such a class cannot be unpickled field by field, which its
    frozen `__setattr__` refuses; as Python it could."""
    return type(value), tuple(getattr(value, f.name) for f in fields(value))


@dataclass(frozen=True, slots=True)
class Prediction:
    value: Value
    scores: Mapping[str, float] | None = None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return frozen_reduce(self)


@dataclass(frozen=True, slots=True)
class PredictionEvent:
    """One prediction a model made; `event_id` is the client's idempotency key."""

    event_id: str
    model: str
    model_version: str
    occurred_at: datetime
    features: Mapping[str, Feature]
    prediction: Prediction
    entity_id: str | None = None
    context: Mapping[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    # Set on a redacted copy only (`redacted`): what is left of an erased prediction.
    erased: bool = False

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return frozen_reduce(self)


@dataclass(frozen=True, slots=True)
class TagEvent:
    """A fact about a prediction: its true label and the datasets it belongs to, as of `tagged_at`."""

    tag_id: str
    event_id: str
    tagged_at: datetime
    label: Value | None = None
    datasets: tuple[str, ...] = ()
    source: str = ""
    schema_version: int = SCHEMA_VERSION

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return frozen_reduce(self)


# What an erased prediction's value becomes: a placeholder, since the field is required.
REDACTED = Prediction("")


def redacted_prediction(event: PredictionEvent) -> PredictionEvent:
    """An erased prediction's skeleton: its identity, model and time, none of its data.

    The skeleton still places the event in the log (the hour it falls in, the model it
    belongs to), which is not data about anyone, so a fold of the redacted log touches the
    same aggregates as a fold of the original did before the erasure.
    """
    return PredictionEvent(
        event_id=event.event_id,
        model=event.model,
        model_version=event.model_version,
        occurred_at=event.occurred_at,
        features={},
        prediction=REDACTED,
        schema_version=event.schema_version,
        erased=True,
    )


def redacted_tag(tag: TagEvent) -> TagEvent:
    """An erased prediction's tag: its identity, time and datasets, without label or source."""
    return TagEvent(
        tag_id=tag.tag_id,
        event_id=tag.event_id,
        tagged_at=tag.tagged_at,
        datasets=tag.datasets,
        schema_version=tag.schema_version,
    )


# Tuples, not `int | float`: a union in an isinstance call is built anew each call, and these
# run for every feature of every event a fold decodes.
NUMBER_TYPES = (int, float)
TEXT_TYPES = (str, bool)


def is_number(value: object) -> bool:
    return isinstance(value, NUMBER_TYPES) and not isinstance(value, bool)


def class_name(value: Value) -> str:
    """How a class label or prediction is named in distributions."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
