"""The Keras trainer on in-memory rows: it learns, it is deterministic, it round-trips."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from app.learning.base import BaselineTrainer, Expected
from app.learning.hyper import Hyper

keras_module = pytest.importorskip("app.learning.keras")


def rows(n: int, seed: int) -> tuple[list[dict[str, object]], list[float]]:
    rng = random.Random(seed)
    features = [
        {
            "distance": rng.uniform(0, 100),
            "carrier": rng.choice(["UA", "DL", "AA"]),
            "late": rng.random() < 0.5,
        }
        for _ in range(n)
    ]
    labels = [
        2 * f["distance"] + (10 if f["carrier"] == "UA" else 0) + rng.gauss(0, 1) for f in features
    ]  # type: ignore[operator]
    return features, labels


def mae(predicted: list[object], labels: list[float]) -> float:
    return sum(abs(float(p) - y) for p, y in zip(predicted, labels, strict=True)) / len(labels)  # type: ignore[arg-type]


def test_learns_what_the_baseline_cannot_and_is_deterministic(tmp_path: Path) -> None:
    features, labels = rows(400, 1)
    trainer = keras_module.KerasTrainer()
    model = trainer.fit(features, labels, seed=3)
    baseline = BaselineTrainer().fit(features, labels)
    assert mae(model.predict(features), labels) < mae(baseline.predict(features), labels) / 5
    again = trainer.fit(features, labels, seed=3)
    assert again.predict(features[:20]) == model.predict(features[:20])
    model.save(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"model.keras", "saved_model", "schema.json"}
    loaded = trainer.load(tmp_path)
    assert loaded.predict(features[:20]) == model.predict(features[:20])
    # What serving checks requests against; a missing number is its training mean.
    assert loaded.expects() == Expected(frozenset({"distance", "late"}), frozenset({"carrier"}))
    means = {
        name: sum(float(f[name]) for f in features) / len(features)  # type: ignore[arg-type]
        for name in ("distance", "late")
    }
    assert loaded.predict([{"carrier": "UA"}]) == loaded.predict([{"carrier": "UA", **means}])
    # Unseen categories and wrong types at prediction time do not break it.
    assert len(model.predict([{"distance": "far", "carrier": "ZZ"}, {}])) == 2
    # An absurd number is clipped to the training range: the answer stays near the edge's.
    edge, absurd = loaded.predict(
        [
            {"distance": max(f["distance"] for f in features), "carrier": "UA"},  # type: ignore[type-var]
            {"distance": 1e9, "carrier": "UA"},
        ]
    )
    assert edge == absurd


def test_inputs_fill_what_is_missing_or_of_another_type_and_clip_to_training() -> None:
    """Training's rows may hold a value of another type (serving refuses one): it counts
    as missing, as None does, whether the column is otherwise clean or not."""
    schema = keras_module.Schema(
        ("distance", "late"),
        ("carrier",),
        "regression",
        (),
        ((0.0, 100.0), (0.0, 1.0)),
        (50.0, 0.5),
    )
    batch = [
        {"distance": 10, "late": True, "carrier": "UA"},
        {"distance": None, "late": False, "carrier": None},
        {"distance": 1e9, "carrier": 7},
        {"distance": "far", "late": 1.0, "carrier": "DL"},
    ]
    x = keras_module.columns(schema, batch)
    assert x["f0"].dtype == np.float32 and x["f0"].shape == (4, 1)
    assert x["f0"][:, 0].tolist() == [10.0, 50.0, 100.0, 50.0]
    assert x["f1"][:, 0].tolist() == [1.0, 0.0, 0.5, 1.0]
    assert [v.decode() for v in x["f2"].numpy()[:, 0]] == ["UA", "", "", "DL"]
    clean = keras_module.columns(schema, batch[:2])
    assert clean["f0"][:, 0].tolist() == [10.0, 50.0]


def test_a_tables_columns_make_the_same_inputs_as_its_rows() -> None:
    """Batch scoring reads a Parquet file's columns whole (`predict_table`): the inputs, so
    the answers, are those of the same rows as dicts, whatever is missing or mistyped."""
    features, labels = rows(300, 4)
    model = keras_module.KerasTrainer().fit(features, labels, seed=1)
    for n, row in enumerate(features):
        if n % 7 == 0:
            row["distance"] = None
        if n % 5 == 0:
            row["carrier"] = None
    table = pa.Table.from_pylist(features)
    at = table.column_names.index
    variants = [
        table,
        table.set_column(at("carrier"), "carrier", table.column("carrier").dictionary_encode()),
        table.drop_columns(["late"]),
        table.set_column(at("distance"), "distance", pa.array(["far"] * len(features))),
        table.set_column(at("carrier"), "carrier", pa.array(range(len(features)))),
    ]
    for variant in variants:
        assert model.predict_table(variant) == model.predict(variant.to_pylist())


def test_classification_gives_the_training_classes() -> None:
    features, _ = rows(300, 2)
    labels = [f["carrier"] == "UA" for f in features]
    model = keras_module.KerasTrainer().fit(features, labels, seed=1)
    predicted = model.predict(features)
    assert set(predicted) <= {True, False}
    assert sum(p == y for p, y in zip(predicted, labels, strict=True)) / len(labels) > 0.95


def test_a_warm_start_carries_each_weight_to_where_it_means_the_same() -> None:
    features, labels = rows(200, 4)
    kept = [(f, y) for f, y in zip(features, labels, strict=True) if f["carrier"] != "AA"]
    previous = keras_module.KerasTrainer(Hyper(epochs=3)).fit(
        [f for f, _ in kept], [y for _, y in kept]
    )
    # New data: a carrier the last version never saw, a wider distance range, other labels.
    grown = [*features, {"distance": 500.0, "carrier": "AA", "late": False}]
    hyper = Hyper(epochs=3)
    targets = [*labels, 1000.0]
    schema = keras_module.infer_schema(grown, targets)
    x = keras_module.columns(schema, grown)
    network = keras_module._build(schema, x, hyper, np.array(targets))
    carried = keras_module.carry(previous, network, schema, hyper)
    assert carried == {"reused": True, "carried_rows": 5, "new_rows": 1, "new_classes": 0}

    old_layout = keras_module._layout(previous.network, previous.schema)
    new_layout = keras_module._layout(network, schema)
    old_keys = [(n, t) for n, tokens in old_layout for t in tokens]
    new_keys = [(n, t) for n, tokens in new_layout for t in tokens]
    assert set(new_keys) - set(old_keys) == {("carrier", "AA")}
    old_kernel = previous.network.get_layer("hidden").get_weights()[0]
    new_kernel = network.get_layer("hidden").get_weights()[0]
    for key in old_keys[len(schema.numeric) :]:  # categories: their rows as they were
        assert (new_kernel[new_keys.index(key)] == old_kernel[old_keys.index(key)]).all(), key
    # Numeric rows and the output were moved to the new normalization and label scale: the
    # warm network, before any fitting, predicts what the last version did.
    known = [f for f, _ in kept]
    before = previous.predict(known)
    after = keras_module.KerasModel(network, schema, 0, 0.0).predict(known)
    assert max(abs(a - b) for a, b in zip(after, before, strict=True)) < 1e-3  # type: ignore[operator]

    # Other features, or another width: nothing carried, and the manifest says why.
    fewer = [{"distance": f["distance"]} for f in grown]
    schema = keras_module.infer_schema(fewer, [*labels, 1000.0])
    network = keras_module._build(
        schema, keras_module.columns(schema, fewer), hyper, np.array(targets)
    )
    assert keras_module.carry(previous, network, schema, hyper) == {
        "reused": False,
        "cold_because": "the features' names, types or the task changed",
    }
    wider = Hyper(hidden=8)
    schema = keras_module.infer_schema(grown, [*labels, 1000.0])
    network = keras_module._build(schema, x, wider, np.array(targets))
    assert "hidden units changed (32 to 8)" in keras_module.carry(
        previous, network, schema, wider
    ).get("cold_because", "")


def test_a_number_the_last_version_only_saw_constant_is_not_carried() -> None:
    # Its weights were never trained: rescaled to a real spread they would be enormous.
    features = [{"distance": float(i), "rain": 0.0} for i in range(60)]
    previous = keras_module.KerasTrainer(Hyper(epochs=1)).fit(
        features, [float(i) for i in range(60)]
    )
    rainy = [{"distance": float(i), "rain": float(i % 3)} for i in range(60)]
    hyper = Hyper(epochs=1)
    schema = keras_module.infer_schema(rainy, list(range(60)))
    network = keras_module._build(schema, keras_module.columns(schema, rainy), hyper)
    carried = keras_module.carry(previous, network, schema, hyper)
    assert (carried["carried_rows"], carried["new_rows"]) == (1, 1)
    assert schema.numeric == ("distance", "rain")
    assert abs(network.get_layer("hidden").get_weights()[0][1]).max() < 1  # a fresh init


def test_a_warm_start_goes_on_from_where_the_last_version_stopped() -> None:
    features, labels = rows(300, 5)
    previous = keras_module.KerasTrainer(Hyper(epochs=40, patience=0)).fit(features, labels)
    one_epoch = keras_module.KerasTrainer(Hyper(epochs=1, patience=0))
    warm = one_epoch.fit(features, labels, warm_start=previous)
    cold = one_epoch.fit(features, labels)
    assert warm.fitted["warm_start"]["reused"] is True
    assert cold.fitted["warm_start"] == {"reused": False}
    # One epoch from the last version's weights is far better than one from scratch.
    assert mae(warm.predict(features), labels) < mae(cold.predict(features), labels) / 3


def test_a_new_class_grows_an_output_column_and_the_known_ones_keep_theirs() -> None:
    features, _ = rows(200, 6)
    two = ["UA" if f["carrier"] == "UA" else "other" for f in features]
    previous = keras_module.KerasTrainer(Hyper(epochs=2)).fit(features, two)
    three = [str(f["carrier"]) if f["carrier"] != "DL" else "other" for f in features]
    hyper = Hyper(epochs=2)
    schema = keras_module.infer_schema(features, three)
    network = keras_module._build(schema, keras_module.columns(schema, features), hyper)
    assert keras_module.carry(previous, network, schema, hyper)["new_classes"] == 1
    old_kernel = previous.network.get_layer("output").get_weights()[0]
    new_kernel = network.get_layer("output").get_weights()[0]
    # Category rows are copied by token (the vocabularies' orders differ), numeric ones
    # rescaled to the new normalization.
    old_keys = [
        (n, t) for n, ts in keras_module._layout(previous.network, previous.schema) for t in ts
    ]
    new_keys = [(n, t) for n, ts in keras_module._layout(network, schema) for t in ts]
    assert old_keys != new_keys and sorted(old_keys) == sorted(new_keys)
    for j, label in enumerate(schema.classes):
        if label in previous.schema.classes:
            i = previous.schema.classes.index(label)
            for key in old_keys[len(schema.numeric) :]:
                assert new_kernel[new_keys.index(key), j] == old_kernel[old_keys.index(key), i]


def test_training_stops_early_on_a_held_out_share_and_keeps_the_best_epoch() -> None:
    features, labels = rows(400, 7)
    # A rate at which the held-out loss settles within tens of epochs: at the default one
    # it still improved at epoch 289 of 300, and the test took half a minute.
    hyper = Hyper(epochs=300, patience=3, learning_rate=0.05)
    model = keras_module.KerasTrainer(hyper).fit(features, labels)
    fitted = model.fitted
    assert fitted["validation_rows"] == 40
    assert fitted["epochs_run"] < 100
    assert fitted["best_epoch"] == fitted["epochs_run"] - 3  # patience epochs past the best
    assert model.describe()["hyperparameters"]["patience"] == 3
    # Too few rows to hold any out: every epoch runs.
    small = keras_module.KerasTrainer(Hyper(epochs=4, patience=3)).fit(features[:30], labels[:30])
    assert (small.fitted["epochs_run"], small.fitted["validation_rows"]) == (4, 0)


def test_the_linear_reference_is_exact_least_squares_and_round_trips(tmp_path: Path) -> None:
    rng = random.Random(8)
    features = [
        {"a": rng.uniform(-5, 5), "b": rng.uniform(0, 50), "c": rng.choice(["x", "y"])}
        for _ in range(200)
    ]
    labels = [3 * f["a"] - 0.5 * f["b"] + (7 if f["c"] == "x" else -2) for f in features]
    model = keras_module.LinearTrainer().fit(features, labels)
    assert mae(model.predict(features), labels) < 1e-3
    assert model.describe()["solver"] == "least squares"
    assert model.describe()["hyperparameters"]["hidden"] == 0
    model.save(tmp_path)
    loaded = keras_module.LinearTrainer().load(tmp_path)
    assert loaded.kind == "linear" and loaded.predict(features[:5]) == model.predict(features[:5])

    # Classification: logistic regression on the same preprocessing.
    flights, _ = rows(300, 9)
    classes = [f["carrier"] == "UA" for f in flights]
    logistic = keras_module.LinearTrainer().fit(flights, classes)
    right = sum(p == y for p, y in zip(logistic.predict(flights), classes, strict=True))
    assert right / len(classes) > 0.95
