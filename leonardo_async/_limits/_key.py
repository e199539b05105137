"""KeyLimiter: everything one API key's requests pass through, and what it reports.

One per client; the tracker's polls, single submits and batches share it, which is what
keeps polling from starving submissions, and all of them from tripping the server.

Its decision at each 429 is logged at DEBUG on the ``leonardo_async.limits`` logger: the
two rate gates before and after, the pause chosen, the in-flight bound. The record's
``decision`` attribute holds them as a dict, for a handler that collects them (the
limits benchmark does); :meth:`KeyLimiter.statistics` is the snapshot between 429s.

With a :class:`~._redis.SharedKey` the limiter also waits for the fleet's turn and lease
after its own, and tells the fleet what each 429 taught it; the limiter is then an async
context manager (the client enters it first), which connects to Redis.
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

import anyio
import attrs

from ._config import FALLBACK_SLOTS, AnyioClock, Clock, Limits, Tuning
from ._gate import RateGate
from ._policy import RefusalPolicy, about_concurrency
from ._redis import REQUESTS, SUBMITS, Lease, SharedKey
from ._slots import InFlightSlots

__all__ = ["AccountSlots", "ClientStatistics", "KeyLimiter", "RequestKind", "SubmitSlot"]

#: Asks the server for the key's concurrency slots (``/me``), for an ``"account"`` limit.
AccountSlots = Callable[[], Awaitable[int | None]]

#: The limiter's decision at each 429, at DEBUG (see the module docstring).
decisions = logging.getLogger("leonardo_async.limits")


class RequestKind(enum.Enum):
    """What a request does, for the limits that apply to it."""

    READ = "read"
    SUBMIT = "submit"
    OTHER = "other"


@attrs.frozen
class ClientStatistics:
    """A snapshot of one client's traffic and the limits in force for its key.

    :param requests_sent: HTTP requests sent to the API host
    :param rate_limited: 429 answers received
    :param request_wait: seconds requests spent held back at the request gate (pacing and
        pauses after 429s), summed over the requests
    :param request_rate: requests per second the client paces at now (``None``: no pace)
    :param submit_rate: submits per second the client paces at now (``None``: no pace)
    :param running_limit: generations the key may run at once as the client holds it now
        (the slots, or fewer after refusals); ``None`` before the first submit or with
        no bound
    :param in_flight_bound: generations submitted and not finished the client allows now:
        the running limit plus the queue allowance
    :param in_flight: generations submitted and not yet seen to finish
    :param server_queues: whether a submit past the slots was accepted (``True``),
        refused (``False``), or not tried yet (``None``)
    :param server_clock_offset: seconds the server's clock runs ahead of ours (negative:
        behind), learnt from its ``Date`` headers and our jobs' ``createdAt``; ``None``
        before any answer
    :param listing_lag: seconds the listing is given to show a job before a lost submit
        is ruled out: the window in force now (its floor, or more as measured)
    :param listing_lag_seen: the longest recent delay between one of our submits and
        the listing showing its job (an upper bound), or ``None`` before any was measured
    """

    requests_sent: int
    rate_limited: int
    request_wait: float
    request_rate: float | None
    submit_rate: float | None
    running_limit: int | None
    in_flight_bound: int | None
    in_flight: int
    server_queues: bool | None
    server_clock_offset: float | None = None
    listing_lag: float | None = None
    listing_lag_seen: float | None = None


class SubmitSlot:
    """The in-flight slot one submit holds, from before it is sent until the job ends.

    :meth:`keep` it for the job the server created, or :meth:`release` it when none was
    (releasing a kept slot does nothing: the job's end frees it).
    """

    def __init__(
        self, limiter: KeyLimiter, slots: InFlightSlots, token: object, lease: Lease | None
    ) -> None:
        self._limiter = limiter
        self._slots = slots
        self._token = token
        self._lease = lease
        self._settled = False

    def keep(self, generation_id: str) -> None:
        """The server created ``generation_id``: hold the slot until it ends."""
        if not self._settled:
            self._settled = True
            self._limiter._keep(self._slots, (self._token, self._lease), generation_id)

    def release(self) -> None:
        """No job came of the submit: give the slot back."""
        if not self._settled:
            self._settled = True
            self._limiter._free(self._slots, (self._token, self._lease))


class KeyLimiter:
    """Request rate, submit rate, in-flight slots and 429 policy for one API key.

    The running limit is resolved on the first slot taken: ``Limits.max_running`` as
    given, or, for ``"account"``, the key's ``apiConcurrencySlots`` from the
    ``account_slots`` the taker passes (the limiter paces the very request that asks, so
    it is handed the asking rather than holding the asker). A slot is taken before every
    submit and held until :meth:`ended` is told the job is over, so the bound holds for
    every submit, batch or not.

    :param shared: the fleet's part of the key's limits, in Redis (``None``: this
        process alone uses the key)
    """

    def __init__(
        self,
        limits: Limits,
        *,
        tuning: Tuning | None = None,
        clock: Clock | None = None,
        jitter: Callable[[], float] = random.random,
        shared: SharedKey | None = None,
    ) -> None:
        self.limits = limits
        self.tuning = tuning = tuning if tuning is not None else Tuning()
        self._clock = clock = clock if clock is not None else AnyioClock()
        self.requests = RateGate(
            limits.requests_per_minute, burst=limits.burst, tuning=tuning, clock=clock
        )
        self.submits = RateGate(limits.submits_per_minute, burst=1, tuning=tuning, clock=clock)
        self._policy = RefusalPolicy(tuning, random=jitter)
        self._slots: InFlightSlots | None = None
        self._slots_lock = anyio.Lock()
        self._held: dict[str, tuple[object, Lease | None]] = {}
        self._assumed_queues: bool | None = None
        self._bound: int | None = None  # the running bound as resolved
        self.shared = shared
        if shared is not None:
            shared.on_queues = self.assume_queueing
        self.rate_limited = 0

    async def __aenter__(self) -> KeyLimiter:
        if self.shared is not None:
            await self.shared.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.shared is not None:
            await self.shared.__aexit__(exc_type, exc, tb)

    @property
    def slots(self) -> InFlightSlots | None:
        """The in-flight slots, once resolved (``None`` before the first submit)."""
        return self._slots

    async def resolve_slots(self, account_slots: AccountSlots | None = None) -> InFlightSlots:
        """The in-flight slots, resolving the running limit on first use.

        :param account_slots: asks the server for the key's concurrency slots, for an
            ``"account"`` running limit (without it, or when it has none, the limit is
            :data:`FALLBACK_SLOTS`)
        """
        if self._slots is None:
            async with self._slots_lock:
                if self._slots is None:
                    self._bound = bound = await self._running_limit(account_slots)
                    self._slots = InFlightSlots(
                        bound,
                        max_queued=self.limits.queue_allowance,
                        tuning=self.tuning,
                        clock=self._clock,
                    )
                    if self._assumed_queues is not None:
                        self._slots.assume_queueing(self._assumed_queues)
        return self._slots

    @property
    def server_queues(self) -> bool | None:
        """Whether the server queues submits past the slots: learnt, assumed, or not
        known yet (``None``)."""
        return self._assumed_queues if self._slots is None else self._slots.queues

    def assume_queueing(self, queues: bool) -> None:
        """Take it as known whether the server queues submits past its slots, now or
        when the slots are made (see :meth:`InFlightSlots.assume_queueing`)."""
        self._assumed_queues = queues
        if self._slots is not None:
            self._slots.assume_queueing(queues)

    async def _running_limit(self, account_slots: AccountSlots | None) -> int | None:
        bound = self.limits.max_running
        if bound != "account":
            return bound
        shared = self.shared
        slots = None if shared is None else await shared.fact_slots()
        if slots is None and account_slots is not None:
            slots = await account_slots()
            if shared is not None and slots is not None and slots > 0:
                await shared.learnt_slots(slots)
        return slots if slots is not None and slots > 0 else FALLBACK_SLOTS

    async def take(self, account_slots: AccountSlots | None = None) -> SubmitSlot:
        """Wait for an in-flight slot for one submit (with its retries and reconciling);
        ``account_slots`` as for :meth:`resolve_slots`."""
        slots = await self.resolve_slots(account_slots)
        token = await slots.acquire()
        if self.shared is None or self._bound is None:
            return SubmitSlot(self, slots, token, None)
        try:
            lease = await self.shared.lease(self._bound, self.limits.queue_allowance)
        except BaseException:
            slots.release(token)
            raise
        return SubmitSlot(self, slots, token, lease)

    @asynccontextmanager
    async def submitting(
        self, account_slots: AccountSlots | None = None
    ) -> AsyncIterator[SubmitSlot]:
        """:meth:`take` a slot for the block; released on leaving unless kept."""
        slot = await self.take(account_slots)
        try:
            yield slot
        finally:
            slot.release()

    async def adopt(self, generation_id: str, account_slots: AccountSlots | None = None) -> None:
        """Count a job submitted elsewhere (an earlier run) in flight until it ends."""
        if generation_id in self._held:
            return
        (await self.take(account_slots)).keep(generation_id)

    def _keep(
        self, slots: InFlightSlots, held: tuple[object, Lease | None], generation_id: str
    ) -> None:
        token, lease = held
        slots.running_now(token)
        if lease is not None and self.shared is not None:
            self.shared.accepted(lease)
        if slots.total is None:  # no bound: nothing to free later, nothing to watch for
            self._free(slots, held)
            return
        previous = self._held.pop(generation_id, None)
        if previous is not None:  # the same job twice (a reconciled resend): one slot
            self._free(slots, previous)
        self._held[generation_id] = held

    def _free(self, slots: InFlightSlots, held: tuple[object, Lease | None]) -> None:
        token, lease = held
        slots.release(token)
        if lease is not None and self.shared is not None:
            self.shared.release(lease)

    def holds(self, generation_id: str) -> bool:
        """Whether ``generation_id`` holds an in-flight slot."""
        return generation_id in self._held

    def ended(self, generation_id: str) -> None:
        """The job finished, failed, vanished or is no longer watched: free its slot."""
        held = self._held.pop(generation_id, None)
        if held is not None and self._slots is not None:
            self._free(self._slots, held)

    async def before(self, kind: RequestKind) -> None:
        """Wait until a request of this kind may leave."""
        if kind is RequestKind.SUBMIT:
            await self.submits.acquire(record=False)
            await self.requests.acquire()
            if self.shared is not None:
                await self.shared.pace(SUBMITS)
                await self.shared.pace(REQUESTS)
            self.submits.record()  # when it leaves, not when the request gate held it
        else:
            await self.requests.acquire()
            if self.shared is not None:
                await self.shared.pace(REQUESTS)

    def on_success(self, kind: RequestKind) -> None:
        """The server accepted a request."""
        submit = kind is RequestKind.SUBMIT
        self._policy.on_success(submit)
        self.requests.on_success()
        if submit:
            self.submits.on_success()
            if self._slots is not None:
                self._slots.on_submitted()

    def on_rate_limited(
        self, kind: RequestKind, retry_after: float | None, *, reason: str | None = None
    ) -> float:
        """The server said 429: pause every sender, and return the pause in seconds.

        See :meth:`RefusalPolicy.on_rate_limited` for which limit comes down.
        """
        self.rate_limited += 1
        before = self._gates(measured=True) if decisions.isEnabledFor(logging.DEBUG) else None
        shared = self.shared
        submit = kind is RequestKind.SUBMIT
        pause = self._policy.on_rate_limited(
            submit=submit,
            retry_after=retry_after,
            reason=reason,
            requests=self.requests,
            submits=self.submits,
            # Shared, the fleet's bound comes down, not this worker's (whose running
            # jobs are only its part of what the server counts).
            slots=self._slots if shared is None else None,
            # and the fleet's rate, not this worker's part of it (all its own gate saw).
            lower=RateGate.lower if shared is None else self._fleet_lowers,
        )
        if shared is not None:
            self._tell_fleet(shared, submit and about_concurrency(reason), pause)
        if before is not None:
            decision = {
                "kind": kind.value,
                "retry_after": retry_after,
                "pause": round(pause, 3),
                "before": before,
                "after": self._gates(measured=False),
                "in_flight_bound": None if self._slots is None else self._slots.total,
            }
            decisions.debug(
                "429 on a %s request: pausing %.3f s",
                kind.value,
                pause,
                extra={"decision": decision},
            )
        return pause

    def _tell_fleet(self, shared: SharedKey, concurrency: bool, pause: float) -> None:
        """Share a 429's lesson: the pause, a lower in-flight bound (the rates come down
        in :meth:`_fleet_lowers`)."""
        shared.pause(pause, buckets=(SUBMITS,) if concurrency else (REQUESTS, SUBMITS))
        if concurrency:
            shared.refused()

    def _fleet_lowers(self, gate: RateGate) -> None:
        """A refusal charged to ``gate``'s rate, shared: the fleet's bucket learns the
        rate the fleet was sending at."""
        assert self.shared is not None
        self.shared.refused_rate(REQUESTS if gate is self.requests else SUBMITS)

    def _gates(self, *, measured: bool) -> dict[str, dict[str, Any]]:
        """The rate gates' state for the decision log; ``measured`` adds the rate the
        server took before refusing and whether the gate was holding senders back."""
        return {
            name: {"rate": gate.rate, "learned": gate.learned}
            | ({"measured": gate.measured_rate(), "binding": gate.binding} if measured else {})
            for name, gate in (("submits", self.submits), ("requests", self.requests))
        }

    def statistics(self, requests_sent: int) -> ClientStatistics:
        """A snapshot of the limits in force, with the client's request count."""
        slots = self._slots
        return ClientStatistics(
            requests_sent=requests_sent,
            rate_limited=self.rate_limited,
            request_wait=self.requests.waited,
            request_rate=self.requests.rate,
            submit_rate=self.submits.rate,
            running_limit=None if slots is None else slots.limit,
            in_flight_bound=None if slots is None else slots.total,
            in_flight=len(self._held),
            server_queues=self.server_queues,
        )
