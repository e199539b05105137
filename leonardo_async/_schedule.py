"""When to look at a generation again: a pure schedule, sized for video jobs.

A Veo 3.1 job takes from under a minute to a few minutes. Polling every second, as most
clients do, spends most requests while nothing can have happened; polling every minute
notices the end half a minute late. The schedule here waits ``initial`` seconds, then polls
at intervals that start at ``first_interval`` and grow by ``multiplier`` up to
``max_interval``: dense while the end is likely near, bounded while a slow job drags on.
Each interval is jittered so a thousand jobs submitted together spread out instead of
polling in lockstep.

Defaults, for Veo: the first look at 20 s (no Veo job has been seen to finish sooner, and a
look at 20 s catches a fast one), then 5 s growing by 1.5 to a cap of 10 s. A 90 s job
costs about ten looks and is noticed about 5 s after it ends on average; with batched
status (one listing page for many jobs) the looks are nearly free.
"""

from __future__ import annotations

import attrs

from ._validate import MAX_SECONDS, MIN_SECONDS, in_range

__all__ = ["PollSchedule"]


_SECONDS = in_range(MIN_SECONDS, MAX_SECONDS)


@attrs.frozen
class PollSchedule:
    """How often to look at one generation. All times are in seconds.

    :param initial: wait before the first look
    :param max_interval: cap on the wait between two looks
    :param first_interval: the wait after the first look; ``None`` means a quarter of
        ``initial``, so a scaled-down schedule keeps its shape
    :param multiplier: growth of the interval per look, at least 1
    :param jitter: each interval is drawn from ``[1 - jitter, 1 + jitter]`` times its
        nominal value (and still capped), 0 to 0.5
    """

    initial: float = attrs.field(default=20.0, validator=_SECONDS)
    max_interval: float = attrs.field(default=10.0, validator=_SECONDS)
    first_interval: float | None = attrs.field(
        default=None, validator=in_range(MIN_SECONDS, MAX_SECONDS, allow_none=True)
    )
    multiplier: float = attrs.field(default=1.5, validator=in_range(1, 1e9))
    jitter: float = attrs.field(default=0.1, validator=in_range(0, 0.5))

    @property
    def start(self) -> float:
        """The nominal interval after the first look."""
        first = self.initial / 4 if self.first_interval is None else self.first_interval
        return min(first, self.max_interval)

    def nominal(self, looks: int) -> float:
        """The un-jittered wait before look number ``looks + 1`` (``looks`` done so far).

        ``nominal(0)`` is ``initial``; then ``start * multiplier**(looks-1)``, capped.
        Non-decreasing in ``looks`` from 1 on, and never above ``max_interval`` there.
        """
        if looks <= 0:
            return self.initial
        exponent = min(looks - 1, 200)
        try:
            grown = self.start * self.multiplier**exponent
        except OverflowError:  # long past the cap
            return self.max_interval
        return min(self.max_interval, grown)

    def delay(self, looks: int, rand: float) -> float:
        """The jittered wait before the next look; ``rand`` is a draw from [0, 1).

        The first wait is jittered too, so jobs submitted together do not all look
        at the same instant; later waits never exceed ``max_interval``.
        """
        base = self.nominal(looks)
        jittered = base * (1.0 + self.jitter * (2.0 * rand - 1.0))
        return jittered if looks <= 0 else min(self.max_interval, jittered)
