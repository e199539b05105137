"""BatchSubmitter against the simulator over loopback: fan-out, limits, budgets, ambiguity.

Every item gets exactly one result, results come out as they happen, frames are uploaded
once, the running bound holds, and a lost or garbled submit answer never buys a video
twice. No timing is asserted: jobs take a twentieth of a second and every wait is bounded
by a generous deadline.
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
from _helpers import (
    FAST,
    KEY,
    NO_LIMITS,
    QUICK_LAG,
    QUICK_RETRY,
    KeyCatcher,
    eventually,
)
from _images import png_bytes

from leonardo_async import (
    BatchItem,
    BatchResult,
    BatchStatistics,
    BatchSubmitter,
    FrameRef,
    Journal,
    LeonardoClient,
    Limits,
    Timeouts,
    ValidationError,
)
from leonardo_async.simulator import FaultConfig, JobDurations, Simulator
from leonardo_async.simulator.pytest_plugin import SimulatorFactory

SUBMIT = "POST /generations-image-to-video"
DEADLINE = 60.0


def client_for(sim: Simulator, **options: Any) -> LeonardoClient:
    """A client on ``sim`` with fast polls and retries and no client-side pacing."""
    options.setdefault("limits", NO_LIMITS)
    options.setdefault("poll_schedule", FAST)
    options.setdefault("retry", QUICK_RETRY)
    options.setdefault("listing_lag", QUICK_LAG)
    return LeonardoClient(KEY, base_url=sim.base_url, **options)


def frame(folder: Path, name: str = "start.png", rgb: tuple[int, int, int] = (40, 90, 200)) -> Path:
    """Write a small PNG into ``folder`` and return its path."""
    path = folder / name
    path.write_bytes(png_bytes(rgb=rgb))
    return path


def files_holding(folder: Path, pattern: str, text: str) -> list[Path]:
    """The files in ``folder`` matching ``pattern`` whose bytes contain ``text``."""
    return [p for p in folder.glob(pattern) if text.encode() in p.read_bytes()]


def items_for(image: Any, count: int, prefix: str = "shot", **params: Any) -> list[BatchItem]:
    """``count`` items with distinct prompts (the simulator counts equal ones as duplicates)."""
    return [BatchItem.create(prompt=f"{prefix} {i}", image=image, **params) for i in range(count)]


async def run_all(batch: BatchSubmitter, items: Any) -> list[BatchResult]:
    """Run a batch to its end and return the results in the order they came."""
    results: list[BatchResult] = []
    with anyio.fail_after(DEADLINE):
        async with batch.stream(items) as stream:
            async for result in stream:
                results.append(result)
    return results


def one_each(results: Sequence[BatchResult], keys: Sequence[str]) -> dict[str, BatchResult]:
    """Check there is exactly one result per key; return them by key."""
    counts = collections.Counter(r.key for r in results)
    assert counts == collections.Counter(keys), counts
    return {r.key: r for r in results}


def assert_no_duplicates(sim: Simulator, results: Sequence[BatchResult]) -> None:
    """The simulator created one generation per item that has one, and none twice."""
    stats = sim.statistics()
    assert stats.duplicate_submissions == 0
    ids = [r.generation_id for r in results if r.generation_id is not None]
    assert len(ids) == len(set(ids))
    assert stats.generations_created == len(ids)
    assert {g.id for g in sim.generations} == set(ids)


# --- the basics ------------------------------------------------------------------------


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(0.05))
async def test_list_batch_downloads_every_video_byte_exact(
    sim: Simulator, tmp_path: Path, key_catcher: KeyCatcher
) -> None:
    """A list of items ends with one COMPLETE result each and the simulator's exact MP4s."""
    image = frame(tmp_path)
    items = items_for(image, 6)
    out = tmp_path / "videos"
    async with client_for(sim) as client, BatchSubmitter(client, out_dir=out) as batch:
        results = await run_all(batch, items)
        summary = batch.summary()
    by_key = one_each(results, [str(i) for i in range(6)])
    for result in by_key.values():
        assert result.status == "COMPLETE"
        assert result.generation_id is not None
        assert result.video is not None
        assert result.video.parent == out
        assert result.video.read_bytes() == sim.video_bytes(result.generation_id)
        assert result.prompt == f"shot {result.index}"
    assert_no_duplicates(sim, results)
    assert (summary.total, summary.complete, summary.failed, summary.errors) == (6, 6, 0, 0)
    assert summary.credits == {"CREDITS": Decimal(sim.statistics().credits_spent)}
    assert sorted(p.name for p in out.iterdir()) == sorted(r.video.name for r in results if r.video)


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(2.0))
async def test_async_iterable_pipeline_yields_results_as_they_complete(
    sim: Simulator, tmp_path: Path
) -> None:
    """Items fed by a producer task start at once; a fast item's result overtakes a slow one."""
    image = frame(tmp_path)
    first_result = anyio.Event()
    send, receive = anyio.create_memory_object_stream[BatchItem](0)
    results: list[BatchResult] = []
    slow_id: list[str] = []

    async def produce() -> None:
        async with send:
            await send.send(BatchItem.create(prompt="slow one", image=image))
            await eventually(lambda: sim.statistics().generations_created == 1)
            slow_id.append(sim.generations[0].id)
            sim.configure(durations=JobDurations.fixed(0.05))
            for i in range(1, 4):
                await send.send(BatchItem.create(prompt=f"fast {i}", image=image))
            await first_result.wait()  # the pipeline: more items after results came
            for i in range(4, 6):
                await send.send(BatchItem.create(prompt=f"fast {i}", image=image))

    async with client_for(sim) as client, BatchSubmitter(client) as batch:
        with anyio.fail_after(DEADLINE), receive:
            async with anyio.create_task_group() as tg:
                tg.start_soon(produce)
                async with batch.stream(receive) as stream:
                    async for result in stream:
                        if not results:
                            record = sim.generation(slow_id[0])
                            assert record is not None
                            assert record.status == "PENDING"  # still rendering
                            first_result.set()
                        results.append(result)
        stats = batch.statistics()
    one_each(results, [str(i) for i in range(6)])
    assert results[0].index != 0
    assert results[-1].index == 0
    assert all(r.status == "COMPLETE" for r in results)
    assert stats.total == 6
    assert stats.done == 6
    assert_no_duplicates(sim, results)


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(0.05))
async def test_shared_frames_are_uploaded_once_per_distinct_file(
    sim: Simulator, tmp_path: Path
) -> None:
    """Twelve items over two files (one of them also under a second name) upload twice."""
    first = frame(tmp_path, "first.png", (10, 20, 30))
    second = frame(tmp_path, "second.png", (200, 100, 50))
    copy = tmp_path / "copy-of-first.png"
    copy.write_bytes(first.read_bytes())
    items = [
        BatchItem.create(prompt=f"scene {i}", image=(first, copy, second)[i % 3], end_image=second)
        for i in range(12)
    ]
    async with client_for(sim) as client, BatchSubmitter(client) as batch:
        results = await run_all(batch, items)
    stats = sim.statistics()
    assert stats.requests.get("POST /init-image") == 2
    assert stats.uploads_completed == 2
    assert all(r.status == "COMPLETE" for r in results)
    image_ids = {g.body["imageId"] for g in sim.generations}
    end_ids = {g.body["endFrameImage"]["id"] for g in sim.generations}
    assert len(image_ids) == 2
    assert len(end_ids) == 1
    assert end_ids < image_ids
    assert_no_duplicates(sim, results)


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(0.05))
async def test_remote_frames_need_no_upload(sim: Simulator, tmp_path: Path) -> None:
    """Items whose frames are image ids, FrameRefs or UploadedImages upload nothing."""
    image = frame(tmp_path)
    async with client_for(sim) as client:
        uploaded = await client.upload_image(image)
        sim.reset_stats()
        items = [
            BatchItem.create(prompt="by upload", image=uploaded),
            BatchItem.create(prompt="by ref", image=FrameRef(uploaded.id)),
            BatchItem.create(prompt="by id", image=uploaded.id, end_image=uploaded),
        ]
        async with BatchSubmitter(client) as batch:
            results = await run_all(batch, items)
    assert [r.status for r in results] == ["COMPLETE"] * 3
    stats = sim.statistics()
    assert stats.requests.get("POST /init-image", 0) == 0
    assert stats.storage_requests.get("POST /leonardo-sim-uploads", 0) == 0
    assert {g.body["imageId"] for g in sim.generations} == {uploaded.id}


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(0.05), failure_rate=0.5)
async def test_failed_and_refused_items_do_not_cancel_the_others(
    sim: Simulator, tmp_path: Path
) -> None:
    """FAILED jobs and a 400 for an unknown image id end their own items only."""
    image = frame(tmp_path)
    items = [*items_for(image, 10), BatchItem.create(prompt="ghost", image="no-such-image-id")]
    async with client_for(sim) as client, BatchSubmitter(client) as batch:
        results = await run_all(batch, items)
        summary = batch.summary()
    by_key = one_each(results, [str(i) for i in range(11)])
    ghost = by_key["10"]
    assert ghost.status == "ERROR"
    assert ghost.generation_id is None
    assert ghost.error is not None
    assert "400" in ghost.error
    assert "no-such-image-id" in ghost.error
    statuses = collections.Counter(r.status for r in results if r.key != "10")
    assert statuses["FAILED"] > 0
    assert statuses["COMPLETE"] > 0
    assert statuses["FAILED"] + statuses["COMPLETE"] == 10
    for result in results:
        if result.generation_id is not None:
            record = sim.generation(result.generation_id)
            assert record is not None
            assert record.status == result.status
    assert (summary.complete, summary.failed, summary.errors) == (
        statuses["COMPLETE"],
        statuses["FAILED"],
        1,
    )
    assert_no_duplicates(sim, results)


async def test_duplicate_keys_are_refused_before_anything_is_sent(
    sim: Simulator, tmp_path: Path
) -> None:
    """Two items with one key would share a journal row (and be paid twice): refused up front."""
    image = frame(tmp_path)
    items = [
        BatchItem.create(prompt="same", image=image, key="k"),
        BatchItem.create(prompt="same", image=image, key="k"),
    ]
    async with client_for(sim) as client, BatchSubmitter(client) as batch:
        with pytest.raises(ValidationError, match="key"):
            await run_all(batch, items)
    assert sum(sim.statistics().requests.values()) == 0


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(0.05))
async def test_duplicate_key_from_an_iterable_gets_its_own_error(
    sim: Simulator, tmp_path: Path
) -> None:
    """A repeated key arriving from an async iterable is an ERROR result, not a second job."""
    image = frame(tmp_path)

    async def feed() -> AsyncIterator[BatchItem]:
        yield BatchItem.create(prompt="same", image=image, key="k")
        yield BatchItem.create(prompt="same", image=image, key="k")
        yield BatchItem.create(prompt="other", image=image, key="j")

    async with client_for(sim) as client, BatchSubmitter(client) as batch:
        results = await run_all(batch, feed())
    statuses = sorted((r.key, r.status) for r in results)
    assert statuses == [("j", "COMPLETE"), ("k", "COMPLETE"), ("k", "ERROR")]
    error = next(r for r in results if r.status == "ERROR")
    assert error.error is not None
    assert "duplicate" in error.error
    assert_no_duplicates(sim, results)


# --- limits ------------------------------------------------------------------------------


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(0.2))
async def test_max_running_bound_is_respected(sim: Simulator, tmp_path: Path) -> None:
    """With Limits(max_running=3) the simulator never sees more than three jobs running."""
    image = frame(tmp_path)
    async with (
        client_for(sim, limits=Limits(None, None, max_running=3)) as client,
        BatchSubmitter(client) as batch,
    ):
        results = await run_all(batch, items_for(image, 12))
        assert batch.statistics().running_limit == 3
    assert all(r.status == "COMPLETE" for r in results)
    assert 1 <= sim.statistics().peak_running <= 3


@pytest.mark.leonardo_simulator(
    durations=JobDurations.fixed(0.2), concurrency_slots=2, max_running=2
)
async def test_account_bound_comes_from_me_concurrency_slots(
    sim: Simulator, tmp_path: Path
) -> None:
    """max_running="account" bounds running jobs by /me's concurrency slots."""
    image = frame(tmp_path)
    limits = Limits(None, None, max_running="account")
    async with client_for(sim, limits=limits) as client, BatchSubmitter(client) as batch:
        results = await run_all(batch, items_for(image, 8))
        assert batch.statistics().running_limit == 2
    assert all(r.status == "COMPLETE" for r in results)
    assert sim.statistics().requests.get("GET /me") == 1
    assert 1 <= sim.statistics().peak_running <= 2


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(0.2))
async def test_batch_limits_override_the_clients(sim: Simulator, tmp_path: Path) -> None:
    """A batch's own Limits replace the client's for the batch."""
    image = frame(tmp_path)
    async with (
        client_for(sim) as client,
        BatchSubmitter(client, limits=Limits(None, None, max_running=2)) as batch,
    ):
        results = await run_all(batch, items_for(image, 6))
    assert all(r.status == "COMPLETE" for r in results)
    assert 1 <= sim.statistics().peak_running <= 2


@pytest.mark.leonardo_simulator(
    durations=JobDurations.fixed(0.3),
    concurrency_slots=6,
    max_running=2,
    refuse_at_concurrency=True,
)
async def test_server_concurrency_refusals_lower_the_bound(sim: Simulator, tmp_path: Path) -> None:
    """/me says 6 slots but the server runs 2: its 429s bring the bound down, all complete."""
    image = frame(tmp_path)
    limits = Limits(None, None, max_running="account")
    async with client_for(sim, limits=limits) as client, BatchSubmitter(client) as batch:
        results = await run_all(batch, items_for(image, 10))
        lowered = batch.statistics().running_limit
    assert all(r.status == "COMPLETE" for r in results)
    stats = sim.statistics()
    # Sent together, the first six submits would draw four 429s. Probed one at a time
    # they draw one (up to three when a slow machine sees jobs end very late).
    assert 1 <= stats.rate_limited <= 3
    assert lowered is not None
    assert lowered < 6
    assert stats.peak_running <= 2
    assert_no_duplicates(sim, results)


# --- money -------------------------------------------------------------------------------


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(0.05))
async def test_max_credits_stops_further_submits(sim: Simulator, tmp_path: Path) -> None:
    """Past the credit budget, items are not submitted and say so; spent matches the server."""
    image = frame(tmp_path)
    items = items_for(image, 6)  # VEO3_1, 8 s: 2140 credits each
    async with client_for(sim) as client, BatchSubmitter(client, max_credits=5000) as batch:
        results = await run_all(batch, items)
        summary = batch.summary()
    statuses = collections.Counter(r.status for r in results)
    assert statuses == {"COMPLETE": 2, "ERROR": 4}
    for result in results:
        if result.status == "ERROR":
            assert result.generation_id is None
            assert result.error is not None
            assert "budget of 5000 CREDITS" in result.error
            assert result.retryable
    stats = sim.statistics()
    assert stats.generations_created == 2
    assert stats.credits_spent == 4280
    assert summary.credits == {"CREDITS": Decimal(4280)}
    assert_no_duplicates(sim, results)


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(0.05), cost_1080p_multiplier=1.5)
async def test_cost_per_item_is_the_submit_responses_cost(sim: Simulator, tmp_path: Path) -> None:
    """Each result carries the cost the server charged for it, not an estimate."""
    image = frame(tmp_path)
    items = [
        BatchItem.create(prompt="fast four", image=image, model="VEO3_1FAST", duration=4),
        BatchItem.create(prompt="six", image=image, duration=6),
        BatchItem.create(prompt="big", image=image, resolution="RESOLUTION_1080"),
        BatchItem.create(prompt="big again", image=image, resolution="RESOLUTION_1080"),
    ]
    async with client_for(sim) as client, BatchSubmitter(client) as batch:
        results = await run_all(batch, items)
        summary = batch.summary()
    for result in results:
        assert result.generation_id is not None
        record = sim.generation(result.generation_id)
        assert record is not None
        assert result.cost is not None
        assert (result.cost.amount, result.cost.unit) == (Decimal(record.cost), "CREDITS")
    by_prompt = {r.prompt: r.cost.amount for r in results if r.cost is not None}
    assert by_prompt == {
        "fast four": 535,
        "six": 1605,
        "big": 3210,
        "big again": 3210,
    }
    assert summary.credits == {"CREDITS": Decimal(sim.statistics().credits_spent)}


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(0.05))
async def test_no_download_mode_leaves_videos_on_the_cdn(sim: Simulator, tmp_path: Path) -> None:
    """Without out_dir, items complete with no video file and no CDN request."""
    image = frame(tmp_path)
    async with client_for(sim) as client, BatchSubmitter(client) as batch:
        results = await run_all(batch, items_for(image, 4))
    assert all(r.status == "COMPLETE" and r.video is None for r in results)
    assert all(r.generation is not None and r.generation.video_url for r in results)
    stats = sim.statistics()
    assert stats.downloads == 0
    assert stats.storage_requests.get("GET /cdn/{name}", 0) == 0


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(0.05))
async def test_progress_hook_sees_frozen_snapshots(sim: Simulator, tmp_path: Path) -> None:
    """on_progress gets BatchStatistics snapshots ending with every item done."""
    image = frame(tmp_path)
    seen: list[BatchStatistics] = []
    async with (
        client_for(sim) as client,
        BatchSubmitter(client, on_progress=seen.append) as batch,
    ):
        summary = await batch.run(items_for(image, 5))
    assert seen
    assert seen[-1].done == 5
    assert seen[-1].complete == 5
    assert max(s.running for s in seen) >= 1
    assert summary.complete == 5
    assert summary.requests > 0
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        seen[0].complete = 99  # type: ignore[misc]


@pytest.mark.leonardo_simulator(
    durations=JobDurations.fixed(0.05), faults=FaultConfig(server_error_rate=0.2, routes={SUBMIT})
)
async def test_the_key_stays_out_of_journal_and_logs(
    sim: Simulator, tmp_path: Path, key_catcher: KeyCatcher
) -> None:
    """Neither the journal file nor any log record of a batch with errors holds the key."""
    image = frame(tmp_path)
    journal = tmp_path / "journal.sqlite"
    items = [*items_for(image, 3), BatchItem.create(prompt="bad", image="missing-id")]
    async with (
        client_for(sim) as client,
        BatchSubmitter(client, journal=journal) as batch,
    ):
        results = await run_all(batch, items)
    assert any(r.status == "ERROR" for r in results)
    for result in results:
        assert KEY not in repr(result)
    assert not files_holding(tmp_path, "journal.sqlite*", KEY)


# --- ambiguity: lost, slow, broken submit answers --------------------------------------

#: Each fault on submits, and the client options it is met with.
AMBIGUOUS: dict[str, tuple[FaultConfig, dict[str, Any]]] = {
    "lost answers": (FaultConfig(reset_after_submit_rate=0.4, routes={SUBMIT}), {}),
    "server errors": (
        FaultConfig(server_error_rate=0.3, server_error_burst=2, routes={SUBMIT}),
        {},
    ),
    "slow beyond the timeout": (
        FaultConfig(slow_rate=0.3, slow_seconds=0.8, routes={SUBMIT}),
        # The server makes the job 0.8 s after the request came, 0.5 s after the client
        # gave up on it: to the client that is a listing that lags by 0.5 s (more on a
        # loaded machine), so its lag window must cover it, as LISTING_LAG covers a real
        # server's. With the tests' 0.05 s window, a submit was resent before its first
        # job appeared (4 duplicates in 12 items, on 3 of 4 Pythons in one CI run).
        {"timeouts": Timeouts(api=0.3), "listing_lag": 3.0},
    ),
    "malformed json": (FaultConfig(malformed_json_rate=0.4, routes={SUBMIT}), {}),
    "unexpected shape": (FaultConfig(unexpected_shape_rate=0.4, routes={SUBMIT}), {}),
}


@pytest.mark.parametrize("fault", list(AMBIGUOUS))
async def test_ambiguous_submits_never_create_duplicates(
    leonardo_simulator_factory: SimulatorFactory, tmp_path: Path, fault: str
) -> None:
    """Lost, failed, slow or unreadable submit answers: no duplicate, no lost item."""
    faults, options = AMBIGUOUS[fault]
    image = frame(tmp_path)
    items = items_for(image, 12)
    keys = [str(i) for i in range(12)]
    journal = Journal(tmp_path / "journal.sqlite")
    async with (
        leonardo_simulator_factory(durations=JobDurations.fixed(0.05), faults=faults) as sim,
        client_for(sim, **options) as client,
    ):
        async with BatchSubmitter(client, journal=journal) as batch:
            results = await run_all(batch, items)
        one_each(results, keys)
        assert sum(sim.statistics().faults_injected.values()) > 0
        assert sim.statistics().duplicate_submissions == 0
        leftover = [r for r in results if r.status != "COMPLETE"]
        assert all(r.status == "ERROR" and r.retryable for r in leftover)
        if leftover:  # what the faults left undecided, a resume finishes
            sim.configure(faults=FaultConfig())
            async with BatchSubmitter(client, journal=journal) as batch:
                results = await run_all(batch, items)
            one_each(results, keys)
        assert [r.status for r in results] == ["COMPLETE"] * 12
        assert_no_duplicates(sim, results)
        assert sim.statistics().generations_created == 12
    journal.close()


# Submits never made, never answered:
@pytest.mark.leonardo_simulator(faults=FaultConfig(reset_before_rate=1.0, routes={SUBMIT}))
async def test_the_journal_counts_every_send_of_a_submit(sim: Simulator, tmp_path: Path) -> None:
    """A lost submit the listing does not show is sent again inside the client: the
    journal's attempts count those sends too, so a row says how often it was sent."""
    image = frame(tmp_path)
    items = items_for(image, 3)
    async with (
        client_for(sim, listing_shows_videos=True) as client,  # so silence proves absence
        BatchSubmitter(client, journal=tmp_path / "journal.sqlite") as batch,
    ):
        results = await run_all(batch, items)
        sends = sim.statistics().requests[SUBMIT]
        entries = [batch.journal.entry(r.key) for r in results]
    assert [(r.status, r.retryable) for r in results] == [("ERROR", True)] * 3
    assert sends == 9  # three sends each, every one dropped before it was handled
    assert [e.attempts if e is not None else None for e in entries] == [3, 3, 3]
    assert sim.statistics().generations_created == 0


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(0.05))
async def test_a_submitter_run_twice_counts_each_credit_once(
    sim: Simulator, tmp_path: Path
) -> None:
    """A second run on the same submitter and journal reports the batch's spend, not double."""
    image = frame(tmp_path)
    items = items_for(image, 3)
    async with (
        client_for(sim) as client,
        BatchSubmitter(client, journal=tmp_path / "journal.sqlite", max_credits=6500) as batch,
    ):
        first = await batch.run(items)
        second = await batch.run(items)
        spent = Decimal(sim.statistics().credits_spent)
    assert first.credits == second.credits == {"CREDITS": spent}
    assert (first.complete, second.complete) == (3, 3)
    assert second.total == 3
