"""The Keras trainer: TensorFlow is imported here and nowhere else.

Numbers (and booleans) go through a Normalization layer, strings through a StringLookup
with one-hot output, so the saved model takes raw feature values. Seeded, with TensorFlow's
deterministic ops on, so the same rows and seed give the same model on the same machine.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import orjson
import tensorflow as tf

from app.domain.events import Value
from app.learning.base import Features, Model, task_of

EPOCHS = 30
BATCH = 64


@dataclass(frozen=True)
class Schema:
    numeric: tuple[str, ...]
    strings: tuple[str, ...]
    task: str
    classes: tuple[Any, ...] = ()
    # Per numeric feature, the range seen in training: inputs are clipped to it, so that one
    # absurd value (a sensor's 1,000 mph wind) cannot send a ReLU network off to infinity.
    bounds: tuple[tuple[float, float], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": list(self.numeric),
            "strings": list(self.strings),
            "task": self.task,
            "classes": list(self.classes),
            "bounds": [list(b) for b in self.bounds],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        return cls(
            tuple(data["numeric"]),
            tuple(data["strings"]),
            data["task"],
            tuple(data["classes"]),
            tuple((float(lo), float(hi)) for lo, hi in data.get("bounds", [])),
        )


def infer_schema(features: Sequence[Features], labels: Sequence[Value]) -> Schema:
    names = sorted({name for row in features for name in row})
    numeric, strings, bounds = [], [], []
    for name in names:
        seen = [row.get(name) for row in features if row.get(name) is not None]
        if seen and all(isinstance(v, int | float) for v in seen):
            numeric.append(name)
            values = [float(v) for v in seen if isinstance(v, int | float)]
            bounds.append((min(values), max(values)))
        elif seen and all(isinstance(v, str) for v in seen):
            strings.append(name)
        # Lists of numbers are left out of this first model.
    if not numeric and not strings:
        raise ValueError("no numeric or string features to learn from")
    task = task_of(labels)
    classes = tuple(sorted(set(labels), key=str)) if task == "classification" else ()
    return Schema(tuple(numeric), tuple(strings), task, classes, tuple(bounds))


def _input(i: int) -> str:
    return f"f{i}"  # feature names may hold characters Keras refuses in layer names


def columns(schema: Schema, batch: Sequence[Features]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, name in enumerate(schema.numeric):
        column = np.array([[_number(row.get(name))] for row in batch], dtype="float32")
        if schema.bounds:
            column = np.clip(column, *schema.bounds[i])
        out[_input(i)] = column
    for j, name in enumerate(schema.strings, start=len(schema.numeric)):
        out[_input(j)] = tf.constant([[_text(row.get(name))] for row in batch])
    return out


def _number(value: object) -> float:
    # Missing, or of another type than at training time: the column's neutral value.
    return float(value) if isinstance(value, int | float) else 0.0


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""  # out of vocabulary


SMALL_BATCH = 256
_TRACING = threading.Lock()  # requests run in threads: trace the serving graph once


@dataclass
class KerasModel:
    network: Any
    schema: Schema
    trained_on: int
    final_loss: float
    kind: str = "keras"
    _graph: Any = field(default=None, repr=False, compare=False)

    def predict(self, batch: Sequence[Features]) -> list[Value]:
        if not batch:
            return []
        x = columns(self.schema, batch)
        if len(batch) <= SMALL_BATCH:
            # Serving: one traced graph for any batch size skips predict()'s per-call setup
            # and eager execution: about 0.5 ms a request instead of 5.
            tensors = {k: tf.convert_to_tensor(v) for k, v in x.items()}
            out = np.asarray(self._serving()(tensors))
        else:
            out = self.network.predict(x, verbose=0, batch_size=1024)
        if self.schema.task == "regression":
            return [float(v) for v in out[:, 0]]
        return [self.schema.classes[int(i)] for i in np.argmax(out, axis=1)]

    def _serving(self) -> Any:
        with _TRACING:
            if self._graph is None:
                signature = {
                    _input(i): tf.TensorSpec([None, 1], tf.float32)
                    for i in range(len(self.schema.numeric))
                } | {
                    _input(j): tf.TensorSpec([None, 1], tf.string)
                    for j in range(
                        len(self.schema.numeric),
                        len(self.schema.numeric) + len(self.schema.strings),
                    )
                }
                network = self.network
                self._graph = tf.function(
                    lambda x: network(x, training=False), input_signature=[signature]
                )
            return self._graph

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.network.save(directory / "model.keras")
        self.network.export(str(directory / "saved_model"), verbose=False)
        (directory / "schema.json").write_bytes(orjson.dumps(self.describe()))

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "task": self.schema.task,
            "schema": self.schema.to_dict(),
            "trained_on": self.trained_on,
            "final_loss": self.final_loss,
            "epochs": EPOCHS,
        }


class KerasTrainer:
    kind = "keras"
    warm_starts = True

    def fit(
        self,
        features: Sequence[Features],
        labels: Sequence[Value],
        warm_start: Model | None = None,
        seed: int = 0,
    ) -> KerasModel:
        if not labels:
            raise ValueError("no labeled rows to train on")
        keras.utils.set_random_seed(seed)
        tf.config.experimental.enable_op_determinism()
        schema = infer_schema(features, labels)
        x = columns(schema, features)
        if schema.task == "regression":
            y = np.array([float(v) for v in labels], dtype="float32")
        else:
            index = {c: i for i, c in enumerate(schema.classes)}
            y = np.array([index[v] for v in labels], dtype="int32")
        previous = warm_start if isinstance(warm_start, KerasModel) else None
        if previous is not None and previous.schema == schema:
            network = previous.network  # warm start: go on from the last version's weights
        else:
            network = _build(schema, x)
        history = network.fit(x, y, epochs=EPOCHS, batch_size=BATCH, verbose=0, shuffle=True)
        return KerasModel(network, schema, len(labels), float(history.history["loss"][-1]))

    def load(self, directory: Path) -> KerasModel:
        described = orjson.loads((directory / "schema.json").read_bytes())
        network = keras.models.load_model(directory / "model.keras")
        return KerasModel(
            network,
            Schema.from_dict(described["schema"]),
            described["trained_on"],
            described["final_loss"],
        )


def _build(schema: Schema, x: dict[str, Any]) -> Any:
    inputs, encoded = {}, []
    for i, _ in enumerate(schema.numeric):
        name = _input(i)
        inputs[name] = keras.Input(shape=(1,), name=name, dtype="float32")
        norm = keras.layers.Normalization()
        norm.adapt(x[name])
        encoded.append(norm(inputs[name]))
    for j, _ in enumerate(schema.strings, start=len(schema.numeric)):
        name = _input(j)
        inputs[name] = keras.Input(shape=(1,), name=name, dtype="string")
        lookup = keras.layers.StringLookup(output_mode="one_hot")
        lookup.adapt(x[name])
        encoded.append(lookup(inputs[name]))
    hidden = keras.layers.Concatenate()(encoded) if len(encoded) > 1 else encoded[0]
    hidden = keras.layers.Dense(32, activation="relu")(hidden)
    if schema.task == "regression":
        output = keras.layers.Dense(1)(hidden)
        loss = "mse"
    else:
        output = keras.layers.Dense(len(schema.classes), activation="softmax")(hidden)
        loss = "sparse_categorical_crossentropy"
    network = keras.Model(inputs, output)
    network.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss)
    return network
