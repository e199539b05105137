"""JobTracker: many generations watched at once, from one scheduler task.

Per-job poll loops (what every other client does) cost a task and a timer per job, poll
in lockstep, and spend one request per job per look. Here one scheduler keeps a heap of
due times, so ten thousand jobs cost ten thousand small objects and no tasks. When a few
jobs are due at once, one page of ``GET /generations/user/{userId}`` reports many of them
("batched status"); jobs the pages did not show fall back to ``GET /generations/{id}``.
Every look goes through the client's key limiter, so polling shares the request budget
with submits and pauses with everyone else on a 429.

The tracker needs only a :class:`StatusSource` (the client's
:class:`~._client._endpoints.Endpoints` is one), which keeps it independent of HTTP and lets the
client own it. This module is the tracker's lifecycle, its scheduler loop and its
waiters. It is built from two collaborators that share one
:class:`~._watchlist.Watchlist` (the jobs, their due looks, their outcomes): the scheduler
here takes due jobs off it, and a :class:`~._lookout.Lookout` looks at them. The handle a
waiter holds is :mod:`._job`.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Final

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from .._errors import ClientStateError, WaitTimeoutError
from .._schedule import PollSchedule
from ..models import Generation
from ._job import ProgressCallback, StatusSource, TrackedJob, TrackerStatistics
from ._lookout import Lookout
from ._watchlist import Watchlist

__all__ = ["JobTracker", "ProgressCallback", "StatusSource", "TrackedJob", "TrackerStatistics"]

logger = logging.getLogger("leonardo_async")

#: Finished generations heard of (by webhook) before they were tracked, kept this many.
EARLY_NEWS_KEPT: Final = 4096


class JobTracker:
    """Watches many generations at once. Owned by a client; enter it with ``async with``.

    :param source: where generations are looked up (the client's
        :class:`~._client._endpoints.Endpoints`)
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
        self.schedule = schedule if schedule is not None else PollSchedule()
        self.on_progress = on_progress
        #: Told the id of each job the tracker stops watching (ended, timed out, dropped).
        self.on_end: Callable[[str], None] | None = None
        self._watchlist = Watchlist(vanish_grace=vanish_grace, ended=self._job_ended)
        self._lookout = Lookout(
            source,
            self._watchlist,
            spawn=self._spawn,
            progress=self._progress,
            batched=batched,
            polls_in_flight=polls_in_flight,
        )
        self._tg: TaskGroup | None = None
        #: Set when closing begins: from then on no look is started (see ``_spawn``).
        self._closing = False
        self._running = False
        self._listeners: set[MemoryObjectSendStream[Generation | None]] = set()
        self._early: OrderedDict[str, Generation] = OrderedDict()

    @property
    def batched(self) -> bool:
        """Whether listing pages are used to check many jobs per request (settable)."""
        return self._lookout.batched

    @batched.setter
    def batched(self, value: bool) -> None:
        self._lookout.batched = value

    @property
    def vanish_grace(self) -> float:
        """Seconds a job may be unknown to the server before it is an error (settable)."""
        return self._watchlist.vanish_grace

    @vanish_grace.setter
    def vanish_grace(self, value: float) -> None:
        self._watchlist.vanish_grace = value

    # --- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> JobTracker:
        if self._tg is not None:
            raise ClientStateError("the tracker is already running: enter its client once")
        self._lookout.open()
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
        self._lookout.stop()
        tg.cancel_scope.cancel()
        try:
            await tg.__aexit__(None, None, None)
        finally:
            self._tg = None
            self._closing = False
            self._lookout.close()
            self._watchlist.close()
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
        job = self._watchlist.jobs.get(generation_id)
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
        self._watchlist.add(job)
        early = self._early.pop(generation_id, None)
        if early is not None:
            self._watchlist.observe(job, early, scheduled=False)
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
        job = self._watchlist.jobs.get(generation_id)
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
        if self._watchlist.drop(generation_id):
            self._ended(generation_id)
            self._notify_listeners(None)

    def notify(self, generation: Generation) -> bool:
        """Feed news of a generation from outside (a webhook); ``True`` if it ended a job.

        News of a finished generation that is not tracked yet is kept for a while: a
        callback can overtake the submitter's ``track()`` call, and the job should not
        then wait for its first poll.
        """
        job = self._watchlist.jobs.get(generation.id)
        if job is None:
            if generation.is_finished:
                self._early[generation.id] = generation
                while len(self._early) > EARLY_NEWS_KEPT:
                    self._early.popitem(last=False)
            return False
        self._watchlist.observe(job, generation, scheduled=False)
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
            while self._watchlist.jobs or receive.statistics().current_buffer_used:
                item = await receive.receive()
                if item is not None:
                    yield item
        finally:
            self._listeners.discard(send)
            send.close()
            receive.close()

    def statistics(self) -> TrackerStatistics:
        """A snapshot of what the tracker holds and has done."""
        watchlist = self._watchlist
        return TrackerStatistics(
            pending=len(watchlist.jobs),
            complete=watchlist.complete,
            failed=watchlist.failed,
            errors=watchlist.errors,
            polls=self._lookout.polls,
            listing_pages=self._lookout.pages,
        )

    # --- scheduling ---------------------------------------------------------------------

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
            due = self._watchlist.take_due()
            if due:
                self._lookout.dispatch(due)
                continue
            await self._watchlist.sleep_until_due()

    # --- outcomes -----------------------------------------------------------------------

    def _ended(self, generation_id: str) -> None:
        if self.on_end is not None:
            self.on_end(generation_id)

    def _job_ended(self, job: TrackedJob, finished: Generation | None) -> None:
        """The watchlist's hook: a job ended (and left the list)."""
        self._ended(job.generation_id)
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
