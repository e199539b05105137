"""Completion callbacks: the one thing in the simulator that needs a timer.

Status is computed lazily, but a webhook must be sent when a job finishes, whether or not
anyone asks. One task sleeps until the earliest finish time in a heap, so ten thousand jobs
cost one task and a heap, not ten thousand timers. Each delivery is its own short task so a
slow receiver does not hold back the others; failures are counted, never raised.

Leonardo's documented event is ``image_generation.complete``; whether video jobs fire it is
unknown, so the type is a knob. ``FAILED`` jobs are reported too (with no images); deleted and
vanished generations are not.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from datetime import datetime, timezone
from typing import Any

import aiohttp

from ._core import Core
from ._state import GenerationRow
from ._wire import webhook_json

__all__ = ["WebhookDispatcher"]

logger = logging.getLogger("leonardo_async.simulator")


class WebhookDispatcher:
    """Sends a callback for each generation when it finishes, if a URL is configured."""

    def __init__(self, core: Core) -> None:
        self._core = core
        self._heap: list[tuple[float, int, str]] = []
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()

    def schedule(self, row: GenerationRow) -> None:
        """Remember to report *row* at its finish time."""
        heapq.heappush(self._heap, (row.finish_at, next(self._order), row.id))
        if self._heap[0][2] == row.id:
            self._wake.set()

    async def start(self) -> None:
        """Start the timer task (the simulator owns it; :meth:`aclose` ends it)."""
        self._session = aiohttp.ClientSession()
        # The simulator is entered and left from fixtures that may run in different tasks,
        # so no task group can span its life; the task is cancelled and awaited in aclose().
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def aclose(self) -> None:
        """Stop the timer and every delivery in flight, and close the HTTP session."""
        tasks = [t for t in (self._task, *self._deliveries) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        while True:
            now = self._core.now()
            while self._heap and self._heap[0][0] <= now:
                _, _, gid = heapq.heappop(self._heap)
                self._fire(gid, now)
            timeout = self._heap[0][0] - now if self._heap else None
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _fire(self, gid: str, now: float) -> None:
        core = self._core
        config = core.config
        row = core.store.generations.get(gid)
        if config.webhook_url is None or row is None or not row.visible(now):
            return
        payload = webhook_json(row, now, core.cdn_base, config, datetime.now(timezone.utc))
        headers = {}
        if config.webhook_key is not None:
            headers["Authorization"] = f"Bearer {config.webhook_key}"
        task = asyncio.get_running_loop().create_task(
            self._deliver(config.webhook_url, payload, headers, config.webhook_timeout)
        )
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(
        self, url: str, payload: dict[str, Any], headers: dict[str, str], timeout: float
    ) -> None:
        assert self._session is not None
        stats = self._core.stats
        try:
            async with self._session.post(
                url,
                json=payload,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                await response.read()
                ok = 200 <= response.status < 300
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            logger.debug("webhook to %s failed: %r", url, exc)
            ok = False
        if ok:
            stats.webhooks_sent += 1
        else:
            stats.webhooks_failed += 1
