"""A trainer's hyperparameters: parsed from settings and the CLI, recorded in each manifest.

Pure (no TensorFlow), so that a worker checks `MODELVIEW_RETRAIN_HYPER` when it starts, not
when its first retraining fails.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class HyperError(ValueError):
    """An unknown hyperparameter, or a value it cannot take."""


@dataclass(frozen=True)
class Hyper:
    """What the Keras and linear trainers fit with.

    Training stops by itself: at most `epochs`, and earlier once the loss on a seeded
    `validation` share of the snapshot has not improved for `patience` epochs (the best
    epoch's weights are kept). `patience=0` or `validation=0` trains every epoch.
    """

    epochs: int = 60
    batch: int = 64
    learning_rate: float = 0.001
    hidden: int = 32  # units of the one hidden layer; 0: none (a linear model)
    patience: int = 5
    validation: float = 0.1
    # Fewer training rows than this: no validation split, every epoch is run.
    min_split_rows: int = 50
    # 1: start from the last version's weights where they still apply; 0: always from
    # scratch (on the demo's flights a cold start on all rows generalizes better).
    warm: int = 1

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch < 1:
            raise HyperError("epochs and batch must be at least 1")
        if self.hidden < 0 or self.patience < 0 or self.min_split_rows < 0:
            raise HyperError("hidden, patience and min_split_rows cannot be negative")
        if self.warm not in (0, 1):
            raise HyperError("warm must be 0 or 1")
        if not 0 <= self.validation < 0.5:
            raise HyperError("validation must be at least 0 and below 0.5")
        if not 0 < self.learning_rate < 10:
            raise HyperError("learning_rate must be above 0 and below 10")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Hyper:
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise HyperError(f"unknown hyperparameters {unknown}; known: {sorted(known)}")
        values: dict[str, Any] = {}
        for name, raw in data.items():
            kind = int if known[name].type in ("int", int) else float
            try:
                values[name] = kind(raw)
            except (TypeError, ValueError):
                what = "an integer" if kind is int else "a number"
                raise HyperError(f"{name}: {raw!r} is not {what}") from None
        return cls(**values)

    @classmethod
    def parse(cls, items: Iterable[str]) -> Hyper:
        """`["epochs=80", "hidden=64"]`, or one comma-separated string's parts."""
        data: dict[str, str] = {}
        for item in items:
            for part in filter(None, (p.strip() for p in item.split(","))):
                name, sep, value = part.partition("=")
                if not sep:
                    raise HyperError(f"{part!r}: write NAME=VALUE")
                data[name.strip()] = value.strip()
        return cls.from_dict(data)


# What Keras versions trained before hyperparameters were recorded were fitted with (a
# dense network without the wide path, on squared error).
LEGACY = Hyper(epochs=30, learning_rate=0.01, patience=0, validation=0.0)


def recorded(describe: Mapping[str, Any]) -> Hyper:
    """The hyperparameters a manifest's `describe` says its version was fitted with."""
    found = describe.get("hyperparameters")
    return LEGACY if found is None else Hyper.from_dict(found)
