"""Reproducibility's facts: a weights digest that sees one bit, and what in the environment
differs."""

from __future__ import annotations

from typing import Any

import numpy as np

from app.learning import fingerprint
from app.learning.base import ConstantModel


class Network:
    def __init__(self, arrays: list[Any]) -> None:
        self.arrays = arrays

    def get_weights(self) -> list[Any]:
        return self.arrays


class Fitted:
    def __init__(self, arrays: list[Any]) -> None:
        self.network = Network(arrays)


def test_the_weights_digest_sees_a_single_bit_and_the_largest_difference_says_how_much() -> None:
    a = [np.arange(6, dtype="float32").reshape(2, 3), np.ones(3, dtype="float32")]
    b = [a[0].copy(), a[1].copy()]
    assert fingerprint.weights_digest(Fitted(a)) == fingerprint.weights_digest(Fitted(b))
    b[1][2] = np.nextafter(np.float32(1), np.float32(2))  # one ulp
    assert fingerprint.weights_digest(Fitted(a)) != fingerprint.weights_digest(Fitted(b))
    assert 0 < fingerprint.largest_difference(a, b) < 1e-6  # type: ignore[operator]
    assert fingerprint.largest_difference(a, [a[0]]) is None
    # The baseline has no weights: what it predicts is its identity.
    one, other = ConstantModel(1.0, "regression", 3), ConstantModel(2.0, "regression", 3)
    assert fingerprint.weights_digest(one) != fingerprint.weights_digest(other)


def test_the_environment_and_what_of_it_differs() -> None:
    now = fingerprint.environment()
    assert now["python"] and "numpy" in now and isinstance(now["cpu_flags"], list)
    then = {**now, "numpy": "1.0.0", "cpu_flags": ["avx512f"]}
    assert fingerprint.differences(then, now) == {
        "cpu_flags": [["avx512f"], now["cpu_flags"]],
        "numpy": ["1.0.0", now["numpy"]],
    }
    assert fingerprint.differences(now, now) == {}
    assert fingerprint.files_digest([("a", b"1"), ("b", b"2")]) == fingerprint.files_digest(
        [("b", b"2"), ("a", b"1")]
    )
