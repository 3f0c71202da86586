"""What makes a fitted model reproducible bit for bit: its weights' digest, and the
environment it was fitted in. Recorded in each manifest; `modelview models rebuild` compares.

Weights, not the artifact's bytes: a `.keras` file records when it was saved, so two equal
models never have equal files. The artifact's own sha256 is recorded apart, for integrity.
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

PACKAGES = ("numpy", "tensorflow-cpu", "tensorflow", "keras")
# CPU features that change which kernels TensorFlow runs, and so the last bits of a sum.
CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "amx_tile")


def weights_of(model: Any) -> list[Any]:
    """The model's weight arrays (a network's), or none (the baseline)."""
    network = getattr(model, "network", None)
    return list(network.get_weights()) if network is not None else []


def weights_digest(model: Any) -> str:
    digest = hashlib.sha256()
    arrays = weights_of(model)
    if not arrays:  # the baseline: what it predicts is all it is
        digest.update(orjson.dumps(model.describe(), option=orjson.OPT_SORT_KEYS))
    for array in arrays:
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def files_digest(files: Iterable[tuple[str, bytes]]) -> str:
    digest = hashlib.sha256()
    for name, data in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()


def largest_difference(a: Sequence[Any], b: Sequence[Any]) -> float | None:
    """The largest absolute difference between two models' weights; None if the shapes
    differ (then they are not the same network at all)."""
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b, strict=True)):
        return None
    return max((float(abs(x - y).max()) for x, y in zip(a, b, strict=True) if x.size), default=0.0)


def environment() -> dict[str, Any]:
    found: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    found["cpu_flags"] = _cpu_flags()
    return found


def _cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith("flags"):
            have = set(line.split(":", 1)[1].split())
            return [flag for flag in CPU_FLAGS if flag in have]
    return []


def differences(recorded: Mapping[str, Any], now: Mapping[str, Any]) -> dict[str, Any]:
    """The environment's parts that differ: {name: [recorded, now]}."""
    return {
        name: [recorded.get(name), now.get(name)]
        for name in sorted(set(recorded) | set(now))
        if recorded.get(name) != now.get(name)
    }
