"""Read the views: examples by id, and aggregates added up over the partitions held here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from app.domain.batch import Agg, Index, agg_key, example_key, index_key
from app.domain.codec import format_time, prediction_to_dict, tag_to_dict
from app.domain.examples import Example
from app.domain.stats import (
    AggKey,
    Counts,
    metrics_of,
    split_hour,
    summarize_dataset,
    summarize_metrics,
    total,
)
from app.views import viewcodec
from app.views.wal import Store, committed, read_cursor


class Queries:
    """Reads from the table; each call to `read()` sees only complete batches."""

    def __init__(self, store: Store, partitions: int) -> None:
        self.store = store
        self.partitions = partitions

    def read(self) -> ViewsRead:
        return ViewsRead(committed(self.store, self.partitions), self.partitions)


class ViewsRead:
    def __init__(self, store: Store, partitions: int) -> None:
        self.store = store
        self.partitions = partitions

    def _get(self, key: str) -> Any:
        return viewcodec.decode(key, self.store.get(key))

    def cursor(self, partition: int) -> dict[str, int]:
        return read_cursor(self.store, partition)

    def example(self, event_id: str) -> Example | None:
        found: Example | None = self._get(example_key(event_id))
        return found

    def indexes(self) -> list[Index]:
        return [i for p in range(self.partitions) if (i := self._get(index_key(p))) is not None]

    def aggregate(self, key: AggKey) -> tuple[Counts, str | None] | None:
        parts: list[Agg] = [
            a for p in range(self.partitions) if (a := self._get(agg_key(p, key))) is not None
        ]
        if not parts:
            return None
        times = [a.updated_at for a in parts if a.updated_at is not None]
        updated = format_time(max(times)) if times else None
        return total(a.counts for a in parts), updated

    def dataset_names(self) -> list[str]:
        return sorted({name for index in self.indexes() for name in index.datasets})

    def dataset(self, name: str) -> dict[str, Any] | None:
        found = self.aggregate(AggKey("dataset", name))
        if found is None:
            return None
        counts, updated = found
        return {"name": name, **summarize_dataset(counts), "updated_at": updated}

    def labeled(self) -> dict[str, int]:
        """Labeled examples per dataset: what retraining watches."""
        out = {}
        for name in self.dataset_names():
            found = self.dataset(name)
            if found is not None:
                out[name] = int(found["labeled"])
        return out

    def model_versions(self, model: str) -> dict[str, tuple[str, str]]:
        spans: dict[str, tuple[str, str]] = {}
        for index in self.indexes():
            for version, (first, last) in index.models.get(model, {}).items():
                old = spans.get(version, (first, last))
                spans[version] = (min(old[0], first), max(old[1], last))
        return spans

    def model_names(self) -> list[str]:
        return sorted({m for index in self.indexes() for m in index.models})

    def model_metrics(
        self, model: str, hours: Iterable[str] = (), by_day: bool = False
    ) -> dict[str, Any] | None:
        """Each version's metrics, with its windows among `hours` that saw events: as
        `hourly`, or added up per day as `daily`."""
        versions = self.model_versions(model)
        if not versions:
            return None
        out: dict[str, Any] = {}
        wanted = list(hours)
        for version, (first, last) in sorted(versions.items()):
            found = self.aggregate(AggKey("model", model, version))
            counts, updated = found if found else ({}, None)
            # Hours outside the version's span hold nothing: skip their reads.
            windows: dict[str, list[Counts]] = {}
            for hour in wanted:
                if first <= hour <= last:
                    window = self.aggregate(AggKey("hour", model, version, hour))
                    if window is not None:
                        metrics = metrics_of(window[0])
                        windows.setdefault(hour[:10] if by_day else hour, []).append(metrics)
            name = "day" if by_day else "hour"
            series = [
                {name: when, **summarize_metrics(total(parts))} for when, parts in windows.items()
            ]
            out[version] = {
                **summarize_metrics(counts),
                "first_hour": first,
                "last_hour": last,
                "updated_at": updated,
                "daily" if by_day else "hourly": series,
            }
        return out

    def model_inputs(
        self, model: str, hours: Iterable[str], version: str | None = None
    ) -> tuple[Counts, Counts]:
        """The inputs' and the labels' counters (`app.domain.drift`) of the model's events in
        `hours`, over its versions (or one)."""
        inputs: list[Counts] = []
        labels: list[Counts] = []
        wanted = list(hours)
        for v, (first, last) in sorted(self.model_versions(model).items()):
            if version is not None and v != version:
                continue
            for hour in wanted:
                if first <= hour <= last:
                    found = self.aggregate(AggKey("hour", model, v, hour))
                    if found is not None:
                        _, hour_inputs, hour_labels = split_hour(found[0])
                        inputs.append(hour_inputs)
                        labels.append(hour_labels)
        return total(inputs), total(labels)


def example_json(example: Example) -> dict[str, Any]:
    pred, tag = example.prediction, example.tag
    return {
        "event": prediction_to_dict(pred) if pred else None,
        "latest_tag": tag_to_dict(tag) if tag else None,
        "tags_seen": len(example.tag_ids),
        "example": {
            "joined": example.joined,
            "label": tag.label if tag else None,
            "datasets": list(tag.datasets) if tag else [],
        },
    }
