"""`Trainer` and `Model`: the only things training, validation and serving know of learning.

The baseline (the mean, or the majority class) is the first model a dataset gets and the one
every infrastructure test uses; the Keras trainer lives in its own module so that TensorFlow
is imported only when a Keras model is trained or loaded.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from app.domain.events import Feature, Value, is_number

if TYPE_CHECKING:
    import pyarrow as pa

Features = Mapping[str, Feature]


def task_of(labels: Sequence[Value]) -> str:
    """'regression' when every label is a number, else 'classification'."""
    return "regression" if labels and all(is_number(v) for v in labels) else "classification"


@dataclass(frozen=True)
class Expected:
    """The features a model reads, and of what type; serving checks each request against it.

    A feature of the wrong type is the caller's error. A missing one is imputed the way the
    model was trained to (a number: its training mean; a string: an unseen category), and
    the answer and the captured event both name it: never a silent 0.0 or "".
    """

    numbers: frozenset[str] = frozenset()
    strings: frozenset[str] = frozenset()

    @functools.cached_property
    def _order(self) -> tuple[tuple[str, tuple[type, ...]], ...]:
        return tuple(
            (name, (int, float) if name in self.numbers else (str,))
            for name in sorted(self.numbers | self.strings)
        )

    def check(self, features: Features) -> tuple[dict[str, str], list[str]]:
        """(problems by feature name, the missing features that will be imputed)."""
        problems, missing = self.check_all([features])
        return problems.get(0, {}), missing.get(0, [])

    def check_all(
        self, batch: Sequence[Features]
    ) -> tuple[dict[int, dict[str, str]], dict[int, list[str]]]:
        """`check` of every row, a feature at a time (batch scoring checks millions of rows):
        (problems, missing), each by row index, holding only the rows that have some."""
        problems: dict[int, dict[str, str]] = {}
        missing: dict[int, list[str]] = {}
        for name, kinds in self._order:
            values = [row.get(name) for row in batch]
            seen = set(map(type, values))
            if type(None) in seen:
                for i, value in enumerate(values):
                    if value is None:
                        missing.setdefault(i, []).append(name)
            if all(issubclass(kind, kinds) for kind in seen - {type(None)}):
                continue  # a bool is a number too
            expected = "a string" if kinds == (str,) else "a number"
            for i, value in enumerate(values):
                if value is not None and not isinstance(value, kinds):
                    problems.setdefault(i, {})[name] = (
                        f"expected {expected}, got {type(value).__name__}"
                    )
        return problems, missing


class Model(Protocol):
    @property
    def kind(self) -> str: ...

    def expects(self) -> Expected: ...

    def predict(self, batch: Sequence[Features]) -> list[Value]: ...

    def save(self, directory: Path) -> None: ...

    def describe(self) -> dict[str, Any]: ...


class TableModel(Model, Protocol):
    """A model that reads a table's columns whole, as batch scoring holds a Parquet file."""

    def predict_table(self, table: pa.Table) -> list[Value]:
        """`predict(table.to_pylist())`, the same values, with no Python object a row."""
        ...


def predict_table(model: Model, table: pa.Table) -> list[Value]:
    """The model's predictions for each row of `table`, from its columns where it can."""
    own = getattr(model, "predict_table", None)
    return own(table) if own is not None else model.predict(table.to_pylist())


class Trainer(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def warm_starts(self) -> bool:
        """Whether `fit` goes on from a `warm_start` model (else it ignores one)."""
        ...

    def fit(
        self,
        features: Sequence[Features],
        labels: Sequence[Value],
        warm_start: Model | None = None,
        seed: int = 0,
    ) -> Model: ...

    def load(self, directory: Path) -> Model: ...


@dataclass(frozen=True)
class ConstantModel:
    """Predicts one value: the mean label, or the most frequent class."""

    value: Value
    task: str
    trained_on: int
    kind: str = "baseline"

    def expects(self) -> Expected:
        return Expected()  # reads no feature

    def predict(self, batch: Sequence[Features]) -> list[Value]:
        return [self.value] * len(batch)

    def predict_table(self, table: pa.Table) -> list[Value]:
        return [self.value] * table.num_rows

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "baseline.json").write_bytes(orjson.dumps(self.describe()))

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "task": self.task,
            "value": self.value,
            "trained_on": self.trained_on,
        }


class BaselineTrainer:
    kind = "baseline"
    warm_starts = False

    def fit(
        self,
        features: Sequence[Features],
        labels: Sequence[Value],
        warm_start: Model | None = None,
        seed: int = 0,
    ) -> ConstantModel:
        if not labels:
            raise ValueError("no labeled rows to train on")
        task = task_of(labels)
        if task == "regression":
            value: Value = sum(float(v) for v in labels) / len(labels)
        else:
            # Ties go to the smallest class name, so the same rows give the same model.
            counts = Counter(labels)
            value = min(counts, key=lambda c: (-counts[c], str(c)))
        return ConstantModel(value, task, len(labels))

    def load(self, directory: Path) -> ConstantModel:
        data = orjson.loads((directory / "baseline.json").read_bytes())
        return ConstantModel(data["value"], data["task"], data["trained_on"])
