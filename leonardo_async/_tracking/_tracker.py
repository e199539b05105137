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
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from typing import Any, Final

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from .._errors import (
    ClientStateError,
    GenerationFailedError,
    GenerationVanishedError,
    LeonardoError,
    WaitTimeoutError,
)
from .._schedule import PollSchedule
from ..models import Generation, GenerationJob
from ._job import (
    ProgressCallback,
    StatusSource,
    TrackedJob,
    TrackerStatistics,
    UpdateCallback,
    Watch,
)
from ._lookout import Fleet, Lookout
from ._watchlist import Watchlist

__all__ = ["JobTracker", "ProgressCallback", "StatusSource", "TrackedJob", "TrackerStatistics"]

logger = logging.getLogger("leonardo_async")

#: Finished generations heard of (by webhook) before they were tracked, kept this many.
EARLY_NEWS_KEPT: Final = 4096
#: Ids a WARNING at closing names, at the most (the rest are counted).
PENDING_NAMED: Final = 20

#: Ids this client vouched for (submitted or adopted) before they were tracked, kept this
#: many: far more than can be in flight, so a job is tracked long before it is forgotten.
VOUCHED_KEPT: Final = 65536


#: A sighting from another worker's round puts the job's own look this fraction of an
#: interval past the next round, so the round comes first.
FLEET_SLACK: Final = 0.25


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
    :param on_end: told the id of each job the tracker stops watching (ended, timed out,
        dropped): the key's limiter frees its in-flight slot
    :param on_vanished: told the id of each job the server stopped knowing past the
        vanish grace: the evidence stops waiting for the listing to show it
    :param fleet: the key's other workers, whose listing rounds serve this tracker's
        jobs too (see :mod:`._lookout`; ``None``: alone)
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
        on_end: Callable[[str], None] | None = None,
        on_vanished: Callable[[str], None] | None = None,
        fleet: Fleet | None = None,
    ) -> None:
        self.schedule = schedule if schedule is not None else PollSchedule()
        self.on_progress = on_progress
        self._progress_failed = False
        self._on_end = on_end
        self._on_vanished = on_vanished
        self._watchlist = Watchlist(vanish_grace=vanish_grace, ended=self._job_ended)
        self._lookout = Lookout(
            source,
            self._watchlist,
            spawn=self._spawn,
            progress=self._progress,
            batched=batched,
            polls_in_flight=polls_in_flight,
            fleet=fleet,
        )
        self._fleet = fleet
        self._tg: TaskGroup | None = None
        #: Set when closing begins: from then on no look is started (see ``_spawn``).
        self._closing = False
        self._running = False
        self._listeners: set[MemoryObjectSendStream[Generation | None]] = set()
        self._early: OrderedDict[str, Generation] = OrderedDict()
        self._vouched: OrderedDict[str, bool] = OrderedDict()

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
        if self._fleet is not None:
            self._tg.start_soon(self._hear, self._fleet)
        return self

    async def _hear(self, fleet: Fleet) -> None:
        """Take what the other workers say, until the fleet closes its news."""
        async for sighting, generation in fleet.news:
            try:
                if sighting:
                    self.sighted(generation)
                elif self.notify(generation):
                    logger.debug(
                        "generation %s ended by a callback another replica received",
                        generation.id,
                    )
            except Exception:
                # As for a callback received here: the handle is settled before progress
                # callbacks run, so their failure is the application's, seen in the log.
                logger.exception("tracker failed on news of %s", generation.id)

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
        self._warn_pending()
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

        A job this client submitted just now (see :meth:`vouch`) is first looked at after
        the schedule's ``initial``; any other is looked at once (it may have finished
        long ago), then by the schedule. If the server does not know an id this client
        did not vouch for, its handle fails with :class:`GenerationNotFoundError` about a
        second later.
        """
        if self._tg is None or self._closing:
            raise ClientStateError(
                "the tracker is not running: use the client inside 'async with LeonardoClient()'"
            )
        now = anyio.current_time()
        job = self._watchlist.jobs.get(generation_id)
        if job is not None:
            job.untrack_when_abandoned = False
            if job.background and not background:
                job.background = False
                job.timeout = deadline
                job.deadline = None if deadline is None else now + deadline
                job.schedule = schedule or job.schedule
            return job.handle
        job = Watch(
            self,
            generation_id,
            schedule or self.schedule,
            None if deadline is None else now + deadline,
        )
        job.timeout = deadline
        job.background = background
        fresh = self._vouched.get(generation_id)
        job.vouched = fresh is not None or background
        job.fresh = bool(fresh) or (background and fresh is None)
        if fresh:  # tracked again later, it is no longer just submitted
            self._vouched[generation_id] = False
        self._watchlist.add(job)
        early = self._early.pop(generation_id, None)
        if early is not None:
            self._watchlist.observe(job, early, scheduled=False)
        if not self._running:
            self._running = self._spawn(self._run)
        return job.handle

    def vouch(self, generation_id: str, *, fresh: bool) -> None:
        """Say that a generation exists (this client submitted or adopted it), so that
        tracking it allows the server the whole vanish grace to show it.

        :param fresh: submitted just now: the first look waits the schedule's ``initial``
        """
        self._vouched[generation_id] = fresh
        self._vouched.move_to_end(generation_id)
        while len(self._vouched) > VOUCHED_KEPT:
            self._vouched.popitem(last=False)

    async def wait(
        self,
        generation_id: str,
        *,
        timeout: float | None = None,
        schedule: PollSchedule | None = None,
        on_update: UpdateCallback | None = None,
    ) -> Generation:
        """Track a generation and wait for it; stop polling if the wait is abandoned.

        :param on_update: called with each state a look sees, until the wait ends
        """
        job = self._watchlist.jobs.get(generation_id)
        if job is None:  # watched for this wait (and any that join it) only
            self.track(generation_id, schedule=schedule)
            job = self._watchlist.jobs[generation_id]
            job.untrack_when_abandoned = True
        if on_update is not None:
            job.observers.append(on_update)
        try:
            if timeout is None:
                return await job.handle  # no cancel scope: most waits have no deadline
            with anyio.fail_after(timeout):
                return await job.handle
        except TimeoutError as exc:
            if isinstance(exc, WaitTimeoutError) or timeout is None:
                raise
            raise WaitTimeoutError(generation_id, timeout or 0.0) from None
        finally:
            if on_update in job.observers:
                job.observers.remove(on_update)

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

    def sighted(self, generation: Generation) -> None:
        """Take a generation another worker's listing round showed as a look at it: a
        pending one's next look moves an interval on (so the fleet's next round comes
        first), a finished one ends its job. Untracked ones are ignored: a sighting is a
        look, not news to keep."""
        job = self._watchlist.jobs.get(generation.id)
        if job is None or job.done():
            return
        job.missing_since = None
        if generation.is_finished:
            self._watchlist.observe(job, generation, scheduled=False)
        elif not job.looking:
            self._watchlist.reschedule(job, grow=False, later=FLEET_SLACK)
        self._lookout.fleet_sightings += 1

    async def as_completed(
        self,
        jobs: Iterable[str | GenerationJob | TrackedJob] | None = None,
        *,
        follow: bool = False,
    ) -> AsyncIterator[Generation]:
        """Yield generations as they finish (``COMPLETE`` or ``FAILED``).

        Three forms, by what the iteration waits for:

        - ``as_completed()``: the jobs tracked now and while iterating, until none is
          pending. Started with nothing tracked it would end at once (before the first
          submit, say), so it raises :class:`ClientStateError` instead.
        - ``as_completed(jobs)``: these jobs (ids, submitted jobs or handles), tracked if
          they are not yet, until each has ended.
        - ``as_completed(follow=True)``: every job tracked, now or later, until the
          tracker closes (or the caller stops iterating): a consumer may start before
          the first submit.

        Jobs that time out or vanish are not yielded (their handles raise); they are
        logged.

        :raises ClientStateError: the first form with nothing tracked
        """
        if jobs is None and not follow and not self._watchlist.jobs:
            raise ClientStateError(
                "as_completed(): no job is tracked yet, so it would end at once; pass the "
                "jobs to wait for, or follow=True to take the jobs tracked later"
            )
        send, receive = anyio.create_memory_object_stream[Generation | None](math.inf)
        self._listeners.add(send)  # before tracking: a job may end inside track()
        try:
            if jobs is None:
                while (
                    follow or self._watchlist.jobs or receive.statistics().current_buffer_used
                ) and self._tg is not None:
                    item = await receive.receive()
                    if item is not None:
                        yield item
                return
            wanted = {job.generation_id: job for job in map(self._handle, jobs)}
            for generation_id, job in list(wanted.items()):
                if job.done():  # ended before this call listened
                    del wanted[generation_id]
                    finished = _finished(job)
                    if finished is not None:
                        yield finished
            while wanted and self._tg is not None:
                item = await receive.receive()
                if item is not None and wanted.pop(item.id, None) is not None:
                    yield item
                for generation_id, job in list(wanted.items()):
                    # Ended without a generation (timed out, vanished, closed), or no
                    # longer watched: nothing will come for it.
                    record = self._watchlist.jobs.get(generation_id)
                    watched = record is not None and record.handle is job
                    if not watched and _finished(job) is None:
                        del wanted[generation_id]
        finally:
            self._listeners.discard(send)
            send.close()
            receive.close()

    def _handle(self, job: str | GenerationJob | TrackedJob) -> TrackedJob:
        """The handle watching ``job``, tracking it if it is not watched."""
        if isinstance(job, TrackedJob):
            return job
        return self.track(job if isinstance(job, str) else job.id)

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
            fleet_rounds=self._lookout.fleet_rounds,
            fleet_sightings=self._lookout.fleet_sightings,
        )

    # --- scheduling ---------------------------------------------------------------------

    def spawn(self, work: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> bool:
        """Run ``work`` in the background for as long as the client is open (cancelled
        when it closes); ``False`` if it is closing. For work that must outlive the
        caller that started it, such as looking for the job of a cancelled submit."""
        return self._spawn(work, *args)

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
        if self._on_end is not None:
            self._on_end(generation_id)

    def _job_ended(self, job: Watch, finished: Generation | None) -> None:
        """The watchlist's hook: a job ended (and left the list)."""
        self._ended(job.generation_id)
        if self._on_vanished is not None and isinstance(job.error, GenerationVanishedError):
            self._on_vanished(job.generation_id)
        self._notify_listeners(finished)
        self._progress()

    def _warn_pending(self) -> None:
        """Name the jobs still running when the tracker closes: they are paid for, and
        nobody watches them any more."""
        pending = list(self._watchlist.jobs)
        if not pending:
            return
        named = ", ".join(pending[:PENDING_NAMED])
        more = len(pending) - PENDING_NAMED
        logger.warning(
            "closing with %d generation(s) not finished, no longer watched (they keep "
            "running on the server, and are paid for): %s%s; wait for one with "
            "client.wait(id) or 'leonardo-async wait ID'",
            len(pending),
            named,
            f" and {more} more" if more > 0 else "",
        )

    def _notify_listeners(self, item: Generation | None) -> None:
        for send in list(self._listeners):
            try:
                send.send_nowait(item)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                self._listeners.discard(send)

    def _progress(self) -> None:
        """Tell the application's callback; a callback that raises is the application's
        bug, logged (at ERROR the first time, then at DEBUG), never the end of the
        tracker: the jobs it watches are paid for and must still be seen to end."""
        if self.on_progress is None:
            return
        try:
            self.on_progress(self.statistics())
        except Exception:
            level = logging.DEBUG if self._progress_failed else logging.ERROR
            self._progress_failed = True
            logger.log(level, "the on_progress callback raised; tracking goes on", exc_info=True)


def _finished(job: TrackedJob) -> Generation | None:
    """The generation an ended job hands on: ``COMPLETE`` or ``FAILED``, else ``None``."""
    if not job.done():
        return None
    try:
        return job.result()
    except GenerationFailedError as exc:
        return exc.generation
    except LeonardoError:
        return None
