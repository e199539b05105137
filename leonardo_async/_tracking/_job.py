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

from .._errors import LeonardoError
from .._listing import Listing
from .._schedule import PollSchedule
from ..models import Generation

if TYPE_CHECKING:
    from ._tracker import JobTracker

__all__ = ["ProgressCallback", "StatusSource", "TrackedJob", "TrackerStatistics"]


class StatusSource(Protocol):
    """Where the tracker learns about generations (the client's
    :class:`~._client._endpoints.Endpoints`)."""

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

    What a waiter reads: :attr:`generation_id`, :attr:`generation` (the last state seen),
    :attr:`looks`, :attr:`next_look`, :meth:`done` and :meth:`result`. The rest (interval,
    deadline, listing depth) is the tracker's bookkeeping, kept on the handle and private
    to the tracker's parts (:mod:`._watchlist`, :mod:`._lookout`, :mod:`._tracker`).

    :raises GenerationFailedError: (on await) the job ended ``FAILED``
    :raises WaitTimeoutError: (on await) its deadline passed
    :raises GenerationVanishedError: (on await) the server stopped knowing it
    """

    __slots__ = (
        "_background",
        "_checks",
        "_deadline",
        "_done",
        "_due",
        "_error",
        "_event",
        "_missing_since",
        "_no_url_looks",
        "_order",
        "_polling",
        "_schedule",
        "_since",
        "_timeout",
        "_tracker",
        "_untrack_when_abandoned",
        "_waiters",
        "generation",
        "generation_id",
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
        self._schedule = schedule
        self._deadline = deadline
        #: The deadline in seconds from tracking, as given to ``track()``.
        self._timeout: float | None = None
        self._checks = 0
        self._due = math.inf
        self._polling = False
        self._missing_since: float | None = None
        self._no_url_looks = 0
        #: How many jobs were tracked before this one (its depth in a newest-first listing).
        self._order = 0
        #: Wall-clock time the job was tracked: a listing entry older than this is not it.
        self._since = datetime.now(timezone.utc)
        #: The last state seen (``None`` until the first look).
        self.generation: Generation | None = None
        self._done = False
        self._error: LeonardoError | None = None
        self._event: anyio.Event | None = None
        self._waiters = 0
        self._untrack_when_abandoned = False
        #: Watched only to see it end (it holds an in-flight slot), not for a caller.
        self._background = False

    def __repr__(self) -> str:
        state = "done" if self.done() else "pending"
        return f"<TrackedJob {self.generation_id} {state} after {self._checks} looks>"

    @property
    def looks(self) -> int:
        """Scheduled looks at this job so far (sightings on listing pages aside)."""
        return self._checks

    @property
    def next_look(self) -> float:
        """When the tracker next looks at this job, on anyio's clock
        (:func:`anyio.current_time`); ``math.inf`` once it is done. Read-only: a progress
        display may show it, and a sighting on another job's listing page may move it."""
        return self._due

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
        self._due = math.inf
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
                if not self.done() and self._waiters == 0 and self._untrack_when_abandoned:
                    self._tracker.untrack(self.generation_id)
        return self.result()

    def __await__(self) -> Generator[Any, None, Generation]:
        return self._wait().__await__()
