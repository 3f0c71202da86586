"""An independent fold of published events into the expected views, written without the domain code.

Tests compare the worker's views with this; sharing code with the implementation would let
one bug hide in both.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _cls(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


class Reference:
    """Feed it the valid events in log order (per event_id); read expected views back."""

    def __init__(self) -> None:
        self.predictions: dict[str, dict[str, Any]] = {}
        self.tags: dict[str, dict[str, Any]] = {}
        self.tag_ids: set[str] = set()

    def add(self, kind: str, event: dict[str, Any]) -> None:
        if kind == "prediction":
            self.predictions.setdefault(event["event_id"], event)
            return
        if event["tag_id"] in self.tag_ids:
            return
        self.tag_ids.add(event["tag_id"])
        current = self.tags.get(event["event_id"])
        if current is None or _time(event["tagged_at"]) >= _time(current["tagged_at"]):
            self.tags[event["event_id"]] = event

    def add_all(self, events: Iterable[tuple[str, dict[str, Any]]]) -> Reference:
        for kind, event in events:
            self.add(kind, event)
        return self

    def datasets(self) -> dict[str, dict[str, Any]]:
        labels: dict[str, list[Any]] = defaultdict(list)
        sizes: dict[str, int] = defaultdict(int)
        for event_id, tag in self.tags.items():
            if event_id not in self.predictions:
                continue
            for name in set(tag.get("datasets", [])):
                sizes[name] += 1
                if tag.get("label") is not None:
                    labels[name].append(tag["label"])
        return {
            name: {
                "name": name,
                "size": sizes[name],
                "labeled": len(labels[name]),
                "label_summary": _summary(labels[name]),
            }
            for name in sizes
        }

    def metrics(self, model: str) -> dict[str, dict[str, Any]]:
        by_version: dict[str, list[tuple[Any, Any]]] = defaultdict(list)
        for event_id, pred in self.predictions.items():
            if pred["model"] != model:
                continue
            tag = self.tags.get(event_id)
            label = tag.get("label") if tag else None
            by_version[pred["model_version"]].append((pred["prediction"]["value"], label))
        out = {}
        for version, pairs in by_version.items():
            labeled = [(p, y) for p, y in pairs if y is not None]
            summary: dict[str, Any] = {"predictions": len(pairs), "labeled": len(labeled)}
            numeric = [(p, y) for p, y in labeled if _is_num(p) and _is_num(y)]
            classes = [(p, y) for p, y in labeled if not (_is_num(p) and _is_num(y))]
            if numeric:
                summary["mae"] = sum(abs(p - y) for p, y in numeric) / len(numeric)
            if classes:
                summary["accuracy"] = sum(_cls(p) == _cls(y) for p, y in classes) / len(classes)
            summary["prediction_distribution"] = _summary([p for p, _ in pairs])
            out[version] = summary
        return out


def _summary(values: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    nums = [float(v) for v in values if _is_num(v)]
    if nums:
        mean = sum(nums) / len(nums)
        out["numeric"] = {
            "count": len(nums),
            "mean": mean,
            "std": math.sqrt(sum((v - mean) ** 2 for v in nums) / len(nums)),
        }
    classes: dict[str, int] = defaultdict(int)
    for v in values:
        if not _is_num(v):
            classes[_cls(v)] += 1
    if classes:
        out["classes"] = dict(sorted(classes.items()))
    return out


def assert_close(actual: Any, expected: Any, path: str = "") -> None:
    """Equal, with floats compared to 1e-6 relative: sums folded in another order differ in the last bits."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: {actual!r} is not a dict"
        assert set(actual) >= set(expected), f"{path}: missing {set(expected) - set(actual)}"
        for key in expected:
            assert_close(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, float) or isinstance(actual, float):
        assert math.isclose(actual, expected, rel_tol=1e-6, abs_tol=1e-6), (
            f"{path}: {actual} != {expected}"
        )
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"
