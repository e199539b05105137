"""The rate gate: paces requests to a rate, pauses every sender together, learns a lower limit.

A GCRA token bucket (two floats, no task, no lock). No third-party limiter is used:
aiolimiter's leaky bucket has no shared pause and no adaptive rate.
"""

from __future__ import annotations

import logging
import math
from collections import deque

from ._config import AnyioClock, Clock, Tuning

__all__ = ["RateGate"]

logger = logging.getLogger("leonardo_async")


class RateGate:
    """Paces requests to a rate, pauses every sender together, and learns a lower limit.

    The configured rate is a server's limit, so the gate paces at :attr:`Tuning.pace` of
    it, not at it. After a 429 the gate paces at ``decrease`` of the rate it was refused
    at, grows back to ``settle`` of it over a run of successes, and then creeps upward
    slowly, so it finds a server's real limit without a 429 storm and keeps close to it.
    A pause or a lower rate applies to the senders already waiting too: their turns were
    booked at the old pace, so they book again. The rate refused is the one measured
    since the last pause ended (time paused is not time sending).

    :param per_minute: the configured ceiling, or ``None`` for none
    :param burst: requests allowed back to back, ``None`` for one (no burst: see
        :class:`~._config.Limits`)
    """

    def __init__(
        self,
        per_minute: float | None,
        *,
        burst: int | None = None,
        tuning: Tuning | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._tuning = tuning = tuning if tuning is not None else Tuning()
        self._clock = clock if clock is not None else AnyioClock()
        self._ceiling = None if per_minute is None else per_minute / 60.0 * tuning.pace
        self._rate = self._ceiling
        self._learned: float | None = None
        self._burst = burst
        self._tat = 0.0  # GCRA theoretical arrival time
        self._paused_until = 0.0
        self._resumed = -math.inf  # when the pause before the latest one ended
        self._refused_at = -math.inf  # when the server last refused us
        self._successes = 0
        self._queued = 0  # senders waiting for their turn (not for a pause)
        self._booking = 0  # bumped when the turns booked so far no longer hold
        self._sent: deque[float] = deque(maxlen=4096)
        self.waited = 0.0  # seconds spent waiting here, for statistics

    @property
    def rate(self) -> float | None:
        """The rate in force now, in requests per second (``None``: unlimited)."""
        return self._rate

    @property
    def learned(self) -> float | None:
        """The limit learned from the server's 429s, in requests per second, if any."""
        return self._learned

    def _tolerance(self, interval: float) -> float:
        burst = self._burst if self._burst is not None else 1
        return (burst - 1) * interval

    async def acquire(self, *, record: bool = True) -> None:
        """Wait until one request may be sent.

        :param record: count it as sent now for :meth:`measured_rate`; pass ``False``
            when another gate still holds it back, and call :meth:`record` once it leaves
        """
        clock = self._clock
        while True:
            now = clock.now()
            if now < self._paused_until:
                await self._wait(self._paused_until - now)
                continue
            if self._rate is None:
                break
            interval = 1.0 / self._rate
            tat = max(self._tat, now)
            allowed_at = tat - self._tolerance(interval)
            self._tat = tat + interval
            if allowed_at <= now:
                break
            booked = self._booking
            self._queued += 1
            try:
                await self._wait(allowed_at - now)
            finally:
                self._queued -= 1
            # A pause or a lower rate since this turn was booked: book again at the new pace.
            if self._booking == booked and clock.now() >= self._paused_until:
                break
        if record:
            self.record()

    def record(self) -> None:
        """Count one request as sent now."""
        self._sent.append(self._clock.now())

    async def _wait(self, seconds: float) -> None:
        self.waited += seconds
        await self._clock.sleep(seconds)

    def pause(self, seconds: float) -> None:
        """Hold every sender for ``seconds`` (the shared pause after a 429)."""
        now = self._clock.now()
        if now >= self._paused_until:
            self._resumed = self._paused_until
        self._paused_until = max(self._paused_until, now + seconds)
        self._rebook()

    @property
    def since_pause(self) -> float:
        """Seconds since the latest pause ended (negative while it lasts)."""
        return self._clock.now() - self._paused_until

    def _rebook(self) -> None:
        """Cancel the turns booked so far: every waiting sender books again."""
        self._booking += 1
        self._tat = max(self._clock.now(), self._paused_until)

    def _cap(self) -> float | None:
        caps = [c for c in (self._ceiling, self._learned) if c is not None]
        return min(caps) if caps else None

    def on_success(self) -> None:
        """Record an accepted request; a run of them steps a lowered rate back up."""
        if self._rate is None:
            return
        tuning = self._tuning
        if self._learned is not None and (self._clock.now() - self._refused_at >= tuning.forget):
            self._learned = None
            self._rate = self._ceiling
            self._successes = 0
            return
        self._successes += 1
        if self._successes < tuning.recover_after:
            return
        cap = self._cap()
        if cap is not None and self._rate >= cap:
            if self._learned is None:
                self._successes = 0
                return  # at the configured ceiling: nothing to recover
            if self._successes < self._rate * tuning.creep_every:
                return
            self._learned *= tuning.creep
            if self._ceiling is not None and self._learned >= self._ceiling:
                self._learned = None
            cap = self._cap()
        self._successes = 0
        grown = self._rate * tuning.increase
        self._rate = grown if cap is None else min(cap, grown)
        if self._ceiling is None and self._learned is None and self._rate > tuning.unlimited:
            self._rate = None

    def measured_rate(self) -> float:
        """Requests per second the server took before refusing one: those sent since
        sending resumed after the previous pause (not the one a refusal being measured
        has just started), over at most the last ``window`` seconds and at least 1 s,
        less the refused one. (Counting it, a limit of L a second measures L + 1, and a
        limit learned a few percent under that is still over L when L is small.)"""
        now = self._clock.now()
        start = max(now - self._tuning.window, self._resumed)
        recent = [t for t in self._sent if t > start]
        if not recent:
            return self._tuning.min_rate
        return max(1, len(recent) - 1) / max(1.0, now - recent[0])

    @property
    def binding(self) -> bool:
        """Whether the rate is what holds senders back now: some are waiting for their
        turn (not for a pause) with turns booked ``binding`` seconds ahead, or requests
        have left at ``saturated`` of the rate or more since the last pause.

        A burst that queues for a few milliseconds at a fast gate is not held back by
        it. Senders that never queue long (submits going one at a time past the proven
        level, polls spread over time) can still fill the gate to its rate.
        """
        if self._rate is None:
            return False
        tuning = self._tuning
        if self._queued > 0 and self._tat - self._clock.now() >= tuning.binding:
            return True
        return self.measured_rate() >= tuning.saturated * self._rate

    def on_rate_limited(self, pause: float) -> None:
        """Pause every sender for ``pause`` seconds and lower the rate (a 429 here)."""
        self.pause(pause)
        self.lower()

    def lower(self) -> None:
        """The server refused us: learn the limit below the rate we were refused at."""
        tuning = self._tuning
        self._successes = 0
        self._refused_at = self._clock.now()
        refused_at = self.measured_rate()
        if self._rate is not None:
            refused_at = min(refused_at, self._rate)
        refused_at = max(refused_at, tuning.min_rate)
        self._learned = refused_at * tuning.settle
        lowered = max(tuning.min_rate, refused_at * tuning.decrease)
        if self._rate is None or lowered < self._rate:
            logger.info("rate limited: pacing at %.2f requests/s", lowered)
            self._rate = lowered
            self._rebook()
