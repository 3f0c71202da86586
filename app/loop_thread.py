"""An asyncio event loop on a thread of its own, for I/O that must not wait for the main
loop's turns.

The ingest agent folds a fetch in long stretches, and the worker's loop turns only between
them. A producer on that loop moves one step a turn: queue, send, read the answer, wake the
waiter. The dead letters and the changelog of a fetch went through several such steps each,
and the next fold waited 0.94 s of its 4.04 s for them (bench.ingest, 2026-12-07 evening;
`app.views.changelog.BatchWriter`). On a thread of its own, the producer takes the GIL
within the interpreter's switch interval (5 ms) whenever it has work, and its caller is
woken once, when the whole exchange is done.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """A loop on a daemon thread named `name`, started on first use and stopped by `close`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the thread's loop and wait for it on the caller's; cancelling the
        caller cancels it there."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._started()))

    def _started(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name=self.name, daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
        return self._loop

    def close(self, within: float = 5.0) -> None:
        """Cancel whatever still runs there, stop the loop and join its thread. A caller
        still waiting in `run` then gets a CancelledError rather than waiting for ever; the
        cancellations are given up to `within` seconds to finish."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = self._thread = None
        try:
            asyncio.run_coroutine_threadsafe(_cancel_all(), loop).result(within)
        except TimeoutError:
            pass  # what is left is dropped with the loop
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()


async def _cancel_all() -> None:
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
