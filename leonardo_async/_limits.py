"""The limits one API key lives under, enforced on the client's side.

Leonardo counts three things per key: requests per minute over all endpoints (2000 by
default), generation submits per minute (100), and generations running at once (the
key's ``apiConcurrencySlots``). Going over costs a 429, and a 429 storm slows everyone
down, so the client paces itself instead of finding the limits by collision:

* :class:`RateGate` spaces requests with a GCRA token bucket (cheap: two floats, no task,
  no lock), shares one pause among all senders when the server says 429, and, when the
  server's real limit turns out lower than configured, lowers its own rate and creeps
  back up after a run of successes.
* :class:`RunningSlots` bounds generations submitted and not yet finished, on an anyio
  :class:`~anyio.CapacityLimiter` whose size shrinks on a refused submit and grows back;
  it probes past what the server has accepted one submit at a time.

No third-party limiter is used: aiolimiter's leaky bucket has no shared pause and no
adaptive rate, and both primitives here are a few lines on anyio.
"""

from __future__ import annotations

import enum
import logging
import math
import random
from collections import deque
from typing import Final, Literal

import anyio
import attrs

from ._validate import in_range, number

__all__ = ["KeyLimiter", "Limits", "RateGate", "RequestKind", "RunningSlots"]

logger = logging.getLogger("leonardo_async")

#: Documented per-key defaults (Leonardo API guide).
DEFAULT_REQUESTS_PER_MINUTE: Final = 2000.0
DEFAULT_SUBMITS_PER_MINUTE: Final = 100.0


#: A rate below one a minute, or above a million, is a mistake (it would mean "never").
_RATE = in_range(1, 1e6, allow_none=True)


@attrs.frozen
class Limits:
    """Client-side limits for one API key; ``None`` switches a limit off.

    :param requests_per_minute: all requests to the API host (polls included)
    :param submits_per_minute: generation submits, on top of the request rate
    :param max_running: generations submitted and not yet finished; ``"account"`` asks
        ``/me`` for the key's ``apiConcurrencySlots`` when a batch starts
    :param burst: requests that may leave back to back before pacing starts; ``None``
        means one (no burst). A burst on top of the rate goes over a server that counts
        per second at that rate: a quarter second's worth at 20 requests a second drew a
        429 within the first second against the simulator's per-second window.
    """

    requests_per_minute: float | None = attrs.field(
        default=DEFAULT_REQUESTS_PER_MINUTE, validator=_RATE
    )
    submits_per_minute: float | None = attrs.field(
        default=DEFAULT_SUBMITS_PER_MINUTE, validator=_RATE
    )
    max_running: int | Literal["account"] | None = "account"
    burst: int | None = attrs.field(
        default=None, validator=in_range(1, 1e6, integer=True, allow_none=True)
    )

    def __attrs_post_init__(self) -> None:
        if self.max_running != "account":
            number("max_running", self.max_running, 1, 100_000, integer=True, allow_none=True)

    @classmethod
    def off(cls) -> Limits:
        """No client-side limits at all (the server's 429s still pause the client)."""
        return cls(requests_per_minute=None, submits_per_minute=None, max_running=None)


class RateGate:
    """Paces requests to a rate, pauses every sender together, and learns a lower limit.

    The configured rate is a server's limit, so the gate paces at :attr:`PACE` of it, not
    at it. A server counting C requests in a sliding window of W seconds admits a client
    spaced exactly W/C apart with no slack at all: one request that leaves late, or
    arrives late, while the one C later does not, puts C + 1 in a window and draws a 429
    (measured: 2 in 2,000 submits at exactly 600 a minute against the simulator's
    minute window). Pacing at 98 % leaves a fiftieth of the window (1.2 s a minute,
    20 ms a second) for that jitter.

    After a 429 the gate paces at :attr:`DECREASE` of the rate it was refused at, grows
    back to :attr:`SETTLE` of it over a run of successes, and then creeps upward slowly,
    so it finds a server's real limit without a 429 storm and keeps close to it. A pause
    or a lower rate applies to the senders already waiting too: their turns were booked
    at the old pace, so they book again. The rate refused is the one measured since the
    last pause ended (time paused is not time sending), and a step up once settled
    takes about :attr:`CREEP_EVERY` seconds of successes at the rate in force: every
    429 costs a pause of a second or more, so creeping back over the limit must take
    much longer than that.

    :param per_minute: the configured ceiling, or ``None`` for none
    :param burst: requests allowed back to back, ``None`` for one (no burst: see
        :class:`Limits`)
    """

    #: The share of the configured rate the gate paces at (see above).
    PACE: Final = 0.98
    DECREASE: Final = 0.9
    SETTLE: Final = 0.97
    #: Successes in a row between two steps up.
    RECOVER_AFTER: Final = 20
    INCREASE: Final = 1.05
    #: Once settled, each step up raises the learned limit this much...
    CREEP: Final = 1.01
    #: ... after this many seconds' worth of successes at the rate in force.
    CREEP_EVERY: Final = 10.0
    #: Seconds without a refusal after which a learned limit is forgotten and the gate
    #: goes back to its configured pace: a 429 storm that had nothing to do with our
    #: rate (a deploy, a fault) must not throttle the rest of a long batch, and a real
    #: limit costs one short episode to learn again.
    FORGET: Final = 60.0
    #: How far back the rate at a refusal is measured, in seconds.
    WINDOW: Final = 60.0
    #: Never pace slower than one request a minute.
    MIN_RATE: Final = 1.0 / 60.0
    #: Turns booked this far ahead, in seconds, mean the rate binds (see :attr:`binding`).
    BINDING: Final = 1.0
    #: Sending at this share of the rate in force also means it binds.
    SATURATED: Final = 0.9
    #: A learned limit above this (requests/s) with no configured one means "unlimited".
    UNLIMITED: Final = 1000.0

    def __init__(self, per_minute: float | None, *, burst: int | None = None) -> None:
        self._ceiling = None if per_minute is None else per_minute / 60.0 * self.PACE
        self._rate = self._ceiling
        self._learned: float | None = None
        self._burst = burst
        self._tat = 0.0  # GCRA theoretical arrival time
        self._paused_until = 0.0
        self._resumed = -math.inf  # when the pause before the latest one ended
        self._refused_at = -math.inf  # when the server last refused us
        self._successes = 0
        self._queued = 0  # senders waiting for their turn (not for a pause)
        self._booking = 0  # bumped when the turns booked so far no longer hold
        self._sent: deque[float] = deque(maxlen=4096)
        self.waited = 0.0  # seconds spent waiting here, for statistics

    @property
    def rate(self) -> float | None:
        """The rate in force now, in requests per second (``None``: unlimited)."""
        return self._rate

    @property
    def learned(self) -> float | None:
        """The limit learned from the server's 429s, in requests per second, if any."""
        return self._learned

    def _tolerance(self, interval: float) -> float:
        burst = self._burst if self._burst is not None else 1
        return (burst - 1) * interval

    async def acquire(self, *, record: bool = True) -> None:
        """Wait until one request may be sent.

        :param record: count it as sent now for :meth:`measured_rate`; pass ``False``
            when another gate still holds it back, and call :meth:`record` once it leaves
        """
        while True:
            now = anyio.current_time()
            if now < self._paused_until:
                await self._wait(self._paused_until - now)
                continue
            if self._rate is None:
                break
            interval = 1.0 / self._rate
            tat = max(self._tat, now)
            allowed_at = tat - self._tolerance(interval)
            self._tat = tat + interval
            if allowed_at <= now:
                break
            booked = self._booking
            self._queued += 1
            try:
                await self._wait(allowed_at - now)
            finally:
                self._queued -= 1
            # A pause or a lower rate since this turn was booked: book again at the new pace.
            if self._booking == booked and anyio.current_time() >= self._paused_until:
                break
        if record:
            self.record()

    def record(self) -> None:
        """Count one request as sent now."""
        self._sent.append(anyio.current_time())

    async def _wait(self, seconds: float) -> None:
        self.waited += seconds
        await anyio.sleep(seconds)

    def pause(self, seconds: float) -> None:
        """Hold every sender for ``seconds`` (the shared pause after a 429)."""
        now = anyio.current_time()
        if now >= self._paused_until:
            self._resumed = self._paused_until
        self._paused_until = max(self._paused_until, now + seconds)
        self._rebook()

    @property
    def since_pause(self) -> float:
        """Seconds since the latest pause ended (negative while it lasts)."""
        return anyio.current_time() - self._paused_until

    def _rebook(self) -> None:
        """Cancel the turns booked so far: every waiting sender books again."""
        self._booking += 1
        self._tat = max(anyio.current_time(), self._paused_until)

    def _cap(self) -> float | None:
        caps = [c for c in (self._ceiling, self._learned) if c is not None]
        return min(caps) if caps else None

    def on_success(self) -> None:
        """Record an accepted request; a run of them steps a lowered rate back up."""
        if self._rate is None:
            return
        if self._learned is not None and (anyio.current_time() - self._refused_at >= self.FORGET):
            self._learned = None
            self._rate = self._ceiling
            self._successes = 0
            return
        self._successes += 1
        if self._successes < self.RECOVER_AFTER:
            return
        cap = self._cap()
        if cap is not None and self._rate >= cap:
            if self._learned is None:
                self._successes = 0
                return  # at the configured ceiling: nothing to recover
            if self._successes < self._rate * self.CREEP_EVERY:
                return
            self._learned *= self.CREEP
            if self._ceiling is not None and self._learned >= self._ceiling:
                self._learned = None
            cap = self._cap()
        self._successes = 0
        grown = self._rate * self.INCREASE
        self._rate = grown if cap is None else min(cap, grown)
        if self._ceiling is None and self._learned is None and self._rate > self.UNLIMITED:
            self._rate = None

    def measured_rate(self) -> float:
        """Requests per second the server took before refusing one: those sent since
        sending resumed after the previous pause (not the one a refusal being measured
        has just started), over at most the last :attr:`WINDOW` seconds and at least 1 s,
        less the refused one. (Counting it, a limit of L a second measures L + 1, and a
        limit learned a few percent under that is still over L when L is small.)"""
        now = anyio.current_time()
        start = max(now - self.WINDOW, self._resumed)
        recent = [t for t in self._sent if t > start]
        if not recent:
            return self.MIN_RATE
        return max(1, len(recent) - 1) / max(1.0, now - recent[0])

    @property
    def binding(self) -> bool:
        """Whether the rate is what holds senders back now: some are waiting for their
        turn (not for a pause) with turns booked :attr:`BINDING` seconds ahead, or
        requests have left at :attr:`SATURATED` of the rate or more since the last pause.

        A burst that queues for a few milliseconds at a fast gate is not held back by
        it. Senders that never queue long (submits going one at a time past the proven
        running level, polls spread over time) can still fill the gate to its rate.
        """
        if self._rate is None:
            return False
        if self._queued > 0 and self._tat - anyio.current_time() >= self.BINDING:
            return True
        return self.measured_rate() >= self.SATURATED * self._rate

    def on_rate_limited(self, pause: float) -> None:
        """Pause every sender for ``pause`` seconds and lower the rate (a 429 here)."""
        self.pause(pause)
        self.lower()

    def lower(self) -> None:
        """The server refused us: learn the limit below the rate we were refused at."""
        self._successes = 0
        self._refused_at = anyio.current_time()
        refused_at = self.measured_rate()
        if self._rate is not None:
            refused_at = min(refused_at, self._rate)
        refused_at = max(refused_at, self.MIN_RATE)
        self._learned = refused_at * self.SETTLE
        lowered = max(self.MIN_RATE, refused_at * self.DECREASE)
        if self._rate is None or lowered < self._rate:
            logger.info("rate limited: pacing at %.2f requests/s", lowered)
            self._rate = lowered
            self._rebook()


class RunningSlots:
    """How many generations may be running at once, found without a burst of refusals.

    Each slot is held from just before a submit until the tracker sees the job finish
    (possibly in another task), so borrowers are tokens, not tasks. The bound (from
    ``/me`` or the user) may be more than the server allows, so it is trusted only as
    far as the server has shown it: submits that would take the slots in use past the
    most generations the server has accepted running at once go one at a time, each
    waiting for the answer to the one before (a probe). A refused probe costs one 429,
    where a burst of submits sent together past the real limit costs one per submit.
    Probing costs nothing under the submit rate limit (a submit's round trip is shorter
    than its turn at 100 per minute).

    When the server refuses a submit for concurrency, its limit is at most what we
    count as running (its count can only be lower than ours: we see jobs end late), so
    the bound comes down to that, and one further at each refusal at the bound; it
    stays there as a learned limit. Without refusals for :attr:`FORGET` seconds the
    bound grows back one slot per :attr:`RECOVER_AFTER` accepted submits, up to the
    configured one, each new slot probed as above.

    :param total: the bound, or ``None`` for no bound
    """

    #: Accepted submits between two steps up, once a learned limit is forgotten.
    RECOVER_AFTER: Final = 10
    #: Seconds without a refusal before a learned limit is forgotten.
    FORGET: Final = 60.0
    #: Refusals this close together are one episode.
    EPISODE: Final = 1.0

    def __init__(self, total: int | None) -> None:
        self._ceiling = total
        self._limiter = anyio.CapacityLimiter(total) if total is not None else None
        self._successes = 0
        self._running: set[object] = set()  # tokens whose generation exists
        self._sending: set[object] = set()  # tokens whose submit has no answer yet
        self._proven = 0  # most generations the server accepted running at once
        self._probe: object | None = None  # the token testing a new high, if any
        self._probe_answered = anyio.Event()
        self._refused_at = -math.inf

    @property
    def total(self) -> int | None:
        """The bound in force now."""
        return None if self._limiter is None else int(self._limiter.total_tokens)

    @property
    def in_use(self) -> int:
        """Slots held now."""
        return 0 if self._limiter is None else self._limiter.borrowed_tokens

    @property
    def running(self) -> int:
        """Slots whose generation the server accepted (and we have not seen finish)."""
        return len(self._running)

    @property
    def proven(self) -> int:
        """The most generations the server has accepted running at once."""
        return self._proven

    async def acquire(self) -> object:
        """Take a slot for a submit; returns the token to give back to :meth:`release`.

        A slot past :attr:`proven` waits until no other probe is unanswered; while it
        waits it holds no slot, so a bound lowered meanwhile holds it back too.
        """
        token = object()
        if self._limiter is None:
            return token
        while True:
            await self._limiter.acquire_on_behalf_of(token)
            beyond = len(self._running) + len(self._sending) >= self._proven
            if not beyond or self._probe is None:
                break
            answered = self._probe_answered
            self._limiter.release_on_behalf_of(token)
            await answered.wait()
        if beyond:
            self._probe, self._probe_answered = token, anyio.Event()
        self._sending.add(token)
        return token

    def running_now(self, token: object) -> None:
        """The slot's generation exists on the server (its submit was accepted)."""
        self._answered(token)
        self._running.add(token)
        self._proven = max(self._proven, len(self._running))

    def release(self, token: object) -> None:
        """Give a slot back (the generation finished, or was never created)."""
        self._answered(token)
        self._running.discard(token)
        if self._limiter is not None:
            self._limiter.release_on_behalf_of(token)

    def _answered(self, token: object) -> None:
        self._sending.discard(token)
        if token is self._probe:
            self._probe = None
            self._probe_answered.set()

    def on_submitted(self) -> None:
        """A submit was accepted: long after the last refusal, regrow the bound."""
        if self._limiter is None or self._ceiling is None:
            return
        if anyio.current_time() - self._refused_at < self.FORGET:
            return
        self._successes += 1
        if self._successes >= self.RECOVER_AFTER and self._limiter.total_tokens < self._ceiling:
            self._successes = 0
            self._limiter.total_tokens += 1

    def on_refused(self) -> None:
        """The server refused a submit for concurrency: bound to what runs now.

        Refusals arriving together answer submits sent together: only the first of an
        episode (:attr:`EPISODE` seconds) lowers the bound.
        """
        self._successes = 0
        now = anyio.current_time()
        first = now - self._refused_at >= self.EPISODE
        self._refused_at = now
        if self._limiter is None or not first:
            return
        current = int(self._limiter.total_tokens)
        lowered = max(1, min(current - 1, len(self._running)))
        self._proven = min(self._proven, lowered)
        if lowered < current:
            logger.info("submit refused: running at most %d generations", lowered)
            self._limiter.total_tokens = lowered


class RequestKind(enum.Enum):
    """What a request does, for the limits that apply to it."""

    READ = "read"
    SUBMIT = "submit"
    OTHER = "other"


class KeyLimiter:
    """Everything one API key's requests pass through: request rate, submit rate, 429s.

    One per client; the tracker's polls and the batch's submits share it, which is what
    keeps polling from starving submissions and both from tripping the server.
    """

    #: A 429 without ``Retry-After`` pauses everyone for this, doubling while they last.
    PAUSE_BASE: Final = 1.0
    PAUSE_MAX: Final = 30.0
    #: A refusal this soon after a pause ended belongs to the episode that caused it.
    #: Not longer: refusals that keep coming a second after each pause mean the pace
    #: after a pause is itself too fast.
    EPISODE_GRACE: Final = 0.5

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.requests = RateGate(limits.requests_per_minute, burst=limits.burst)
        self.submits = RateGate(limits.submits_per_minute, burst=1)
        #: Replaced by :meth:`set_running` once the bound is known (``/me`` may be needed).
        self.running = RunningSlots(None)
        self.rate_limited = 0
        self._in_a_row = 0
        self._submit_refusals = 0

    def reconfigure(self, limits: Limits) -> None:
        """Apply other rate limits (a batch's own); the running bound is set separately."""
        self.limits = limits
        self.requests = RateGate(limits.requests_per_minute, burst=limits.burst)
        self.submits = RateGate(limits.submits_per_minute, burst=1)

    def set_running(self, total: int | None) -> None:
        """Install the bound on running generations."""
        self.running = RunningSlots(total)

    async def before(self, kind: RequestKind) -> None:
        """Wait until a request of this kind may leave."""
        if kind is RequestKind.SUBMIT:
            await self.submits.acquire(record=False)
            await self.requests.acquire()
            self.submits.record()  # when it leaves, not when the request gate held it
        else:
            await self.requests.acquire()

    def on_success(self, kind: RequestKind) -> None:
        """The server accepted a request."""
        self._in_a_row = 0
        self.requests.on_success()
        if kind is RequestKind.SUBMIT:
            self._submit_refusals = 0
            self.submits.on_success()
            self.running.on_submitted()

    def on_rate_limited(
        self, kind: RequestKind, retry_after: float | None, *, reason: str | None = None
    ) -> float:
        """The server said 429: pause every sender, and return the pause in seconds.

        When the refusal of a submit says it is about concurrency (``reason``, the
        error text, mentions it), the running bound comes down to the generations the
        server accepted and we have not seen finish: never below the server's real
        limit, since its count of running jobs can only be lower than ours. No rate is
        lowered for it, and only submits pause: the polls are what see a slot free up.

        A refused read lowers the request rate. A refused submit may have run into any
        of three limits, and the 429 does not say which. If the request gate's rate is
        what holds requests back (:attr:`RateGate.binding`: a second's worth queued, or
        requests leaving at nearly its rate), the request limit is the likely one, and
        the request rate comes down (the submit rate too if its gate binds as well).
        Otherwise the submit rate comes down (a submit limit must not slow the polls
        down), and two such refusals in a row mean the running-generations limit is
        lower than we thought, so the running bound comes down too.
        """
        self.rate_limited += 1
        self._in_a_row += 1
        requests_bind, submits_bind = self.requests.binding, self.submits.binding
        # A request refused while a pause is in force left before the pause began, and
        # one refused just after it ended may still meet the server's memory of the time
        # before it: the same episode, already answered by lowering once. (Lowering
        # again on a rate measured over a moment would collapse the pace in a storm.)
        lower = self.requests.since_pause >= self.EPISODE_GRACE
        pause = retry_after
        if pause is None:
            ceiling = min(self.PAUSE_MAX, self.PAUSE_BASE * 2 ** min(self._in_a_row - 1, 16))
            pause = ceiling * (0.5 + 0.5 * random.random())
        concurrency = kind is RequestKind.SUBMIT and _about_concurrency(reason)
        if not concurrency:
            self.requests.pause(pause)
        self.submits.pause(pause)
        if concurrency:
            self.running.on_refused()
        elif kind is RequestKind.SUBMIT and not requests_bind:
            if lower:
                self.submits.lower()
            self._submit_refusals += 1
            if self._submit_refusals >= 2:
                self.running.on_refused()
        elif lower:  # a read, or a submit while the request gate binds
            self.requests.lower()
            if kind is RequestKind.SUBMIT and submits_bind:
                self.submits.lower()
        return pause


def _about_concurrency(reason: str | None) -> bool:
    """Whether a refusal's error text says it is about jobs running at once."""
    text = (reason or "").lower()
    return any(word in text for word in ("concurren", "running", "slots"))
