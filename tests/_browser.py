"""A real headless chromium, driven over the DevTools protocol with aiohttp's websocket.

Just enough of the protocol for the page tests: open a URL, evaluate JavaScript until a
condition holds, take a screenshot. The browser gets its own profile folder and is killed
when the block ends.
"""

from __future__ import annotations

import base64
import itertools
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio
from _video import needs_tool

__all__ = ["Browser", "chromium"]


class Browser:
    """One page of a running chromium."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self._socket = socket
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one protocol command and return its result (events are skipped)."""
        number = next(self._ids)
        await self._socket.send_json({"id": number, "method": method, "params": params})
        while True:
            message = await self._socket.receive_json()
            if message.get("id") == number:
                assert "error" not in message, message
                result: dict[str, Any] = message["result"]
                return result

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript *expression* in the page."""
        reply = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in reply, reply
        return reply["result"].get("value")

    async def until(self, expression: str, deadline: float = 30.0) -> Any:
        """Evaluate *expression* until it is truthy; fail after *deadline* seconds."""
        with anyio.fail_after(deadline):
            while True:
                value = await self.evaluate(expression)
                if value:
                    return value
                await anyio.sleep(0.1)

    async def screenshot(self, path: Path) -> None:
        """Save the whole page as a PNG at *path*."""
        shot = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        await anyio.Path(path).write_bytes(base64.b64decode(shot["data"]))


@asynccontextmanager
async def chromium(
    profile: Path, *, width: int = 1280, height: int = 900
) -> AsyncIterator[Browser]:
    """Start headless chromium with a profile in *profile*; yield its blank page."""
    program = needs_tool("chromium")
    command = [
        program,
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where the sandbox refuses to start
        "--disable-gpu",
        "--no-first-run",
        "--mute-audio",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        "about:blank",
    ]
    # Output to a file, not a pipe nobody drains; the port from the file chromium writes.
    log = (profile.parent / f"{profile.name}.log").open("wb")
    process = await anyio.open_process(
        command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        active = profile / "DevToolsActivePort"
        with anyio.fail_after(60):
            while not active.is_file() or not active.read_text().strip():
                assert process.returncode is None, "chromium exited at start"
                await anyio.sleep(0.1)
        port = active.read_text().split()[0]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as reply:
                targets = await reply.json()
            page = next(t for t in targets if t["type"] == "page")
            async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as socket:
                yield Browser(socket)
    finally:
        process.kill()
        with anyio.CancelScope(shield=True):
            await process.wait()
            await process.aclose()
        log.close()
