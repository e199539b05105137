"""The tracker's parts on their own, on virtual time: computed, never waited for.

:class:`Watchlist` (the book of watched jobs, their due looks and outcomes) is driven
directly; :class:`JobTracker` (the scheduler over it and the :class:`Lookout`) reads a
:class:`Server` of jobs that end at given times on the loop's clock, either as its
:class:`StatusSource` or, for listing rounds, through a client over
:class:`MockTransport`. The loop is :mod:`_virtual_time`'s, so the real defaults (a first
look at 20 s, a 30 s vanish grace, a minute's listing backoff) cost no time, and each
time a test reads is exactly the one the tracker computed. The loopback tests of the same
behaviour (tests/test_tracker.py) keep the wire.
"""

from __future__ import annotations

import itertools
import logging
import math
from datetime import datetime, timezone
from typing import Any

import anyio
import pytest
from _helpers import FAST, MOCK_BASE, mock_client, raises_clean
from _virtual_time import VIRTUAL_TIME

from leonardo_async import (
    GeneratedImage,
    Generation,
    GenerationFailedError,
    GenerationNotFoundError,
    GenerationStatus,
    GenerationVanishedError,
    JobTracker,
    LeonardoClient,
    PollSchedule,
    Request,
    Response,
    ServerError,
    TrackerClosedError,
    WaitTimeoutError,
)
from leonardo_async._listing import LISTING_LAG, Listing
from leonardo_async._tracking._job import Watch
from leonardo_async._tracking._lookout import LISTING_BACKOFF
from leonardo_async._tracking._watchlist import MISSING_URL_LOOKS, UNKNOWN_GRACE, Watchlist

BASE = MOCK_BASE
CDN = "https://cdn.test"
#: The documented defaults (PollSchedule's docstring): first look at 20 s, then 5 s
#: growing by 1.5 to 10 s.
VEO = PollSchedule()


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    return VIRTUAL_TIME


def now() -> float:
    return anyio.current_time()


class Server:
    """Jobs that end at given times on the loop's clock; it counts each look at a job.

    A job is ``PENDING`` until its end, then ``COMPLETE`` (or ``FAILED``); an id it does
    not hold is unknown (``None``), as a vanished job is.
    """

    def __init__(self, runs: float = 0.1) -> None:
        #: How long a job submitted through the wire runs.
        self.runs = runs
        self.ends: dict[str, tuple[float, GenerationStatus]] = {}
        self.looks: dict[str, list[float]] = {}
        self.pages: list[float] = []
        self.failing = 0
        self.listing_shows = True
        self.created = datetime.now(timezone.utc)

    def job(self, generation_id: str, runs: float, status: str = "COMPLETE") -> str:
        self.ends[generation_id] = (now() + runs, GenerationStatus(status))
        return generation_id

    def generation(self, generation_id: str) -> Generation | None:
        if generation_id not in self.ends:
            return None
        end, status = self.ends[generation_id]
        if now() < end:
            return Generation(generation_id, GenerationStatus.PENDING, created_at=self.created)
        video = GeneratedImage(f"img-{generation_id}", motion_mp4_url=f"{CDN}/{generation_id}.mp4")
        images = (video,) if status is GenerationStatus.COMPLETE else ()
        return Generation(generation_id, status, created_at=self.created, generated_images=images)

    # --- as a StatusSource --------------------------------------------------------------

    async def get_generation(self, generation_id: str) -> Generation | None:
        self.looks.setdefault(generation_id, []).append(now())
        if self.failing:
            self.failing -= 1
            raise ServerError(503, "busy", "GET /generations/{id}")
        return self.generation(generation_id)

    @property
    def listing(self) -> Listing:
        raise AssertionError("per-job polls only: the listing is not read")

    # --- as the wire, for a client over MockTransport -----------------------------------

    def handle(self, request: Request) -> Response:
        path = request.url.removeprefix(BASE)
        if path == "/me":
            user = {"user": {"id": "u-1", "username": "tester"}, "apiConcurrencySlots": 3}
            return Response.json(200, {"user_details": [user]})
        if path == "/generations-image-to-video" and request.method == "POST":
            generation_id = self.job(f"gen-{len(self.ends) + 1}", runs=self.runs)
            job = {"generationId": generation_id, "apiCreditCost": None, "cost": None}
            return Response.json(200, {"motionVideoGenerationJob": job})
        if path.startswith("/generations/user/"):
            self.pages.append(now())
            params = request.params or {}
            offset, limit = int(params.get("offset", 0)), int(params.get("limit", 10))
            ids = list(reversed(self.ends))[offset : offset + limit] if self.listing_shows else []
            return Response.json(200, {"generations": [self.wire(i) for i in ids]})
        if path.startswith("/generations/"):
            generation_id = path.rsplit("/", 1)[1]
            self.looks.setdefault(generation_id, []).append(now())
            known = generation_id in self.ends
            return Response.json(
                200, {"generations_by_pk": self.wire(generation_id) if known else None}
            )
        return Response.json(404, {"error": "not found", "path": "$", "code": "not-found"})

    def wire(self, generation_id: str) -> dict[str, Any]:
        generation = self.generation(generation_id)
        assert generation is not None
        images = [
            {
                "id": image.id,
                "url": f"{CDN}/{generation_id}.jpg",
                "motionMP4URL": image.motion_mp4_url,
            }
            for image in generation.generated_images
        ]
        return {
            "id": generation_id,
            "status": str(getattr(generation.status, "value", generation.status)),
            "createdAt": self.created.isoformat(timespec="milliseconds"),
            "prompt": "clip",
            "generated_images": images,
        }


class Ended:
    """The watchlist's end hook, recording what it is told."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Generation | None]] = []

    def __call__(self, job: Watch, generation: Generation | None) -> None:
        self.calls.append((job.generation_id, generation))


def book(vanish_grace: float = 30.0) -> tuple[Watchlist, Ended, JobTracker]:
    """A watchlist with a recording end hook, and a (never entered) tracker for the
    records' handles."""
    ended = Ended()
    return Watchlist(vanish_grace=vanish_grace, ended=ended), ended, JobTracker(Server())


def pending(generation_id: str) -> Generation:
    return Generation(generation_id, GenerationStatus.PENDING)


# --- the watchlist ------------------------------------------------------------------------


async def test_a_job_from_elsewhere_is_due_at_once_and_taken_once() -> None:
    """A job not just submitted is looked at now; taking it marks it, so a second take (a
    stale heap entry, a round in the same instant) does not look at it twice."""
    watchlist, _, tracker = book()
    job = Watch(tracker, "g-1", VEO, None)
    watchlist.add(job)
    assert job.due == now()
    assert watchlist.take_due() == [job]
    assert watchlist.take_due() == []
    watchlist.reschedule(job)
    assert job.looks == 1
    assert VEO.start * 0.9 <= job.due - now() <= VEO.start * 1.1
    assert watchlist.take_due() == []


async def test_a_later_push_leaves_the_earlier_entry_stale() -> None:
    """Only a job's latest due time counts; the heap entry it replaced is skipped."""
    watchlist, _, tracker = book()
    job = Watch(tracker, "g-1", VEO, None)
    watchlist.add(job)
    watchlist.push(job, now() + 50)
    assert watchlist.take_due() == []
    await anyio.sleep(50)
    assert watchlist.take_due() == [job]


async def test_a_deadline_comes_before_any_later_look_and_ends_the_job_when_taken() -> None:
    """A due time past the deadline is the deadline; at it the job ends with
    WaitTimeoutError, counted as an error and told to the hook without a generation."""
    watchlist, ended, tracker = book()
    job = Watch(tracker, "g-1", VEO, now() + 3)
    watchlist.add(job)
    assert watchlist.take_due() == [job]
    watchlist.reschedule(job)  # about 5 s on, past the deadline
    assert job.due == now() + 3
    await anyio.sleep(3)
    assert watchlist.take_due() == []
    assert job.done()
    with pytest.raises(WaitTimeoutError):
        job.handle.result()
    assert (watchlist.errors, ended.calls, watchlist.jobs) == (1, [("g-1", None)], {})


async def test_a_complete_job_without_a_video_url_is_looked_at_a_few_more_times() -> None:
    """A COMPLETE answer without an MP4 URL (a replica behind) is not believed at once:
    it is looked at MISSING_URL_LOOKS more times, then accepted as it is."""
    watchlist, ended, tracker = book()
    job = Watch(tracker, "g-1", VEO, None)
    watchlist.add(job)
    bare = Generation("g-1", GenerationStatus.COMPLETE)
    for look in range(MISSING_URL_LOOKS):
        watchlist.observe(job, bare, scheduled=True)
        assert not job.done(), look
        assert job.looks == look + 1
    watchlist.observe(job, bare, scheduled=True)
    assert job.handle.result() is bare
    assert (watchlist.complete, ended.calls) == (1, [("g-1", bare)])


async def test_a_failed_job_ends_with_its_generation_and_is_counted_failed() -> None:
    watchlist, ended, tracker = book()
    job = Watch(tracker, "g-1", VEO, None)
    watchlist.add(job)
    failed = Generation("g-1", GenerationStatus.FAILED)
    watchlist.observe(job, failed, scheduled=False)
    with pytest.raises(GenerationFailedError) as info:
        job.handle.result()
    assert info.value.generation is failed
    assert (watchlist.failed, watchlist.errors, ended.calls) == (1, 0, [("g-1", failed)])
    watchlist.observe(job, Generation("g-1", GenerationStatus.COMPLETE), scheduled=True)
    assert job.generation is failed, "a finished job takes no later news"


async def test_an_unknown_status_is_not_finished_and_warned_of_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watchlist, _, tracker = book()
    jobs = [Watch(tracker, f"g-{n}", VEO, None) for n in range(3)]
    for job in jobs:
        watchlist.add(job)
    with caplog.at_level(logging.WARNING, logger="leonardo_async"):
        for job in jobs:
            watchlist.observe(job, Generation(job.generation_id, "QUEUED_ON_MARS"), scheduled=True)
    assert not any(job.done() for job in jobs)
    assert [job.looks for job in jobs] == [1, 1, 1]
    warned = [r for r in caplog.records if "QUEUED_ON_MARS" in r.getMessage()]
    assert len(warned) == 1


async def test_an_id_never_seen_is_not_found_after_the_unknown_grace() -> None:
    """An id from elsewhere the server does not know gets UNKNOWN_GRACE, not the vanish
    grace: its next look is put at the end of it, and that look ends it."""
    watchlist, ended, tracker = book(vanish_grace=30.0)
    job = Watch(tracker, "g-typo", VEO, None)
    watchlist.add(job)
    assert watchlist.take_due() == [job]
    watchlist.missing(job)
    assert job.due == now() + UNKNOWN_GRACE
    await anyio.sleep(UNKNOWN_GRACE)
    assert watchlist.take_due() == [job]
    watchlist.missing(job)
    with pytest.raises(GenerationNotFoundError):
        job.handle.result()
    assert ended.calls == [("g-typo", None)]


async def test_a_job_seen_once_then_unknown_has_the_whole_vanish_grace() -> None:
    """A job the server showed and then stopped knowing vanished only after the grace;
    a sighting in between starts the grace again."""
    watchlist, _, tracker = book(vanish_grace=30.0)
    job = Watch(tracker, "g-1", VEO, None)
    watchlist.add(job)
    watchlist.observe(job, pending("g-1"), scheduled=True)
    watchlist.missing(job)
    await anyio.sleep(29)
    watchlist.missing(job)
    assert not job.done()
    watchlist.observe(job, pending("g-1"), scheduled=True)
    await anyio.sleep(20)
    watchlist.missing(job)
    assert not job.done(), "the sighting started the grace again"
    await anyio.sleep(30)
    watchlist.missing(job)
    with pytest.raises(GenerationVanishedError):
        job.handle.result()


async def test_dropping_leaves_the_handle_pending_and_closing_fails_the_rest() -> None:
    watchlist, ended, tracker = book()
    kept, dropped = Watch(tracker, "g-1", VEO, None), Watch(tracker, "g-2", VEO, None)
    watchlist.add(kept)
    watchlist.add(dropped)
    assert watchlist.drop("g-2")
    assert not watchlist.drop("g-2")
    assert not watchlist.awaited(dropped)
    watchlist.close()
    assert not dropped.done()
    with pytest.raises(TrackerClosedError):
        kept.handle.result()
    assert (watchlist.jobs, watchlist.take_due(), ended.calls) == ({}, [], [])


# --- the tracker over a status source -------------------------------------------------------


async def test_a_90_s_job_costs_about_ten_looks_and_is_seen_within_an_interval() -> None:
    """PollSchedule's promise, computed on its defaults: a 90 s job is looked at about ten
    times (20 s, then 5 s growing to 10 s) and seen done at most one jittered 10 s
    interval after it ends."""
    server = Server()
    async with JobTracker(server, batched=False) as tracker:
        tracker.vouch(server.job("g-1", runs=90), fresh=True)  # as a submit does
        start = now()
        generation = await tracker.track("g-1")
    looks = server.looks["g-1"]
    assert generation.status is GenerationStatus.COMPLETE
    assert 8 <= len(looks) <= 12, [round(t - start, 1) for t in looks]
    assert VEO.initial * 0.9 <= looks[0] - start <= VEO.initial * 1.1
    assert 90 <= looks[-1] - start <= 90 + VEO.max_interval
    gaps = [b - a for a, b in itertools.pairwise(looks)]
    assert all(gap <= VEO.max_interval + 1e-9 for gap in gaps), gaps


async def test_failed_polls_move_to_the_next_look_and_never_lose_the_job() -> None:
    """Server errors on polls are looks that failed: the job is looked at again on its
    schedule and ends when the server answers."""
    server = Server()
    server.failing = 5
    async with JobTracker(server, batched=False) as tracker:
        server.job("g-1", runs=30)
        generation = await tracker.track("g-1")
    assert generation.status is GenerationStatus.COMPLETE
    assert len(server.looks["g-1"]) >= 6
    assert tracker.statistics().errors == 0


async def test_a_vouched_job_unknown_to_the_server_vanishes_after_the_grace_only() -> None:
    """A job this client submitted may be unknown for a while (a replica behind): it
    vanishes only once the whole 30 s grace has passed with the server not knowing it."""
    server = Server()
    vanished: list[str] = []
    async with JobTracker(server, batched=False, on_vanished=vanished.append) as tracker:
        tracker.vouch("g-gone", fresh=True)
        server.job("g-done", runs=1)
        start = now()
        with pytest.raises(GenerationVanishedError):
            await tracker.track("g-gone")
        took = now() - start
        await tracker.track("g-done")
    first = server.looks["g-gone"][0] - start
    assert 30 <= took - first <= 30 + VEO.max_interval
    assert tracker.statistics().errors == 1
    assert vanished == ["g-gone"]  # told of the one that vanished, not of the one done


async def test_an_id_from_elsewhere_is_not_found_after_about_a_second() -> None:
    """An id the client never vouched for is looked at at once and, unknown, fails after
    one more look a second later: a mistyped id is not waited on for 30 s."""
    server = Server()
    async with JobTracker(server, batched=False) as tracker:
        start = now()
        with pytest.raises(GenerationNotFoundError):
            await tracker.track("g-typo")
    assert [t - start for t in server.looks["g-typo"]] == [0.0, UNKNOWN_GRACE]


async def test_a_deadline_ends_the_handle_and_its_polling() -> None:
    """track(deadline=) fails the handle at the deadline, and the job is looked at no
    more, however long the tracker stays open."""
    server = Server()
    async with JobTracker(server, batched=False) as tracker:
        server.job("g-1", runs=600)
        start = now()
        with pytest.raises(WaitTimeoutError):
            await tracker.track("g-1", deadline=45)
        assert now() - start == pytest.approx(45)
        looked = len(server.looks["g-1"])
        await anyio.sleep(300)
        assert len(server.looks["g-1"]) == looked
        assert tracker.statistics().pending == 0


async def test_an_abandoned_wait_stops_polling_and_a_tracked_job_keeps_it() -> None:
    """A wait cancelled while its job runs stops the job's polling (nobody waits for it);
    a job that was also tracked by the caller stays watched."""
    server = Server()
    async with JobTracker(server, batched=False) as tracker:
        server.job("g-wait", runs=600)
        server.job("g-kept", runs=600)
        kept = tracker.track("g-kept")
        with anyio.move_on_after(60):
            await tracker.wait("g-wait")
        with anyio.move_on_after(60):
            await tracker.wait("g-kept")
        looked = len(server.looks["g-wait"])
        await anyio.sleep(300)
        assert len(server.looks["g-wait"]) == looked
        assert len(server.looks["g-kept"]) > looked
        assert not kept.done()
        assert tracker.statistics().pending == 1


async def test_many_jobs_due_together_are_polled_through_the_capped_worker_pool() -> None:
    """A hundred jobs due at once are all looked at, through at most polls_in_flight
    workers, and each ends when its own time comes."""
    server = Server()
    async with JobTracker(server, batched=False, polls_in_flight=4) as tracker:
        runs = {f"g-{n}": 25.0 + n for n in range(100)}
        for generation_id, seconds in runs.items():
            server.job(generation_id, runs=seconds)
        start = now()
        handles = [tracker.track(generation_id) for generation_id in runs]
        finished = [await handle for handle in handles]
    assert [g.status for g in finished] == [GenerationStatus.COMPLETE] * 100
    for generation_id, seconds in runs.items():
        assert seconds <= server.looks[generation_id][-1] - start <= seconds + VEO.max_interval
    assert tracker.statistics().complete == 100


# --- listing rounds, through a client over MockTransport ----------------------------------


def client_on(server: Server, **options: Any) -> LeonardoClient:
    """A client over ``server`` with the client's own poll schedule and listing window
    (on virtual time they cost nothing), reading status through listing rounds."""
    defaults = {"poll_schedule": PollSchedule(), "listing_lag": LISTING_LAG}
    return mock_client(
        server.handle,
        **{**defaults, "batched_status": True, "listing_shows_videos": True, **options},
    )


async def test_rounds_serve_many_jobs_with_a_page_each_interval() -> None:
    """Twenty jobs watched through listing rounds: each round's page shows them all, so
    the listing pages are about one per poll interval, not one look per job."""
    server = Server()
    async with client_on(server) as client:
        ids = [server.job(f"g-{n}", runs=60) for n in range(20)]
        handles = [client.track(generation_id) for generation_id in ids]
        finished = [await handle for handle in handles]
        stats = client.tracker_statistics()
    assert {g.status for g in finished} == {GenerationStatus.COMPLETE}
    per_job = sum(len(server.looks.get(i, [])) for i in ids)
    assert stats.listing_pages == len(server.pages) >= 2
    assert per_job <= len(ids), server.looks
    assert len(server.pages) <= 12, "about a page per interval over the jobs' minute"


async def test_a_listing_that_shows_none_of_its_jobs_pauses_rounds_for_the_backoff() -> None:
    """A round whose pages showed none of its due jobs (a listing without video jobs)
    pauses rounds for LISTING_BACKOFF: the jobs are polled one by one meanwhile, and
    rounds come back once it has passed."""
    server = Server()
    server.listing_shows = False
    async with client_on(server) as client:
        ids = [server.job(f"g-{n}", runs=3 * LISTING_BACKOFF) for n in range(5)]
        start = now()
        handles = [client.track(generation_id) for generation_id in ids]
        await anyio.sleep(1)  # jobs from elsewhere are due at once: a round reads a page
        assert server.pages, "five due jobs are looked at through a round"
        first_round = server.pages[0]
        await anyio.sleep(LISTING_BACKOFF - 1 - (now() - first_round))
        assert server.pages == [first_round], "no round within the backoff"
        assert all(len(server.looks[i]) >= 2 for i in ids), "polled one by one meanwhile"
        server.listing_shows = True
        await anyio.sleep(2 * VEO.max_interval)
        assert len(server.pages) > 1, "rounds resume after the backoff"
        polls = sum(map(len, server.looks.values()))
        await anyio.sleep(LISTING_BACKOFF)
        assert sum(map(len, server.looks.values())) == polls, "the pages serve the jobs again"
        with anyio.fail_after(4 * LISTING_BACKOFF):
            finished = [await handle for handle in handles]
    assert {g.status for g in finished} == {GenerationStatus.COMPLETE}
    assert now() - start >= 3 * LISTING_BACKOFF
    assert math.isinf(handles[0].next_look)


# --- the client's waits, moved here from tests/test_tracker.py: their point is the
# tracker's logic, and on loopback they waited for it in real time ---------------------------


def wire_client(server: Server, **options: Any) -> LeonardoClient:
    """A client as tests/_helpers.make_client makes one, over ``server`` on the wire."""
    return mock_client(server.handle, **options)


async def submit(client: LeonardoClient, count: int = 1) -> list[str]:
    """Submit ``count`` distinct jobs on one image id; return their ids."""
    jobs = [await client.image_to_video(prompt=f"clip {n}", image="img-0") for n in range(count)]
    return [job.id for job in jobs]


def polls_seen(server: Server) -> int:
    return sum(map(len, server.looks.values()))


#: Long enough for a FAST job's first look and a couple more.
A_FEW_LOOKS = FAST.initial + 3 * FAST.max_interval


async def test_cancelled_wait_stops_polling() -> None:
    """Cancelling the only waiter of a job stops its polling."""
    server = Server(runs=600)
    async with wire_client(server) as client:
        [gid] = await submit(client)
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.wait, gid)
            await anyio.sleep(A_FEW_LOOKS)
            assert len(server.looks[gid]) >= 2
            tg.cancel_scope.cancel()
        assert client.tracker_statistics().pending == 0
        polls, seen = client.tracker_statistics().polls, polls_seen(server)
        await anyio.sleep(3 * FAST.max_interval)
        assert client.tracker_statistics().polls == polls
        assert polls_seen(server) == seen


async def test_all_waiters_cancelled_stops_polling() -> None:
    """When every concurrent wait on a job is cancelled, the job is no longer watched."""
    server = Server(runs=600)
    async with wire_client(server) as client:
        [gid] = await submit(client)
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.wait, gid)
            tg.start_soon(client.wait, gid)
            await anyio.sleep(A_FEW_LOOKS)
            assert len(server.looks[gid]) >= 2
            tg.cancel_scope.cancel()
        assert client.tracker_statistics().pending == 0


async def test_cancelled_wait_keeps_a_tracked_job() -> None:
    """Cancelling a wait does not stop watching a job someone tracked explicitly."""
    server = Server(runs=600)
    async with wire_client(server) as client:
        [gid] = await submit(client)
        handle = client.track(gid)
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.wait, gid)
            await anyio.sleep(A_FEW_LOOKS)
            assert len(server.looks[gid]) >= 2
            tg.cancel_scope.cancel()
        seen = len(server.looks[gid])
        await anyio.sleep(3 * FAST.max_interval)
        assert client.tracker_statistics().pending == 1
        assert not handle.done()
        assert len(server.looks[gid]) > seen


async def test_an_unknown_id_is_not_found_after_one_more_look_without_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """wait() on an id the server never knew fails with GenerationNotFoundError (a
    GenerationVanishedError) after the look at once and one more a second later, not
    after the schedule's intervals or the vanish grace a fresh submit gets; the caller
    has the error, so nothing is logged as a WARNING."""
    caplog.set_level(logging.INFO, logger="leonardo_async")
    slow = PollSchedule(initial=3600.0, max_interval=3600.0)
    server = Server()
    async with wire_client(server, poll_schedule=slow) as client:
        client.vanish_grace = 3600.0
        start = now()
        with raises_clean(GenerationNotFoundError) as info:
            await client.wait("0000000-typo")
        assert isinstance(info.value, GenerationVanishedError)
        assert info.value.generation_id == "0000000-typo"
        assert "no generation '0000000-typo' on this account" in str(info.value)
        assert client.tracker_statistics().polls == 2
        assert [t - start for t in server.looks["0000000-typo"]] == [0.0, UNKNOWN_GRACE]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_listing_rounds_follow_the_poll_schedule_not_each_jobs_due_time() -> None:
    """120 jobs looked at through the listing cost about one round per poll interval.

    Each job's looks are jittered; a round also serves the jobs due within half their
    interval, so the rounds fall together instead of one round per jittered due time.
    The bound is the rounds one job's schedule asks for over the jobs' run, each of at
    most the pages 120 jobs fill, and a few rounds of slack (on virtual time the rounds
    are the ones the tracker computed, however slow the machine).
    """
    schedule = PollSchedule(initial=0.2, max_interval=0.2)
    server = Server(runs=1.5)
    async with wire_client(server, poll_schedule=schedule) as client:
        ids = await submit(client, 120)
        before = len(server.pages)
        handles = [client.track(gid) for gid in ids]
        results = [await handle for handle in handles]
        assert [g.id for g in results] == ids
        assert all(g.status is GenerationStatus.COMPLETE for g in results)
        assert client.tracker_statistics().complete == 120
    pages = len(server.pages) - before
    looks, elapsed = 0, 0.0
    while elapsed < 1.5 + schedule.max_interval:
        elapsed += schedule.nominal(looks)
        looks += 1
    assert 0 < pages <= (looks + 4) * math.ceil(120 / 50)


# --- the fleet's rounds ---------------------------------------------------------------------


async def test_a_sighting_from_another_clients_round_is_a_look_and_can_end_the_job() -> None:
    """What another client's listing round showed (``tracker.sighted``): a pending job's
    next look moves past the fleet's next round, an untracked id is ignored, and a
    finished one ends the job with no look of this tracker's own."""
    server = Server()
    async with JobTracker(server, batched=False) as tracker:
        server.job("g-1", runs=600)
        handle = tracker.track("g-1")
        await anyio.sleep(VEO.max_interval * 1.5)  # looked at once, then on its schedule
        due, looks = handle.next_look, len(server.looks["g-1"])
        assert looks >= 2
        tracker.sighted(pending("g-1"))
        assert handle.next_look > due
        tracker.sighted(pending("g-untracked"))
        video = GeneratedImage("img-1", motion_mp4_url=f"{CDN}/g-1.mp4")
        tracker.sighted(Generation("g-1", GenerationStatus.COMPLETE, generated_images=(video,)))
        generation = await handle
        assert len(server.looks["g-1"]) == looks
    assert generation.status is GenerationStatus.COMPLETE
    assert tracker.statistics().fleet_sightings == 2
