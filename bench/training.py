"""Ingestion while a model trains next to ingestion alone: same worker, same run.

A worker ingests a first backlog (the training data). Then two equal batches are published:
one while nothing else runs, one while `modelview train --trainer keras` runs again and
again in its own process, as retraining does. Printed: each batch's records/s in the worker,
and the ratio (with training / without).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from app.topics import PREDICTIONS, TAGS
from bench.common import machine_line, processed, wait_processed
from tests.coldlog import publish
from tests.e2e.workload import build
from tests.services import WorkerProcess, env_for, stack_settings, start_stack


def items(predictions: int, seed: int) -> list[tuple[str, bytes, bytes]]:
    return [
        (PREDICTIONS if i.kind == "prediction" else TAGS, i.key, i.raw)
        for i in build(predictions, seed=seed).items
    ]


async def batch_rate(
    worker: WorkerProcess, settings: object, batch: list[tuple[str, bytes, bytes]]
) -> float:
    before = processed(worker)
    started = time.perf_counter()
    await publish(settings, batch)  # type: ignore[arg-type]
    wait_processed(worker, before + len(batch))
    return len(batch) / (time.perf_counter() - started)


async def main(predictions: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="modelview-bench-"))
    settings = stack_settings(root / "data", partitions=8)
    stack = start_stack(settings)
    worker = WorkerProcess(settings, root / "worker.log")
    trainings = 0
    try:
        worker.start().wait_ready()
        first = items(predictions, seed=21)
        await publish(settings, first)
        wait_processed(worker, len(first))
        alone = await batch_rate(worker, settings, items(predictions // 2, seed=22))

        stop = threading.Event()
        failed: list[str] = []
        running: list[subprocess.Popen[bytes]] = []

        def train_again_and_again() -> None:
            nonlocal trainings
            modelview = str(Path(sys.executable).parent / "modelview")
            while not stop.is_set():
                training = subprocess.Popen(
                    [modelview, "train", "flights-train", "--trainer", "keras"],
                    env=env_for(settings),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
                running[:] = [training]
                _, err = training.communicate()
                if stop.is_set():
                    return  # ended by the measurement's end, below
                if training.returncode != 0:
                    failed.append(err.decode(errors="replace")[-3000:])
                    return
                trainings += 1

        trainer = threading.Thread(target=train_again_and_again, daemon=True)
        trainer.start()
        while trainings == 0 and trainer.is_alive():  # noqa: ASYNC110 (a thread's counter)
            await asyncio.sleep(0.5)
        during = await batch_rate(worker, settings, items(predictions // 2, seed=23))
        stop.set()
        # The training under way is of no more use: ended, not waited for.
        for training in running:
            training.terminate()
        trainer.join()
        if failed or not trainings:
            raise RuntimeError(f"a training failed: {failed[0] if failed else 'none ran'}")
    finally:
        worker.stop()
        stack.down(grace=0)  # a throwaway stack: killed, as the tests kill theirs
        shutil.rmtree(root, ignore_errors=True)
    print(machine_line())
    print(
        f"batches of the workload with {predictions // 2} predictions; {trainings} Keras trainings ran"
    )
    print(f"ingestion alone:          {alone:,.0f} records/s")
    print(f"ingestion while training: {during:,.0f} records/s")
    print(f"ratio (while training / alone): {during / alone:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--predictions", type=int, default=8_000)
    asyncio.run(main(parser.parse_args().predictions))
