"""Incremental retraining: train a dataset again once enough new labels arrived.

The worker checks its datasets view against the registry's marks (the rows of the last
snapshot trained on). Each new version is then validated by replay and goes through the
promotion gate, in the same process. Training runs in a separate process, so ingestion keeps its event
loop and its core; a dataset has at most one training in flight, and labels that arrive
meanwhile are picked up by the next check (triggers coalesce).

Only Faust's leader checks, and the leader can change at any rebalance: a worker abandons
(terminates) its trainings when a rebalance starts, so that two leaders never train one
dataset at once. The new leader counts the cluster's labels and marks and starts again.
A training cut short after its ModelTrained was logged leaves that version unvalidated;
`modelview validate MODEL VERSION --gate` judges it by hand.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from app.domain.datasets import DatasetSpec
from app.domain.registry import retrain_due
from app.settings import Settings
from app.views.cluster import Incomplete

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retrained:
    """What a training process sends back: the new version, and what its validation said."""

    model: str
    version: str
    rows: int  # of the snapshot it was trained on: the dataset's new training mark
    validated_on: int | None = None  # events the replay judged
    decision: Mapping[str, Any] | None = None
    validation_seconds: float | None = None


def retrain_spec(settings: Settings, dataset: str) -> DatasetSpec:
    """The snapshot a retraining fits: the dataset, less the holdout, on the chosen features."""
    return DatasetSpec(
        dataset, holdout=settings.retrain_holdout, features=settings.retrain_feature_names
    )


def _train_in_process(settings: Settings, dataset: str, trainer: str) -> Retrained:
    """Train, then validate by replay and let the gate promote or reject the new version."""
    from app.learning.hyper import Hyper
    from app.models.training import train, trainer_named
    from app.models.validation import gate_of, validate

    async def loop() -> Retrained:
        spec = retrain_spec(settings, dataset)
        hyper = Hyper.parse([settings.retrain_hyper])  # checked when the worker started
        hours = settings.retrain_leave_recent_hours
        trained = await train(
            settings,
            spec,
            trainer=trainer_named(trainer, hyper),
            leave_recent=timedelta(hours=hours) if hours else None,
        )
        validated = time.monotonic()
        result = await validate(settings, trained.model, trained.version, gate_of(settings))
        return Retrained(
            trained.model,
            trained.version,
            trained.snapshot.rows,
            result.measured.n,
            result.decision.to_dict() if result.decision else None,
            round(time.monotonic() - validated, 3),
        )

    return asyncio.run(loop())


def _in_child(send: Connection, job: Callable[..., Retrained], *args: Any) -> None:
    """The training process: run the job and send back its record or its failure."""
    try:
        send.send(("ok", job(*args)))
    except BaseException as exc:
        send.send(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        send.close()


class Abandoned(RuntimeError):
    """The training process was terminated before it answered."""


class Retrainer:
    def __init__(
        self,
        settings: Settings,
        labeled: Callable[[], Awaitable[Mapping[str, int]]],
        marks: Callable[[], Awaitable[Mapping[str, int]]],
    ) -> None:
        self.settings = settings
        self.labeled = labeled
        self.marks = marks
        self.running: dict[str, asyncio.Future[None]] = {}
        self.completed: list[dict[str, Any]] = []
        self.failures = 0
        self._local_marks: dict[str, int] = {}  # until the registry has folded our event
        self._since: dict[str, float] = {}
        self.abandoned = 0
        self._processes: dict[str, BaseProcess] = {}
        self.job: Callable[..., Retrained] = _train_in_process

    @property
    def enabled(self) -> bool:
        return self.settings.retrain_min_labels > 0 or self.settings.retrain_seconds > 0

    def status(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "running": sorted(self.running),
            "completed": len(self.completed),
            "failures": self.failures,
            "abandoned": self.abandoned,
            "last": self.completed[-1] if self.completed else None,
        }

    async def check(self) -> None:
        if not self.enabled:
            return
        try:  # both the whole cluster's counts: labels on any worker's partitions count
            marks = dict(await self.marks())
            counts = await self.labeled()
        except Incomplete as exc:
            log.info("retraining check skipped: %s", exc)  # the next check tries again
            return
        now = time.monotonic()
        for dataset, labeled in counts.items():
            if dataset in self.running:
                continue
            mark = max(marks.get(dataset, 0), self._local_marks.get(dataset, 0))
            since = self._since.setdefault(dataset, now)
            if retrain_due(
                labeled,
                mark,
                self.settings.retrain_min_labels,
                now - since,
                self.settings.retrain_seconds,
            ):
                self._since[dataset] = now
                self.running[dataset] = asyncio.ensure_future(self._train(dataset))

    async def _train(self, dataset: str) -> None:
        started = time.monotonic()
        try:
            record = await self._in_process(dataset)
        except Abandoned:
            self.abandoned += 1
            log.warning("retraining %s abandoned: a rebalance may have moved the leader", dataset)
        except Exception:
            self.failures += 1
            log.exception("retraining %s failed; the next check tries again", dataset)
        else:
            self._local_marks[dataset] = record.rows
            validation = (
                {
                    "n": record.validated_on,
                    "decision": record.decision,
                    "seconds": record.validation_seconds,
                }
                if record.validated_on is not None
                else None
            )
            self.completed.append(
                {
                    "dataset": dataset,
                    "model": record.model,
                    "version": record.version,
                    "rows": record.rows,
                    "validation": validation,
                    "seconds": round(time.monotonic() - started, 3),
                }
            )
            log.info("retrained %s: %s version %s", dataset, record.model, record.version)
        finally:
            self.running.pop(dataset, None)

    async def _in_process(self, dataset: str) -> Retrained:
        # spawn, not fork: a fork of a running Faust worker would copy its event loop.
        context = multiprocessing.get_context("spawn")
        receive, send = context.Pipe(duplex=False)
        args = (send, self.job, self.settings, dataset, self.settings.retrain_trainer)
        process = context.Process(target=_in_child, args=args, name=f"retrain-{dataset}")
        process.start()
        send.close()  # ours closed: recv() sees EOF once the child is gone
        self._processes[dataset] = process
        try:
            outcome, value = await asyncio.get_running_loop().run_in_executor(None, receive.recv)
        except EOFError:
            raise Abandoned(dataset) from None
        finally:
            receive.close()
            self._processes.pop(dataset, None)
            await asyncio.get_running_loop().run_in_executor(None, process.join, 10)
        if outcome != "ok":
            raise RuntimeError(value)
        if not isinstance(value, Retrained):
            raise TypeError(f"a training process sent {type(value).__name__}, not Retrained")
        return value

    def abandon(self) -> None:
        """Terminate every training under way (a rebalance: this may no longer be the leader)."""
        for process in list(self._processes.values()):
            process.terminate()

    async def stop(self) -> None:
        self.abandon()
