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
    GenerationVanishedError,
    LeonardoError,
    TrackerClosedError,
    WaitTimeoutError,
)
from ..models import Generation, GenerationStatus
from ._job import TrackedJob

__all__ = ["EndHook", "Watchlist"]

logger = logging.getLogger("leonardo_async")

#: Due times this close together are served by the same round.
COALESCE: Final = 0.01
#: A ``COMPLETE`` job without a video URL is looked at this many more times, then accepted.
MISSING_URL_LOOKS: Final = 3

#: Told of each job that ends, with the generation to hand on (``None`` if the job ended
#: without one: timed out, vanished, refused).
EndHook = Callable[[TrackedJob, "Generation | None"], None]


class Watchlist:
    """The watched jobs, their due looks, and their outcomes (see the module docstring).

    :param vanish_grace: seconds a job may be unknown to the server before it is an error
    :param ended: called after each job ends, once it is off the list and counted
    """

    def __init__(self, *, vanish_grace: float, ended: EndHook) -> None:
        self.vanish_grace = vanish_grace
        #: The jobs being watched, by generation id.
        self.jobs: dict[str, TrackedJob] = {}
        #: Jobs ever added: a job's place in a newest-first listing is counted from it.
        self.tracked = 0
        self.complete = self.failed = self.errors = 0
        self._ended = ended
        self._heap: list[tuple[float, int, TrackedJob]] = []
        self._seq = itertools.count()
        self._wake = anyio.Event()
        self._unknown_statuses: set[str] = set()

    # --- the schedule -------------------------------------------------------------------

    def add(self, job: TrackedJob) -> None:
        """Watch a new job; its first look is one (jittered) first interval away."""
        job._order = self.tracked
        self.tracked += 1
        self.jobs[job.generation_id] = job
        self.push(job, anyio.current_time() + job._schedule.delay(0, random.random()))

    def push(self, job: TrackedJob, due: float) -> None:
        """Make ``due`` the job's next look (or its deadline, if that comes first)."""
        if job._deadline is not None:
            due = min(due, job._deadline)
        job._due = due
        heapq.heappush(self._heap, (due, next(self._seq), job))
        if self._heap[0][2] is job:
            self._wake.set()

    def reschedule(self, job: TrackedJob, *, grow: bool = True) -> None:
        """Schedule the next look; ``grow=False`` (a sighting) keeps the interval where it is.

        A sighting before a job's first look leaves that look where it was: the first
        wait is the expected run time, and starting it again from the sighting would
        put the look that much later than the job's likely end.
        """
        job._polling = False
        if not self.awaited(job):
            return
        if grow:
            job._checks += 1
        elif job._checks == 0:
            return
        self.push(job, anyio.current_time() + job._schedule.delay(job._checks, random.random()))

    def awaited(self, job: TrackedJob) -> bool:
        """Whether ``job`` is still watched and unfinished (so still worth a look)."""
        return not job.done() and self.jobs.get(job.generation_id) is job

    def take_due(self) -> list[TrackedJob]:
        """Take the jobs due now (within :data:`COALESCE`), marking each as being looked at.

        A job past its deadline ends here with :class:`WaitTimeoutError` instead.
        """
        now = anyio.current_time()
        due: list[TrackedJob] = []
        heap = self._heap
        while heap and heap[0][0] <= now + COALESCE:
            when, _, job = heapq.heappop(heap)
            if job._due != when or job._polling or self.jobs.get(job.generation_id) is not job:
                continue  # stale entry: rescheduled, being looked at, or gone
            if job._deadline is not None and job._deadline <= now:
                self.end(job, None, WaitTimeoutError(job.generation_id, job._timeout or 0.0))
                continue
            job._polling = True
            due.append(job)
        return due

    async def sleep_until_due(self) -> None:
        """Sleep until the earliest look is due, or until an earlier one is pushed."""
        delay = self._heap[0][0] - anyio.current_time() if self._heap else math.inf
        self._wake = anyio.Event()
        with anyio.move_on_after(delay):
            await self._wake.wait()

    # --- outcomes -----------------------------------------------------------------------

    def observe(self, job: TrackedJob, generation: Generation, *, scheduled: bool) -> None:
        """Apply a fresh view of a job: finish it, or (``scheduled``) schedule its next look."""
        if job.done():
            return
        job.generation = generation
        job._missing_since = None
        status = generation.status
        if status == GenerationStatus.COMPLETE:
            if generation.video_url is None and job._no_url_looks < MISSING_URL_LOOKS:
                job._no_url_looks += 1
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

    def missing(self, job: TrackedJob) -> None:
        """The server did not know the job: look again, until the vanish grace runs out."""
        now = anyio.current_time()
        if job._missing_since is None:
            job._missing_since = now
        if now - job._missing_since >= self.vanish_grace:
            self.end(job, None, GenerationVanishedError(job.generation_id))
        else:
            self.reschedule(job)

    def end(
        self, job: TrackedJob, generation: Generation | None, error: LeonardoError | None
    ) -> None:
        """Finish the job's handle, take it off the list, count it, and tell the hook."""
        job._polling = False
        job._finish(generation, error)
        if self.jobs.get(job.generation_id) is job:
            del self.jobs[job.generation_id]
        if error is None:
            self.complete += 1
        elif isinstance(error, GenerationFailedError):
            self.failed += 1
        else:
            self.errors += 1
            # A deadline is the caller's own choice, and the caller gets the error: no warning.
            log = logger.info if isinstance(error, WaitTimeoutError) else logger.warning
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
            job._finish(None, TrackerClosedError(job.generation_id))
        self.jobs.clear()
        self._heap.clear()
