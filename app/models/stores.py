"""Where models, validation reports and dataset snapshots are kept: small typed stores over
whole objects (`app.objects.Objects`), so services never see the bucket's layout or S3.

Layout, part of what other tools may read:
  models/{model}/{version}/manifest.json         the version's ModelTrained event
  models/{model}/{version}/artifact/...          its trainer's files
  models/{model}/{version}/validation/report.json, events.parquet
  snapshots/{dataset}/{snapshot_id}/manifest.json, data.parquet, state.parquet, stats.json
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import orjson

from app.domain import drift, model_events
from app.domain.datasets import Manifest, Row
from app.domain.gate import ValidationReport
from app.domain.model_events import MODELS, ModelTrained
from app.models import snapshot_format
from app.objects import Objects

SNAPSHOTS = "snapshots"


class NotStored(LookupError):
    """Nothing is stored under that name."""


class AlreadyStored(RuntimeError):
    """Something was written there meanwhile: stored things are never overwritten."""


class ModelStore:
    def __init__(self, objects: Objects) -> None:
        self.objects = objects

    async def versions(self, model: str) -> list[int]:
        names = await self.objects.folders(f"{MODELS}/{model}/")
        return sorted(int(n) for n in names if n.isdigit())

    async def manifest(self, model: str, version: int | str) -> ModelTrained:
        data = await self.objects.get(f"{MODELS}/{model}/{version}/manifest.json")
        if data is None:
            raise NotStored(f"model {model!r} has no version {version}")
        event = model_events.decode(data)
        if not isinstance(event, ModelTrained):
            raise NotStored(f"the manifest of {model} version {version} is not a ModelTrained")
        return event

    async def save(self, record: ModelTrained, files: Sequence[tuple[str, bytes]]) -> None:
        """The artifact's files, then the manifest, which makes the version exist. Two
        trainings racing for one version number: the second is refused, not merged."""
        for name, data in files:
            await self.objects.put(record.artifacts + "artifact/" + name, data)
        body = orjson.dumps(model_events.to_dict(record), option=orjson.OPT_INDENT_2)
        if not await self.objects.put(record.artifacts + "manifest.json", body, if_absent=True):
            raise AlreadyStored(f"version {record.version} of {record.model} was written meanwhile")

    async def artifact(self, record: ModelTrained, into: Path) -> Path:
        """Download the version's artifact files under `into`; returns their directory."""
        prefix = record.artifacts + "artifact/"
        target = into / "artifact"
        for key in await self.objects.keys(prefix):
            data = await self.objects.get(key)
            if data is None:
                raise NotStored(f"{key} vanished while it was read")
            await asyncio.to_thread(_write, target / key[len(prefix) :], data)
        return target


class ReportStore:
    def __init__(self, objects: Objects) -> None:
        self.objects = objects

    def _prefix(self, model: str, version: str) -> str:
        return f"{MODELS}/{model}/{version}/validation/"

    async def save(self, report: ValidationReport, events: bytes) -> None:
        """The report and its per-event rows (Parquet), the report last."""
        prefix = self._prefix(report.model, report.version)
        await self.objects.put(prefix + "events.parquet", events)
        body = orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2)
        await self.objects.put(prefix + "report.json", body)

    async def report(self, model: str, version: str) -> ValidationReport | None:
        data = await self.objects.get(self._prefix(model, version) + "report.json")
        return None if data is None else ValidationReport.from_dict(orjson.loads(data))

    async def events(self, model: str, version: str) -> bytes | None:
        return await self.objects.get(self._prefix(model, version) + "events.parquet")


class SnapshotStore:
    def __init__(self, objects: Objects) -> None:
        self.objects = objects

    @staticmethod
    def prefix(dataset: str, snapshot_id: str) -> str:
        return f"{SNAPSHOTS}/{dataset}/{snapshot_id}/"

    async def save(
        self,
        manifest: Manifest,
        rows: list[Row],
        state: snapshot_format.FoldState | None = None,
    ) -> None:
        prefix = self.prefix(manifest.dataset, manifest.snapshot_id)
        await self.objects.put(prefix + "data.parquet", snapshot_format.encode_rows(rows))
        # Its rows' feature, prediction and label statistics: what drift compares live with.
        await self.objects.put(prefix + "stats.json", orjson.dumps(drift.of_rows(rows)))
        if state is not None:
            # The fold as of these offsets: the next snapshot reads only what came after.
            await self.objects.put(prefix + "state.parquet", snapshot_format.encode_state(state))
        # The manifest last: a snapshot whose manifest exists is complete.
        await self.objects.put(
            prefix + "manifest.json", orjson.dumps(manifest.to_dict(), option=orjson.OPT_INDENT_2)
        )

    async def load(self, dataset: str, snapshot_id: str) -> tuple[Manifest, list[Row]]:
        manifest = await self.manifest(dataset, snapshot_id)
        data = await self.objects.get(self.prefix(dataset, snapshot_id) + "data.parquet")
        if data is None:
            raise NotStored(f"dataset {dataset!r} has no snapshot {snapshot_id}")
        return manifest, snapshot_format.decode_rows(data)

    async def manifest(self, dataset: str, snapshot_id: str) -> Manifest:
        """The manifest alone, without reading the rows."""
        data = await self.objects.get(self.prefix(dataset, snapshot_id) + "manifest.json")
        if data is None:
            raise NotStored(f"dataset {dataset!r} has no snapshot {snapshot_id}")
        return Manifest.from_dict(orjson.loads(data))

    async def stats(self, dataset: str, snapshot_id: str) -> drift.Counts:
        """The snapshot's statistics (`app.domain.drift`); made from its rows for a snapshot
        stored before they were kept."""
        data = await self.objects.get(self.prefix(dataset, snapshot_id) + "stats.json")
        if data is not None:
            counts: drift.Counts = orjson.loads(data)
            return counts
        _, rows = await self.load(dataset, snapshot_id)
        return drift.of_rows(rows)

    async def state(self, dataset: str, snapshot_id: str) -> snapshot_format.FoldState | None:
        data = await self.objects.get(self.prefix(dataset, snapshot_id) + "state.parquet")
        return None if data is None else snapshot_format.decode_state(data)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
