"""The Keras and linear trainers: TensorFlow is imported here and nowhere else.

Numbers (and booleans) go through a Normalization layer, strings through a StringLookup
with one-hot output, so the saved model takes raw feature values. Seeded, with TensorFlow's
deterministic ops on, so the same rows and seed give the same model on the same machine.

A warm start carries the last version's weights over whenever the features' names and
types are the same: new normalization statistics are simply adapted, and a new category
(or class) grows its one-hot block with fresh weights while the known ones keep theirs.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import orjson
import pyarrow as pa
import tensorflow as tf

from app.domain.events import Value
from app.learning.base import Expected, Features, Model, task_of
from app.learning.hyper import Hyper


@dataclass(frozen=True)
class Schema:
    numeric: tuple[str, ...]
    strings: tuple[str, ...]
    task: str
    classes: tuple[Any, ...] = ()
    # Per numeric feature, the range seen in training: inputs are clipped to it, so that one
    # absurd value (a sensor's 1,000 mph wind) cannot send a ReLU network off to infinity.
    bounds: tuple[tuple[float, float], ...] = ()
    # Per numeric feature, its mean in training: what a missing value becomes, in training
    # and at serving (empty in versions from before: they were trained with 0.0).
    means: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": list(self.numeric),
            "strings": list(self.strings),
            "task": self.task,
            "classes": list(self.classes),
            "bounds": [list(b) for b in self.bounds],
            "means": list(self.means),
        }

    def same_inputs(self, other: Schema) -> bool:
        """Same feature names and types, and task: what a warm start needs."""
        return (self.numeric, self.strings, self.task) == (
            other.numeric,
            other.strings,
            other.task,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        return cls(
            tuple(data["numeric"]),
            tuple(data["strings"]),
            data["task"],
            tuple(data["classes"]),
            tuple((float(lo), float(hi)) for lo, hi in data.get("bounds", [])),
            tuple(float(m) for m in data.get("means", [])),
        )


def infer_schema(features: Sequence[Features], labels: Sequence[Value]) -> Schema:
    names = sorted({name for row in features for name in row})
    numeric, strings, bounds, means = [], [], [], []
    for name in names:
        seen = [row.get(name) for row in features if row.get(name) is not None]
        if seen and all(isinstance(v, int | float) for v in seen):
            numeric.append(name)
            values = [float(v) for v in seen if isinstance(v, int | float)]
            bounds.append((min(values), max(values)))
            means.append(sum(values) / len(values))
        elif seen and all(isinstance(v, str) for v in seen):
            strings.append(name)
        # Lists of numbers are left out of this first model.
    if not numeric and not strings:
        raise ValueError("no numeric or string features to learn from")
    task = task_of(labels)
    classes = tuple(sorted(set(labels), key=str)) if task == "classification" else ()
    return Schema(tuple(numeric), tuple(strings), task, classes, tuple(bounds), tuple(means))


def _input(i: int) -> str:
    return f"f{i}"  # feature names may hold characters Keras refuses in layer names


def columns(schema: Schema, batch: Sequence[Features]) -> dict[str, Any]:
    """The network's inputs for a batch, a feature at a time: one list of the batch's values
    per feature, made an array whole (batch scoring and validation call this on every row)."""
    out: dict[str, Any] = {}
    for i, name in enumerate(schema.numeric):
        out[_input(i)] = _numbers(
            [row.get(name) for row in batch],
            schema.means[i] if schema.means else 0.0,
            schema.bounds[i] if schema.bounds else None,
        )
    for j, name in enumerate(schema.strings, start=len(schema.numeric)):
        values = [row.get(name) for row in batch]
        if not set(map(type, values)) <= {str}:
            values = [_text(v) for v in values]
        out[_input(j)] = tf.constant(np.array(values, dtype=object).reshape(-1, 1))
    return out


def table_columns(schema: Schema, table: pa.Table) -> dict[str, Any]:
    """`columns(schema, table.to_pylist())`, the same arrays, made from the table's columns
    whole (a Parquet file's, in batch scoring). As there, a value of another type than its
    feature's is missing: a column of another type is missing throughout."""
    out: dict[str, Any] = {}
    present = set(table.column_names)
    for i, name in enumerate(schema.numeric):
        mean = schema.means[i] if schema.means else 0.0
        column = _plain(table.column(name)) if name in present else None
        if column is None or not (
            pa.types.is_integer(column.type)
            or pa.types.is_floating(column.type)
            or pa.types.is_boolean(column.type)
        ):
            wide = np.full(table.num_rows, mean, dtype=np.float64)
        else:
            wide = column.cast(pa.float64()).to_numpy(zero_copy_only=False)  # null is NaN
            wide = np.where(np.isnan(wide), mean, wide)
        numbers = wide.astype(np.float32).reshape(-1, 1)
        out[_input(i)] = np.clip(numbers, *schema.bounds[i]) if schema.bounds else numbers
    for j, name in enumerate(schema.strings, start=len(schema.numeric)):
        column = _plain(table.column(name)) if name in present else None
        if column is None or not (
            pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
        ):
            values = np.full(table.num_rows, "", dtype=object)
        else:
            values = column.fill_null("").to_numpy(zero_copy_only=False)
        out[_input(j)] = tf.constant(values.astype(object).reshape(-1, 1))
    return out


def _plain(column: pa.ChunkedArray) -> pa.Array:
    whole = column.combine_chunks()
    return whole.dictionary_decode() if pa.types.is_dictionary(whole.type) else whole


def _numbers(
    values: list[object], missing: float, bounds: tuple[float, float] | None
) -> np.ndarray[Any, Any]:
    # Serving refuses a value of another type, so all are numbers or None (NaN: the codec
    # refuses it) but in training's rows; anything else is missing, as None is.
    if not all(
        issubclass(kind, int | float) or kind is type(None) for kind in set(map(type, values))
    ):
        values = [v if isinstance(v, int | float) else None for v in values]
    wide = np.array(values, dtype=np.float64)  # None is NaN here
    wide[np.isnan(wide)] = missing
    column = wide.astype(np.float32).reshape(-1, 1)
    return np.clip(column, *bounds) if bounds else column


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""  # missing: out of vocabulary


# Rows per call of the traced graph: bounds the tensors of a job that scores millions.
CHUNK = 16384
_TRACING = threading.Lock()  # requests run in threads: trace the serving graph once


@dataclass
class KerasModel:
    network: Any
    schema: Schema
    trained_on: int
    final_loss: float
    kind: str = "keras"
    hyper: Hyper = field(default_factory=Hyper)
    # How it was fitted: epochs run, the best epoch, what a warm start carried over.
    fitted: dict[str, Any] = field(default_factory=dict)
    _graph: Any = field(default=None, repr=False, compare=False)

    def expects(self) -> Expected:
        return Expected(frozenset(self.schema.numeric), frozenset(self.schema.strings))

    def predict(self, batch: Sequence[Features]) -> list[Value]:
        return self._predict(
            lambda start, stop: columns(self.schema, batch[start:stop]), len(batch)
        )

    def predict_table(self, table: pa.Table) -> list[Value]:
        return self._predict(
            lambda start, stop: table_columns(self.schema, table.slice(start, stop - start)),
            table.num_rows,
        )

    def _predict(self, inputs: Callable[[int, int], dict[str, Any]], rows: int) -> list[Value]:
        """The predictions for `rows` rows, whose inputs `inputs(start, stop)` makes."""
        if not rows:
            return []
        # One traced graph for any batch size, called on whole chunks: `predict()` sets up a
        # dataset and runs eagerly at each call, about 5 ms a request and 50 for 4,096 rows
        # (13 µs a row) against the graph's 0.5 ms and 1.5 ms (BENCHMARKS.md, batch scoring).
        graph, parts = self._serving(), []
        for start in range(0, rows, CHUNK):
            x = inputs(start, min(start + CHUNK, rows))
            parts.append(np.asarray(graph({k: tf.convert_to_tensor(v) for k, v in x.items()})))
        out = np.concatenate(parts) if len(parts) > 1 else parts[0]
        if self.schema.task == "regression":
            return out[:, 0].astype(np.float64).tolist()  # type: ignore[no-any-return]
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
            "hyperparameters": self.hyper.to_dict(),
            **self.fitted,
        }


class KerasTrainer:
    """A network with one hidden layer (`hidden` units), or none: then a linear model."""

    def __init__(self, hyper: Hyper | None = None, kind: str = "keras") -> None:
        self.hyper = hyper or Hyper()
        self.kind = kind

    @property
    def warm_starts(self) -> bool:
        return bool(self.hyper.warm)

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
        y = _targets(schema, labels)
        train, held = split(len(labels), self.hyper, seed)
        x = columns(schema, [features[i] for i in train])
        network = _build(schema, x, self.hyper, y[train])
        previous = warm_start if isinstance(warm_start, KerasModel) and self.hyper.warm else None
        carried = carry(previous, network, schema, self.hyper) if previous else None
        fitted: dict[str, Any] = {"warm_start": carried or {"reused": False}}
        history = self._fit(network, schema, x, y, train, held, features, fitted)
        return KerasModel(network, schema, len(labels), history, self.kind, self.hyper, fitted)

    def _fit(
        self,
        network: Any,
        schema: Schema,
        x: dict[str, Any],
        y: Any,
        train: list[int],
        held: list[int],
        features: Sequence[Features],
        fitted: dict[str, Any],
    ) -> float:
        """Fit in place; the loss of the epoch whose weights are kept."""
        hyper = self.hyper
        callbacks, validation = [], None
        if held:
            validation = (columns(schema, [features[i] for i in held]), y[held])
            if hyper.patience:
                callbacks.append(
                    keras.callbacks.EarlyStopping(
                        monitor="val_loss", patience=hyper.patience, restore_best_weights=True
                    )
                )
        history = network.fit(
            x,
            y[train],
            epochs=hyper.epochs,
            batch_size=hyper.batch,
            verbose=0,
            shuffle=True,
            validation_data=validation,
            callbacks=callbacks,
        ).history
        losses = history["val_loss"] if held else history["loss"]
        best = int(np.argmin(losses)) if callbacks else len(losses) - 1
        fitted.update(
            epochs_run=len(history["loss"]),
            best_epoch=best + 1,
            validation_rows=len(held),
            **({"validation_loss": float(history["val_loss"][best])} if held else {}),
        )
        return float(history["loss"][best])

    def load(self, directory: Path) -> KerasModel:
        described = orjson.loads((directory / "schema.json").read_bytes())
        network = keras.models.load_model(directory / "model.keras")
        return KerasModel(
            network,
            Schema.from_dict(described["schema"]),
            described["trained_on"],
            described["final_loss"],
            described.get("kind", self.kind),
            Hyper.from_dict(described["hyperparameters"])
            if "hyperparameters" in described
            else self.hyper,
        )


class LinearTrainer(KerasTrainer):
    """The reference: least squares (exact, by numpy) or logistic regression, on the same
    preprocessing as the Keras trainer, saved and served as a Keras model like it."""

    warm_starts = False

    def __init__(self, hyper: Hyper | None = None) -> None:
        super().__init__(dataclasses.replace(hyper or Hyper(), hidden=0), "linear")

    def _fit(
        self,
        network: Any,
        schema: Schema,
        x: dict[str, Any],
        y: Any,
        train: list[int],
        held: list[int],
        features: Sequence[Features],
        fitted: dict[str, Any],
    ) -> float:
        if schema.task != "regression":
            return super()._fit(network, schema, x, y, train, held, features, fitted)
        # Ordinary least squares on every row: no epochs, no validation split to stop on.
        rows = [features[i] for i in sorted(train + held)]
        design = _encoded(network, columns(schema, rows)).astype("float64")
        design = np.hstack([design, np.ones((len(rows), 1))])
        target = y[sorted(train + held)].astype("float64")
        solution, *_ = np.linalg.lstsq(design, target, rcond=None)
        # In the standardized units the output layer works in, before `denormalize`.
        scaled = network.get_layer("denormalize")
        kernel = solution[:-1] / float(scaled.scale)
        bias = (solution[-1:] - float(scaled.offset)) / float(scaled.scale)
        network.get_layer("output").set_weights(
            [kernel.reshape(-1, 1).astype("float32"), bias.astype("float32")]
        )
        # No epoch ran: give the optimizer its state anyway, so the saved model loads as any.
        network.optimizer.build(network.trainable_variables)
        fitted.update(epochs_run=0, solver="least squares")
        residual = design @ solution - target
        return float(np.mean(residual**2))


def _targets(schema: Schema, labels: Sequence[Value]) -> Any:
    if schema.task == "regression":
        return np.array([float(v) for v in labels], dtype="float32")
    index = {c: i for i, c in enumerate(schema.classes)}
    return np.array([index[v] for v in labels], dtype="int32")


def split(rows: int, hyper: Hyper, seed: int) -> tuple[list[int], list[int]]:
    """(training, validation) row indices: a seeded share held out to stop on."""
    if not hyper.validation or not hyper.patience or rows < hyper.min_split_rows:
        return list(range(rows)), []
    order = np.random.default_rng(seed).permutation(rows)
    cut = max(1, int(rows * hyper.validation))
    return sorted(int(i) for i in order[cut:]), sorted(int(i) for i in order[:cut])


def _encoded(network: Any, x: dict[str, Any]) -> Any:
    """The preprocessed inputs the first Dense layer sees, as a numpy matrix."""
    first = network.get_layer("hidden" if _has(network, "hidden") else "output")
    tensors = {name: tf.convert_to_tensor(column) for name, column in x.items()}
    return np.asarray(keras.Model(network.inputs, first.input)(tensors))


def _has(network: Any, name: str) -> bool:
    return any(layer.name == name for layer in network.layers)


def _layout(network: Any, schema: Schema) -> list[tuple[str, list[str]]]:
    """The first Dense layer's input rows, in order: (feature, its tokens) per block."""
    blocks: list[tuple[str, list[str]]] = [(name, [""]) for name in schema.numeric]
    for j, name in enumerate(schema.strings, start=len(schema.numeric)):
        lookup = network.get_layer(f"lookup_{_input(j)}")
        blocks.append((name, [str(t) for t in lookup.get_vocabulary()]))
    return blocks


def carry(previous: KerasModel, network: Any, schema: Schema, hyper: Hyper) -> dict[str, Any]:
    """Copy `previous`'s weights into the freshly built `network`, where they mean the same.

    Returns what the manifest records: whether anything was reused, and how.
    """
    why = None
    if not previous.schema.same_inputs(schema):
        why = "the features' names, types or the task changed"
    elif previous.hyper.hidden != hyper.hidden:
        why = f"hidden units changed ({previous.hyper.hidden} to {hyper.hidden})"
    elif bool(hyper.hidden) and not _has(previous.network, "wide_and_deep"):
        why = "the last version's network predates the wide-and-deep layout"
    elif schema.task == "regression" and not _has(previous.network, "denormalize"):
        why = "the last version's network predates the scaled output"
    elif not (_has(previous.network, "output") and _has(network, "output")):
        why = "the last version's network predates warm starts by layer"
    if why:
        return {"reused": False, "cold_because": why}
    old_index = {
        key: i
        for i, key in enumerate(
            (name, token)
            for name, tokens in _layout(previous.network, previous.schema)
            for token in tokens
        )
    }
    new_keys = [(name, t) for name, tokens in _layout(network, schema) for t in tokens]
    old_net, new_net = previous.network, network
    # A number the last version only ever saw constant taught it nothing: fresh weights.
    shifts = {
        i: shift
        for i in range(len(schema.numeric))
        if (shift := _shift(old_net, new_net, i)) is not None
    }
    numeric = len(schema.numeric)  # numeric rows come first, in the same order, in both
    rows = [
        (i, old_index[key])
        for i, key in enumerate(new_keys)
        if key in old_index and (i >= numeric or i in shifts)
    ]
    classes = [
        (j, old) for j, old in enumerate(_class_map(previous.schema, schema)) if old is not None
    ]
    if hyper.hidden:
        # Hidden units are matched by position: rows by (feature, token), every column. The
        # output reads the inputs' rows, then the hidden units'.
        units = [(k, k) for k in range(hyper.hidden)]
        _copy(old_net.get_layer("hidden"), new_net.get_layer("hidden"), rows, units, shifts)
        wide, old_wide = len(new_keys), len(old_index)
        both = rows + [(wide + k, old_wide + k) for k in range(hyper.hidden)]
        _copy(old_net.get_layer("output"), new_net.get_layer("output"), both, classes, shifts)
    else:
        _copy(old_net.get_layer("output"), new_net.get_layer("output"), rows, classes, shifts)
    if schema.task == "regression":
        _rescale_output(old_net, new_net)
    out_columns = len(schema.classes) if schema.task == "classification" else 1
    return {
        "reused": True,
        "carried_rows": len(rows),
        "new_rows": len(new_keys) - len(rows),
        "new_classes": out_columns - len(classes),
    }


def _class_map(old: Schema, new: Schema) -> list[int | None]:
    """Per output column of `new`, the column of `old` it continues (None: a new class)."""
    if new.task == "regression":
        return [0]
    where = {c: i for i, c in enumerate(old.classes)}
    return [where.get(c) for c in new.classes]


def _rescale_output(old: Any, new: Any) -> None:
    """Carried output weights were in the last version's label scale: move them to the new
    one, so that the warm network starts from the same predictions."""
    before, after = old.get_layer("denormalize"), new.get_layer("denormalize")
    ratio = float(before.scale) / float(after.scale)
    kernel, bias = new.get_layer("output").get_weights()
    moved = (float(before.scale) * bias + float(before.offset) - float(after.offset)) / float(
        after.scale
    )
    new.get_layer("output").set_weights([kernel * ratio, moved.astype(bias.dtype)])


def _shift(old: Any, new: Any, i: int) -> tuple[float, float] | None:
    """(scale, offset) with old z = scale * new z + offset, for numeric input `i`: how the
    re-adapted normalization moved it, so that carried weights keep their meaning."""
    old_mean, old_var = (float(w[0]) for w in old.get_layer(f"norm_{_input(i)}").get_weights()[:2])
    new_mean, new_var = (float(w[0]) for w in new.get_layer(f"norm_{_input(i)}").get_weights()[:2])
    epsilon = keras.config.epsilon()
    if old_var**0.5 <= CONSTANT:
        return None  # its weights were never trained; rescaled, they would blow up
    old_std, new_std = old_var**0.5, max(new_var**0.5, epsilon)
    return new_std / old_std, (new_mean - old_mean) / old_std


CONSTANT = 1e-6  # a standard deviation at or below this: the feature never varied


def _copy(
    old: Any,
    new: Any,
    rows: list[tuple[int, int]],
    cols: list[tuple[int, int]],
    shifts: dict[int, tuple[float, float]] | None = None,
) -> None:
    """Copy a Dense layer's kernel entries (and biases) at the (new, old) row and column
    pairs given; every other entry keeps its fresh initialisation. With `shifts`, the first
    rows are numeric inputs whose normalization moved: their weights are rescaled and the
    bias takes the offset, so the carried units compute what they did."""
    kernel, bias = old.get_weights()
    fresh_kernel, fresh_bias = new.get_weights()
    if rows and cols:
        new_r, old_r = (list(t) for t in zip(*rows, strict=True))
        new_c, old_c = (list(t) for t in zip(*cols, strict=True))
        fresh_kernel[np.ix_(new_r, new_c)] = kernel[np.ix_(old_r, old_c)]
        fresh_bias[new_c] = bias[old_c]
        for i, (scale, offset) in (shifts or {}).items():  # numeric rows: i in both layouts
            fresh_kernel[i, new_c] = kernel[i, old_c] * scale
            fresh_bias[new_c] += kernel[i, old_c] * offset
    new.set_weights([fresh_kernel, fresh_bias])


HUBER_SPREAD = 0.05


def _spread(y: Any) -> tuple[float, float]:
    """The labels' (mean, standard deviation), a deviation of 0 taken as 1."""
    if y is None or not len(y):
        return 0.0, 1.0
    std = float(np.std(y))
    return float(np.mean(y)), std if std > 0 else 1.0


def _build(schema: Schema, x: dict[str, Any], hyper: Hyper, y: Any = None) -> Any:
    inputs, encoded = {}, []
    for i, _ in enumerate(schema.numeric):
        name = _input(i)
        inputs[name] = keras.Input(shape=(1,), name=name, dtype="float32")
        norm = keras.layers.Normalization(name=f"norm_{name}")
        norm.adapt(x[name])
        encoded.append(norm(inputs[name]))
    for j, _ in enumerate(schema.strings, start=len(schema.numeric)):
        name = _input(j)
        inputs[name] = keras.Input(shape=(1,), name=name, dtype="string")
        lookup = keras.layers.StringLookup(output_mode="one_hot", name=f"lookup_{name}")
        lookup.adapt(x[name])
        encoded.append(lookup(inputs[name]))
    flat = keras.layers.Concatenate(name="encoded")(encoded) if len(encoded) > 1 else encoded[0]
    last = flat
    if hyper.hidden:
        # Wide and deep: the output sees the inputs as well as the hidden units, so the
        # network holds the linear model and learns only what it adds.
        deep = keras.layers.Dense(hyper.hidden, activation="relu", name="hidden")(flat)
        last = keras.layers.Concatenate(name="wide_and_deep")([flat, deep])
    if schema.task == "regression":
        # The network predicts the label standardized; the last layer scales it back, so the
        # weights stay near 1 whatever the label's units, and the saved model answers in them.
        mean, std = _spread(y)
        output = keras.layers.Rescaling(std, mean, name="denormalize")(
            keras.layers.Dense(1, name="output")(last)
        )
        # Huber: squared near zero, absolute beyond a twentieth of the labels' spread. Close
        # to the MAE validation judges on, and robust to the few huge delays of the flights.
        loss: Any = keras.losses.Huber(delta=HUBER_SPREAD * std)
    else:
        output = keras.layers.Dense(len(schema.classes), activation="softmax", name="output")(last)
        loss = "sparse_categorical_crossentropy"
    network = keras.Model(inputs, output)
    network.compile(optimizer=keras.optimizers.Adam(hyper.learning_rate), loss=loss)
    return network
