"""The immutable facts modelview keeps: predictions and the tags applied to them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Final

SCHEMA_VERSION = 1

# A feature value: number, string, bool, null, or a list of numbers.
Feature = float | int | str | bool | None | list[float | int]
# A prediction value or a label: a number for regression, a string or bool for classes.
Value = float | int | str | bool


# The values a fold builds for every record (these, `Example`, `Agg`) are frozen by `Final`
# fields and an `__init__` of their own, not by `frozen=True`: mypy refuses any assignment
# after `__init__`, and compiled (`app.native`) they refuse it at run time too. A frozen
# dataclass's generated `__init__` stays Python even compiled, and sets each field through
# `object.__setattr__`: a fifth of the compiled fold's samples (py-spy --native). Built in a
# compiled loop, a frozen dataclass of seven fields took 1.27 µs, with `Final` fields 0.05 µs
# (2026-12-08). Equality, hashing, `repr`, `replace` and `fields` are the dataclass's.


def frozen_reduce(value: Any) -> tuple[Any, tuple[Any, ...]]:
    """How a frozen value of the fold pickles and copies: built again from its fields.
    Compiled (`app.native`), its fields cannot be set one by one, as unpickling would."""
    return type(value), tuple(getattr(value, f.name) for f in fields(value))


@dataclass(slots=True, init=False, unsafe_hash=True)
class Prediction:
    value: Final[Value]
    scores: Final[Mapping[str, float] | None]

    def __init__(self, value: Value, scores: Mapping[str, float] | None = None) -> None:
        self.value = value
        self.scores = scores

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return frozen_reduce(self)


@dataclass(slots=True, init=False, unsafe_hash=True)
class PredictionEvent:
    """One prediction a model made; `event_id` is the client's idempotency key."""

    event_id: Final[str]
    model: Final[str]
    model_version: Final[str]
    occurred_at: Final[datetime]
    features: Final[Mapping[str, Feature]]
    prediction: Final[Prediction]
    entity_id: Final[str | None]
    context: Final[Mapping[str, Any]]
    schema_version: Final[int]
    # Set on a redacted copy only (`redacted`): what is left of an erased prediction.
    erased: Final[bool]

    def __init__(
        self,
        event_id: str,
        model: str,
        model_version: str,
        occurred_at: datetime,
        features: Mapping[str, Feature],
        prediction: Prediction,
        entity_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        schema_version: int = SCHEMA_VERSION,
        erased: bool = False,
    ) -> None:
        self.event_id = event_id
        self.model = model
        self.model_version = model_version
        self.occurred_at = occurred_at
        self.features = features
        self.prediction = prediction
        self.entity_id = entity_id
        self.context = {} if context is None else context
        self.schema_version = schema_version
        self.erased = erased

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return frozen_reduce(self)


@dataclass(slots=True, init=False, unsafe_hash=True)
class TagEvent:
    """A fact about a prediction: its true label and the datasets it belongs to, as of `tagged_at`."""

    tag_id: Final[str]
    event_id: Final[str]
    tagged_at: Final[datetime]
    label: Final[Value | None]
    datasets: Final[tuple[str, ...]]
    source: Final[str]
    schema_version: Final[int]

    def __init__(
        self,
        tag_id: str,
        event_id: str,
        tagged_at: datetime,
        label: Value | None = None,
        datasets: tuple[str, ...] = (),
        source: str = "",
        schema_version: int = SCHEMA_VERSION,
    ) -> None:
        self.tag_id = tag_id
        self.event_id = event_id
        self.tagged_at = tagged_at
        self.label = label
        self.datasets = datasets
        self.source = source
        self.schema_version = schema_version

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
