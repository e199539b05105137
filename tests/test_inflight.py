"""The key's in-flight bound over real loopback HTTP: every submit, batch or not, and the
queue allowance against a server that queues and one that refuses.

The simulator measures what reached it (``peak_running``, ``peak_queued``,
``peak_attempted``, ``refused_in_flight``); nothing here measures time.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from _helpers import FAST, KEY, QUICK_RETRY
from _images import png_bytes

from leonardo_async import BatchItem, BatchSubmitter, LeonardoClient, Limits
from leonardo_async.simulator import JobDurations, Simulator

DEADLINE = 60.0


def client_on(sim: Simulator, limits: Limits) -> LeonardoClient:
    return LeonardoClient(
        KEY, base_url=sim.base_url, limits=limits, poll_schedule=FAST, retry=QUICK_RETRY
    )


def items(count: int, prefix: str) -> list[BatchItem]:
    image = png_bytes()
    return [BatchItem.create(prompt=f"{prefix} {i}", image=image) for i in range(count)]


async def run(batch: BatchSubmitter, batch_items: list[BatchItem]) -> list[str]:
    statuses = []
    async with batch.stream(batch_items) as results:
        async for result in results:
            statuses.append(result.status)
    return statuses


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(0.3))
async def test_the_bound_holds_for_single_submits(sim: Simulator) -> None:
    """``Limits(max_running=4)`` holds for plain ``image_to_video`` calls, no batch at all:
    the fifth waits until the tracker sees a job end, though nobody waits for the jobs."""
    async with client_on(sim, Limits(None, None, max_running=4)) as client:
        image = (await client.upload_image(png_bytes())).id
        ids: list[str] = []

        async def submit(index: int) -> None:
            job = await client.image_to_video(prompt=f"single {index}", image=image)
            ids.append(job.id)

        with anyio.fail_after(DEADLINE):
            async with anyio.create_task_group() as tg:
                for index in range(12):
                    tg.start_soon(submit, index)
            for gid in ids:
                await client.wait(gid)
        stats = client.statistics()
    assert len(ids) == 12
    assert 1 <= sim.statistics().peak_running <= 4
    assert (stats.running_limit, stats.in_flight_bound) == (4, 4)


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(0.2))
async def test_two_batches_on_one_client_share_one_bound(sim: Simulator) -> None:
    """Two batches at once on a client with ``max_running=4`` never run more than 4."""
    async with client_on(sim, Limits(None, None, max_running=4)) as client:
        outcomes: list[list[str]] = []

        async def one_batch(prefix: str, own: Limits | None) -> None:
            async with BatchSubmitter(client, limits=own) as batch:
                outcomes.append(await run(batch, items(8, prefix)))

        with anyio.fail_after(DEADLINE):
            async with anyio.create_task_group() as tg:
                tg.start_soon(one_batch, "first", None)
                tg.start_soon(one_batch, "second", Limits(None, None, max_running=3))
    assert sorted(s for batch in outcomes for s in batch) == ["COMPLETE"] * 16
    assert 1 <= sim.statistics().peak_running <= 4


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(0.1))
async def test_a_batch_bound_does_not_replace_the_keys_gates(sim: Simulator) -> None:
    """A batch's own Limits nest inside the key's: the client's rates stay as they were."""
    client_limits = Limits(requests_per_minute=60_000, submits_per_minute=6000, max_running=5)
    async with client_on(sim, client_limits) as client:
        before = client.statistics()
        own = Limits(requests_per_minute=600, submits_per_minute=600, max_running=2)
        async with BatchSubmitter(client, limits=own) as batch:
            with anyio.fail_after(DEADLINE):
                statuses = await run(batch, items(4, "nested"))
        after = client.statistics()
    assert statuses == ["COMPLETE"] * 4
    assert (after.request_rate, after.submit_rate) == (before.request_rate, before.submit_rate)
    assert after.running_limit == 5
    assert 1 <= sim.statistics().peak_running <= 2


async def account_batch(sim: Simulator, count: int, **limits: Any) -> list[str]:
    async with (
        client_on(sim, Limits(None, None, **limits)) as client,
        BatchSubmitter(client) as batch,
    ):
        with anyio.fail_after(DEADLINE):
            return await run(batch, items(count, "account"))


@pytest.mark.leonardo_simulator(
    durations=JobDurations.fixed(0.3), max_running=2, concurrency_slots=2
)
async def test_a_queueing_server_keeps_a_few_jobs_queued(sim: Simulator) -> None:
    """Against slots with a queue behind them, the batch keeps up to the allowance queued,
    with no 429 and never more than the slots running."""
    statuses = await account_batch(sim, 10, max_queued=2)
    stats = sim.statistics()
    assert statuses == ["COMPLETE"] * 10
    assert stats.peak_running == 2
    assert 1 <= stats.peak_queued <= 2
    assert stats.rate_limited == 0


@pytest.mark.leonardo_simulator(
    durations=JobDurations.fixed(0.3),
    max_running=3,
    concurrency_slots=3,
    refuse_at_concurrency=True,
)
async def test_a_refusing_server_costs_at_most_two_probes(sim: Simulator) -> None:
    """Against slots that refuse past them, the batch holds at the slots: at most one probe
    past them at a time, and at most two refused."""
    statuses = await account_batch(sim, 12, max_queued=2)
    stats = sim.statistics()
    assert statuses == ["COMPLETE"] * 12
    assert stats.peak_running == 3
    assert stats.peak_attempted <= 4
    assert 1 <= stats.refused_in_flight <= 2


@pytest.mark.leonardo_simulator(
    durations=JobDurations.fixed(0.2), max_running=2, concurrency_slots=2
)
async def test_no_queue_allowance_never_goes_past_the_slots(sim: Simulator) -> None:
    """``max_queued=0``: against a queueing server, nothing ever waits in its queue."""
    statuses = await account_batch(sim, 6, max_queued=0)
    stats = sim.statistics()
    assert statuses == ["COMPLETE"] * 6
    assert (stats.peak_queued, stats.peak_attempted, stats.rate_limited) == (0, 2, 0)


@pytest.mark.leonardo_simulator(
    durations=JobDurations.fixed(0.3), max_running=2, concurrency_slots=2, queue_depth=2
)
async def test_a_full_queue_lowers_the_allowance(sim: Simulator) -> None:
    """A queue shallower than ``max_queued``: its 429 brings the allowance down to it."""
    async with client_on(sim, Limits(None, None, max_queued=4)) as client:
        async with BatchSubmitter(client) as batch:
            with anyio.fail_after(DEADLINE):
                statuses = await run(batch, items(12, "deep"))
        limits = client.statistics()
    stats = sim.statistics()
    assert statuses == ["COMPLETE"] * 12
    assert (stats.peak_running, stats.peak_queued) == (2, 2)
    assert 1 <= stats.refused_in_flight <= 2
    assert limits.server_queues is True
    assert limits.in_flight_bound is not None
    assert limits.in_flight_bound <= 4
