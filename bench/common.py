"""What every benchmark shares: the header that dates a result, and counting a worker's records."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from tests.services import WorkerProcess


def machine_line() -> str:
    """Date and machine: BENCHMARKS.md records results with both."""
    return (
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  machine: {platform.node()} "
        f"({platform.machine()}, {os.cpu_count()} cores)"
    )


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (Linux's /proc). On a shared
    machine a process's CPU per record drifts less than its wall-clock rate."""
    return _stat_cpu(Path(f"/proc/{pid}/stat").read_text())


def page_faults(pid: int) -> int:
    """Minor page faults a process has taken so far: a count, where CPU time drifts. Each
    is a page the kernel mapped in, as a heap or a fresh mapping grows."""
    return int(_stat_fields(Path(f"/proc/{pid}/stat").read_text())[7])


def _stat_cpu(stat: str) -> float:
    """User and system CPU seconds in a /proc/<pid>/stat line."""
    fields = _stat_fields(stat)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stat_fields(stat: str) -> list[str]:
    """A /proc/<pid>/stat line's fields after the name (which may hold spaces), from the
    state on: field N of proc(5) is at N - 3."""
    return stat.rpartition(")")[2].split()


def machine_cpu() -> dict[int, tuple[str, float]]:
    """Every process's name and CPU seconds so far, by pid, and the machine's idle time (all
    cores, /proc/stat) under pid 0. The difference of two calls says where the cores went."""
    out = {0: ("idle", 0.0)}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        out[int(entry.name)] = (stat[stat.index("(") + 1 : stat.rindex(")")], _stat_cpu(stat))
    with open("/proc/stat") as f:
        out[0] = ("idle", int(f.readline().split()[4]) / os.sysconf("SC_CLK_TCK"))
    return out


def cpu_split(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], top: int = 4
) -> str:
    """The busiest process names between two `machine_cpu` calls, and the idle time.

    By pid, then summed by the later name: a kernel worker renames itself with its work, and
    a process started in between used all its CPU in between."""
    used: dict[str, float] = defaultdict(float)
    for pid, (name, seconds) in after.items():
        used[name] += seconds - before.get(pid, (name, 0.0))[1]
    idle = used.pop("idle", 0.0)
    busiest = sorted(used.items(), key=lambda item: (-item[1], item[0]))[:top]
    return ", ".join(f"{name} {seconds:.2f} s" for name, seconds in [*busiest, ("idle", idle)])


def processed(worker: WorkerProcess) -> int:
    """Records the worker has finished with: folded, skipped as duplicates, or dead-lettered."""
    counts = (worker.health() or {}).get("ingest", {})
    return sum(counts.get(k, 0) for k in ("applied", "duplicates", "dead_letters"))


def wait_processed(worker: WorkerProcess, total: int, within: float = 900.0) -> float:
    """Seconds until the worker has processed `total` records."""
    started = time.perf_counter()
    deadline = started + within
    while time.perf_counter() < deadline:
        if processed(worker) >= total:
            return time.perf_counter() - started
        time.sleep(0.05)
    raise RuntimeError(f"worker did not process {total} records in {within}s\n{worker.log_tail()}")


class Span(NamedTuple):
    """A backlog's fold, by the worker's own clocks (`fold_span`)."""

    seconds: float  # from its assignment to the end of its last fold
    to_first: float  # of which, before its first fold began
    main_cpu: float  # CPU seconds of its main thread over them


def fold_span(worker: WorkerProcess) -> Span:
    """Seconds, by the worker's clock, from when it was given its partitions to the end of
    the last fetch it folded: its tables' recovery and its first fetches count, as a raw
    consumer's first fetches do. Also how many of them passed before its first fold began
    (the seek, the first fetch, what else start-up ran meanwhile), and the CPU its main
    thread used over them, by its own count. That thread runs the event loop, which the
    fold, the changelog's writes and the flusher share, so its CPU bounds the rate; and
    counted over the span itself, unlike a count from outside from when the worker was
    ready, it does not lose the fetches folded before then (one of five, in some runs,
    and not in others)."""
    folds = (worker.health() or {}).get("folds") or {}
    assigned, first, last = folds.get("assigned"), folds.get("first"), folds.get("last")
    if assigned is None or first is None or last is None or not assigned <= first <= last:
        raise RuntimeError(f"the worker's folds are not one backlog after one assignment: {folds}")
    at, done = folds.get("assigned_cpu"), folds.get("last_cpu")
    if at is None or done is None:
        raise RuntimeError(f"the worker did not report its main thread's CPU: {folds}")
    return Span(
        float(last) - float(assigned), float(first) - float(assigned), float(done) - float(at)
    )


def py_spy(pid: int, out: str, idle: bool = True) -> subprocess.Popen[bytes]:
    """py-spy sampling a process: collapsed stacks, one line per stack and its count.

    Sampling slows the process (a third, measured): profile for where time goes, not rates.
    Stop it with SIGINT; it writes `out` as it exits.
    """
    spy = Path(sys.executable).parent / "py-spy"
    command = [str(spy), "record", "--pid", str(pid), "--format", "raw", "--rate", "200"]
    if idle:  # waiting (for the broker, for a lock) counts as well as running
        command.append("--idle")
    return subprocess.Popen([*command, "--nonblocking", "--threads", "-o", out])


def stop_spy(spy: subprocess.Popen[bytes], within: float = 60.0) -> None:
    spy.send_signal(signal.SIGINT)
    spy.wait(within)


def shares(collapsed: str, buckets: Mapping[str, tuple[str, ...]]) -> dict[str, float]:
    """Share of the samples per bucket: a stack goes to the first bucket with a frame that
    contains one of its markers, from the innermost frame out; else to "other"."""
    counts: Counter[str] = Counter()
    for line in Path(collapsed).read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        counts[_bucket(stack.split(";"), buckets)] += int(n)
    total = sum(counts.values()) or 1
    return {name: counts[name] / total for name in [*buckets, "other"]}


def _bucket(frames: list[str], buckets: Mapping[str, tuple[str, ...]]) -> str:
    for frame in reversed(frames):
        for name, markers in buckets.items():
            if any(marker in frame for marker in markers):
                return name
    return "other"
