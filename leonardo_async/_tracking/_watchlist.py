"""The jobs a tracker watches: when each is next due, and what a look's outcome does to it.

:class:`Watchlist` is the tracker's book. It holds the watched jobs, a heap of their due
looks and the counts of how they ended. The scheduler (:mod:`._tracker`) takes due jobs
off it; the ways of looking (:mod:`._lookout`) report what they saw back to it: a fresh
state (:meth:`Watchlist.observe`), a job the server did not know
(:meth:`Watchlist.missing`), a failed look (:meth:`Watchlist.reschedule`). Both sides
see the same book and neither sees the other.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import random
from collections.abc import Callable
from typing import Final

import anyio

from .._errors import (
    GenerationFailedError,
    GenerationNotFoundError,
    GenerationVanishedError,
    LeonardoError,
    TrackerClosedError,
    WaitTimeoutError,
)
from ..models import Generation, GenerationStatus
from ._job import Watch

__all__ = ["EndHook", "Watchlist"]

logger = logging.getLogger("leonardo_async")

#: Due times this close together are served by the same round.
COALESCE: Final = 0.01
#: A ``COMPLETE`` job without a video URL is looked at this many more times, then accepted.
MISSING_URL_LOOKS: Final = 3
#: Seconds an id tracked from elsewhere (not just submitted here) may be unknown to the
#: server before it is :class:`GenerationNotFoundError`: one more look after a second
#: covers a replica a moment behind, and a mistyped id is an error at once, not after
#: the vanish grace a fresh submit needs.
UNKNOWN_GRACE: Final = 1.0

#: Told of each job that ends, with the generation to hand on (``None`` if the job ended
#: without one: timed out, vanished, refused).
EndHook = Callable[[Watch, "Generation | None"], None]


class Watchlist:
    """The watched jobs, their due looks, and their outcomes (see the module docstring).

    :param vanish_grace: seconds a job may be unknown to the server before it is an error
    :param ended: called after each job ends, once it is off the list and counted
    """

    def __init__(self, *, vanish_grace: float, ended: EndHook) -> None:
        self.vanish_grace = vanish_grace
        #: The jobs being watched, by generation id.
        self.jobs: dict[str, Watch] = {}
        #: Jobs ever added: a job's place in a newest-first listing is counted from it.
        self.tracked = 0
        self.complete = self.failed = self.errors = 0
        self._ended = ended
        self._heap: list[tuple[float, int, Watch]] = []
        self._seq = itertools.count()
        self._wake = anyio.Event()
        self._unknown_statuses: set[str] = set()

    # --- the schedule -------------------------------------------------------------------

    def add(self, job: Watch) -> None:
        """Watch a new job; a fresh submit's first look is one (jittered) first interval
        away, any other job is looked at now (it may have finished long ago)."""
        job.order = self.tracked
        self.tracked += 1
        self.jobs[job.generation_id] = job
        now = anyio.current_time()
        self.push(job, now + job.schedule.delay(0, random.random()) if job.fresh else now)

    def push(self, job: Watch, due: float) -> None:
        """Make ``due`` the job's next look (or its deadline, if that comes first)."""
        if job.deadline is not None:
            due = min(due, job.deadline)
        job.due = due
        heapq.heappush(self._heap, (due, next(self._seq), job))
        if self._heap[0][2] is job:
            self._wake.set()

    def reschedule(self, job: Watch, *, grow: bool = True, later: float = 0.0) -> None:
        """Schedule the next look; ``grow=False`` (a sighting) keeps the interval where it is.

        A sighting before a job's first look leaves that look where it was: the first
        wait is the expected run time, and starting it again from the sighting would
        put the look that much later than the job's likely end. ``later`` adds that
        fraction of the interval (another worker's round, heard a moment after it was
        read, must come before this job's own look).
        """
        job.looking = False
        if not self.awaited(job):
            return
        if grow:
            job.looks += 1
        elif job.looks == 0:
            return
        delay = job.schedule.delay(job.looks, random.random())
        self.push(job, anyio.current_time() + delay * (1.0 + later))

    def awaited(self, job: Watch) -> bool:
        """Whether ``job`` is still watched and unfinished (so still worth a look)."""
        return not job.done() and self.jobs.get(job.generation_id) is job

    def take_due(self) -> list[Watch]:
        """Take the jobs due now (within :data:`COALESCE`), marking each as being looked at.

        A job past its deadline ends here with :class:`WaitTimeoutError` instead.
        """
        now = anyio.current_time()
        due: list[Watch] = []
        heap = self._heap
        while heap and heap[0][0] <= now + COALESCE:
            when, _, job = heapq.heappop(heap)
            if job.due != when or job.looking or self.jobs.get(job.generation_id) is not job:
                continue  # stale entry: rescheduled, being looked at, or gone
            if job.deadline is not None and job.deadline <= now:
                self.end(job, None, WaitTimeoutError(job.generation_id, job.timeout or 0.0))
                continue
            job.looking = True
            due.append(job)
        return due

    async def sleep_until_due(self) -> None:
        """Sleep until the earliest look is due, or until an earlier one is pushed."""
        delay = self._heap[0][0] - anyio.current_time() if self._heap else math.inf
        self._wake = anyio.Event()
        with anyio.move_on_after(delay):
            await self._wake.wait()

    # --- outcomes -----------------------------------------------------------------------

    def observe(self, job: Watch, generation: Generation, *, scheduled: bool) -> None:
        """Apply a fresh view of a job: finish it, or (``scheduled``) schedule its next look."""
        if job.done():
            return
        job.generation = generation
        job.missing_since = None
        for observer in tuple(job.observers):
            try:
                observer(generation)
            except Exception:
                # The caller's code: its wait goes on, without it (a callback broken once
                # is broken at every look).
                job.observers.remove(observer)
                logger.error(
                    "the on_update callback of the wait for %s raised; no longer called",
                    job.generation_id,
                    exc_info=True,
                )
        status = generation.status
        if status == GenerationStatus.COMPLETE:
            if generation.video_url is None and job.no_url_looks < MISSING_URL_LOOKS:
                job.no_url_looks += 1
            else:
                self.end(job, generation, None)
                return
        elif status == GenerationStatus.FAILED:
            self.end(job, generation, GenerationFailedError(generation))
            return
        elif status != GenerationStatus.PENDING and status not in self._unknown_statuses:
            self._unknown_statuses.add(str(status))
            logger.warning("unknown generation status %r; treating it as not finished", status)
        if scheduled:
            self.reschedule(job)

    def missing(self, job: Watch) -> None:
        """The server did not know the job: look again, until the grace runs out.

        A job never seen, and not just submitted here, has :data:`UNKNOWN_GRACE` only,
        and its next look falls at the end of it.
        """
        now = anyio.current_time()
        if job.missing_since is None:
            job.missing_since = now
        unknown = job.generation is None and not job.vouched
        grace = min(UNKNOWN_GRACE, self.vanish_grace) if unknown else self.vanish_grace
        if now - job.missing_since >= grace:
            error = GenerationNotFoundError if unknown else GenerationVanishedError
            self.end(job, None, error(job.generation_id))
            return
        self.reschedule(job)
        if unknown and self.awaited(job):
            self.push(job, min(job.due, job.missing_since + grace))

    def end(self, job: Watch, generation: Generation | None, error: LeonardoError | None) -> None:
        """Finish the job's handle, take it off the list, count it, and tell the hook."""
        job.looking = False
        job.finish(generation, error)
        if self.jobs.get(job.generation_id) is job:
            del self.jobs[job.generation_id]
        if error is None:
            self.complete += 1
        elif isinstance(error, GenerationFailedError):
            self.failed += 1
        else:
            self.errors += 1
            # A deadline is the caller's own choice, and a wrong id the caller's own
            # mistake; either way the caller gets the error: no warning.
            quiet = isinstance(error, (WaitTimeoutError, GenerationNotFoundError))
            log = logger.info if quiet else logger.warning
            log("generation %s: %s", job.generation_id, error)
        finished = (
            job.generation if error is None or isinstance(error, GenerationFailedError) else None
        )
        self._ended(job, finished)

    def drop(self, generation_id: str) -> bool:
        """Stop watching a job without ending its handle; whether it was watched."""
        return self.jobs.pop(generation_id, None) is not None

    def close(self) -> None:
        """Fail every watched job with :class:`TrackerClosedError` and empty the list."""
        for job in list(self.jobs.values()):
            job.finish(None, TrackerClosedError(job.generation_id))
        self.jobs.clear()
        self._heap.clear()
