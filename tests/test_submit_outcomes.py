"""What a submit's outcome means, against the simulator over loopback HTTP.

A gateway's 502/503/504 may come after the job was made; a listing may show a new job a
few seconds late; a server may refuse ``seed``. None of these may cost a second job.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from _helpers import (
    DEADLINE,
    Traffic,
    make_client,
    raises_clean,
    reconfigure,
    route,
)
from _images import png_bytes

from leonardo_async import (
    BatchItem,
    BatchResult,
    BatchSubmitter,
    FrameRef,
    Journal,
    LeonardoClient,
    SubmitUncertainError,
)
from leonardo_async._listing import LISTING_LAG
from leonardo_async.simulator import JobDurations, Simulator
from leonardo_async.simulator.pytest_plugin import SimulatorFactory

SUBMIT = "POST /generations-image-to-video"
LISTING = "GET /generations/user/{userId}"


async def _image(client: LeonardoClient) -> FrameRef:
    return FrameRef((await client.upload_image(png_bytes())).id)


def _submits(traffic: Traffic) -> int:
    return len(traffic.to("/generations-image-to-video", "POST"))


@pytest.mark.leonardo_simulator(
    durations=JobDurations.fixed(0.05),
    listing_lag=2.0,
    faults={
        "gateway_error_after_submit_rate": 0.3,
        "reset_after_submit_rate": 0.2,
        "routes": [SUBMIT],
    },
)
async def test_gateway_errors_lost_answers_and_a_lagging_listing_buy_nothing_twice(
    sim: Simulator,
) -> None:
    """30 items, submits answered 502/503/504 after the job was made or never answered,
    a listing two seconds behind: every item gets its own job, none is bought twice."""
    async with make_client(sim, listing_lag=LISTING_LAG) as client:
        image = await _image(client)
        jobs: dict[int, str] = {}

        async def one(index: int) -> None:
            job = await client.image_to_video(prompt=f"item {index}", image=image)
            jobs[index] = job.id

        with anyio.fail_after(DEADLINE * 2):
            async with anyio.create_task_group() as tg:
                for index in range(30):
                    tg.start_soon(one, index)
        stats = sim.statistics()
        assert stats.faults_injected.get("gateway_error_after_submit", 0) > 0
        assert stats.duplicate_submissions == 0
        assert stats.generations_created == 30
        assert sorted(jobs.values()) == sorted(g.id for g in sim.generations)


@pytest.mark.parametrize(
    "status_fault", ["gateway_error_after_submit_rate", "reset_after_submit_rate"]
)
async def test_a_maybe_created_submit_is_found_behind_a_lagging_listing(
    leonardo_simulator_factory: SimulatorFactory, status_fault: str
) -> None:
    """A 5xx after the job was made, or a lost answer, with the listing 3 s behind: the
    job is found by a later look, and the submit is sent once."""
    traffic = Traffic()
    faults = {status_fault: 1.0, "routes": [SUBMIT]}
    async with (
        leonardo_simulator_factory(listing_lag=3.0, faults=faults) as sim,
        make_client(sim, traffic, listing_lag=10.0) as client,
    ):
        image = await _image(client)
        with anyio.fail_after(DEADLINE):
            job = await client.image_to_video(prompt="behind the gateway", image=image)
        assert [g.id for g in sim.generations] == [job.id]
        assert _submits(traffic) == 1
        assert len(traffic.to("/generations/user/")) > 1


async def test_a_reconciliation_cut_short_by_its_page_cap_is_uncertain(sim: Simulator) -> None:
    """A listing too deep to read within the page cap decides nothing: no resend.

    Oldest first, one entry a page, the new job sits below 25 others: past 20 pages."""
    traffic = Traffic()
    async with make_client(sim, traffic) as client:
        image = await _image(client)
        for index in range(25):
            await client.image_to_video(prompt=f"earlier {index}", image=image)
        sim.configure(
            listing_max_limit=1,
            listing_order="oldest",
            faults={"gateway_error_after_submit_rate": 1.0, "routes": [SUBMIT]},
        )
        before = _submits(traffic)
        with anyio.fail_after(DEADLINE), raises_clean(SubmitUncertainError, match="pages"):
            await client.image_to_video(prompt="the uncertain one", image=image)
        assert _submits(traffic) == before + 1
        assert sim.statistics().generations_created == 26


async def test_a_listing_error_during_reconciliation_is_uncertain(sim: Simulator) -> None:
    """A submit answered 5xx whose listing cannot be read is never resent."""
    traffic = Traffic()
    faults: dict[str, Any] = {"server_error_rate": 1.0, "routes": [SUBMIT, LISTING]}
    async with make_client(sim, traffic) as client:
        image = await _image(client)
        sim.configure(faults=faults)
        with anyio.fail_after(DEADLINE), raises_clean(SubmitUncertainError, match="listing"):
            await client.image_to_video(prompt="unreadable listing", image=image)
        assert _submits(traffic) == 1


@pytest.mark.parametrize("second_answer_lost", [False, True])
@pytest.mark.leonardo_simulator(reject_seed=True)
async def test_a_rejected_seed_is_dropped_once_and_for_the_key(
    sim: Simulator, second_answer_lost: bool
) -> None:
    """A 400 naming seed: sent again without it, and no seed is sent again; a lost answer
    after that is still found (the match needs no seed)."""
    traffic = Traffic()
    async with make_client(sim, traffic) as client:
        image = await _image(client)
        with anyio.fail_after(DEADLINE):
            first = await client.image_to_video(prompt="seedless one", image=image)
            if second_answer_lost:
                sim.configure(faults={"reset_after_submit_rate": 1.0, "routes": [SUBMIT]})
            second = await client.image_to_video(prompt="seedless two", image=image, seed=5)
        assert sorted(g.id for g in sim.generations) == sorted([first.id, second.id])
        assert sim.statistics().duplicate_submissions == 0
        assert _submits(traffic) == 3  # one refusal, then one submit each
        assert client.seeds_refused


@pytest.mark.leonardo_simulator(reject_seed=True)
async def test_a_batch_on_a_server_refusing_seeds_journals_none(
    sim: Simulator, tmp_path: Path
) -> None:
    """A batch against a server that refuses seed: each item refused once at most, done
    once, and the journal keeps no seed that was never sent (a resume matches without)."""
    traffic = Traffic()
    async with make_client(sim, traffic) as client:
        image = await _image(client)
        items = [BatchItem.create(prompt=f"seedless {i}", image=image) for i in range(6)]
        with Journal(tmp_path / "journal.sqlite") as journal:
            async with BatchSubmitter(client, journal=journal) as batch:
                with anyio.fail_after(DEADLINE):
                    results = [r async for r in _stream(batch, items)]
            assert sorted(r.status for r in results) == ["COMPLETE"] * 6
            assert all(journal.entry(r.key).seed is None for r in results)  # type: ignore[union-attr]
        assert sim.statistics().duplicate_submissions == 0
        assert sim.statistics().generations_created == 6
        submits = traffic.to("/generations-image-to-video", "POST")
        refused = [e for e in submits if e.status == 400]
        assert 1 <= len(refused) <= len(items)  # each item refused once at most
        assert len(submits) == len(items) + len(refused)


async def _stream(batch: BatchSubmitter, items: list[BatchItem]) -> AsyncIterator[BatchResult]:
    async with batch.stream(items) as stream:
        async for result in stream:
            yield result


@pytest.mark.parametrize("listed_before", [False, True])
async def test_silence_is_proof_only_from_a_listing_seen_to_show_video_jobs(
    sim: Simulator,
    listed_before: bool,
) -> None:
    """A submit answered 5xx that made nothing: a client that has not yet seen a video job
    in the listing leaves it uncertain (sent once); once the listing has shown one of its
    jobs, the same silence lets it send again."""
    traffic = Traffic()
    async with make_client(sim, traffic) as client:
        image = await _image(client)
        if listed_before:
            await client.image_to_video(prompt="shown first", image=image)
        before = _submits(traffic)
        sim.configure(faults={"server_error_rate": 1.0, "routes": [SUBMIT]})
        traffic.after(
            route("/generations/user/"), reconfigure(sim, faults={"server_error_rate": 0})
        )
        with anyio.fail_after(DEADLINE):
            if listed_before:
                job = await client.image_to_video(prompt="second", image=image)
                assert job.id in {g.id for g in sim.generations}
            else:
                with raises_clean(SubmitUncertainError, match="proves nothing"):
                    await client.image_to_video(prompt="second", image=image)
        assert _submits(traffic) - before == (2 if listed_before else 1)
        assert sim.statistics().duplicate_submissions == 0
