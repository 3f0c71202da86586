"""Headless Chromium (Debian's package) driven over the DevTools protocol, with aiohttp.

For the dashboard test, and for the screenshot kept in docs/:
    python -m tests.browser http://127.0.0.1:6066/dashboard docs/dashboard.png
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1400,1700",
    "--remote-debugging-port=0",
)


class Browser:
    def __init__(self) -> None:
        self.errors: list[str] = []  # console errors and uncaught exceptions of the page
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}

    async def __aenter__(self) -> Browser:
        self._profile = tempfile.mkdtemp(prefix="modelview-chromium-")
        self.process = await asyncio.create_subprocess_exec(
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={self._profile}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self.process.stderr is not None
        port = None
        deadline = time.monotonic() + 30
        while port is None:
            line = await asyncio.wait_for(
                self.process.stderr.readline(), deadline - time.monotonic()
            )
            if not line:
                raise RuntimeError("chromium exited before its DevTools endpoint was up")
            found = re.search(rb"DevTools listening on ws://[^:]+:(\d+)/", line)
            port = int(found.group(1)) if found else None
        self._drain = asyncio.ensure_future(self._discard(self.process.stderr))
        self.session = aiohttp.ClientSession()
        async with self.session.get(f"http://127.0.0.1:{port}/json/list") as response:
            targets = await response.json(content_type=None)
        page = next(t for t in targets if t["type"] == "page")
        self.ws = await self.session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        self._reader = asyncio.ensure_future(self._read())
        for domain in ("Page", "Runtime", "Log"):
            await self.send(f"{domain}.enable")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._reader.cancel()
        await self.ws.close()
        await self.session.close()
        self.process.terminate()
        await self.process.wait()
        self._drain.cancel()
        shutil.rmtree(self._profile, ignore_errors=True)

    @staticmethod
    async def _discard(stream: asyncio.StreamReader) -> None:
        while await stream.readline():
            pass

    async def _read(self) -> None:
        async for message in self.ws:
            data = message.json()
            if "id" in data and data["id"] in self._waiting:
                self._waiting.pop(data["id"]).set_result(data)
            elif (
                data.get("method") == "Runtime.consoleAPICalled"
                and data["params"]["type"] == "error"
            ):
                self.errors.append(" ".join(str(a.get("value")) for a in data["params"]["args"]))
            elif data.get("method") == "Runtime.exceptionThrown":
                self.errors.append(str(data["params"]["exceptionDetails"]))
            elif (
                data.get("method") == "Log.entryAdded"
                and data["params"]["entry"]["level"] == "error"
            ):
                self.errors.append(data["params"]["entry"]["text"])

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        ident = next(self._ids)
        self._waiting[ident] = asyncio.get_running_loop().create_future()
        await self.ws.send_json({"id": ident, "method": method, "params": params or {}})
        answer = await asyncio.wait_for(self._waiting[ident], 30)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer["result"]
        return result

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", {"url": url})

    async def evaluate(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}
        )
        return result["result"].get("value")

    async def screenshot(self, path: Path) -> int:
        shot = await self.send(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
        )
        data = base64.b64decode(shot["data"])
        await asyncio.to_thread(_write, path, data)
        return len(data)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


async def rendered(browser: Browser, at_least: int, within: float = 60) -> None:
    """Until the dashboard has drawn `at_least` series (lines and bars)."""
    deadline = time.monotonic() + within
    # None while the page is still loading: its document is not there yet.
    while int(await browser.evaluate("document.body.dataset.rendered || 0") or 0) < at_least:
        if time.monotonic() > deadline:
            raise AssertionError(f"no plots within {within}s; console: {browser.errors}")
        await asyncio.sleep(0.2)


async def screenshot(url: str, path: Path) -> None:
    async with Browser() as browser:
        await browser.goto(url)
        await rendered(browser, 1)
        size = await browser.screenshot(path)
        print(f"{path}: {size} bytes; console errors: {browser.errors or 'none'}")


if __name__ == "__main__":
    asyncio.run(screenshot(sys.argv[1], Path(sys.argv[2])))
