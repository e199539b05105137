"""Per-key request limits as sliding windows, and how a 429 says when to come back.

Leonardo documents its limits per API key and per minute; it does not document what an
over-limit answer carries, so ``Retry-After`` comes in three styles (seconds, an HTTP date,
or absent) to make sure a client copes with each. A refused request does not take a slot in
the window, so a client that waits as told gets in.

A fractional ``requests_per_second`` ``r`` becomes ``ceil(r)`` requests per ``ceil(r) / r``
seconds: the same average rate, still a sliding window.
"""

from __future__ import annotations

import math
from collections import deque
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

from ._config import SimulatorConfig

__all__ = ["Limiter", "SlidingWindow", "retry_after_headers"]


class SlidingWindow:
    """Times of the requests admitted within the last period."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()

    def wait(self, now: float, limit: int, period: float) -> float | None:
        """Return seconds until a slot frees, or ``None`` if one is free at *now*."""
        times = self._times
        while times and times[0] <= now - period:
            times.popleft()
        if len(times) < limit:
            return None
        return times[len(times) - limit] + period - now

    def add(self, now: float) -> None:
        """Take a slot at *now*."""
        self._times.append(now)


class _KeyWindows:
    def __init__(self) -> None:
        self.second = SlidingWindow()
        self.minute = SlidingWindow()
        self.submits = SlidingWindow()


def _worst(*waits: float | None) -> float | None:
    found = [w for w in waits if w is not None]
    return max(found) if found else None


class Limiter:
    """The sliding windows of every API key; limits are read from the config at each call."""

    def __init__(self) -> None:
        self._keys: dict[str, _KeyWindows] = {}

    def _windows(self, api_key: str) -> _KeyWindows:
        return self._keys.setdefault(api_key, _KeyWindows())

    def admit_request(self, api_key: str, now: float, config: SimulatorConfig) -> float | None:
        """Admit one API request, or return the seconds to wait if over a limit."""
        windows = self._windows(api_key)
        per_second = minute = None
        rps = config.requests_per_second
        if rps is not None:
            count = math.ceil(rps)
            per_second = windows.second.wait(now, count, count / rps)
        if config.requests_per_minute is not None:
            minute = windows.minute.wait(now, config.requests_per_minute, 60.0)
        wait = _worst(per_second, minute)
        if wait is None:
            windows.second.add(now)
            windows.minute.add(now)
        return wait

    def admit_submit(self, api_key: str, now: float, config: SimulatorConfig) -> float | None:
        """Admit one generation-creating request, or return the seconds to wait."""
        if config.submits_per_minute is None:
            return None
        windows = self._windows(api_key)
        wait = windows.submits.wait(now, config.submits_per_minute, 60.0)
        if wait is None:
            windows.submits.add(now)
        return wait


def retry_after_headers(
    wait: float, style: str, wall_now: datetime | None = None
) -> dict[str, str]:
    """Return the ``Retry-After`` header for a wait of *wait* seconds in *style*.

    ``"seconds"`` gives the integer ceiling (at least 1), ``"http-date"`` the wall-clock time
    that many seconds from now, ``"none"`` no header.
    """
    seconds = max(1, math.ceil(wait))
    if style == "seconds":
        return {"Retry-After": str(seconds)}
    if style == "http-date":
        at = (wall_now or datetime.now(timezone.utc)) + timedelta(seconds=seconds)
        if at.microsecond:  # the header has whole seconds: round up, never early
            at = at.replace(microsecond=0) + timedelta(seconds=1)
        return {"Retry-After": format_datetime(at, usegmt=True)}
    return {}
