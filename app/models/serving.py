"""The Predictor: serves each model's champion and captures every prediction it makes.

Durable capture (the default): a prediction is answered only once the broker has
acknowledged its PredictionEvent. Requests queue their events, and a background task sends
whatever is queued as one batch and retries until the broker acknowledges, so concurrent
requests share produce round trips (group commit). A request whose events are not
acknowledged within `ack_within` seconds (the broker is away) answers 503; its events stay
queued and may still reach the log, where a retry with the same event_id finds them.

Async capture (MODELVIEW_CAPTURE=async) answers as soon as the events are queued: faster,
and a worker killed with events still queued loses them (at most the capture buffer).

The queue is bounded: when Kafka cannot keep up, predict fails fast with a clear error
rather than answering with a prediction the log will never hold. A clean stop drains it.

On a promotion the new champion is loaded in the background while the old one keeps
serving, so no request waits or fails for a swap; each captured event names the version
that actually answered it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from app.domain.codec import InvalidEvent, format_time, prediction_from_dict
from app.domain.events import Value, is_number
from app.domain.registry import RegistryEntry
from app.learning.base import Expected, Model

log = logging.getLogger(__name__)

# Sends one record and returns what resolves once the broker acknowledged it.
Send = Callable[[bytes, bytes], Awaitable[Awaitable[Any]]]
Load = Callable[[str, str], Awaitable[Model]]

REQUEST_FIELDS = {"features", "event_id", "entity_id", "context", "occurred_at"}


class ServingError(Exception):
    def __init__(self, status: int, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.message, self.details = status, message, details


class Capture:
    """A bounded queue of PredictionEvents on their way to Kafka, each with its ack."""

    def __init__(self, send: Send, capacity: int, batch: int = 1000) -> None:
        self.send = send
        self.capacity = capacity
        self.batch = batch
        self.queue: deque[tuple[bytes, bytes, asyncio.Future[None]]] = deque()
        self.in_flight = 0
        self.captured = 0
        self.rounds = 0  # batches sent: fewer than requests when they share round trips
        self.refused = 0
        self.failures = 0
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()  # nothing queued or in flight
        self._idle.set()
        self._stopping = False

    def room(self) -> int:
        return self.capacity - len(self.queue) - self.in_flight

    def put_all(self, records: Sequence[tuple[bytes, bytes]]) -> asyncio.Future[Any]:
        """All or none: a caller never gets half its batch captured. The future resolves
        once the broker has acknowledged every record."""
        if self._stopping:
            raise ServingError(503, "the worker is stopping; send the request again elsewhere")
        if len(records) > self.room():
            self.refused += len(records)
            raise ServingError(
                503,
                "capture buffer full: Kafka is not keeping up with predictions",
                {"waiting": self.capacity - self.room(), "capacity": self.capacity},
            )
        loop = asyncio.get_running_loop()
        acks = [loop.create_future() for _ in records]
        self.queue.extend(
            (key, value, ack) for (key, value), ack in zip(records, acks, strict=True)
        )
        self._idle.clear()
        self._ready.set()
        return asyncio.gather(*acks)

    def status(self) -> dict[str, Any]:
        return {
            "waiting": len(self.queue) + self.in_flight,
            "capacity": self.capacity,
            "captured": self.captured,
            "send_rounds": self.rounds,
            "refused": self.refused,
            "send_failures": self.failures,
        }

    async def run(self) -> None:
        delay = 0.1
        while True:
            if not self.queue:
                self._idle.set()
                if self._stopping:
                    return
                self._ready.clear()
                await self._ready.wait()
                continue
            batch = [self.queue.popleft() for _ in range(min(self.batch, len(self.queue)))]
            self.in_flight = len(batch)
            self.rounds += 1
            try:
                outcomes = await asyncio.gather(
                    *[await self._send(key, value) for key, value, _ in batch],
                    return_exceptions=True,
                )
            except asyncio.CancelledError:
                self.queue.extendleft(reversed(batch))
                raise
            finally:
                self.in_flight = 0
            # At least once: what failed goes again (a send that failed may still have been
            # written; the views count an event_id once). What succeeded is not resent.
            failed = []
            for record, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, Exception):
                    failed.append(record)
                elif not record[2].done():  # a request that gave up has cancelled it
                    record[2].set_result(None)
            self.captured += len(batch) - len(failed)
            if failed:
                self.failures += 1
                log.warning(
                    "capturing %d predictions failed, retrying: %s",
                    len(failed),
                    next(o for o in outcomes if isinstance(o, Exception)),
                )
                self.queue.extendleft(reversed(failed))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            else:
                delay = 0.1

    async def _send(self, key: bytes, value: bytes) -> Awaitable[Any]:
        try:
            return await self.send(key, value)
        except Exception as exc:  # refused before it was even queued by the producer
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            return failed

    async def drain(self, within: float = 30.0) -> None:
        """Refuse new predictions and wait, up to `within` seconds, until the queue is sent."""
        self._stopping = True
        self._ready.set()
        try:
            await asyncio.wait_for(self._idle.wait(), within)
        except TimeoutError:
            log.error("stopping with %d predictions not captured", len(self.queue))


class Made(NamedTuple):
    """A prediction already made for an event_id, to answer a retry with."""

    model: str
    features: bytes  # canonical JSON, to compare a retry's features with
    version: str
    prediction: Any
    acked: Any  # what resolves once the broker has it; None when read back from the views


def _canonical(features: Any) -> bytes:
    return orjson.dumps(features, option=orjson.OPT_SORT_KEYS)


class Predictor:
    def __init__(
        self,
        champion: Callable[[str], Awaitable[str | None]],
        load: Load,
        capture: Capture,
        max_event_bytes: int,
        durable: bool = True,
        ack_within: float = 10.0,
        lookup: Callable[[str], Awaitable[Mapping[str, Any] | None]] | None = None,
        remember: int = 100_000,
    ) -> None:
        self.champion = champion
        self.load = load
        self.capture = capture
        self.max_event_bytes = max_event_bytes
        self.durable = durable
        self.ack_within = ack_within
        # A retried event_id: the recent answers made here (in flight included), else the
        # views through `lookup`.
        self.lookup = lookup
        self.remember = remember
        self.recent: OrderedDict[str, Made] = OrderedDict()
        self.loaded: dict[str, tuple[str, Model]] = {}
        self._loading: dict[tuple[str, str], asyncio.Task[tuple[str, Model]]] = {}
        self.served: dict[tuple[str, str], int] = {}

    def champion_changed(self, model: str, version: str | None) -> None:
        """Called as the registry folds a promotion: load the new champion ahead of requests."""
        if version is not None and self.loaded.get(model, ("",))[0] != version:
            self._start_loading(model, version)

    def _start_loading(self, model: str, version: str) -> asyncio.Task[tuple[str, Model]]:
        key = (model, version)
        task = self._loading.get(key)
        if task is None:
            task = asyncio.ensure_future(self._load(model, version))
            # A background load that fails is logged; the next request tries again.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._loading[key] = task
        return task

    async def _load(self, model: str, version: str) -> tuple[str, Model]:
        try:
            fitted = await self.load(model, version)
        except Exception as exc:
            log.exception("cannot load %s version %s", model, version)
            raise ServingError(503, f"cannot load {model} version {version}", str(exc)) from exc
        finally:
            self._loading.pop((model, version), None)
        current = self.loaded.get(model)
        # Only move forward to the version that is champion now (a slow load may be stale).
        if current is None or await self.champion(model) == version:
            self.loaded[model] = (version, fitted)
            log.info("serving %s version %s", model, version)
        return version, fitted

    async def _model(self, model: str) -> tuple[str, Model]:
        champion = await self.champion(model)
        if champion is None:
            raise ServingError(
                409, "model has no champion: promote a version first", {"model": model}
            )
        current = self.loaded.get(model)
        if current is not None and current[0] == champion:
            return current
        task = self._start_loading(model, champion)
        if current is not None:
            return current  # the old champion answers until the new one is loaded
        return await asyncio.shield(task)

    async def predict(self, model: str, requests: Sequence[Any]) -> dict[str, Any]:
        """Predict a batch, capture each as a PredictionEvent, answer with their event_ids.

        A request naming an event_id already predicted gets that prediction back (the same
        version and value, captured once), or 409 if its model or features differ.
        """
        events = [_event(model, i, r) for i, r in enumerate(requests)]
        made = await self._already_made(model, requests, events)
        fresh_at = [i for i in range(len(events)) if i not in made]
        fresh = [events[i] for i in fresh_at]
        waits = [m.acked for m in made.values() if m.acked is not None]
        version = None
        if fresh:
            version, fitted = await self._model(model)
            _check_features(fitted.expects(), fresh_at, fresh, version)
            values = await asyncio.to_thread(fitted.predict, [e["features"] for e in fresh])
            records = []
            for event, value in zip(fresh, values, strict=True):
                event["model_version"] = version
                event["prediction"] = {"value": _plain(value)}
                raw = orjson.dumps(event)
                if len(raw) > self.max_event_bytes:
                    raise ServingError(
                        413, f"event of {len(raw)} bytes exceeds {self.max_event_bytes}"
                    )
                records.append((event["event_id"].encode(), raw))
            acked = self.capture.put_all(records)
            self._remember(model, fresh, acked)
            waits.append(acked)
        if self.durable and waits:
            try:
                await asyncio.wait_for(asyncio.shield(asyncio.gather(*waits)), self.ack_within)
            except TimeoutError:
                raise ServingError(
                    503,
                    f"the broker did not acknowledge the predictions within {self.ack_within} s; "
                    "they were not answered (they may still reach the log: retry with the "
                    "same event_id)",
                    {"event_ids": [e["event_id"] for e in events]},
                ) from None
        if version is not None:
            self.served[(model, version)] = self.served.get((model, version), 0) + len(fresh)
        answers = []
        for i, event in enumerate(events):
            known = made.get(i)
            answer = {
                "event_id": event["event_id"],
                "model_version": known.version if known else event["model_version"],
                "prediction": known.prediction if known else event["prediction"],
            }
            if not known and IMPUTED in event["context"]:
                answer["imputed"] = event["context"][IMPUTED]
            answers.append(answer)
        return {
            "model": model,
            "model_version": version or answers[0]["model_version"],
            "predictions": answers,
        }

    async def _already_made(
        self, model: str, requests: Sequence[Any], events: list[dict[str, Any]]
    ) -> dict[int, Made]:
        """Requests whose event_id names a prediction made before: here, or in the views."""
        made: dict[int, Made] = {}
        for i, (request, event) in enumerate(zip(requests, events, strict=True)):
            if not request.get("event_id"):
                continue  # a new id: nothing to find
            event_id = event["event_id"]
            found = self.recent.get(event_id)
            if found is None and self.lookup is not None:
                logged = await self.lookup(event_id)
                if logged is not None:
                    found = Made(
                        logged["model"],
                        _canonical(logged["features"]),
                        logged["model_version"],
                        logged["prediction"],
                        None,
                    )
            if found is None:
                continue
            if found.model != model or found.features != _canonical(event["features"]):
                raise ServingError(
                    409,
                    "this event_id already names a prediction with another model or features",
                    {"index": i, "event_id": event_id, "model": found.model},
                )
            made[i] = found
        return made

    def _remember(self, model: str, events: list[dict[str, Any]], acked: Any) -> None:
        for event in events:
            self.recent[event["event_id"]] = Made(
                model,
                _canonical(event["features"]),
                event["model_version"],
                event["prediction"],
                acked,
            )
        while len(self.recent) > self.remember:
            self.recent.popitem(last=False)

    def status(self) -> dict[str, Any]:
        return {
            "serving": {model: version for model, (version, _) in self.loaded.items()},
            "loading": [f"{m}:{v}" for m, v in self._loading],
            "served": {f"{m}:{v}": n for (m, v), n in sorted(self.served.items())},
            "capture": self.capture.status(),
        }


def _event(model: str, index: int, request: Any) -> dict[str, Any]:
    """The PredictionEvent a request will become, checked by the codec every event passes."""
    if not isinstance(request, Mapping):
        raise ServingError(400, "each request must be an object", {"index": index})
    unknown = set(request) - REQUEST_FIELDS
    if unknown:
        raise ServingError(
            400,
            f"unknown fields {sorted(unknown)}; allowed: {sorted(REQUEST_FIELDS)}",
            {"index": index},
        )
    event = {
        "schema_version": 1,
        "event_id": request.get("event_id") or str(uuid.uuid4()),
        "model": model,
        "model_version": "0",
        "occurred_at": request.get("occurred_at") or format_time(datetime.now(UTC)),
        "features": request.get("features"),
        "prediction": {"value": 0},
        "context": request.get("context", {}),
    }
    if request.get("entity_id") is not None:
        event["entity_id"] = request["entity_id"]
    try:
        prediction_from_dict(event)
    except InvalidEvent as exc:
        raise ServingError(400, str(exc), {"index": index}) from None
    return event


IMPUTED = "modelview.imputed"  # context key: the features the model imputed


def _check_features(
    expected: Expected, indices: list[int], events: list[dict[str, Any]], version: str
) -> None:
    """Refuse a feature of the wrong type, or a request with none of the model's features: a
    silent 0.0 would be a wrong prediction captured as if it were right. A missing feature is
    imputed as the model was trained to, and named in the captured event's context."""
    for index, event in zip(indices, events, strict=True):
        problems, missing = expected.check(event["features"])
        if not problems and missing and len(missing) == len(expected.numbers | expected.strings):
            problems = dict.fromkeys(missing, "missing")
        if problems:
            raise ServingError(
                400,
                "features do not match what the model was trained on: "
                + "; ".join(f"{name}: {why}" for name, why in problems.items()),
                {"index": index, "model_version": version, "features": problems},
            )
        if missing:
            event["context"] = {**event["context"], IMPUTED: missing}


def _plain(value: Value) -> Value:
    if is_number(value) and not math.isfinite(float(value)):
        raise ServingError(422, "the model produced a value that is not a finite number")
    return value


class Champions:
    """Which version of a model is champion, for the Predictor on any worker.

    The registry table answers for the models whose partition this worker holds. For the
    others (several workers) the whole registry is read from the cluster (its owners, or
    the model-events log when they cannot answer): all models at once, at most once per
    `ttl` seconds, so a promotion reaches those workers within that delay and requests for
    unknown models cannot make it read again and again.
    """

    def __init__(
        self,
        local: Callable[[str], RegistryEntry | None],
        from_log: Callable[[], Awaitable[Mapping[str, RegistryEntry]]],
        ttl: float = 5.0,
    ) -> None:
        self.local, self.from_log, self.ttl = local, from_log, ttl
        self._folded: Mapping[str, RegistryEntry] = {}
        self._at: float | None = None
        self._lock = asyncio.Lock()

    async def __call__(self, model: str) -> str | None:
        entry = self.local(model)
        if entry is not None:
            return entry.champion
        async with self._lock:  # one fold at a time; the waiting requests share it
            now = asyncio.get_running_loop().time()
            if self._at is None or now - self._at >= self.ttl:
                self._folded = await self.from_log()
                self._at = now
        found = self._folded.get(model)
        return found.champion if found else None
