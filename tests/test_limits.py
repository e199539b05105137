"""One key's limits: request pacing, the shared 429 pause, adaptive rate and running slots.

Nothing here asserts on elapsed time: the tests look at the limiters' state (the rate in
force, the seconds they chose to wait, the slots they hand out) or at whether a call can
finish while a long pause is in force.
"""

from __future__ import annotations

import math
from typing import Any

import anyio
import pytest

from leonardo_async import Limits
from leonardo_async._limits import KeyLimiter, RateGate, RequestKind, RunningSlots

DEADLINE = 30.0


async def finishes_soon(func: Any, *args: Any) -> bool:
    """Whether ``func(*args)`` completes within a short grace period."""
    with anyio.move_on_after(0.2):
        await func(*args)
        return True
    return False


async def send(gate: RateGate, count: int) -> None:
    """Pass ``count`` requests through ``gate``, one after another."""
    with anyio.fail_after(DEADLINE):
        for _ in range(count):
            await gate.acquire()


async def test_pause_is_shared_by_every_sender() -> None:
    """After a 429, no task gets through the gate until the pause is over."""
    gate = RateGate(None)
    gate.on_rate_limited(3600)
    results: list[bool] = []

    async def sender() -> None:
        results.append(await finishes_soon(gate.acquire))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(sender)
    assert results == [False] * 5


async def test_short_pause_is_waited_out_by_all() -> None:
    """Every sender waits out a short pause and then proceeds; the wait is accounted."""
    gate = RateGate(None)
    with anyio.fail_after(DEADLINE):
        for _ in range(20):  # some history, so that the lowered pace is not a crawl
            await gate.acquire()
        gate.on_rate_limited(0.05)
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(gate.acquire)
    assert gate.waited > 0


async def test_submit_429_pauses_reads_too() -> None:
    """A 429 on a submit pauses the key's polls as well, not only its submits."""
    limiter = KeyLimiter(Limits.off())
    limiter.on_rate_limited(RequestKind.SUBMIT, 3600)
    assert not await finishes_soon(limiter.before, RequestKind.READ)
    assert not await finishes_soon(limiter.before, RequestKind.SUBMIT)


async def test_concurrency_429_pauses_submits_only() -> None:
    """A submit refused for concurrency holds submits back; polls go on to see jobs end."""
    limiter = KeyLimiter(Limits.off())
    limiter.on_rate_limited(RequestKind.SUBMIT, 3600, reason="concurrency limit reached")
    assert not await finishes_soon(limiter.before, RequestKind.SUBMIT)
    with anyio.fail_after(DEADLINE):
        await limiter.before(RequestKind.READ)


async def test_rate_lowered_after_429_and_regrown() -> None:
    """A 429 lowers the pace below the configured rate; runs of successes grow it back to it."""
    gate = RateGate(600)  # 10 requests a second, paced at PACE of it
    assert gate.rate == pytest.approx(10 * RateGate.PACE)
    await send(gate, 3)
    gate.on_rate_limited(0)
    lowered = gate.rate
    assert lowered is not None
    assert 1 <= lowered < 10
    for _ in range(RateGate.RECOVER_AFTER):
        gate.on_success()
    grown = gate.rate
    assert grown is not None
    assert lowered < grown <= 10
    for _ in range(RateGate.RECOVER_AFTER * 10_000):
        gate.on_success()
    assert gate.rate == pytest.approx(10 * RateGate.PACE)


async def test_unlimited_gate_learns_a_rate() -> None:
    """Without a configured rate, a 429 sets one, and successes let it grow again."""
    gate = RateGate(None)
    assert gate.rate is None
    await send(gate, 20)
    gate.on_rate_limited(0)
    lowered = gate.rate
    assert lowered is not None
    for _ in range(RateGate.RECOVER_AFTER * 50):
        gate.on_success()
    assert gate.rate is None or gate.rate > lowered


async def test_the_refused_request_is_not_counted_in_the_rate_refused() -> None:
    """A server that takes 20 a second refuses the 21st: the limit learned is under 20."""
    gate = RateGate(None)
    await send(gate, 21)
    gate.lower()
    assert gate.learned is not None
    assert 0 < gate.learned <= 20 * RateGate.SETTLE + 1e-9  # 21 * SETTLE would be over 20


async def test_burst_passes_without_waiting() -> None:
    """Requests within the burst leave back to back; a paced gate then makes later ones wait."""
    gate = RateGate(60, burst=4)  # one a second after a burst of four
    await send(gate, 4)
    assert gate.waited == 0
    assert not await finishes_soon(gate.acquire) or gate.waited > 0


async def start_jobs(slots: RunningSlots, count: int) -> list[object]:
    """Take ``count`` slots one after another, each job accepted by the server."""
    tokens = []
    for _ in range(count):
        with anyio.fail_after(DEADLINE):
            token = await slots.acquire()
        slots.running_now(token)
        tokens.append(token)
    return tokens


async def test_running_slots_shrink_on_refusal_and_regrow(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refusal bounds slots to what runs, one less at the bound; forgotten, they regrow."""
    slots = RunningSlots(5)
    tokens = await start_jobs(slots, 2)
    tokens.append(await slots.acquire())  # a third submit, past what the server accepted
    assert (slots.total, slots.in_use, slots.running, slots.proven) == (5, 3, 2, 2)
    slots.on_refused()
    assert (slots.total, slots.proven) == (2, 2)  # what the server accepted, not every slot held
    slots.on_refused()
    assert slots.total == 2  # the same episode lowers once
    monkeypatch.setattr(RunningSlots, "EPISODE", 0.0)
    slots.on_refused()
    assert (slots.total, slots.proven) == (1, 1)  # refused again at the bound: one further
    for _ in range(3 * RunningSlots.RECOVER_AFTER):
        slots.on_submitted()
    assert slots.total == 1  # a learned limit holds while refusals are recent
    monkeypatch.setattr(RunningSlots, "FORGET", 0.0)
    for expected in (2, 3, 4, 5, 5):
        for _ in range(RunningSlots.RECOVER_AFTER):
            slots.on_submitted()
        assert slots.total == expected
    for token in tokens:
        slots.release(token)
    assert (slots.in_use, slots.running) == (0, 0)


async def test_submits_past_the_proven_level_go_one_at_a_time() -> None:
    """Past the most jobs the server has accepted at once, a submit waits for the last answer."""
    slots = RunningSlots(10)
    probe = await slots.acquire()
    assert not await finishes_soon(slots.acquire)  # nothing proven yet: one at a time
    slots.running_now(probe)  # accepted: one job proven
    with anyio.fail_after(DEADLINE):
        second = await slots.acquire()
    assert not await finishes_soon(slots.acquire)
    slots.release(second)  # refused (or failed): answered all the same
    with anyio.fail_after(DEADLINE):
        third = await slots.acquire()
    slots.running_now(third)
    for token in (probe, third):
        slots.release(token)
    assert (slots.proven, slots.in_use, slots.running) == (2, 0, 0)
    with anyio.fail_after(DEADLINE):  # within the proven level, submits go together
        together = [await slots.acquire() for _ in range(3)]
    assert not await finishes_soon(slots.acquire)  # the third of them was the probe
    for token in together:
        slots.release(token)


async def test_a_waiting_probe_holds_no_slot() -> None:
    """A submit waiting for the probe's answer leaves its slot free, so a lower bound holds it."""
    slots = RunningSlots(2)
    probe = await slots.acquire()
    assert not await finishes_soon(slots.acquire)
    assert slots.in_use == 1
    slots.on_refused()  # the probe was refused with nothing running: bound 1
    slots.release(probe)
    with anyio.fail_after(DEADLINE):
        token = await slots.acquire()
    assert (slots.total, slots.in_use) == (1, 1)
    slots.release(token)


async def test_running_slots_block_when_full() -> None:
    """With every slot taken, the next acquire waits until one is released."""
    slots = RunningSlots(1)
    first = await slots.acquire()
    assert not await finishes_soon(slots.acquire)
    slots.release(first)
    with anyio.fail_after(DEADLINE):
        second = await slots.acquire()
    slots.release(second)


async def test_unbounded_running_slots() -> None:
    """RunningSlots(None) never blocks and ignores refusals."""
    slots = RunningSlots(None)
    tokens = [await slots.acquire() for _ in range(100)]
    slots.on_refused()
    assert slots.total is None
    assert slots.in_use == 0
    for token in tokens:
        slots.release(token)


async def test_key_limiter_429_pauses_grow_and_reset() -> None:
    """429s without Retry-After pause for growing, jittered times; a success resets the growth."""
    limiter = KeyLimiter(Limits.off())
    first = limiter.on_rate_limited(RequestKind.READ, None)
    second = limiter.on_rate_limited(RequestKind.READ, None)
    assert 0.5 <= first <= 1.0
    assert 1.0 <= second <= 2.0
    assert limiter.on_rate_limited(RequestKind.READ, 7.5) == 7.5
    assert limiter.rate_limited == 3
    limiter.on_success(RequestKind.READ)
    assert 0.5 <= limiter.on_rate_limited(RequestKind.READ, None) <= 1.0


async def test_a_concurrency_refusal_lowers_running_bound() -> None:
    """A submit refused for concurrency bounds running to what runs; a bare 429 does not."""
    limiter = KeyLimiter(Limits.off())
    limiter.set_running(8)
    tokens = await start_jobs(limiter.running, 3)
    tokens.append(await limiter.running.acquire())  # three jobs run; the fourth is refused
    limiter.on_rate_limited(RequestKind.SUBMIT, 0)
    assert limiter.running.total == 8
    limiter.on_rate_limited(RequestKind.SUBMIT, 0, reason="Concurrency limit reached")
    assert limiter.running.total == 3
    for token in tokens:
        limiter.running.release(token)


def test_limits_defaults_and_off() -> None:
    """Defaults are Leonardo's documented ones; Limits.off() switches everything off."""
    limits = Limits()
    assert (limits.requests_per_minute, limits.submits_per_minute) == (2000, 100)
    assert limits.max_running == "account"
    off = Limits.off()
    assert (off.requests_per_minute, off.submits_per_minute, off.max_running) == (None, None, None)
    assert Limits(max_running=3, burst=2).max_running == 3


@pytest.mark.parametrize(
    "changes",
    [
        {"requests_per_minute": 0},
        {"requests_per_minute": -5},
        {"requests_per_minute": "fast"},
        {"requests_per_minute": True},
        {"submits_per_minute": 0},
        {"max_running": 0},
        {"max_running": -1},
        {"max_running": True},
        {"max_running": 2.5},
        {"max_running": "all"},
        {"burst": 0},
        {"burst": True},
    ],
)
def test_limits_validation(changes: dict[str, Any]) -> None:
    """Limits refuses non-positive rates, bools and bounds that are not whole and positive."""
    with pytest.raises(ValueError, match=next(iter(changes))):
        Limits(**changes)


def test_gate_paces_a_little_below_the_configured_rate() -> None:
    """A gate configured at a server's limit paces just under it, so window jitter is no 429."""
    gate = RateGate(600)
    assert gate.rate == pytest.approx(10 * RateGate.PACE)
    assert gate.rate is not None
    assert 9.5 <= gate.rate < 10


async def test_no_burst_by_default() -> None:
    """By default no request leaves right after the last (a burst overruns a per-second limit)."""
    gate = RateGate(60)  # one a second
    with anyio.fail_after(DEADLINE):
        await gate.acquire()
    assert not await finishes_soon(gate.acquire)


async def test_submit_held_at_request_gate_counts_when_it_leaves() -> None:
    """A submit waiting at the request gate is not yet counted in the submit rate."""
    limiter = KeyLimiter(Limits(requests_per_minute=60, submits_per_minute=None, max_running=None))
    with anyio.fail_after(DEADLINE):
        await limiter.before(RequestKind.READ)
    assert not await finishes_soon(limiter.before, RequestKind.SUBMIT)
    assert limiter.submits.measured_rate() == RateGate.MIN_RATE


async def test_submit_429_while_requests_queue_lowers_the_request_rate() -> None:
    """A submit's 429 while requests queue at the request gate lowers the request rate only."""
    limiter = KeyLimiter(Limits(requests_per_minute=60, submits_per_minute=None, max_running=None))
    configured = limiter.requests.rate
    assert configured is not None
    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(limiter.before, RequestKind.SUBMIT)
        await anyio.wait_all_tasks_blocked()
        assert limiter.requests.binding
        limiter.on_rate_limited(RequestKind.SUBMIT, 0)
        tg.cancel_scope.cancel()
    lowered = limiter.requests.rate
    assert lowered is not None
    assert lowered < configured
    assert limiter.submits.rate is None


async def test_submit_429_with_requests_flowing_lowers_the_submit_rate() -> None:
    """A refused submit while nothing queues at the request gate lowers the submit rate only."""
    limiter = KeyLimiter(Limits(requests_per_minute=6000, submits_per_minute=600, max_running=None))
    with anyio.fail_after(DEADLINE):
        await limiter.before(RequestKind.SUBMIT)
    assert not limiter.requests.binding
    limiter.on_rate_limited(RequestKind.SUBMIT, 0)
    assert limiter.requests.rate == pytest.approx(100 * RateGate.PACE)
    submits = limiter.submits.rate
    assert submits is not None
    assert submits < 10 * RateGate.PACE


async def test_submit_429_with_requests_at_the_gate_rate_lowers_the_request_rate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Requests leaving at the request gate's rate, none queued: a refused submit is theirs."""
    monkeypatch.setattr(RateGate, "SATURATED", 0.5)  # a slow machine sends a little late
    limiter = KeyLimiter(Limits(requests_per_minute=600, submits_per_minute=6000, max_running=None))
    configured = limiter.requests.rate
    assert configured is not None
    for _ in range(12):  # 1.2 s at 10 a second, one sender at a time: nothing queues
        with anyio.fail_after(DEADLINE):
            await limiter.before(RequestKind.SUBMIT)
    assert limiter.requests.binding
    limiter.on_rate_limited(RequestKind.SUBMIT, 0)
    lowered = limiter.requests.rate
    assert lowered is not None
    assert lowered < configured
    assert limiter.submits.rate == pytest.approx(100 * RateGate.PACE)


async def test_lowered_rate_applies_to_senders_already_waiting() -> None:
    """Senders waiting when the rate is lowered leave at the new pace, not the one they booked."""
    gate = RateGate(6000)  # about 98 a second: turns booked 10 ms apart
    with anyio.fail_after(DEADLINE):
        await gate.acquire()
    done = 0

    async def sender() -> None:
        nonlocal done
        await gate.acquire()
        done += 1

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(sender)
        await anyio.wait_all_tasks_blocked()
        before = done
        gate.lower()  # about one sent in the last second: now under two a second
        await anyio.sleep(0.25)
        tg.cancel_scope.cancel()
    assert done - before <= 2


async def test_rate_refused_is_measured_since_the_pause_ended() -> None:
    """The rate a 429 refused counts the sends since the last pause ended, not the time paused."""
    gate = RateGate(None)
    await send(gate, 20)
    gate.pause(0.01)
    await anyio.sleep(0.05)
    await send(gate, 3)
    gate.on_rate_limited(0)
    learned = gate.learned
    assert learned is not None
    assert learned <= 3


async def test_one_lowering_per_429_episode() -> None:
    """A 429 arriving while an earlier one's pause is in force does not lower the rate again."""
    limiter = KeyLimiter(Limits(requests_per_minute=600, submits_per_minute=None, max_running=None))
    with anyio.fail_after(DEADLINE):
        for _ in range(3):
            await limiter.before(RequestKind.READ)
    limiter.on_rate_limited(RequestKind.READ, 3600)
    lowered = limiter.requests.rate
    limiter.on_rate_limited(RequestKind.READ, 3600)
    assert limiter.requests.rate == lowered
    assert limiter.rate_limited == 2


async def test_learned_limit_creeps_up_slowly() -> None:
    """Settled under a learned limit, a step up takes CREEP_EVERY seconds' worth of successes."""
    gate = RateGate(60_000)
    await send(gate, 60)
    gate.on_rate_limited(0)
    learned = gate.learned
    assert learned is not None
    for _ in range(RateGate.RECOVER_AFTER * 2):  # back up to the learned limit
        gate.on_success()
    assert gate.rate == pytest.approx(learned)
    for _ in range(RateGate.RECOVER_AFTER * 5):
        gate.on_success()
    assert gate.learned == learned
    for _ in range(math.ceil(learned * RateGate.CREEP_EVERY)):
        gate.on_success()
    assert gate.learned == pytest.approx(learned * RateGate.CREEP)


async def test_a_brief_queue_at_a_fast_gate_is_not_binding() -> None:
    """A burst queued for milliseconds at a fast request gate does not make it the binding one."""
    limiter = KeyLimiter(Limits(requests_per_minute=60_000, submits_per_minute=None))
    limiter.set_running(16)
    async with anyio.create_task_group() as tg:
        for _ in range(16):
            tg.start_soon(limiter.before, RequestKind.SUBMIT)
        await anyio.wait_all_tasks_blocked()
        assert not limiter.requests.binding
        limiter.on_rate_limited(RequestKind.SUBMIT, 0)
        tg.cancel_scope.cancel()
    assert limiter.requests.rate == pytest.approx(1000 * RateGate.PACE)
    assert limiter.submits.rate is not None
