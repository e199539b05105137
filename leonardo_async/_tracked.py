"""What a waiter holds: :class:`TrackedJob`, and the tracker's statistics snapshot.

A :class:`TrackedJob` is awaited for the finished generation; its bookkeeping (due time,
looks so far, deadline) is the tracker's, kept on the handle so that ten thousand jobs
are ten thousand small objects and no tasks.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import attrs

from ._errors import LeonardoError
from ._listing import Listing
from ._schedule import PollSchedule
from .models import Generation

if TYPE_CHECKING:
    from ._tracker import JobTracker

__all__ = ["ProgressCallback", "StatusSource", "TrackedJob", "TrackerStatistics"]


class StatusSource(Protocol):
    """Where the tracker learns about generations (the client implements it)."""

    async def get_generation(self, generation_id: str) -> Generation | None: ...

    @property
    def listing(self) -> Listing: ...


@attrs.frozen
class TrackerStatistics:
    """A snapshot of the tracker, for progress bars and logs."""

    pending: int
    complete: int
    failed: int
    errors: int
    polls: int
    listing_pages: int


class ProgressCallback(Protocol):
    """Called with a fresh snapshot whenever a job finishes or a round of looks ends."""

    def __call__(self, statistics: TrackerStatistics, /) -> None: ...


class TrackedJob:
    """A handle on one tracked generation. ``await`` it for the finished generation.

    :raises GenerationFailedError: (on await) the job ended ``FAILED``
    :raises WaitTimeoutError: (on await) its deadline passed
    :raises GenerationVanishedError: (on await) the server stopped knowing it
    """

    __slots__ = (
        "_done",
        "_error",
        "_event",
        "_tracker",
        "_waiters",
        "background",
        "checks",
        "deadline",
        "due",
        "generation",
        "generation_id",
        "missing_since",
        "no_url_looks",
        "order",
        "polling",
        "schedule",
        "since",
        "timeout",
        "untrack_when_abandoned",
    )

    def __init__(
        self,
        tracker: JobTracker,
        generation_id: str,
        schedule: PollSchedule,
        deadline: float | None,
    ) -> None:
        self._tracker = tracker
        self.generation_id = generation_id
        self.schedule = schedule
        self.deadline = deadline
        #: The deadline in seconds from tracking, as given to ``track()``.
        self.timeout: float | None = None
        self.checks = 0
        self.due = math.inf
        self.polling = False
        self.missing_since: float | None = None
        self.no_url_looks = 0
        #: How many jobs were tracked before this one (its depth in a newest-first listing).
        self.order = 0
        #: Wall-clock time the job was tracked: a listing entry older than this is not it.
        self.since = datetime.now(timezone.utc)
        #: The last state seen (``None`` until the first look).
        self.generation: Generation | None = None
        self._done = False
        self._error: LeonardoError | None = None
        self._event: anyio.Event | None = None
        self._waiters = 0
        self.untrack_when_abandoned = False
        #: Watched only to see it end (it holds an in-flight slot), not for a caller.
        self.background = False

    def __repr__(self) -> str:
        state = "done" if self.done() else "pending"
        return f"<TrackedJob {self.generation_id} {state} after {self.checks} looks>"

    def done(self) -> bool:
        """Whether the job reached an end (finished, failed, vanished or timed out)."""
        return self._done

    def result(self) -> Generation:
        """The finished generation; raises the job's error, or if it is not done."""
        if self._error is not None:
            raise self._error
        if not self.done() or self.generation is None:
            raise LeonardoError(f"generation {self.generation_id} is not finished yet")
        return self.generation

    def _finish(self, generation: Generation | None, error: LeonardoError | None) -> None:
        if generation is not None:
            self.generation = generation
        self._error = error
        self._done = True
        self.due = math.inf
        if self._event is not None:
            self._event.set()

    async def _wait(self) -> Generation:
        if not self.done():
            if self._event is None:
                self._event = anyio.Event()
            self._waiters += 1
            try:
                await self._event.wait()
            finally:
                self._waiters -= 1
                if not self.done() and self._waiters == 0 and self.untrack_when_abandoned:
                    self._tracker.untrack(self.generation_id)
        return self.result()

    def __await__(self) -> Generator[Any, None, Generation]:
        return self._wait().__await__()
