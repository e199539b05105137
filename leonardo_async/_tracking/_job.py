"""One tracked job: the tracker's record of it (:class:`Watch`) and what a waiter holds
(:class:`TrackedJob`, a handle that reads the record), and the tracker's statistics.

A :class:`TrackedJob` is awaited for the finished generation; the bookkeeping behind it
(due time, looks so far, deadline) is the :class:`Watch`'s, which only the tracker's parts
change.
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

__all__ = [
    "ProgressCallback",
    "StatusSource",
    "TrackedJob",
    "TrackerStatistics",
    "UpdateCallback",
    "Watch",
]


class StatusSource(Protocol):
    """Where the tracker learns about generations (the client's
    :class:`~._client._endpoints.Endpoints`)."""

    async def get_generation(self, generation_id: str) -> Generation | None: ...

    @property
    def listing(self) -> Listing: ...


@attrs.frozen
class TrackerStatistics:
    """A snapshot of the tracker, for progress bars and logs.

    ``fleet_rounds`` are the fleet's listing rounds this tracker read for every client
    of the key on its Redis, ``fleet_sightings`` the looks at its own jobs that other
    clients' rounds brought (both 0 without ``redis=``).
    """

    pending: int
    complete: int
    failed: int
    errors: int
    polls: int
    listing_pages: int
    fleet_rounds: int = 0
    fleet_sightings: int = 0


class ProgressCallback(Protocol):
    """Called with a fresh snapshot whenever a job finishes or a round of looks ends."""

    def __call__(self, statistics: TrackerStatistics, /) -> None: ...


class UpdateCallback(Protocol):
    """Called with each state a look (a poll, a listing page, a webhook) sees of one job
    being waited for, the last (``COMPLETE`` or ``FAILED``) included."""

    def __call__(self, generation: Generation, /) -> None: ...


class Watch:
    """The tracker's record of one job: when it is next looked at, how often it has been,
    its deadline, its place in a newest-first listing, and how it ended.

    It belongs to the tracker's :class:`~._watchlist.Watchlist`, which makes it, schedules
    it and ends it; the ways of looking (:mod:`._lookout`) mark it as being looked at. A
    waiter never sees it: it holds the :attr:`handle`, which reads it. Ten thousand jobs
    are ten thousand small objects and no tasks.
    """

    __slots__ = (
        "background",
        "deadline",
        "due",
        "error",
        "event",
        "finished",
        "fresh",
        "generation",
        "generation_id",
        "handle",
        "looking",
        "looks",
        "missing_since",
        "no_url_looks",
        "observers",
        "order",
        "schedule",
        "since",
        "timeout",
        "untrack_when_abandoned",
        "vouched",
        "waiters",
    )

    def __init__(
        self,
        tracker: JobTracker,
        generation_id: str,
        schedule: PollSchedule,
        deadline: float | None,
    ) -> None:
        self.generation_id = generation_id
        self.schedule = schedule
        #: When the job's wait ends, on anyio's clock (``None``: never).
        self.deadline = deadline
        #: The deadline in seconds from tracking, as given to ``track()``.
        self.timeout: float | None = None
        self.looks = 0
        self.due = math.inf
        self.looking = False
        self.missing_since: float | None = None
        self.no_url_looks = 0
        #: The waits' ``on_update`` callbacks, told of each state a look sees.
        self.observers: list[UpdateCallback] = []
        #: How many jobs were tracked before this one (its depth in a newest-first listing).
        self.order = 0
        #: Wall-clock time the job was tracked: a listing entry older than this is not it.
        self.since = datetime.now(timezone.utc)
        #: The last state seen (``None`` until the first look).
        self.generation: Generation | None = None
        self.finished = False
        self.error: LeonardoError | None = None
        self.event: anyio.Event | None = None
        self.waiters = 0
        #: Stop watching the job when its last waiter gives up (a ``wait``, not a ``track``).
        self.untrack_when_abandoned = False
        #: Watched only to see it end (it holds an in-flight slot), not for a caller.
        self.background = False
        #: Submitted by this client just now: its first look waits the schedule's
        #: ``initial`` (it cannot have finished yet); any other job is looked at at once.
        self.fresh = False
        #: Known to exist (submitted or adopted by this client): the server may lag in
        #: showing it, so it has the whole vanish grace. An id from elsewhere must be
        #: known to the server at once.
        self.vouched = False
        #: What waiters hold.
        self.handle = TrackedJob(tracker, self)

    def __repr__(self) -> str:
        state = "done" if self.finished else "pending"
        return f"<Watch {self.generation_id} {state} after {self.looks} looks>"

    def done(self) -> bool:
        """Whether the job reached an end (finished, failed, vanished or timed out)."""
        return self.finished

    def finish(self, generation: Generation | None, error: LeonardoError | None) -> None:
        """End the job: its waiters wake to ``generation`` or ``error``."""
        if generation is not None:
            self.generation = generation
        self.error = error
        self.finished = True
        self.due = math.inf
        if self.event is not None:
            self.event.set()


class TrackedJob:
    """A handle on one tracked generation. ``await`` it for the finished generation.

    What a waiter reads: :attr:`generation_id`, :attr:`generation` (the last state seen),
    :attr:`looks`, :attr:`next_look`, :meth:`done` and :meth:`result`. The tracker's
    bookkeeping is its own (:class:`Watch`), which this handle reads.

    :raises GenerationFailedError: (on await) the job ended ``FAILED``
    :raises WaitTimeoutError: (on await) its deadline passed
    :raises GenerationVanishedError: (on await) the server stopped knowing it
    """

    __slots__ = ("_tracker", "_watch")

    def __init__(self, tracker: JobTracker, watch: Watch) -> None:
        self._tracker = tracker
        self._watch = watch

    def __repr__(self) -> str:
        state = "done" if self.done() else "pending"
        return f"<TrackedJob {self.generation_id} {state} after {self.looks} looks>"

    @property
    def generation_id(self) -> str:
        """The generation's id."""
        return self._watch.generation_id

    @property
    def generation(self) -> Generation | None:
        """The last state seen (``None`` until the first look)."""
        return self._watch.generation

    @property
    def looks(self) -> int:
        """Scheduled looks at this job so far (sightings on listing pages aside)."""
        return self._watch.looks

    @property
    def next_look(self) -> float:
        """When the tracker next looks at this job, on anyio's clock
        (:func:`anyio.current_time`); ``math.inf`` once it is done. Read-only: a progress
        display may show it, and a sighting on another job's listing page may move it."""
        return self._watch.due

    def done(self) -> bool:
        """Whether the job reached an end (finished, failed, vanished or timed out)."""
        return self._watch.finished

    def result(self) -> Generation:
        """The finished generation; raises the job's error, or if it is not done."""
        watch = self._watch
        if watch.error is not None:
            raise watch.error
        if not watch.finished or watch.generation is None:
            raise LeonardoError(f"generation {watch.generation_id} is not finished yet")
        return watch.generation

    async def _wait(self) -> Generation:
        watch = self._watch
        if not watch.finished:
            if watch.event is None:
                watch.event = anyio.Event()
            watch.waiters += 1
            try:
                await watch.event.wait()
            finally:
                watch.waiters -= 1
                if not watch.finished and watch.waiters == 0 and watch.untrack_when_abandoned:
                    self._tracker.untrack(watch.generation_id)
        return self.result()

    def __await__(self) -> Generator[Any, None, Generation]:
        return self._wait().__await__()
