"""Run a coroutine to completion from sync code, even where an event loop is already running."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    # A thread of our own gets a fresh loop; the caller's loop, if any, is never blocked on itself.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=timeout)
