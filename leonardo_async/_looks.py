"""How the tracker looks at jobs: per-job polls from a worker pool, and listing rounds.

A *look* is one reading of a job's status, due by its poll schedule. A *round* (or sweep)
serves many due looks with pages of ``GET /generations/user/{userId}``, newest first: each
pending job the pages show is a *sighting*, which counts as a look. Jobs a round did not
show fall back to their own ``GET /generations/{id}``. Rounds are used while they cost no
more pages than there are pending jobs, and pause after a round that showed none of its
jobs (the listing may not show video jobs at all).

:class:`Looks` is a part of :class:`~._tracker.JobTracker` (a mixin), kept apart so that
the scheduler and the ways of looking can be read one at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._errors import (
    LeonardoError,
    RateLimitError,
    ResponseShapeError,
    ServerError,
    TransportError,
)
from ._listing import ListingEntry
from ._tracked import StatusSource, TrackedJob
from .models import Generation

__all__ = ["Looks"]

logger = logging.getLogger("leonardo_async")

#: Pending jobs below this are polled one by one: a listing page would not pay off.
BATCH_MIN_PENDING: Final = 3
#: A listing round also serves every job due within this fraction of its own interval, so
#: one round per poll interval serves all the jobs (not one round per jittered due time).
SWEEP_AHEAD: Final = 0.5
#: After a listing round that showed none of its due jobs, listing pauses this long.
LISTING_BACKOFF: Final = 60.0


class Looks:
    """The tracker's ways of looking at due jobs (see the module docstring)."""

    _source: StatusSource
    _jobs: dict[str, TrackedJob]
    _tracked: int
    _backlog: list[TrackedJob]
    _sweeping: bool
    _listing_paused_until: float
    _polls: int
    _pages: int
    _closing: bool
    _max_workers: int
    _workers: int
    _idle_workers: int
    _poll_send: MemoryObjectSendStream[TrackedJob] | None
    _poll_receive: MemoryObjectReceiveStream[TrackedJob] | None
    batched: bool

    if TYPE_CHECKING:  # the scheduler's side, in JobTracker

        def _spawn(self, work: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> bool: ...
        def _push(self, job: TrackedJob, due: float) -> None: ...
        def _reschedule(self, job: TrackedJob, *, grow: bool = True) -> None: ...
        def _observe(self, job: TrackedJob, generation: Generation, *, scheduled: bool) -> None: ...
        def _missing(self, job: TrackedJob) -> None: ...
        def _end(
            self, job: TrackedJob, generation: Generation | None, error: LeonardoError | None
        ) -> None: ...
        def _progress(self) -> None: ...

    def _dispatch(self, due: list[TrackedJob]) -> None:
        use_listing = (
            self.batched
            and len(self._jobs) >= BATCH_MIN_PENDING
            and anyio.current_time() >= self._listing_paused_until
            and self._pages_to_reach(due) <= len(self._jobs)
        )
        if use_listing and self._sweeping:
            self._backlog.extend(due)
        elif use_listing:
            self._sweeping = self._spawn(self._sweep, due + self._nearly_due())
        else:
            for job in due:
                self._queue_poll(job)

    def _nearly_due(self) -> list[TrackedJob]:
        """Jobs a listing round may as well serve now: due within :data:`SWEEP_AHEAD` of
        their interval. Each is taken as its own look, so the jobs' next looks fall
        together and the next round serves them all again."""
        now = anyio.current_time()
        taken = []
        for job in self._jobs.values():
            if job._polling or job.done():
                continue
            if job._due <= now + SWEEP_AHEAD * job._schedule.nominal(job._checks):
                job._polling = True
                taken.append(job)
        return taken

    def _pages_to_reach(self, due: list[TrackedJob]) -> int:
        """Listing pages to read, newest first, to reach the oldest of ``due``.

        Every job tracked since then (finished or not) sits above it. A round of listing
        looks at every pending job it passes, so it pays off while it costs no more pages
        than there are pending jobs; past that (a few old jobs behind many finished
        ones), per-job looks are cheaper.
        """
        depth = self._tracked - min(job._order for job in due)
        return self._source.listing.pages_for(depth)

    def _queue_poll(self, job: TrackedJob) -> None:
        """Hand a job to the poll workers, starting one if none is free (up to the cap).

        A fixed pool, not a task per look: ten thousand due jobs wait in the queue as
        references, not as ten thousand tasks.
        """
        if self._poll_send is None or self._closing:
            return
        self._poll_send.send_nowait(job)
        if (
            self._idle_workers == 0
            and self._workers < self._max_workers
            and self._spawn(self._poll_worker)
        ):
            self._workers += 1
            self._idle_workers += 1

    async def _poll_worker(self) -> None:
        assert self._poll_receive is not None
        async for job in self._poll_receive:
            self._idle_workers -= 1
            try:
                await self._poll(job)
            finally:
                self._idle_workers += 1

    async def _poll(self, job: TrackedJob) -> None:
        """One ``GET /generations/{id}``; transient failures just move to the next look."""
        try:
            self._polls += 1
            generation = await self._source.get_generation(job.generation_id)
        except (TransportError, ServerError, RateLimitError, ResponseShapeError) as exc:
            logger.info("status of %s not read (%s); will look again", job.generation_id, exc)
            self._reschedule(job)
            return
        except LeonardoError as exc:  # 401, 404, an id the client refuses: this job ends
            self._end(job, None, exc)
            return
        if generation is None:
            self._missing(job)
        else:
            self._observe(job, generation, scheduled=True)
        self._progress()

    def _awaited(self, job: TrackedJob) -> bool:
        """Whether ``job`` is still tracked and unfinished (so still worth a look)."""
        return not job.done() and self._jobs.get(job.generation_id) is job

    async def _sweep(self, due: list[TrackedJob]) -> None:
        """Look at many jobs through listing pages; fall back per job for the unseen."""
        try:
            while due:
                # A page may finish a job that waits in the backlog or is still due (it
                # shows every tracked job it lists): such a job needs no look and must
                # not count as one the listing failed to show.
                unseen = [job for job in await self._scan_listing(due) if self._awaited(job)]
                if len(unseen) >= BATCH_MIN_PENDING and len(unseen) == len(due):
                    self._listing_paused_until = anyio.current_time() + LISTING_BACKOFF
                    logger.info("listing showed none of %d due jobs; polling one by one", len(due))
                now = anyio.current_time()
                for job in unseen:
                    if job._due > now:  # only nearly due: its own look is still to come
                        job._polling = False
                        self._push(job, job._due)
                    else:
                        self._queue_poll(job)
                due = [job for job in self._backlog if self._awaited(job)]
                self._backlog = []
                self._progress()
        finally:
            self._sweeping = False

    async def _scan_listing(self, due: list[TrackedJob]) -> list[TrackedJob]:
        """Read listing pages until every due job is seen; return the ones not seen."""
        remaining = {job.generation_id: job for job in due}
        # Deep enough for the oldest due job in a newest-first listing, and a little more
        # (other clients of the key may have added generations); such a listing usually
        # stops earlier, at the first page older than the oldest due job.
        walk = self._source.listing.walk(
            newer_than=min(job._since for job in due),
            max_pages=self._pages_to_reach(due) + 2,
            overlap=False,  # a job a deletion shifts out of sight is looked at by itself
        )
        try:
            async for page in walk:
                self._read_page(page, remaining)
                if not remaining:
                    break
        except LeonardoError as exc:
            logger.info("listing page not read (%s)", exc)
        finally:
            self._pages += walk.pages
        return list(remaining.values())

    def _read_page(self, page: list[ListingEntry], remaining: dict[str, TrackedJob]) -> None:
        """Apply one listing page to the jobs it shows."""
        for entry in page:
            job = self._jobs.get(entry.id)
            if job is None or job.done():
                continue
            scheduled = remaining.pop(job.generation_id, None) is not None
            if entry.pending:
                job._missing_since = None
                if scheduled or not job._polling:
                    # A sighting is a look, due or not: pushing every job seen back by
                    # its own interval makes the next round serve them all together.
                    # Only a job's own due look grows its interval, so sightings that
                    # other jobs' rounds bring do not stretch its schedule.
                    self._reschedule(job, grow=scheduled)
                continue
            try:
                generation = entry.generation()
            except ResponseShapeError as exc:
                logger.info("listing entry for %s unreadable (%s)", job.generation_id, exc)
                if scheduled:
                    self._reschedule(job)
                continue
            self._observe(job, generation, scheduled=scheduled)
