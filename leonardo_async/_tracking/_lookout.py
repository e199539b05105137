"""How the tracker looks at jobs: per-job polls from a worker pool, and listing rounds.

A *look* is one reading of a job's status, due by its poll schedule. A *round*
serves many due looks with pages of ``GET /generations/user/{userId}``, newest first: each
pending job the pages show is a *sighting*, which counts as a look. Jobs a round did not
show fall back to their own ``GET /generations/{id}``. Rounds are used while they cost no
more pages than there are pending jobs, and pause after a round that showed none of its
jobs (the listing may not show video jobs at all).

**A fleet's rounds.** Workers that share the key's limits through Redis each hold a few
of the key's jobs, too few for a round of their own, yet one listing page shows them all.
With a :class:`Fleet`, a worker whose due jobs would be polled one by one first claims
the fleet's round for one poll interval: the worker that gets it reads the page and
publishes every generation on it to the others, who take those as sightings; a worker
whose job comes due while another holds the round polls it as before (its sighting did
not come), so a lister that dies or reads too shallow costs polls, never a job.

:class:`Lookout` is the tracker's collaborator for this: the scheduler hands it the jobs
that are due, and it reports what it saw to the :class:`~._watchlist.Watchlist` the two
share. It starts its tasks only through the ``spawn`` it is given, so that the tracker
alone decides when work stops being started.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, Final, Protocol

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._errors import (
    LeonardoError,
    RateLimitError,
    ResponseShapeError,
    ServerError,
    TransportError,
)
from .._listing import ListingEntry
from ..models import Generation
from ._job import StatusSource, Watch
from ._watchlist import Watchlist

__all__ = ["Lookout", "Spawn"]

logger = logging.getLogger("leonardo_async")

#: Pending jobs below this are polled one by one: a listing page would not pay off.
BATCH_MIN_PENDING: Final = 3
#: A listing round also serves every job due within this fraction of its own interval, so
#: one round per poll interval serves all the jobs (not one round per jittered due time).
ROUND_AHEAD: Final = 0.5
#: A fleet round passes on what a page shows of generations made within this of its
#: newest: jobs older than that finished long ago.
FLEET_NEWS_AGE: Final = timedelta(hours=1)
#: After a listing round that showed none of its due jobs, listing pauses this long.
LISTING_BACKOFF: Final = 60.0


class Fleet(Protocol):
    """The other workers of the key (see the module docstring)."""

    async def claim_round(self, fewest: int, seconds: float) -> bool | None:
        """``True``: this worker reads the fleet's round; ``False``: another does;
        ``None``: no fleet round (too few jobs, or Redis away)."""
        ...

    def publish_page(self, generations: list[Generation]) -> None:
        """Pass a listing page's generations to the other workers (never waits)."""
        ...

    @property
    def news(self) -> MemoryObjectReceiveStream[tuple[bool, Generation]]:
        """What the other workers said: ``(True, g)`` a sighting from their round,
        ``(False, g)`` a webhook callback one of them received."""
        ...


class Spawn(Protocol):
    """Starts ``work`` in the tracker's task group; ``False`` (nothing started) once closing."""

    def __call__(self, work: Callable[..., Coroutine[Any, Any, None]], /, *args: Any) -> bool: ...


class Lookout:
    """The ways of looking at due jobs (see the module docstring).

    :param source: where generations are looked up
    :param watchlist: the jobs watched, shared with the scheduler; what a look sees goes here
    :param spawn: how the lookout starts its tasks (a round, a poll worker)
    :param progress: called after a round of looks, for the tracker's progress callback
    :param batched: use listing pages to check many jobs per request
    :param polls_in_flight: cap on per-job status requests in flight
    :param fleet: the key's other workers, for the fleet's rounds (``None``: alone)
    """

    def __init__(
        self,
        source: StatusSource,
        watchlist: Watchlist,
        *,
        spawn: Spawn,
        progress: Callable[[], None],
        batched: bool,
        polls_in_flight: int,
        fleet: Fleet | None = None,
    ) -> None:
        self._source = source
        self._fleet = fleet
        #: Fleet rounds this worker read, and sightings heard from others' rounds.
        self.fleet_rounds = self.fleet_sightings = 0
        self._watchlist = watchlist
        self._spawn = spawn
        self._progress = progress
        self.batched = batched
        #: Per-job status requests and listing pages read so far.
        self.polls = self.pages = 0
        self._max_workers = polls_in_flight
        self._workers = self._idle_workers = 0
        # The poll queue belongs to a running tracker: made by open(), closed by close().
        self._poll_send: MemoryObjectSendStream[Watch] | None = None
        self._poll_receive: MemoryObjectReceiveStream[Watch] | None = None
        self._stopped = True
        self._backlog: list[Watch] = []
        self._in_round = False
        self._listing_paused_until = 0.0

    # --- lifecycle (the tracker's) ------------------------------------------------------

    def open(self) -> None:
        """Make the poll queue, for a tracker that starts running."""
        self._poll_send, self._poll_receive = anyio.create_memory_object_stream[Watch](math.inf)
        self._workers = self._idle_workers = 0
        self._stopped = False

    def stop(self) -> None:
        """Queue no more polls: the tracker is closing."""
        self._stopped = True

    def close(self) -> None:
        """Close the poll queue, once the tracker's tasks are gone."""
        self._stopped = True
        for stream in (self._poll_send, self._poll_receive):
            if stream is not None:
                stream.close()
        self._poll_send = self._poll_receive = None

    # --- looking ------------------------------------------------------------------------

    def dispatch(self, due: list[Watch]) -> None:
        """Look at the jobs the scheduler found due: by a listing round, or one by one."""
        use_listing = (
            self.batched
            and len(self._watchlist.jobs) >= BATCH_MIN_PENDING
            and anyio.current_time() >= self._listing_paused_until
            and self._pages_to_reach(due) <= len(self._watchlist.jobs)
        )
        if use_listing and self._in_round:
            self._backlog.extend(due)
        elif use_listing:
            self._in_round = self._spawn(self._round, due + self._nearly_due())
        elif (
            self._fleet is not None
            and self.batched
            and not self._in_round
            and anyio.current_time() >= self._listing_paused_until
        ):
            self._in_round = self._spawn(self._fleet_look, due)
        else:
            for job in due:
                self._queue_poll(job)

    async def _fleet_look(self, due: list[Watch]) -> None:
        """Claim the fleet's round for one interval and read it, or poll ``due``."""
        assert self._fleet is not None
        interval = min(job.schedule.nominal(job.looks) for job in due)
        try:
            mine = await self._fleet.claim_round(BATCH_MIN_PENDING, interval)
        except Exception as exc:  # a round not claimed costs polls, never a job
            logger.info("fleet round not claimed (%s); polling", exc)
            mine = None
        except BaseException:
            self._in_round = False
            raise
        if mine:
            self.fleet_rounds += 1
            await self._round(due + self._nearly_due())
            return
        self._in_round = False
        for job in due:
            self._queue_poll(job)

    def _nearly_due(self) -> list[Watch]:
        """Jobs a listing round may as well serve now: due within :data:`ROUND_AHEAD` of
        their interval. Each is taken as its own look, so the jobs' next looks fall
        together and the next round serves them all again."""
        now = anyio.current_time()
        taken = []
        for job in self._watchlist.jobs.values():
            if job.looking or job.done():
                continue
            if job.due <= now + ROUND_AHEAD * job.schedule.nominal(job.looks):
                job.looking = True
                taken.append(job)
        return taken

    def _pages_to_reach(self, due: list[Watch]) -> int:
        """Listing pages to read, newest first, to reach the oldest of ``due``.

        Every job tracked since then (finished or not) sits above it. A round of listing
        looks at every pending job it passes, so it pays off while it costs no more pages
        than there are pending jobs; past that (a few old jobs behind many finished
        ones), per-job looks are cheaper.
        """
        depth = self._watchlist.tracked - min(job.order for job in due)
        return self._source.listing.pages_for(depth)

    def _queue_poll(self, job: Watch) -> None:
        """Hand a job to the poll workers, starting one if none is free (up to the cap).

        A fixed pool, not a task per look: ten thousand due jobs wait in the queue as
        references, not as ten thousand tasks.
        """
        if self._poll_send is None or self._stopped:
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

    async def _poll(self, job: Watch) -> None:
        """One ``GET /generations/{id}``; transient failures just move to the next look."""
        try:
            self.polls += 1
            generation = await self._source.get_generation(job.generation_id)
        except (TransportError, ServerError, RateLimitError, ResponseShapeError) as exc:
            logger.info("status of %s not read (%s); will look again", job.generation_id, exc)
            self._watchlist.reschedule(job)
            return
        except LeonardoError as exc:  # 401, 404, an id the client refuses: this job ends
            self._watchlist.end(job, None, exc)
            return
        if generation is None:
            self._watchlist.missing(job)
        else:
            self._watchlist.observe(job, generation, scheduled=True)
        self._progress()

    async def _round(self, due: list[Watch]) -> None:
        """Look at many jobs through listing pages; fall back per job for the unseen."""
        try:
            while due:
                # A page may finish a job that waits in the backlog or is still due (it
                # shows every tracked job it lists): such a job needs no look and must
                # not count as one the listing failed to show.
                unseen = [
                    job for job in await self._scan_listing(due) if self._watchlist.awaited(job)
                ]
                if len(unseen) >= BATCH_MIN_PENDING and len(unseen) == len(due):
                    self._listing_paused_until = anyio.current_time() + LISTING_BACKOFF
                    logger.info("listing showed none of %d due jobs; polling one by one", len(due))
                now = anyio.current_time()
                for job in unseen:
                    if job.due > now:  # only nearly due: its own look is still to come
                        job.looking = False
                        self._watchlist.push(job, job.due)
                    else:
                        self._queue_poll(job)
                due = [job for job in self._backlog if self._watchlist.awaited(job)]
                self._backlog = []
                self._progress()
        finally:
            self._in_round = False

    async def _scan_listing(self, due: list[Watch]) -> list[Watch]:
        """Read listing pages until every due job is seen; return the ones not seen."""
        remaining = {job.generation_id: job for job in due}
        # Deep enough for the oldest due job in a newest-first listing, and a little more
        # (other clients of the key may have added generations); such a listing usually
        # stops earlier, at the first page older than the oldest due job.
        walk = self._source.listing.walk(
            newer_than=min(job.since for job in due),
            max_pages=self._pages_to_reach(due) + 2,
            overlap=False,  # a job a deletion shifts out of sight is looked at by itself
        )
        try:
            async for page in walk:
                self._read_page(page, remaining)
                if self._fleet is not None:
                    self._fleet.publish_page(self._readable(page))
                if not remaining:
                    break
        except LeonardoError as exc:
            logger.info("listing page not read (%s)", exc)
        finally:
            self.pages += walk.pages
        return list(remaining.values())

    def _readable(self, page: list[ListingEntry]) -> list[Generation]:
        """What the page says to the other workers: every generation on it that is not
        ours, pending or finished, but those made :data:`FLEET_NEWS_AGE` before the
        page's newest (an account's history is nobody's news; the server's own
        timestamps, so no clock is compared with ours)."""
        made = [entry.created_at for entry in page if entry.created_at is not None]
        cut = max(made) - FLEET_NEWS_AGE if made else None
        generations = []
        for entry in page:
            if entry.id in self._watchlist.jobs:
                continue
            if cut is not None and entry.created_at is not None and entry.created_at < cut:
                continue
            try:
                generations.append(entry.generation())
            except ResponseShapeError:
                continue
        return generations

    def _read_page(self, page: list[ListingEntry], remaining: dict[str, Watch]) -> None:
        """Apply one listing page to the jobs it shows."""
        for entry in page:
            job = self._watchlist.jobs.get(entry.id)
            if job is None or job.done():
                continue
            scheduled = remaining.pop(job.generation_id, None) is not None
            if entry.pending:
                job.missing_since = None
                if scheduled or not job.looking:
                    # A sighting is a look, due or not: pushing every job seen back by
                    # its own interval makes the next round serve them all together.
                    # Only a job's own due look grows its interval, so sightings that
                    # other jobs' rounds bring do not stretch its schedule.
                    self._watchlist.reschedule(job, grow=scheduled)
                continue
            try:
                generation = entry.generation()
            except ResponseShapeError as exc:
                logger.info("listing entry for %s unreadable (%s)", job.generation_id, exc)
                if scheduled:
                    self._watchlist.reschedule(job)
                continue
            self._watchlist.observe(job, generation, scheduled=scheduled)
