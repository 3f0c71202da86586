"""`modelview train` and `modelview models rebuild`: the training service from a terminal."""

from __future__ import annotations

import argparse
import asyncio
import sys

import orjson
from tqdm import tqdm

from app.adapters.snapshots import log_end
from app.domain.datasets import DatasetSpec
from app.settings import Settings
from app.training import TrainingError, rebuild_snapshot, train, trainer_named


def train_command(settings: Settings, ns: argparse.Namespace) -> int:
    spec = DatasetSpec(ns.dataset, holdout=ns.holdout)
    as_of = None
    if ns.as_of:
        try:
            raw = orjson.loads(ns.as_of)
            as_of = {t: {int(p): int(o) for p, o in parts.items()} for t, parts in raw.items()}
        except (orjson.JSONDecodeError, AttributeError, ValueError) as exc:
            raise TrainingError(f"--as-of is not a JSON offset vector: {exc}") from None

    async def run() -> dict[str, object]:
        point = as_of or await log_end(settings)
        total = sum(sum(parts.values()) for parts in point.values())
        with tqdm(total=total, unit="rec", file=sys.stderr, desc="snapshot", disable=None) as bar:
            return await train(
                settings,
                spec,
                model=ns.model,
                trainer=trainer_named(ns.trainer),
                as_of=point,
                seed=ns.seed,
                progress=bar.update,
            )

    record = asyncio.run(run())
    snapshot = record["snapshot"]
    assert isinstance(snapshot, dict)
    print(
        f"trained {record['model']} version {record['version']} ({record['trainer']}) on "
        f"{record['train_rows']} rows of snapshot {snapshot['snapshot_id']} "
        f"(hash {snapshot['content_hash'][:16]}…, delta {len(snapshot['delta']['added'])} new, "
        f"{len(snapshot['delta']['relabeled'])} relabeled)"
    )
    print(orjson.dumps(record["describe"]).decode())
    return 0


def models_rebuild(settings: Settings, model: str, version: int) -> int:
    equal, recorded, again = asyncio.run(rebuild_snapshot(settings, model, version))
    if equal:
        print(f"snapshot of {model} version {version} rebuilt from the log: hash {again} matches")
        return 0
    print(f"snapshot of {model} version {version} differs: recorded {recorded}, rebuilt {again}")
    return 1
