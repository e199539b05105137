"""The job tracker: every way a watched generation can end, polling economy, and shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from _helpers import (
    DEADLINE,
    FAST,
    KEY,
    Traffic,
    eventually,
    make_client,
    raises_clean,
    reconfigure,
    requests_to,
    route,
)
from _images import png_bytes
from aiohttp import web

from leonardo_async import (
    ClientStateError,
    FrameRef,
    GeneratedImage,
    Generation,
    GenerationFailedError,
    GenerationNotFoundError,
    GenerationStatus,
    GenerationVanishedError,
    JobTracker,
    LeonardoClient,
    PollSchedule,
    RetryPolicy,
    TrackerClosedError,
    TrackerStatistics,
    ValidationError,
    WaitTimeoutError,
)
from leonardo_async._listing import Listing
from leonardo_async.simulator import JobDurations, Simulator
from leonardo_async.simulator.pytest_plugin import SimulatorFactory

POLL = "GET /generations/{id}"
LISTING = "GET /generations/user/{userId}"


async def submit(client: LeonardoClient, count: int = 1, prompt: str = "clip") -> list[str]:
    """Submit ``count`` distinct jobs on one uploaded frame; return their ids."""
    image = FrameRef((await client.upload_image(png_bytes())).id)
    ids = []
    for n in range(count):
        job = await client.image_to_video(prompt=f"{prompt} {n}", image=image)
        ids.append(job.id)
    return ids


def pending(client: LeonardoClient) -> int:
    """Jobs the client's tracker is watching."""
    return client.tracker_statistics().pending


def looks(client: LeonardoClient) -> int:
    """Status requests the tracker has made: per-job polls and listing pages."""
    stats = client.tracker_statistics()
    return stats.polls + stats.listing_pages


# --- terminal states ----------------------------------------------------------------------


async def test_complete_resolves(client: LeonardoClient) -> None:
    """Waiting on a job returns the COMPLETE generation with its video URL."""
    [gid] = await submit(client)
    with anyio.fail_after(DEADLINE):
        generation = await client.wait(gid)
    assert generation.id == gid
    assert generation.status is GenerationStatus.COMPLETE
    assert generation.video_url is not None
    stats = client.tracker_statistics()
    assert (stats.pending, stats.complete, stats.failed, stats.errors) == (0, 1, 0, 0)


async def test_failed_raises_with_generation(client: LeonardoClient, sim: Simulator) -> None:
    """A FAILED job raises GenerationFailedError carrying the generation."""
    sim.configure(failure_rate=1.0)
    [gid] = await submit(client)
    with anyio.fail_after(DEADLINE), raises_clean(GenerationFailedError) as info:
        await client.wait(gid)
    assert info.value.generation.id == gid
    assert info.value.generation.status is GenerationStatus.FAILED
    assert client.tracker_statistics().failed == 1


async def test_deadline_raises_wait_timeout(client: LeonardoClient, sim: Simulator) -> None:
    """A tracked job past its deadline fails with WaitTimeoutError, a TimeoutError too."""
    sim.configure(durations=JobDurations.fixed(600))
    [gid] = await submit(client)
    handle = client.track(gid, deadline=0.2)
    with anyio.fail_after(DEADLINE), raises_clean(WaitTimeoutError) as info:
        await handle
    assert isinstance(info.value, TimeoutError)
    assert info.value.generation_id == gid
    assert info.value.timeout == pytest.approx(0.2)
    assert "0.2 s" in str(info.value)
    assert pending(client) == 0
    assert handle.done()


async def test_wait_timeout(client: LeonardoClient, sim: Simulator) -> None:
    """wait(timeout=...) raises WaitTimeoutError, which ``except TimeoutError`` catches."""
    sim.configure(durations=JobDurations.fixed(600))
    [gid] = await submit(client)
    with anyio.fail_after(DEADLINE), pytest.raises(TimeoutError) as info:
        await client.wait(gid, timeout=0.2)
    assert isinstance(info.value, WaitTimeoutError)
    assert info.value.timeout == 0.2
    assert pending(client) == 0  # an abandoned wait stops watching the job


async def test_wait_timeout_keeps_an_explicitly_tracked_job(
    client: LeonardoClient, sim: Simulator
) -> None:
    """A timed-out wait on a job tracked with track() leaves it tracked."""
    sim.configure(durations=JobDurations.fixed(600))
    [gid] = await submit(client)
    handle = client.track(gid)
    with anyio.fail_after(DEADLINE), raises_clean(WaitTimeoutError):
        await client.wait(gid, timeout=0.1)
    assert pending(client) == 1
    assert not handle.done()


async def test_vanished_after_grace(client: LeonardoClient) -> None:
    """A job the server stops knowing ends with GenerationVanishedError after the grace."""
    client.vanish_grace = 0.2
    [gid] = await submit(client)
    assert await client.delete_generation(gid)
    with anyio.fail_after(DEADLINE), raises_clean(GenerationVanishedError) as info:
        await client.wait(gid)
    assert info.value.generation_id == gid
    assert not isinstance(info.value, GenerationNotFoundError)  # it was submitted here
    assert client.tracker_statistics().errors == 1


async def test_waiting_on_a_job_from_elsewhere_looks_at_once(sim: Simulator) -> None:
    """wait() on a job this client did not submit (finished long ago, say) looks at once,
    not after the schedule's first wait: one look, and it is COMPLETE."""
    async with make_client(sim) as submitting:
        [gid] = await submit(submitting)
        with anyio.fail_after(DEADLINE):
            await submitting.wait(gid)
    async with make_client(sim, poll_schedule=PollSchedule(initial=3600.0)) as client:
        with anyio.fail_after(DEADLINE):
            generation = await client.wait(gid)
        assert generation.status is GenerationStatus.COMPLETE
        assert client.tracker_statistics().polls == 1


async def test_vanish_fault(client: LeonardoClient, sim: Simulator) -> None:
    """A generation that disappears when it finishes is reported vanished, not waited on."""
    client.vanish_grace = 0.2
    sim.configure(faults={"vanish_rate": 1.0})
    [gid] = await submit(client)
    with anyio.fail_after(DEADLINE), raises_clean(GenerationVanishedError):
        await client.wait(gid)


async def test_bad_id_fails_its_handle_only(client: LeonardoClient) -> None:
    """An id the client refuses to send fails that handle; other jobs are still tracked."""
    [gid] = await submit(client)
    handle = client.track("not/an/id")
    with anyio.fail_after(DEADLINE):
        with raises_clean(ValidationError):
            await handle
        assert (await client.wait(gid)).id == gid


# --- statuses from a server of our own ----------------------------------------------------


class TinyApi:
    """Just enough of the API for the tracker, with scripted answers (not a mock of aiohttp).

    ``status(gid, look)`` says what the ``look``-th GET of ``gid`` reports; the listing
    shows ``listing_extra`` followed by every known job's current state.
    """

    def __init__(self, status: Callable[[str, int], str]) -> None:
        self.status = status
        self.looks: Counter[str] = Counter()
        self.listings = 0
        self.jobs: list[str] = []
        self.listing_extra: list[Any] = []
        self.base_url = ""

    def generation(self, gid: str) -> dict[str, Any]:
        state = self.status(gid, self.looks[gid])
        images = []
        if state == "COMPLETE":
            images = [{"id": f"{gid}-img", "url": "p.jpg", "motionMP4URL": f"{gid}.mp4"}]
        return {"id": gid, "status": state, "prompt": "p", "generated_images": images}

    async def get(self, request: web.Request) -> web.Response:
        gid = request.match_info["id"]
        self.looks[gid] += 1
        return web.json_response({"generations_by_pk": self.generation(gid)})

    async def listing(self, request: web.Request) -> web.Response:
        self.listings += 1
        entries = [*self.listing_extra, *(self.generation(gid) for gid in self.jobs)]
        offset = int(request.query.get("offset", "0"))
        limit = int(request.query.get("limit", "10"))
        return web.json_response({"generations": entries[offset : offset + limit]})

    async def me(self, request: web.Request) -> web.Response:
        return web.json_response({"user_details": [{"user": {"id": "user-1"}}]})

    @asynccontextmanager
    async def running(self) -> AsyncIterator[TinyApi]:
        app = web.Application()
        prefix = "/api/rest/v1"
        app.router.add_get(prefix + "/me", self.me)
        app.router.add_get(prefix + "/generations/user/{uid}", self.listing)
        app.router.add_get(prefix + "/generations/{id}", self.get)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}{prefix}"
        try:
            yield self
        finally:
            await runner.cleanup()


async def test_unknown_status_is_not_finished(caplog: pytest.LogCaptureFixture) -> None:
    """A status this version does not know keeps the job watched until a known end."""
    api = TinyApi(lambda gid, look: "COMPLETE" if look > 3 else "UPSCALING")
    async with api.running(), LeonardoClient(KEY, base_url=api.base_url) as client:
        with anyio.fail_after(DEADLINE):
            generation = await client.wait("job-1", schedule=FAST)
    assert generation.status is GenerationStatus.COMPLETE
    assert api.looks["job-1"] == 4
    warnings = [r for r in caplog.records if "UPSCALING" in r.getMessage()]
    assert len(warnings) == 1


async def test_odd_listing_entries_do_not_stop_the_tracker() -> None:
    """Listing entries that are not generations are skipped; every job still resolves."""
    api = TinyApi(lambda gid, look: "COMPLETE" if api.listings > 2 else "PENDING")
    api.jobs = [f"job-{n}" for n in range(5)]
    api.listing_extra = [5, None, {"id": ["x"]}, {"id": {"a": 1}, "status": "COMPLETE"}, {}]
    async with api.running(), LeonardoClient(KEY, base_url=api.base_url) as client:
        handles = [client.track(gid, schedule=FAST) for gid in api.jobs]
        with anyio.fail_after(DEADLINE):
            results = [await handle for handle in handles]
    assert [g.id for g in results] == api.jobs
    assert api.listings >= 1


# --- transient trouble ----------------------------------------------------------------------


async def test_server_errors_on_polls_never_lose_the_job(sim: Simulator) -> None:
    """5xx answers to polls only postpone the next look; the job still resolves."""
    sim.configure(faults={"server_error_rate": 1.0, "routes": [POLL]})
    async with make_client(sim, retry=RetryPolicy(attempts=1)) as client:
        [gid] = await submit(client)
        handle = client.track(gid)
        with anyio.fail_after(DEADLINE):
            await eventually(lambda: requests_to(sim, POLL) >= 3)
            assert not handle.done()
            sim.configure(faults={"server_error_rate": 0.0})
            generation = await handle
    assert generation.status is GenerationStatus.COMPLETE
    assert client.tracker_statistics().errors == 0


@pytest.mark.parametrize("style", ["seconds", "none"])
async def test_429_on_polls_pauses_and_resumes(sim: Simulator, style: str) -> None:
    """A 429 on a poll, with or without Retry-After, pauses polling; the job still resolves."""
    sim.configure(
        retry_after_style=style,
        faults={"rate_limit_storm_rate": 1.0, "rate_limit_storm_length": 1, "routes": [POLL]},
    )
    traffic = Traffic()
    traffic.after(
        route("/generations/", status=429),
        reconfigure(sim, faults={"rate_limit_storm_rate": 0.0}),
    )
    async with make_client(sim, traffic, retry=RetryPolicy(attempts=1)) as client:
        [gid] = await submit(client)
        with anyio.fail_after(DEADLINE):
            generation = await client.wait(gid)
        assert generation.status is GenerationStatus.COMPLETE
        assert client.statistics().rate_limited == 1
    assert sim.statistics().rate_limited == 1


# --- cancellation and shutdown ----------------------------------------------------------------


async def test_closing_fails_pending_and_leaves_no_task(sim: Simulator) -> None:
    """Leaving the client's block fails pending handles with TrackerClosedError, leaking no task."""
    sim.configure(durations=JobDurations.fixed(600))
    before = asyncio.all_tasks()
    async with make_client(sim) as client:
        ids = await submit(client, 3)
        handles = [client.track(gid) for gid in ids]
        with anyio.fail_after(DEADLINE):
            await eventually(lambda: looks(client) >= 3)
    for handle in handles:
        with raises_clean(TrackerClosedError):
            await handle
    with pytest.raises(ClientStateError, match="not running"):
        client.track("late")

    def ours(task: asyncio.Task[Any]) -> bool:
        code = getattr(task.get_coro(), "cr_code", None)
        name = code.co_filename if code is not None else ""
        return "leonardo_async" in name and "simulator" not in name

    await eventually(lambda: not [t for t in asyncio.all_tasks() - before if ours(t)])


# --- many jobs ------------------------------------------------------------------------------


async def test_as_completed_yields_in_finish_order(client: LeonardoClient) -> None:
    """as_completed yields generations in the order they finish, then ends."""
    tracker = client
    ids = ["a", "b", "c", "d"]
    slow = PollSchedule(initial=600)
    for gid in ids:
        tracker.track(gid, schedule=slow)
    finish = ["c", "a", "d", "b"]
    seen: list[str] = []

    async def report() -> None:
        for gid in finish:
            await anyio.sleep(0.01)
            image = GeneratedImage(f"{gid}-i", motion_mp4_url=f"{gid}.mp4")
            tracker.notify(Generation(gid, GenerationStatus.COMPLETE, generated_images=(image,)))

    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg:
            tg.start_soon(report)
            async for generation in tracker.as_completed():
                seen.append(generation.id)
    assert seen == finish


async def test_as_completed_over_simulated_jobs(client: LeonardoClient, sim: Simulator) -> None:
    """Every tracked job is yielded once, FAILED ones included, and iteration ends."""
    sim.configure(failure_rate=0.5, durations=JobDurations(kind="uniform", median=0.3, spread=0.8))
    ids = await submit(client, 8)
    handles = [client.track(gid) for gid in ids]
    with anyio.fail_after(DEADLINE):
        yielded = [g async for g in client.as_completed()]
    assert sorted(g.id for g in yielded) == sorted(ids)
    statuses = {g.status for g in yielded}
    assert statuses <= {GenerationStatus.COMPLETE, GenerationStatus.FAILED}
    assert GenerationStatus.FAILED in statuses
    assert all(handle.done() for handle in handles)


async def test_as_completed_with_nothing_tracked_refuses_to_start(client: LeonardoClient) -> None:
    """The plain form started before anything is tracked would end at once with nothing
    (a consumer started before the first submit): it raises, naming the other forms."""
    with pytest.raises(ClientStateError, match=r"no job is tracked yet.*follow=True"):
        async for _ in client.as_completed():
            pass


async def test_as_completed_following_takes_jobs_tracked_later_until_the_client_closes(
    sim: Simulator,
) -> None:
    """follow=True started before the first submit yields every job tracked afterwards,
    and ends when the client closes."""
    sim.configure(durations=JobDurations(kind="uniform", median=0.3, spread=0.8))
    seen: list[str] = []

    async def consume(client: LeonardoClient) -> None:
        async for generation in client.as_completed(follow=True):
            seen.append(generation.id)

    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg, make_client(sim) as client:
            tg.start_soon(consume, client)
            await anyio.wait_all_tasks_blocked()
            ids = await submit(client, 5)
            handles = [client.track(gid) for gid in ids]
            for handle in handles:
                await handle
            await eventually(lambda: len(seen) == len(ids))
        # Leaving the block closed the client first, which ended the consumer's iteration
        # (else the task group would wait for it until the deadline).
    assert sorted(seen) == sorted(ids)


async def test_as_completed_of_given_jobs_tracks_them_and_ends_with_the_last(
    client: LeonardoClient, sim: Simulator
) -> None:
    """as_completed(jobs) takes ids, submitted jobs and handles, tracks what is not
    tracked (a job finished before, too), yields each that finishes, FAILED ones too, and
    ends when all have ended; an unknown id is not yielded and does not hold it up."""
    image = FrameRef((await client.upload_image(png_bytes())).id)
    earlier = await client.image_to_video(prompt="earlier", image=image)
    with anyio.fail_after(DEADLINE):
        await client.wait(earlier.id)
    job = await client.image_to_video(prompt="job", image=image)
    sim.configure(failure_rate=1.0)
    failing = client.track((await client.image_to_video(prompt="failing", image=image)).id)
    with anyio.fail_after(DEADLINE):
        yielded = {
            g.id: g.status
            async for g in client.as_completed([earlier.id, job, failing, "0000-unknown"])
        }
    assert yielded == {
        earlier.id: GenerationStatus.COMPLETE,
        job.id: GenerationStatus.COMPLETE,
        failing.generation_id: GenerationStatus.FAILED,
    }


async def test_closing_with_jobs_pending_warns_naming_them(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A client closed while it still watches jobs logs one WARNING naming each (they
    run on, paid for), the first twenty by id and the rest counted; none when none is."""
    sim.configure(durations=JobDurations.fixed(600))
    caplog.set_level(logging.WARNING, logger="leonardo_async")
    async with make_client(sim) as client:
        ids = await submit(client, 22)
        for gid in ids:
            client.track(gid)
    (record,) = [r for r in caplog.records if "closing with" in r.getMessage()]
    message = record.getMessage()
    assert record.levelno == logging.WARNING
    assert "22 generation(s) not finished" in message
    assert all(gid in message for gid in ids[:20])
    assert not any(gid in message for gid in ids[20:])
    assert "and 2 more" in message
    caplog.clear()
    async with make_client(sim) as client:
        pass
    assert not [r for r in caplog.records if "closing with" in r.getMessage()]


async def _run_jobs(sim: Simulator, count: int, **options: Any) -> tuple[int, int]:
    """Track ``count`` jobs to the end; return (per-job GETs, listing pages) the server saw."""
    async with make_client(sim, **options) as client:
        ids = await submit(client, count)
        sim.reset_stats()
        handles = [client.track(gid) for gid in ids]
        with anyio.fail_after(DEADLINE):
            results = [await handle for handle in handles]
        assert [g.id for g in results] == ids
        assert all(g.status is GenerationStatus.COMPLETE for g in results)
        assert client.tracker_statistics().complete == count
    return requests_to(sim, POLL), requests_to(sim, LISTING)


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(0.8))
async def test_batched_status_saves_requests(leonardo_simulator_factory: SimulatorFactory) -> None:
    """With many jobs pending, listing pages replace most per-job GETs."""
    async with leonardo_simulator_factory() as sim:
        single_gets, single_pages = await _run_jobs(sim, 12, batched_status=False)
    async with leonardo_simulator_factory() as sim:
        batched_gets, batched_pages = await _run_jobs(sim, 12, batched_status=True)
    assert single_pages == 0
    assert batched_pages > 0
    assert batched_gets + batched_pages < single_gets / 2
    assert batched_gets < single_gets / 4


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(30.0))
async def test_a_sighting_before_the_first_look_does_not_put_it_off(sim: Simulator) -> None:
    """Other jobs' listing rounds show a job pending before its first look: the look stays.

    The first wait is the job's expected run time; starting it again at each sighting
    would detect the job that much late (a third of the slots idle in a 2 s job batch).
    """
    async with make_client(sim) as client:
        late, *quick = await submit(client, 4)
        job = client.track(late, schedule=PollSchedule(initial=20.0, max_interval=20.0))
        first_look = job.next_look
        for gid in quick:
            client.track(gid, schedule=PollSchedule(initial=0.01, max_interval=0.05))
        await eventually(lambda: client.tracker_statistics().listing_pages >= 3)
        assert job.looks == 0
        assert job.next_look == first_look


@pytest.mark.parametrize(
    "changes",
    [
        {"listing_max_limit": 4},
        {"listing_order": "random"},
        {"listing_order": "oldest"},
        {"listing_drop_rate": 0.5},
        {"listing_includes_video": False},
        {"created_at_suffix": "Z"},
    ],
    ids=["paginated", "unordered", "oldest-first", "dropping", "no-videos", "utc-suffix"],
)
@pytest.mark.leonardo_simulator(durations=JobDurations(kind="uniform", median=0.3, spread=0.5))
async def test_batched_status_survives_odd_listings(
    leonardo_simulator_factory: SimulatorFactory, changes: dict[str, Any]
) -> None:
    """Paginated, unordered, or incomplete listings still let every job resolve."""
    async with leonardo_simulator_factory(**changes) as sim:
        gets, pages = await _run_jobs(sim, 10)
    assert gets + pages > 0
    if changes.get("listing_includes_video") is False:
        assert gets >= 10  # the listing helped nobody: every job was looked at itself


async def test_progress_callback_gets_snapshots(client: LeonardoClient) -> None:
    """on_progress receives frozen statistics snapshots as jobs finish."""
    snapshots: list[TrackerStatistics] = []
    client.on_progress = snapshots.append
    ids = await submit(client, 2)
    with anyio.fail_after(DEADLINE):
        for gid in ids:
            await client.wait(gid)
    assert snapshots
    assert snapshots[-1].complete == 2
    assert snapshots[-1].pending == 0
    with pytest.raises(AttributeError):
        snapshots[-1].complete = 5  # type: ignore[misc]


async def test_tracker_needs_to_be_entered() -> None:
    """track() outside ``async with`` says how to use the tracker, as a LeonardoError."""
    tracker = JobTracker(_NoSource())
    with pytest.raises(ClientStateError, match="async with"):
        tracker.track("x")


async def test_closing_while_looks_are_due_starts_nothing_and_raises_nothing() -> None:
    """Closing never races the scheduler: no look starts once closing has begun.

    Looks due every millisecond make the scheduler's own timer and the close land in the
    same instant again and again; the scheduler then goes round its loop once more after
    the close began, and used to find the task group gone (an AssertionError, out of
    ``async with`` as an ExceptionGroup) in about a third of these rounds.
    """
    every_ms = PollSchedule(initial=0.001, first_interval=0.001, max_interval=0.001, jitter=0.5)
    for round_ in range(300):
        tracker = JobTracker(_AlwaysPending(), schedule=every_ms, batched=round_ % 2 == 0)
        async with tracker:
            handles = [tracker.track(f"g{i}") for i in range(1 + round_ % 8)]
            await anyio.sleep(0.0015 * (round_ % 7))
        for handle in handles:
            with raises_clean(TrackerClosedError):
                await handle
        with pytest.raises(ClientStateError):
            tracker.track("late")


class _Kept(logging.Handler):
    """A handler that keeps every record it is given."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_wait_logs_no_key(client: LeonardoClient) -> None:
    """Tracking at DEBUG level logs requests by URL, never the key."""
    # A handler on the package's own logger, not the root's: what this test reads does not
    # depend on the root logger's level or on propagation, which other tests' command-line
    # runs change while they last.
    handler = _Kept(logging.DEBUG)
    records = handler.records
    logger = logging.getLogger("leonardo_async")
    saved = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        [gid] = await submit(client)
        with anyio.fail_after(DEADLINE):
            await client.wait(gid)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved)
    # The job's status is read by its own URL or through a listing page, whichever the
    # tracker chose: either request is logged by URL.
    assert any("/generations" in r.getMessage() for r in records)
    assert not any(KEY in r.getMessage() for r in records)


class _AlwaysPending:
    """Jobs that never finish, answered at once: the tracker always has a look to make."""

    def __init__(self) -> None:
        self.listing = Listing(self, self._user_id)

    async def _user_id(self) -> str:
        return "user"

    async def call(self, method: str, path: str, *, params: Any = None, max_answer: int = 0) -> Any:
        """The listing's request: a page of pending generations."""
        await anyio.lowlevel.checkpoint()
        return {"generations": [{"id": f"g{i}", "status": "PENDING"} for i in range(8)]}

    async def get_generation(self, generation_id: str) -> Generation | None:
        await anyio.lowlevel.checkpoint()
        return Generation(generation_id, GenerationStatus.PENDING)


class _NoSource:
    async def get_generation(self, generation_id: str) -> Generation | None:
        raise AssertionError

    @property
    def listing(self) -> Listing:
        raise AssertionError


# --- on_update: one wait's progress --------------------------------------------------------


async def test_on_update_sees_each_look_of_one_wait_the_last_included(
    client: LeonardoClient, sim: Simulator
) -> None:
    """As fal's on_queue_update: every state a look sees of the job waited for, PENDING
    ones then the COMPLETE one the wait returns, and nothing of other jobs."""
    sim.configure(durations=JobDurations.fixed(0.6))
    gid, other = await submit(client, 2)
    seen: list[Generation] = []
    with anyio.fail_after(DEADLINE):
        generation = await client.wait(gid, on_update=seen.append)
        await client.wait(other)
    assert {g.id for g in seen} == {gid}
    assert seen[-1] == generation
    assert generation.status is GenerationStatus.COMPLETE
    assert [g.status for g in seen[:-1]] == [GenerationStatus.PENDING] * (len(seen) - 1)
    assert len(seen) >= 2  # 0.6 s of job, looks every 0.2 s at most


async def test_an_on_update_that_raises_is_logged_once_and_the_wait_goes_on(
    client: LeonardoClient, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim.configure(durations=JobDurations.fixed(0.6))
    [gid] = await submit(client)
    calls: list[str] = []

    def broken(generation: Generation) -> None:
        calls.append(str(generation.status))
        raise RuntimeError("a bug in the caller's display")

    with caplog.at_level(logging.ERROR, logger="leonardo_async"), anyio.fail_after(DEADLINE):
        generation = await client.wait(gid, on_update=broken)
    assert generation.status is GenerationStatus.COMPLETE
    assert len(calls) == 1
    errors = [r for r in caplog.records if "on_update" in r.getMessage()]
    assert len(errors) == 1
    assert gid in errors[0].getMessage()


async def test_on_update_ends_with_its_wait(client: LeonardoClient, sim: Simulator) -> None:
    """A wait that times out takes its callback with it: the looks of the job, still
    tracked for another waiter, are no longer reported to it."""
    sim.configure(durations=JobDurations.fixed(600))
    [gid] = await submit(client)
    handle = client.track(gid, deadline=1.5)
    first: list[Generation] = []
    with anyio.fail_after(DEADLINE), pytest.raises(WaitTimeoutError):
        await client.wait(gid, timeout=0.5, on_update=first.append)
    count, looks_then = len(first), handle.looks
    with anyio.fail_after(DEADLINE), pytest.raises(WaitTimeoutError):
        await handle
    assert handle.looks > looks_then
    assert count > 0
    assert len(first) == count
