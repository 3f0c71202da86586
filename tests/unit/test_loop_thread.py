"""LoopThread: coroutines run on its own thread, their results and failures come back, and
a caller that gives up cancels them there."""

from __future__ import annotations

import asyncio
import threading

import pytest

from app.loop_thread import LoopThread


async def test_a_coroutine_runs_on_the_thread_and_its_result_and_failure_come_back() -> None:
    io = LoopThread("io-test")

    async def where() -> str:
        return threading.current_thread().name

    async def fails() -> None:
        raise ValueError("refused")

    try:
        assert await io.run(where()) == "io-test"
        with pytest.raises(ValueError, match="refused"):
            await io.run(fails())
    finally:
        io.close()
    assert not io.running
    assert "io-test" not in {t.name for t in threading.enumerate()}


async def test_a_caller_that_gives_up_cancels_the_coroutine_on_the_thread() -> None:
    io = LoopThread("io-test")
    started, cancelled = threading.Event(), threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    try:
        waiting = asyncio.ensure_future(io.run(forever()))
        assert await asyncio.to_thread(started.wait, 10)  # it has begun on the thread
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert await asyncio.to_thread(cancelled.wait, 10)
    finally:
        io.close()


async def test_a_caller_waiting_as_the_thread_closes_is_cancelled_not_left_waiting() -> None:
    io = LoopThread("io-test")
    started = threading.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    waiting = asyncio.ensure_future(io.run(forever()))
    assert await asyncio.to_thread(started.wait, 10)
    io.close()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, 10)
    assert not io.running
