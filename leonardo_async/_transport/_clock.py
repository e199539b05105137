"""How far the server's clock is from ours, learnt from its answers rather than assumed.

Every decision "this submit made no job" filters the listing by creation time: a job our
submit made was created no earlier than the submit, on the *server's* clock. A fixed
margin for skew (60 s) paid twice whenever the server ran further behind. So the offset
(server minus ours) is bounded from what the server says:

* a ``Date`` header (whole seconds) read on an answer to a request sent at ``sent`` and
  received at ``received`` puts the offset in ``[date - received, date + 1 - sent]``;
* the ``createdAt`` of one of our own jobs, made between its submit's send and its answer,
  puts it in ``[created - answered, created - sent]``.

The bounds intersect as evidence comes in. Samples that cannot all be true (a gateway's
``Date`` and the database's ``createdAt`` from two clocks, a clock that was stepped) widen
them to hold every one, since only a margin too narrow can pay twice. For the same reason
the learnt figure only ever widens the 60 s margin assumed before any evidence, never
narrows it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Final

__all__ = ["ServerClock"]

#: The margin for skew while nothing is known of the server's clock.
UNKNOWN_SKEW: Final = timedelta(seconds=60)
#: Added to a learnt bound: timestamps trimmed to fewer digits, a clock that drifts.
SLACK: Final = timedelta(seconds=5)


class ServerClock:
    """Bounds on the server's clock offset (server minus ours, in seconds)."""

    def __init__(self) -> None:
        self.low: float | None = None
        self.high: float | None = None
        self.samples = 0
        #: The last ``Date`` header read, parsed: under load many answers share a second.
        self._date: tuple[str, datetime | None] = ("", None)

    def __repr__(self) -> str:
        return f"<ServerClock offset in [{self.low}, {self.high}] s from {self.samples} samples>"

    def observe(self, server: datetime, *, sent: datetime, received: datetime) -> None:
        """Server time ``server`` was stamped between our ``sent`` and ``received``."""
        low = (server - received).total_seconds()
        high = (server - sent).total_seconds()
        self.samples += 1
        if self.low is None or self.high is None:
            self.low, self.high = low, high
            return
        narrowed = max(self.low, low), min(self.high, high)
        if narrowed[0] <= narrowed[1]:
            self.low, self.high = narrowed
        else:
            self.low, self.high = min(self.low, low), max(self.high, high)

    def observe_date(self, header: str | None, *, sent: datetime, received: datetime) -> None:
        """Learn from an answer's ``Date`` header (whole seconds; ignored if unreadable)."""
        if not header:
            return
        if header != self._date[0]:
            try:
                parsed: datetime | None = parsedate_to_datetime(header)
            except (TypeError, ValueError):
                parsed = None
            self._date = (header, None if parsed is None or parsed.tzinfo is None else parsed)
        date = self._date[1]
        if date is not None:
            self.observe(date, sent=sent - timedelta(seconds=1), received=received)

    @property
    def offset(self) -> float | None:
        """The best single figure for the offset, or ``None`` before any evidence."""
        if self.low is None or self.high is None:
            return None
        return (self.low + self.high) / 2

    def earliest(self, ours: datetime) -> datetime:
        """The earliest server timestamp a job created at or after our ``ours`` can carry:
        never later than ``ours`` less the 60 s assumed before any evidence."""
        if self.low is None:
            return ours - UNKNOWN_SKEW
        return min(ours - UNKNOWN_SKEW, ours + timedelta(seconds=self.low) - SLACK)
