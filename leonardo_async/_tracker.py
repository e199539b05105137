"""JobTracker: many generations watched at once, from one scheduler task.

Per-job poll loops (what every other client does) cost a task and a timer per job, poll
in lockstep, and spend one request per job per look. Here one scheduler keeps a heap of
due times, so ten thousand jobs cost ten thousand small objects and no tasks. When a few
jobs are due at once, one page of ``GET /generations/user/{userId}`` reports many of them
("batched status"); jobs the pages did not show fall back to ``GET /generations/{id}``.
Every look goes through the client's key limiter, so polling shares the request budget
with submits and pauses with everyone else on a 429.

The tracker needs only a :class:`StatusSource` (the client's
:class:`~._endpoints.Endpoints` is one), which keeps it independent of HTTP and lets the
client own it. This module is the schedule (a heap of due looks), the waiters and the
outcomes; the ways of looking are :mod:`._looks`, the handle a waiter holds
:mod:`._tracked`.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import random
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Final

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._errors import (
    ClientStateError,
    GenerationFailedError,
    GenerationVanishedError,
    LeonardoError,
    TrackerClosedError,
    WaitTimeoutError,
)
from ._looks import Looks
from ._schedule import PollSchedule
from ._tracked import ProgressCallback, StatusSource, TrackedJob, TrackerStatistics
from .models import Generation, GenerationStatus

__all__ = ["JobTracker", "ProgressCallback", "StatusSource", "TrackedJob", "TrackerStatistics"]

logger = logging.getLogger("leonardo_async")

#: Due times this close together are served by the same round.
COALESCE: Final = 0.01
#: A ``COMPLETE`` job without a video URL is looked at this many more times, then accepted.
MISSING_URL_LOOKS: Final = 3
#: Finished generations heard of (by webhook) before they were tracked, kept this many.
EARLY_NEWS_KEPT: Final = 4096


class JobTracker(Looks):
    """Watches many generations at once. Owned by a client; enter it with ``async with``.

    :param source: where generations are looked up (the client's
        :class:`~._endpoints.Endpoints`)
    :param schedule: default poll schedule for tracked jobs
    :param batched: use listing pages to check many jobs per request
    :param polls_in_flight: cap on per-job status requests in flight
    :param vanish_grace: seconds a job may be unknown to the server before it is an error
        (a fresh job can lag behind in a replicated read)
    :param on_progress: called with a :class:`TrackerStatistics` after changes
    """

    def __init__(
        self,
        source: StatusSource,
        *,
        schedule: PollSchedule | None = None,
        batched: bool = True,
        polls_in_flight: int = 32,
        vanish_grace: float = 30.0,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self._source = source
        self.schedule = schedule if schedule is not None else PollSchedule()
        self.batched = batched
        self.vanish_grace = vanish_grace
        self.on_progress = on_progress
        #: Told the id of each job the tracker stops watching (ended, timed out, dropped).
        self.on_end: Callable[[str], None] | None = None
        self._max_workers = polls_in_flight
        self._workers = self._idle_workers = 0
        # The poll queue belongs to a running tracker: made on enter, closed on exit.
        self._poll_send: MemoryObjectSendStream[TrackedJob] | None = None
        self._poll_receive: MemoryObjectReceiveStream[TrackedJob] | None = None
        self._tracked = 0  # jobs ever tracked
        self._jobs: dict[str, TrackedJob] = {}
        self._heap: list[tuple[float, int, TrackedJob]] = []
        self._seq = itertools.count()
        self._wake = anyio.Event()
        self._tg: TaskGroup | None = None
        #: Set when closing begins: from then on no look is started (see ``_spawn``).
        self._closing = False
        self._running = False
        self._listeners: set[MemoryObjectSendStream[Generation | None]] = set()
        self._backlog: list[TrackedJob] = []
        self._sweeping = False
        self._listing_paused_until = 0.0
        self._unknown_statuses: set[str] = set()
        self._early: OrderedDict[str, Generation] = OrderedDict()
        self._complete = self._failed = self._errors = self._polls = self._pages = 0

    # --- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> JobTracker:
        if self._tg is not None:
            raise ClientStateError("the tracker is already running: enter its client once")
        self._poll_send, self._poll_receive = anyio.create_memory_object_stream[TrackedJob](
            math.inf
        )
        self._workers = self._idle_workers = 0
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        """Stop polling and fail what is still pending with :class:`TrackerClosedError`.

        The caller's own exception is not handed to the task group, so it propagates as
        itself rather than wrapped in an exception group: the group only ever holds the
        scheduler and its workers, which have nothing to report when they are cancelled.

        Closing is one-way from its first line: ``_closing`` stops the scheduler and every
        way of starting work before the group is cancelled, so no task can find the group
        gone while it still runs (a scheduler woken by its own timer in the same instant
        as the cancellation goes round its loop once more, and must start nothing).
        """
        tg = self._tg
        if tg is None or self._closing:
            return
        self._closing = True
        self._running = False
        tg.cancel_scope.cancel()
        try:
            await tg.__aexit__(None, None, None)
        finally:
            self._tg = None
            self._closing = False
            for stream in (self._poll_send, self._poll_receive):
                if stream is not None:
                    stream.close()
            self._poll_send = self._poll_receive = None
            for job in list(self._jobs.values()):
                job._finish(None, TrackerClosedError(job.generation_id))
            self._jobs.clear()
            self._heap.clear()
            self._notify_listeners(None)

    # --- public API ---------------------------------------------------------------------

    def track(
        self,
        generation_id: str,
        *,
        deadline: float | None = None,
        schedule: PollSchedule | None = None,
        background: bool = False,
    ) -> TrackedJob:
        """Start watching a generation (or return the handle already watching it).

        :param deadline: seconds from now after which the handle fails with
            :class:`WaitTimeoutError` and polling stops; the job itself keeps running
        :param schedule: this job's poll schedule, instead of the tracker's
        :param background: watched only to see it end (the client's own watch of a job
            holding an in-flight slot); the first caller's ``track()`` takes it over with
            its deadline and schedule
        """
        if self._tg is None or self._closing:
            raise ClientStateError(
                "the tracker is not running: use the client inside 'async with LeonardoClient()'"
            )
        now = anyio.current_time()
        job = self._jobs.get(generation_id)
        if job is not None:
            job._untrack_when_abandoned = False
            if job._background and not background:
                job._background = False
                job._timeout = deadline
                job._deadline = None if deadline is None else now + deadline
                job._schedule = schedule or job._schedule
            return job
        job = TrackedJob(
            self,
            generation_id,
            schedule or self.schedule,
            None if deadline is None else now + deadline,
        )
        job._timeout = deadline
        job._background = background
        job._order = self._tracked
        self._tracked += 1
        self._jobs[generation_id] = job
        self._push(job, now + job._schedule.delay(0, random.random()))
        early = self._early.pop(generation_id, None)
        if early is not None:
            self._observe(job, early, scheduled=False)
        if not self._running:
            self._running = self._spawn(self._run)
        return job

    async def wait(
        self,
        generation_id: str,
        *,
        timeout: float | None = None,
        schedule: PollSchedule | None = None,
    ) -> Generation:
        """Track a generation and wait for it; stop polling if the wait is abandoned."""
        job = self._jobs.get(generation_id)
        if job is None:  # watched for this wait (and any that join it) only
            job = self.track(generation_id, schedule=schedule)
            job._untrack_when_abandoned = True
        if timeout is None:
            return await job  # no cancel scope to set up: most waits have no deadline
        try:
            with anyio.fail_after(timeout):
                return await job
        except TimeoutError as exc:
            if isinstance(exc, WaitTimeoutError):
                raise
            raise WaitTimeoutError(generation_id, timeout or 0.0) from None

    def untrack(self, generation_id: str) -> None:
        """Stop watching a generation; its handle stays pending forever."""
        if self._jobs.pop(generation_id, None) is not None:
            self._ended(generation_id)
            self._notify_listeners(None)

    def _ended(self, generation_id: str) -> None:
        if self.on_end is not None:
            self.on_end(generation_id)

    def notify(self, generation: Generation) -> bool:
        """Feed news of a generation from outside (a webhook); ``True`` if it ended a job.

        News of a finished generation that is not tracked yet is kept for a while: a
        callback can overtake the submitter's ``track()`` call, and the job should not
        then wait for its first poll.
        """
        job = self._jobs.get(generation.id)
        if job is None:
            if generation.is_finished:
                self._early[generation.id] = generation
                while len(self._early) > EARLY_NEWS_KEPT:
                    self._early.popitem(last=False)
            return False
        self._observe(job, generation, scheduled=False)
        return job.done()

    async def as_completed(self) -> AsyncIterator[Generation]:
        """Yield tracked generations as they finish (``COMPLETE`` or ``FAILED``).

        Jobs tracked while iterating are included; the iteration ends when no tracked
        job is pending. Jobs that time out or vanish are not yielded (their handles
        raise); they are logged.
        """
        send, receive = anyio.create_memory_object_stream[Generation | None](math.inf)
        self._listeners.add(send)
        try:
            while self._jobs or receive.statistics().current_buffer_used:
                item = await receive.receive()
                if item is not None:
                    yield item
        finally:
            self._listeners.discard(send)
            send.close()
            receive.close()

    def statistics(self) -> TrackerStatistics:
        """A snapshot of what the tracker holds and has done."""
        return TrackerStatistics(
            pending=len(self._jobs),
            complete=self._complete,
            failed=self._failed,
            errors=self._errors,
            polls=self._polls,
            listing_pages=self._pages,
        )

    # --- scheduling ---------------------------------------------------------------------

    def _push(self, job: TrackedJob, due: float) -> None:
        if job._deadline is not None:
            due = min(due, job._deadline)
        job._due = due
        heapq.heappush(self._heap, (due, next(self._seq), job))
        if self._heap[0][2] is job:
            self._wake.set()

    def _reschedule(self, job: TrackedJob, *, grow: bool = True) -> None:
        """Schedule the next look; ``grow=False`` (a sighting) keeps the interval where it is.

        A sighting before a job's first look leaves that look where it was: the first
        wait is the expected run time, and starting it again from the sighting would
        put the look that much later than the job's likely end.
        """
        job._polling = False
        if job.done() or self._jobs.get(job.generation_id) is not job:
            return
        if grow:
            job._checks += 1
        elif job._checks == 0:
            return
        self._push(job, anyio.current_time() + job._schedule.delay(job._checks, random.random()))

    def _spawn(self, work: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> bool:
        """Start ``work`` in the tracker's task group, unless the tracker is closing.

        Every task the tracker starts goes through here, so that closing (which sets
        ``_closing`` before it cancels the group) is the one place that decides when work
        stops being started. Returns whether it was started.
        """
        if self._tg is None or self._closing:
            return False
        self._tg.start_soon(work, *args)
        return True

    async def _run(self) -> None:
        while not self._closing:
            due = self._take_due()
            if due:
                self._dispatch(due)
                continue
            delay = self._heap[0][0] - anyio.current_time() if self._heap else math.inf
            self._wake = anyio.Event()
            with anyio.move_on_after(delay):
                await self._wake.wait()

    def _take_due(self) -> list[TrackedJob]:
        now = anyio.current_time()
        due: list[TrackedJob] = []
        heap = self._heap
        while heap and heap[0][0] <= now + COALESCE:
            when, _, job = heapq.heappop(heap)
            if job._due != when or job._polling or self._jobs.get(job.generation_id) is not job:
                continue  # stale entry: rescheduled, being looked at, or gone
            if job._deadline is not None and job._deadline <= now:
                self._end(job, None, WaitTimeoutError(job.generation_id, job._timeout or 0.0))
                continue
            job._polling = True
            due.append(job)
        return due

    # --- outcomes -----------------------------------------------------------------------

    def _observe(self, job: TrackedJob, generation: Generation, *, scheduled: bool) -> None:
        """Apply a fresh view of a job: finish it, or schedule its next look."""
        if job.done():
            return
        job.generation = generation
        job._missing_since = None
        status = generation.status
        if status == GenerationStatus.COMPLETE:
            if generation.video_url is None and job._no_url_looks < MISSING_URL_LOOKS:
                job._no_url_looks += 1
            else:
                self._end(job, generation, None)
                return
        elif status == GenerationStatus.FAILED:
            self._end(job, generation, GenerationFailedError(generation))
            return
        elif status != GenerationStatus.PENDING and status not in self._unknown_statuses:
            self._unknown_statuses.add(str(status))
            logger.warning("unknown generation status %r; treating it as not finished", status)
        if scheduled:
            self._reschedule(job)

    def _missing(self, job: TrackedJob) -> None:
        now = anyio.current_time()
        if job._missing_since is None:
            job._missing_since = now
        if now - job._missing_since >= self.vanish_grace:
            self._end(job, None, GenerationVanishedError(job.generation_id))
        else:
            self._reschedule(job)

    def _end(
        self, job: TrackedJob, generation: Generation | None, error: LeonardoError | None
    ) -> None:
        job._polling = False
        job._finish(generation, error)
        if self._jobs.get(job.generation_id) is job:
            del self._jobs[job.generation_id]
        self._ended(job.generation_id)
        if error is None:
            self._complete += 1
        elif isinstance(error, GenerationFailedError):
            self._failed += 1
        else:
            self._errors += 1
            # A deadline is the caller's own choice, and the caller gets the error: no warning.
            log = logger.info if isinstance(error, WaitTimeoutError) else logger.warning
            log("generation %s: %s", job.generation_id, error)
        finished = (
            job.generation if error is None or isinstance(error, GenerationFailedError) else None
        )
        self._notify_listeners(finished)
        self._progress()

    def _notify_listeners(self, item: Generation | None) -> None:
        for send in list(self._listeners):
            try:
                send.send_nowait(item)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                self._listeners.discard(send)

    def _progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.statistics())
