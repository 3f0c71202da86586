"""Drift of a model's live traffic: the views' counters of a window against the statistics
of a version's training snapshot (`app.domain.drift`), for the HTTP read and the gauges."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.domain import drift
from app.domain.stats import total
from app.domain.windows import window
from app.models.stores import SnapshotStore
from app.views.cluster import ClusterReads


class DriftError(LookupError):
    """No drift to report; `status` and `details` say why, as the HTTP read answers."""

    def __init__(self, status: int, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.details = status, details


async def model_drift(
    reads: ClusterReads,
    snapshots: SnapshotStore,
    model: str,
    query: Mapping[str, str],
    cache: dict[str, drift.Counts] | None = None,
) -> dict[str, Any]:
    """`query`: `from`/`to` (the last 24 hours seen by default), `version` (the live versions
    compared: all by default) and `against` (the reference version: the champion).

    Raises `DriftError`, and `Incomplete` when partitions have no ready owner."""
    entry = next((e for e in await reads.registry() if e.model == model), None)
    if entry is None:
        raise DriftError(404, "no such model in the registry", {"model": model})
    against = query.get("against") or entry.champion
    if against is None or against not in entry.versions:
        details = {"model": model, "against": against, "versions": sorted(entry.versions)}
        raise DriftError(409, "no version to compare with: no champion, pass ?against=", details)
    snapshot = entry.versions[against].snapshot
    versions = await reads.run(lambda s: s.model_versions(model))
    if not versions:
        raise DriftError(404, "no predictions for this model", {"model": model})
    try:
        wanted = window(query, max(last for _, last in versions.values()))
    except ValueError as exc:
        raise DriftError(400, "bad window", str(exc)) from None
    version = query.get("version")
    inputs, labels = await reads.run(lambda s: s.model_inputs(model, wanted.hours, version))
    # A snapshot never changes: its statistics are read once per worker.
    key = f"{snapshot['dataset']}/{snapshot['snapshot_id']}"
    reference = (cache or {}).get(key)
    if reference is None:
        reference = await snapshots.stats(snapshot["dataset"], snapshot["snapshot_id"])
        if cache is not None:
            cache[key] = reference
    compared = drift.compare(reference, total([inputs, labels]))
    return {
        "model": model,
        "reference": {
            "version": against,
            "dataset": snapshot["dataset"],
            "snapshot_id": snapshot["snapshot_id"],
            "events": drift.events(reference),
        },
        "window": {"from": wanted.hours[0], "to": wanted.hours[-1]},
        "version": version,
        "live_events": drift.events(inputs),
        "threshold": drift.DRIFTED,
        "drifted": sorted(n for n, f in compared.items() if f["drifted"]),
        "features": {n: f for n, f in compared.items() if n not in (drift.PREDICTION, drift.LABEL)},
        "prediction": compared.get(drift.PREDICTION),
        "label": compared.get(drift.LABEL),
    }


def gauges(report: Mapping[str, Any]) -> dict[str, float]:
    """Field -> PSI, for Prometheus: features by name, `@prediction` and `@label`."""
    out = {name: f["psi"] for name, f in report["features"].items() if f["psi"] is not None}
    for name in ("prediction", "label"):
        found = report.get(name)
        if found and found["psi"] is not None:
            out[f"@{name}"] = found["psi"]
    return out
