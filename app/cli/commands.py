"""`modelview train`, `validate`, `models` and `score`: the model services from a terminal."""

from __future__ import annotations

import argparse
import asyncio
import sys
import urllib.parse
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from tqdm import tqdm

from app.client import HttpClient
from app.domain.codec import parse_time
from app.domain.datasets import DatasetSpec, records_before
from app.domain.model_events import ModelTrained
from app.learning.hyper import Hyper, HyperError
from app.log.replay import log_end
from app.models.training import TrainingError, rebuild_snapshot, refit_matches, train, trainer_named
from app.settings import Settings


def train_command(settings: Settings, ns: argparse.Namespace) -> int:
    try:
        spec = DatasetSpec(
            ns.dataset,
            model=ns.from_model,
            model_versions=tuple(ns.from_versions),
            since=parse_time(ns.since) if ns.since else None,
            until=parse_time(ns.until) if ns.until else None,
            features=tuple(ns.features),
            holdout=ns.holdout,
        )
    except ValueError as exc:
        raise TrainingError(
            f"--since/--until need an ISO-8601 time with a timezone: {exc}"
        ) from None
    if not 0 <= ns.holdout < 1:
        raise TrainingError("--holdout must be at least 0 and below 1")
    as_of = None
    if ns.as_of:
        try:
            raw = orjson.loads(ns.as_of)
            as_of = {t: {int(p): int(o) for p, o in parts.items()} for t, parts in raw.items()}
        except (orjson.JSONDecodeError, AttributeError, ValueError) as exc:
            raise TrainingError(f"--as-of is not a JSON offset vector: {exc}") from None

    if ns.leave_recent_hours < 0:
        raise TrainingError("--leave-recent-hours cannot be negative")
    if ns.hyper and ns.trainer == "baseline":
        raise TrainingError("--hyper is for the keras and linear trainers")
    try:
        trainer = trainer_named(ns.trainer, Hyper.parse(ns.hyper))
    except HyperError as exc:
        raise TrainingError(f"--hyper: {exc}") from None

    async def run() -> ModelTrained:
        point = as_of or await log_end(settings)
        total = records_before(point)
        with tqdm(total=total, unit="rec", file=sys.stderr, desc="snapshot", disable=None) as bar:
            return await train(
                settings,
                spec,
                model=ns.model,
                trainer=trainer,
                as_of=point,
                seed=ns.seed,
                progress=bar.update,
                leave_recent=timedelta(hours=ns.leave_recent_hours)
                if ns.leave_recent_hours
                else None,
            )

    record = asyncio.run(run())
    snapshot = record.snapshot
    print(
        f"trained {record.model} version {record.version} ({record.trainer}) on "
        f"{record.train_rows} rows of snapshot {snapshot.snapshot_id} "
        f"(hash {snapshot.content_hash[:16]}…, delta {len(snapshot.delta.added)} new, "
        f"{len(snapshot.delta.relabeled)} relabeled)"
    )
    print(orjson.dumps(dict(record.describe)).decode())
    return 0


def models_rebuild(settings: Settings, model: str, version: int) -> int:
    equal, recorded, again = asyncio.run(rebuild_snapshot(settings, model, version))
    if not equal:
        print(
            f"snapshot of {model} version {version} differs: recorded {recorded}, rebuilt {again}"
        )
        return 1
    print(f"snapshot of {model} version {version} rebuilt from the log: hash {again} matches")
    ok, how, weights = asyncio.run(refit_matches(settings, model, version))
    print(f"refit with the same seed: {how}" + ("" if ok else ": DIFFERS"))
    print(weights)
    return 0 if ok else 1


def models_retrain_without(settings: Settings, model: str, version: int) -> int:
    from app.models.training import retrain_without
    from app.models.validation import gate_of, validate

    record = asyncio.run(retrain_without(settings, model, version))
    gone = record.snapshot.rows
    print(
        f"trained {model} version {record.version} as version {version} was, without erased "
        f"events: {record.train_rows} rows fitted of {gone} in snapshot "
        f"{record.snapshot.snapshot_id}, from fresh weights"
    )
    result = asyncio.run(validate(settings, model, record.version, gate_of(settings)))
    decision = result.decision
    verdict = "promoted" if decision and decision.promote else "not promoted"
    reasons = "; ".join(decision.reasons) if decision else ""
    print(f"validated on {result.measured.n} past events: {verdict} ({reasons})")
    return 0


def forget_command(settings: Settings, ns: argparse.Namespace) -> int:
    """Asks a worker to erase; with --wait, follows the erasure until every stage is done."""
    base = (ns.url or f"http://{settings.web_host}:{settings.web_port}").rstrip("/")
    body = {"events": ns.event, "entities": ns.entity, "reason": ns.reason}
    if ns.by:
        body["requested_by"] = ns.by

    async def run() -> tuple[int, Any]:
        async with HttpClient(base, settings.api_token) as http:
            status, answer = await http.request("POST", "/v1/erasures", body)
            if status != 202 or not ns.wait:
                return status, answer
            deadline = asyncio.get_running_loop().time() + ns.wait
            while True:
                code, state = await http.get(answer["status"])
                if code == 200 and state["done"]:
                    return 200, state
                if asyncio.get_running_loop().time() > deadline:
                    return 504, {"error": "not done within --wait seconds", "details": state}
                await asyncio.sleep(1.0)

    try:
        status, found = asyncio.run(run())
    except (aiohttp.ClientError, OSError) as exc:
        print(f"modelview: no worker answers at {base} ({exc}); start one or pass --url")
        return 1
    if status not in (200, 202):
        print(f"modelview: {base}/v1/erasures answered {status}: {orjson.dumps(found).decode()}")
        return 1
    if ns.json or status == 200:
        print(orjson.dumps(found, option=orjson.OPT_INDENT_2).decode())
    else:
        print(f"erasure {found['erasure_id']} requested; follow it at {base}{found['status']}")
    return 0


def validate_command(settings: Settings, ns: argparse.Namespace) -> int:
    from app.models.validation import gate_of, validate

    gate = gate_of(settings) if ns.gate else None
    result = asyncio.run(validate(settings, ns.model, ns.version, gate, ns.segment_by, ns.bucket))
    if ns.json:
        print(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode())
        return 0
    measured = result.measured
    against = result.compared_with
    print(
        f"{ns.model} version {result.version} on {measured.n} past events it never saw "
        f"({result.unseen_events} unseen, judged against "
        + (f"version {against['version']}'s" if against else "the logged")
        + " predictions)"
    )
    for metric, value in measured.challenger.items():
        served = measured.served[metric]
        diff = measured.difference[metric]
        interval = (
            f", per-event difference {diff['mean']:+.4g} [{diff['ci'][0]:+.4g}, "
            f"{diff['ci'][1]:+.4g}]"
            if diff["ci"]
            else ""
        )
        print(f"  {metric}: {_num(value)} against {_num(served)} served{interval}")
    split = result.periods or {}
    for name, label in (("in_time", "in time"), ("out_of_time", "out of time")):
        part = split.get(name)
        if part and part["n"]:
            figures = ", ".join(
                f"{m} {_num(v)} against {_num(part['served'][m])}"
                for m, v in part["challenger"].items()
            )
            print(f"  {label} ({part['n']} events): {figures}")
    decision = result.decision
    if decision is not None:
        verdict = "promoted" if decision.promote else "rejected"
        print(f"gate: {verdict}: " + "; ".join(decision.reasons))
    return 0


def _num(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def models_promote(settings: Settings, model: str, version: int | None) -> int:
    from app.models.validation import promote, rollback

    if version is None:
        event = asyncio.run(rollback(settings, model))
        print(f"rolled {model} back to version {event.version}")
    else:
        event = asyncio.run(promote(settings, model, version))
        print(f"promoted {model} version {event.version} by hand")
    return 0


def score_command(settings: Settings, ns: argparse.Namespace) -> int:
    from app.models.scoring import score

    with tqdm(unit="row", file=sys.stderr, desc="score", disable=None) as bar:
        status, ran = asyncio.run(
            score(
                settings,
                ns.model,
                version=ns.version,
                dataset=ns.dataset,
                parquet=Path(ns.parquet) if ns.parquet else None,
                job=ns.job,
                progress=bar.update,
            )
        )
    done = "scored" if ran else "already scored (nothing captured again)"
    print(
        f"job {status.job}: {done} {status.scored} of {status.rows} rows with {status.model} "
        f"version {status.version}; {status.bad} bad; s3://{settings.s3_bucket}/{status.location}"
    )
    for bad in status.bad_rows[:20]:
        print(f"  row {bad['row']} ({bad['key']}): {bad['reason']}")
    return 0


def lineage_command(settings: Settings, ns: argparse.Namespace) -> int:
    """Asks a worker: the lineage table lives in the workers, one key per lookup."""
    base = (ns.url or f"http://{settings.web_host}:{settings.web_port}").rstrip("/")
    kind = "tags" if ns.tag else "predictions"
    path = f"/v1/{kind}/{urllib.parse.quote(ns.id, safe='')}/lineage"

    async def ask() -> tuple[int, Any]:
        async with HttpClient(base, settings.api_token) as http:
            return await http.get(path)

    try:
        status, found = asyncio.run(ask())
    except (aiohttp.ClientError, OSError) as exc:
        print(f"modelview: no worker answers at {base} ({exc}); start one or pass --url")
        return 1
    if status != 200:
        print(f"modelview: {base}{path} answered {status}: {orjson.dumps(found).decode()}")
        return 1
    if ns.json:
        print(orjson.dumps(found, option=orjson.OPT_INDENT_2).decode())
        return 0
    print(f"{'tag' if ns.tag else 'event'} {ns.id}:")
    if found.get("erased"):
        print("  erased: what used it is listed, without its label or prediction")
    for s in found["snapshots"]:
        held = ", held out" if s["holdout"] else ""
        print(
            f"  in snapshot {s['snapshot_id']} of {s['dataset']} ({s['created_at']}), "
            f"label {s['label']}{held}"
        )
    for v in found["versions"]:
        how = "fitted on it" if v["fitted"] else "not fitted on it (held out or left recent)"
        print(f"  {v['model']} version {v['version']} ({v['status']}): {how}")
    for v in found["validations"]:
        print(
            f"  validated {v['model']} version {v['version']} ({v['validated_at']}): "
            f"predicted {v['prediction']}, label {v['label']}"
        )
    if not (found["snapshots"] or found["validations"]):
        print("  no snapshot or validation has used it")
    return 0
