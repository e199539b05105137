"""Separate clients on one key sharing its limits through a real Redis, over real HTTP.

Each client is its own :class:`LeonardoClient` (its own limiter, session and tracker), as
replicas of a service would be; the simulator counts what reached it. What Redis saves in
refusals against no Redis is measured in ``benchmarks/fleet.py``, not asserted here.
"""

from __future__ import annotations

import anyio
import pytest
from _helpers import FAST, KEY, QUICK_RETRY
from _images import png_bytes
from _redis import REDIS_URL

from leonardo_async import (
    BatchItem,
    BatchSubmitter,
    FrameRef,
    ImageToVideoRequest,
    LeonardoClient,
    Limits,
    PollSchedule,
    RedisLimits,
)
from leonardo_async.simulator import JobDurations, Simulator

DEADLINE = 60.0
SLOTS = 3
CLIENTS = 4


async def _batch(sim: Simulator, redis: RedisLimits | str | None, name: str) -> list[str]:
    image = png_bytes()
    items = [BatchItem.create(prompt=f"{name} {i}", image=image) for i in range(5)]
    statuses: list[str] = []
    async with (
        LeonardoClient(
            KEY,
            base_url=sim.base_url,
            limits=Limits(None, None, max_queued=2),
            redis=redis,
            poll_schedule=FAST,
            retry=QUICK_RETRY,
        ) as client,
        BatchSubmitter(client) as batch,
        batch.stream(items) as results,
    ):
        async for result in results:
            statuses.append(result.status)
    return statuses


@pytest.mark.leonardo_simulator(
    durations=JobDurations.fixed(0.3),
    max_running=SLOTS,
    concurrency_slots=SLOTS,
    refuse_at_concurrency=True,
)
async def test_clients_on_one_redis_hold_the_keys_slots_together(
    sim: Simulator, shared: RedisLimits
) -> None:
    """Four clients, each running its own batch on a key of three slots that refuses past
    them: together they never have more in flight than the slots and one probe, every
    line is made once, and at most the probe's refusals are drawn."""
    outcomes: list[list[str]] = []

    async def one(index: int) -> None:
        outcomes.append(await _batch(sim, shared, f"client {index}"))

    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg:
            for index in range(CLIENTS):
                tg.start_soon(one, index)
    stats = sim.statistics()
    assert sorted(s for o in outcomes for s in o) == ["COMPLETE"] * 5 * CLIENTS
    assert stats.duplicate_submissions == 0
    assert stats.peak_attempted <= SLOTS + 1
    assert stats.refused_in_flight <= 2


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(0.1))
async def test_the_environment_names_the_redis_and_the_key_stays_out_of_it(
    sim: Simulator, shared: RedisLimits, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``LEONARDO_REDIS_URL`` shares a client's limits when ``redis=`` is not given; what
    it writes is named from the key's hash."""
    import redis

    monkeypatch.setenv("LEONARDO_REDIS_URL", REDIS_URL)
    client = LeonardoClient(KEY, base_url=sim.base_url)
    assert client.redis == RedisLimits(REDIS_URL)
    # The environment's URL, with the test's own namespace, for the writes below.
    statuses = await _batch(sim, shared, "env")
    assert statuses == ["COMPLETE"] * 5
    server = redis.Redis.from_url(REDIS_URL)
    try:
        names = [k.decode() for k in server.scan_iter(match=f"{shared.namespace}:*")]
    finally:
        server.close()
    assert names
    assert not [name for name in names if KEY in name]


async def _watch(sim: Simulator, redis: RedisLimits | None, name: str, jobs: int) -> LeonardoClient:
    """A client that submits ``jobs`` generations and waits for them all (closed after)."""
    async with LeonardoClient(
        KEY,
        base_url=sim.base_url,
        limits=Limits(None, None),
        redis=redis,
        poll_schedule=PollSchedule(initial=0.3, max_interval=0.3),
        retry=QUICK_RETRY,
    ) as client:
        image = FrameRef((await client.upload_image(png_bytes())).id)
        submitted = [
            await client.submit(ImageToVideoRequest(prompt=f"{name} {i}", image=image))
            for i in range(jobs)
        ]
        done = [await client.wait(job.id) for job in submitted]
    assert [g.status.value for g in done] == ["COMPLETE"] * jobs
    return client


async def _reads(sim: Simulator, redis: RedisLimits | None) -> tuple[int, list[LeonardoClient]]:
    """Four clients with two jobs each; the status reads they cost, and the clients."""
    before = sim.statistics().requests
    clients: list[LeonardoClient] = []

    async def one(index: int) -> None:
        clients.append(await _watch(sim, redis, f"client {index}", 2))

    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg:
            for index in range(CLIENTS):
                tg.start_soon(one, index)
    after = sim.statistics().requests
    routes = ("GET /generations/{id}", "GET /generations/user/{userId}")
    return sum(after.get(r, 0) - before.get(r, 0) for r in routes), clients


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(3.0))
async def test_one_listing_round_serves_the_jobs_of_every_client(
    sim: Simulator, shared: RedisLimits
) -> None:
    """Four clients, two jobs each, every one too few for a listing round of its own.
    Alone, each polls its jobs one by one; on one Redis, the fleet's round is read by one
    client at a time and its pages are looks at the others' jobs: the same eight jobs
    cost far fewer status reads, and every one ends as the server says."""
    alone, _ = await _reads(sim, None)
    together, clients = await _reads(sim, shared)
    stats = [client.tracker_statistics() for client in clients]
    assert sum(s.fleet_rounds for s in stats) > 0
    assert sum(s.fleet_sightings for s in stats) > 0
    assert together < 0.85 * alone, (together, alone)
