"""One key's limits shared through a real Redis server by separate workers.

Each worker is its own :class:`SharedKey` (in a real fleet, its own process; one test
kills a real child process). Waits on the limiter's clock are recorded, not waited
(:class:`RecordingClock`), so a test reads the turn Redis booked instead of timing it;
what has to pass real time (a lease expiring, a keeper renewing) is waited for with a
generous deadline and never measured.
"""

from __future__ import annotations

import logging
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest
from _helpers import DEADLINE, KEY, eventually
from _redis import (
    REDIS_URL,
    PrivateRedis,
    RecordingClock,
    Slept,
    delete_namespace,
    namespace_keys,
    redis_or_skip,
    unique_namespace,
)

from leonardo_async import Limits, RedisLimits, ValidationError
from leonardo_async._limits import KeyLimiter, RequestKind, SharedKey, Tuning
from leonardo_async._limits._redis import REBOOKS, REQUESTS, SUBMITS, Lease, key_prefix

Factory = Callable[..., Awaitable[SharedKey]]


@pytest.fixture
def namespace() -> Iterator[str]:
    """A namespace of this test's own on the shared server, deleted afterwards."""
    url = redis_or_skip()
    name = unique_namespace()
    try:
        yield name
    finally:
        delete_namespace(url, name)


@pytest.fixture
async def workers(namespace: str) -> AsyncIterator[Factory]:
    """Opens workers (each a SharedKey on the same key and namespace); closes them after."""
    async with AsyncExitStack() as stack:

        async def worker(
            limits: Limits | None = None, *, clock: Any = None, **config: Any
        ) -> SharedKey:
            settings = {"namespace": namespace, "lease": 3.0, **config}
            url = settings.pop("url", REDIS_URL)
            shared = SharedKey(RedisLimits(url, **settings), KEY, limits or Limits(), clock=clock)
            return await stack.enter_async_context(shared)

        yield worker


async def _pace_until_held(worker: SharedKey, bucket: str) -> None:
    """Take turns until one is held back longer than the worker's clock allows (until
    the other worker's keeper has sent its pause)."""
    with anyio.fail_after(DEADLINE):
        while True:
            try:
                await worker.pace(bucket)
            except Slept:
                return
            await anyio.sleep(0.01)


def _held(namespace: str) -> int:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        return int(client.zcard(f"{key_prefix(namespace, KEY)}:leases"))
    finally:
        client.close()


async def test_redis_key_names_hash_the_api_key(workers: Factory, namespace: str) -> None:
    """Every key a worker writes is named from the API key's hash; the key itself is in
    no name, and no two API keys share a name."""
    worker = await workers(Limits(requests_per_minute=6000), clock=RecordingClock())
    await worker.pace(REQUESTS)
    lease = await worker.lease(2, 0)
    worker.pause(0.5, buckets=(SUBMITS,))
    worker.release(lease)
    names = await eventually(lambda: namespace_keys(REDIS_URL, namespace))
    assert names
    prefix = key_prefix(namespace, KEY)
    for name in names:
        assert name.startswith(prefix + ":")
        assert KEY not in name
    assert key_prefix(namespace, KEY + "x") != prefix


async def test_two_workers_book_turns_in_one_bucket(workers: Factory) -> None:
    """At one request a second (paced at the fleet's share), three turns taken by one worker put the
    other's first turn about three seconds out: the bucket is the fleet's, on one clock."""
    limits = Limits(requests_per_minute=60)
    clock_a, clock_b = RecordingClock(), RecordingClock()
    a = await workers(limits, clock=clock_a)
    b = await workers(limits, clock=clock_b)
    for _ in range(3):
        await a.pace(REQUESTS)
    await b.pace(REQUESTS)
    interval = 60 / (60 * Tuning().fleet_pace)
    assert clock_a.waits[0] > 0.5 * interval  # the second turn waited a whole interval
    assert clock_b.waits[0] > 2.5 * interval


class OversleepingClock(RecordingClock):
    """Waits recorded, not waited, as its parent's; the first ``times`` of them wake
    ``late`` seconds past their end (a starved process), by moving this clock on."""

    def __init__(self, late: float, times: int) -> None:
        super().__init__()
        self.late, self.times, self.offset = late, times, 0.0

    def now(self) -> float:
        return super().now() + self.offset

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds)
        self.offset += seconds
        if self.times > 0:
            self.times -= 1
            self.offset += self.late


async def test_a_turn_woken_too_late_for_is_booked_again(workers: Factory) -> None:
    """At one request a second, a sender that wakes half a second past its turn would
    send among the next turn's requests: it books the next turn and sends at that one."""
    clock = OversleepingClock(late=0.6, times=1)
    worker = await workers(Limits(requests_per_minute=60), clock=clock)
    await worker.pace(REQUESTS)  # the bucket's first turn: now, no wait
    await worker.pace(REQUESTS)  # the second: woken late, so the third is taken
    interval = 60 / (60 * Tuning().fleet_pace)
    first, second = clock.waits
    assert 0.5 * interval < first <= interval
    assert second > first + 0.5 * interval  # one more interval out (less the Redis trip)


async def test_a_sender_always_late_books_a_few_times_then_sends(workers: Factory) -> None:
    """A process too starved to wake on time for any turn does not book forever: after
    REBOOKS more turns it sends at the last."""
    clock = OversleepingClock(late=0.6, times=1000)
    worker = await workers(Limits(requests_per_minute=60), clock=clock)
    await worker.pace(REQUESTS)
    await worker.pace(REQUESTS)
    assert len(clock.waits) == 1 + REBOOKS


async def test_a_pause_after_one_workers_429_holds_every_worker(workers: Factory) -> None:
    """One worker refused with a 30 s Retry-After: the other's next request waits for it."""
    a = await workers(Limits(requests_per_minute=6000))
    clock = RecordingClock(longest=5)
    b = await workers(Limits(requests_per_minute=6000), clock=clock)
    a.pause(30, buckets=(REQUESTS, SUBMITS))
    await _pace_until_held(b, REQUESTS)
    assert clock.waits[-1] > 25


async def test_a_concurrency_pause_holds_submits_only(workers: Factory) -> None:
    """A pause for a concurrency refusal holds submits; reads (which see slots free) go."""
    a = await workers(Limits(requests_per_minute=6000, submits_per_minute=6000))
    clock = RecordingClock(longest=5)
    b = await workers(Limits(requests_per_minute=6000, submits_per_minute=6000), clock=clock)
    a.pause(30, buckets=(SUBMITS,))
    await _pace_until_held(b, SUBMITS)
    assert clock.waits[-1] > 25
    clock.waits.clear()
    await b.pace(REQUESTS)
    assert all(wait < 5 for wait in clock.waits)


def _learnt(namespace: str, bucket: str) -> float | None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        raw = client.get(f"{key_prefix(namespace, KEY)}:{bucket}:learnt")
    finally:
        client.close()
    return None if raw is None else float(raw)


async def test_a_refusal_teaches_the_fleet_the_rate_the_fleet_sent_at(
    workers: Factory, namespace: str
) -> None:
    """Worker b sends 30 requests at up to 100 a second and worker a none; then a read of
    a's is refused. The fleet learns the rate the fleet was sending at (about 30 a second
    over the one second it is measured on at least), not a's own, which saw nothing and
    would hold every worker to the slowest pace there is; and that rate paces worker c,
    configured for 100 a second."""
    limits = Limits(requests_per_minute=6000)
    b = await workers(limits)
    for _ in range(30):
        await b.pace(REQUESTS)
    shared = SharedKey(RedisLimits(REDIS_URL, namespace=namespace, lease=3.0), KEY, limits)
    async with KeyLimiter(limits, shared=shared) as a:
        a.on_rate_limited(RequestKind.READ, 0.001)
        learnt = await eventually(lambda: _learnt(namespace, REQUESTS))
    assert 20 <= learnt <= 100
    clock = RecordingClock()
    c = await workers(limits, clock=clock)
    for _ in range(3):
        await c.pace(REQUESTS)
    assert clock.waits[-1] > 0.5 / learnt  # at the learnt pace, not the 100 a second


async def test_slots_are_shared_and_renewed_while_held(workers: Factory, namespace: str) -> None:
    """Two slots: the first worker's two leases keep the second waiting past several
    lease times (they are renewed), and one given back goes to it."""
    a = await workers(lease=0.3)
    b = await workers(lease=0.3)
    first, second = await a.lease(2, 0), await a.lease(2, 0)
    with anyio.move_on_after(1.5) as waited:  # five lease times
        await b.lease(2, 0)
    assert waited.cancelled_caught
    a.release(first)
    with anyio.fail_after(DEADLINE):
        await b.lease(2, 0)
    assert _held(namespace) == 2
    assert second.id != first.id


async def test_a_slot_a_worker_gives_back_goes_to_its_own_waiters_at_once(
    workers: Factory, namespace: str
) -> None:
    """Two slots, both held by the worker, and three of its submitters waiting with the
    next look for a free slot an hour away: each slot it gives back is taken by its next
    waiter as soon as Redis has it, one waiter at a time, without waiting for that look."""
    a = await workers(poll=3600.0)
    held = [await a.lease(2, 0), await a.lease(2, 0)]
    got: list[Lease] = []

    async def wait_for_one() -> None:
        got.append(await a.lease(2, 0))

    async def give_one_back() -> None:
        before = len(got)
        a.release(held.pop())
        await eventually(lambda: len(got) > before)
        held.append(got[-1])

    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(wait_for_one)
            for _ in range(3):
                await anyio.wait_all_tasks_blocked()
                await give_one_back()
    assert _held(namespace) == 2


async def test_a_killed_workers_slots_come_back_after_the_lease(
    workers: Factory, namespace: str, tmp_path: Path
) -> None:
    """A worker process that holds both slots is killed (SIGKILL, no goodbye): the other
    gets none at once, and one once the dead worker's leases expire."""
    child = tmp_path / "worker.py"
    child.write_text(
        textwrap.dedent(
            f"""
            import os, signal, anyio
            from leonardo_async import Limits, RedisLimits
            from leonardo_async._limits import KeyLimiter, RequestKind, SharedKey

            async def main():
                config = RedisLimits({REDIS_URL!r}, namespace={namespace!r}, lease=2.0)
                async with SharedKey(config, {KEY!r}, Limits()) as worker:
                    await worker.lease(2, 0)
                    await worker.lease(2, 0)
                    print("held", flush=True)
                    os.kill(os.getpid(), signal.SIGKILL)

            anyio.run(main)
            """
        )
    )
    with anyio.fail_after(60):
        result = await anyio.run_process([sys.executable, str(child)], check=False)
    assert result.stdout == b"held\n", result.stderr
    assert result.returncode == -9
    b = await workers()
    with anyio.move_on_after(0.2) as early:
        await b.lease(2, 0)
    assert early.cancelled_caught
    with anyio.fail_after(DEADLINE):
        await b.lease(2, 0)
        await b.lease(2, 0)


async def test_one_probe_past_the_slots_then_the_queue_it_showed(workers: Factory) -> None:
    """Two slots and two to keep queued: until someone knows whether the server queues,
    the fleet holds the slots plus one probe; once more submits are accepted at once than
    there are slots, the slots plus the queue, and every worker is told the server queues."""
    told: list[bool] = []
    a = await workers()
    b = await workers()
    b.on_queues = told.append
    leases = [await a.lease(2, 2) for _ in range(3)]
    with anyio.move_on_after(0.3) as waited:
        await b.lease(2, 2)
    assert waited.cancelled_caught
    for lease in leases:  # the probe was accepted with both slots running: the server queues
        a.accepted(lease)
    with anyio.fail_after(DEADLINE):
        await b.lease(2, 2)
    with anyio.move_on_after(0.3) as full:
        await b.lease(2, 2)
    assert full.cancelled_caught
    await eventually(lambda: told == [True])


async def test_a_probe_that_overtook_the_slots_submits_shows_no_queue(workers: Factory) -> None:
    """A lease is taken before its submit waits for its turn, so the probe's submit can
    reach the server before the submits of the slots' leases: accepted then, it found a
    slot free and proves nothing. Nothing is learnt, the fleet stays at the slots plus
    one, and once the others are accepted (three at once on two slots) it is learnt."""
    told: list[bool] = []
    a = await workers()
    b = await workers()
    b.on_queues = told.append
    leases = [await a.lease(2, 2) for _ in range(3)]
    a.accepted(leases[2])
    a.accepted(leases[0])
    a.release(leases[0])  # its job ended before the last submit was accepted
    a.accepted(leases[1])
    with anyio.fail_after(DEADLINE):
        await b.lease(2, 2)  # the slot leases[0] gave back: the fleet holds 3 again
    with anyio.move_on_after(0.3) as full:
        await b.lease(2, 2)
    assert full.cancelled_caught
    assert told == []
    a.accepted(leases[1])  # said twice: counted once
    assert told == []


async def test_a_concurrency_refusal_lowers_the_fleets_bound(workers: Factory) -> None:
    """The probe past the slots is refused: the server does not queue, every worker is
    told so, and the fleet holds at the slots (the refused submit's lease given back)."""
    told: list[bool] = []
    a = await workers()
    b = await workers()
    b.on_queues = told.append
    leases = [await a.lease(2, 2) for _ in range(3)]
    a.refused()
    a.release(leases[2])
    await eventually(lambda: told == [False])
    with anyio.move_on_after(0.3) as waited:
        await b.lease(2, 2)
    assert waited.cancelled_caught


async def test_redis_away_from_the_start_gives_a_fair_share_and_one_warning(
    workers: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listens at the URL: opening does not fail, the worker takes its share of
    ten slots among the three workers it was told to expect (four: ten split 4, 3, 3),
    paces at a third of the rate, and says so once at WARNING."""
    with socket_bound_not_listening() as port:
        clock = RecordingClock()
        caplog.set_level(logging.WARNING, logger="leonardo_async")
        worker = await workers(
            Limits(requests_per_minute=600),
            clock=clock,
            url=f"redis://127.0.0.1:{port}/0",
            workers=3,
            timeout=0.2,
        )
        for _ in range(4):
            await worker.lease(10, 0)
        with anyio.move_on_after(0.3) as waited:
            await worker.lease(10, 0)
        assert waited.cancelled_caught
        clock.waits.clear()
        await worker.pace(REQUESTS)
        await worker.pace(REQUESTS)
        # 600 a minute among three at 98 %: 0.306 s apart, not the whole rate's 0.102.
        assert clock.waits
        assert clock.waits[-1] > 0.25
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1
    assert "127.0.0.1" in warnings[0].getMessage()


async def test_redis_stopped_mid_run_splits_then_shares_again(
    workers: Factory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two workers seen alive, four slots: Redis stops and each worker holds at most its
    half (its own leases counted), never all four; Redis back, they share again."""
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        caplog.set_level(logging.INFO, logger="leonardo_async")
        a = await workers(url=server.url, lease=0.6, timeout=0.2)
        b = await workers(url=server.url, lease=0.6, timeout=0.2)
        await eventually(lambda: a.workers == 2 and b.workers == 2)
        held = await a.lease(4, 0)
        server.stop()
        got = await a.lease(4, 0)  # its second of two, once it finds Redis away
        assert not a.available
        with anyio.move_on_after(0.5) as waited:
            await a.lease(4, 0)
        assert waited.cancelled_caught
        for lease in (held, got):
            a.release(lease)
        server.start()
        await eventually(lambda: a.available, deadline=DEADLINE)
        leases = [await a.lease(4, 0) for _ in range(4)]  # all four, shared again
        assert len({lease.id for lease in leases}) == 4
        messages = [r.getMessage() for r in caplog.records]
        assert sum("unreachable" in m for m in messages) == 2  # one for each worker
        assert any("back" in m for m in messages)
    finally:
        server.stop()


def test_a_redis_url_is_checked_and_its_password_never_shown() -> None:
    """A URL that is not Redis's is refused before anything connects; a password in one
    is in no repr and no error."""
    with pytest.raises(ValidationError, match="redis://") as refused:
        RedisLimits("http://user:hunter2@example.invalid")
    assert "hunter2" not in str(refused.value)
    assert "hunter2" not in repr(RedisLimits("redis://user:hunter2@127.0.0.1:6379/0"))


class socket_bound_not_listening:  # a context manager, named as the function it stands for
    """A loopback port held bound and never listening: connecting to it is refused."""

    def __enter__(self) -> int:
        import socket

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        port: int = self._sock.getsockname()[1]
        return port

    def __exit__(self, *exc: object) -> None:
        self._sock.close()
