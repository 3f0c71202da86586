"""The immutable facts modelview keeps: predictions and the tags applied to them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SCHEMA_VERSION = 1

# A feature value: number, string, bool, null, or a list of numbers.
Feature = float | int | str | bool | None | list[float | int]
# A prediction value or a label: a number for regression, a string or bool for classes.
Value = float | int | str | bool


@dataclass(frozen=True, slots=True)
class Prediction:
    value: Value
    scores: Mapping[str, float] | None = None


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


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def class_name(value: Value) -> str:
    """How a class label or prediction is named in distributions."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
