"""Real local services for tests: a stack on free ports and worker processes driven like a user would."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from app.log.replay import log_end
from app.settings import Settings
from app.stack.services import Stack
from app.topics import PREDICTIONS

ROOT = Path(__file__).resolve().parents[1]


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_block(size: int) -> int:
    """A base port with `size` free ports above it, away from the defaults a developer runs.

    Below Linux's ephemeral range (32768+), where outgoing connections take ports at will.
    Under pytest-xdist each test process draws from its own share of the range, so two
    stacks started at once cannot both find the same block free.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    share = (32768 - 20000) // count
    low = 20000 + share * int(worker.removeprefix("gw") or 0)
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(low, low + share - size)
        if all(_free(base + i) for i in range(size)):
            return base
    raise RuntimeError("no free port block found")


def stack_settings(data_dir: Path, partitions: int = 4) -> Settings:
    base = free_block(13)
    return Settings(
        broker_url=f"kafka://127.0.0.1:{base}",
        web_port=base + 1,
        s3_endpoint=f"http://127.0.0.1:{base + 2}",  # SeaweedFS takes base+3 .. base+11
        data_dir=data_dir,
        partitions=partitions,
        # scripts/test.sh picks the broker (Apache Kafka where Java 17 runs it).
        broker_profile=os.environ.get("MODELVIEW_BROKER_PROFILE", "kafka"),
    )


def env_for(settings: Settings) -> dict[str, str]:
    """The environment a user would set for these settings: every field, spelled out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELVIEW_")}
    return env | settings.to_env()


class WorkerProcess:
    """`modelview worker` in its own process, as an operator runs it."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.web_port}"

    def start(self) -> WorkerProcess:
        modelview = Path(sys.executable).parent / "modelview"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(modelview), "worker", "-l", "info"],
                env=env_for(self.settings),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    def health(self) -> dict[str, Any] | None:
        """/healthz's body, ready (200) or not (503); None while nothing answers."""
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                body: dict[str, Any] = orjson.loads(response.read())
                return body
        except urllib.error.HTTPError as answered:
            if answered.code != 503:
                raise
            body = orjson.loads(answered.read())
            return body
        except OSError:
            return None

    def wait_ready(self, within: float = 90.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.log_tail()
            health = self.health()
            # A lone worker serves whole views only once it holds every partition: after a
            # kill -9 the dead member keeps some until its session times out.
            if (
                health
                and health.get("ready")
                and len(health["active_partitions"]) == self.settings.partitions
            ):
                return
            time.sleep(0.2)
        raise AssertionError(f"worker not ready within {within}s\n{self.log_tail()}")

    def wait_caught_up(self, within: float = 120.0) -> None:
        """Until the views hold every record the log holds now (read from the log itself:
        the worker's own lag counts from high-water marks it may not have fetched yet)."""
        self.wait_ready(within)
        with ThreadPoolExecutor(1) as thread:  # callers may be inside an event loop
            ends = thread.submit(asyncio.run, log_end(self.settings)).result()
        deadline = time.monotonic() + within
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            health = self.health() or {}
            positions: Any = health.get("positions") or {}
            held = {int(p) for p in positions.get(PREDICTIONS, {})}
            if (
                health.get("ready")
                and health.get("lag") == 0
                and held == set(range(self.settings.partitions))
                and all(
                    positions[topic][str(p)] >= end
                    for topic, parts in ends.items()
                    for p, end in parts.items()
                )
            ):
                return
            time.sleep(0.2)
        raise AssertionError(
            f"worker not caught up within {within}s: the log ends at {ends}, and /healthz "
            f"said last {health}\n{self.log_tail()}"
        )

    def stop(self, within: float = 60.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(within)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(
                f"worker ignored SIGTERM for {within}s\n{self.log_tail()}"
            ) from None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log_digest(self, most: int = 60, tail: int = 20) -> str:
        """The log's warnings and errors (the first `most`), then its last `tail` lines."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        lines = text.splitlines()
        marked = [line for line in lines if any(m in line for m in ("WARN", "ERROR", "CRIT"))]
        return "\n".join([*marked[:most], "...", *lines[-tail:]])

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def start_stack(settings: Settings) -> Stack:
    stack = Stack(settings)
    stack.up()
    return stack


def run_cli(
    settings: Settings, *args: str, within: float = 300
) -> subprocess.CompletedProcess[str]:
    """`modelview ARGS...` as a user runs it, with these settings in the environment."""
    modelview = Path(sys.executable).parent / "modelview"
    return subprocess.run(
        [str(modelview), *args],
        env=env_for(settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=within,
        check=False,
    )


def member_settings(stack: Settings, n: int) -> list[Settings]:
    """Settings of `n` more workers of one cluster: each its own data dir and web port."""
    base = free_block(n)
    return [
        stack.with_(web_port=base + i, data_dir=stack.data_dir / f"member-{base + i}")
        for i in range(n)
    ]


def cluster_state(workers: list[WorkerProcess]) -> dict[int, list[str]]:
    """Which ready workers hold each partition active (a partition held twice shows it)."""
    held: dict[int, list[str]] = {}
    for process in workers:
        health = process.health() or {}
        if not health.get("ready"):
            continue
        for p in health.get("active_partitions", []):
            held.setdefault(int(p), []).append(process.url)
    return held


def wait_cluster_ready(workers: list[WorkerProcess], within: float = 120.0) -> None:
    """Until every worker is ready and each partition has exactly one active owner."""
    partitions = workers[0].settings.partitions
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for process in workers:
            assert process.process is not None and process.process.poll() is None, (
                process.log_tail()
            )
        held = cluster_state(workers)
        if (
            all((p.health() or {}).get("ready") for p in workers)
            and sorted(held) == list(range(partitions))
            and all(len(owners) == 1 for owners in held.values())
        ):
            return
        time.sleep(0.2)
    raise AssertionError(
        f"cluster not ready within {within}s: {cluster_state(workers)}\n"
        + "\n".join(p.log_tail(15) for p in workers)
    )


def wait_cluster_caught_up(workers: list[WorkerProcess], within: float = 180.0) -> None:
    """Until each partition's owner has folded everything the log holds now."""
    wait_cluster_ready(workers, within)
    settings = workers[0].settings
    with ThreadPoolExecutor(1) as thread:
        ends = thread.submit(asyncio.run, log_end(settings)).result()
    deadline = time.monotonic() + within
    behind: dict[str, int] = {}
    while time.monotonic() < deadline:
        behind.clear()
        positions: dict[str, dict[int, int]] = {}
        for process in workers:
            health = process.health() or {}
            for topic, parts in (health.get("positions") or {}).items():
                for p, at in parts.items():
                    positions.setdefault(topic, {})[int(p)] = at
        for topic, parts in ends.items():
            for p, end in parts.items():
                at = positions.get(topic, {}).get(p, -1)
                if at < end:
                    behind[f"{topic}[{p}]"] = end - at
        if not behind:
            return
        time.sleep(0.2)
    raise AssertionError(f"cluster not caught up within {within}s: {behind}")
