"""What one key's limiter is made of: the user's :class:`Limits`, the limiter's
:class:`Tuning`, and the :class:`Clock` it reads.

:class:`Limits` says what the server allows (or what the user wants to use of it);
:class:`Tuning` says how the limiter finds and keeps to the server's real limits. The
tuning values were each measured against the simulator (``benchmarks/limits.py``); the
commit that set one says what it cost or gained. Tests pass their own :class:`Tuning` and
a fake :class:`Clock` rather than patching constants or sleeping.
"""

from __future__ import annotations

from typing import Final, Literal, Protocol

import anyio
import attrs

from .._validate import MAX_SECONDS, in_range, number

__all__ = [
    "AnyioClock",
    "Clock",
    "Limits",
    "Tuning",
]

#: Documented per-key defaults (Leonardo API guide).
DEFAULT_REQUESTS_PER_MINUTE: Final = 2000.0
DEFAULT_SUBMITS_PER_MINUTE: Final = 100.0
#: Jobs kept queued behind the account's slots on a server that queues (see
#: :attr:`Limits.max_queued`). Two cover the time between a job's end and the next submit
#: (the tracker's look plus one submit) at Veo's job times and a few seconds' poll, and
#: are all an interrupted batch leaves queued and paid for besides the running jobs.
DEFAULT_MAX_QUEUED: Final = 2
#: Used when ``/me`` reports no concurrency slots.
FALLBACK_SLOTS: Final = 10


#: Tuning values that are not seconds: shares of a rate, growth factors, counts of
#: events, rates per second; each group with its range and whether it counts.
_TUNING_RANGES: Final = (
    (("pace", "fleet_pace", "decrease", "settle", "saturated"), 0.01, 1.0, False),
    (("increase", "creep"), 1.0, 10.0, False),
    (("recover_after", "slots_recover_after"), 1, 1_000_000, True),
    (("min_rate", "unlimited"), 1e-6, 1e6, False),
)

#: A rate below one a minute, or above a million, is a mistake (it would mean "never").
_RATE = in_range(1, 1e6, allow_none=True)


@attrs.frozen
class Limits:
    """Client-side limits for one API key; ``None`` switches a limit off.

    :param requests_per_minute: all requests to the API host (polls included)
    :param submits_per_minute: generation submits, on top of the request rate
    :param max_running: generations submitted and not yet finished; ``"account"`` asks
        ``/me`` for the key's ``apiConcurrencySlots`` before the first submit
    :param burst: requests that may leave back to back before pacing starts; ``None``
        means one (no burst). A burst on top of the rate goes over a server that counts
        per second at that rate: a quarter second's worth at 20 requests a second drew a
        429 within the first second against the simulator's per-second window.
    :param max_queued: generations to keep queued behind the running ones, on a server
        that queues submits past its slots (Leonardo documents that it does), so that a
        slot that frees starts the next job at once instead of waiting for our next
        submit. Whether the server queues is learned: a submit past the slots that is
        accepted opens the allowance, a refused one holds the key at its slots. ``0``
        never submits past the bound. ``None`` (the default) means
        :data:`DEFAULT_MAX_QUEUED` with ``max_running="account"`` and ``0`` with a number
        of your own (a bound you chose is a bound on everything in flight).
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
    max_queued: int | None = attrs.field(
        default=None, validator=in_range(0, 100_000, integer=True, allow_none=True)
    )

    def __attrs_post_init__(self) -> None:
        if self.max_running != "account":
            number("max_running", self.max_running, 1, 100_000, integer=True, allow_none=True)

    @property
    def queue_allowance(self) -> int:
        """The most generations to keep queued past the running bound (see ``max_queued``)."""
        if self.max_queued is not None:
            return self.max_queued
        return DEFAULT_MAX_QUEUED if self.max_running == "account" else 0

    @classmethod
    def off(cls) -> Limits:
        """No client-side limits at all (the server's 429s still pause the client)."""
        return cls(requests_per_minute=None, submits_per_minute=None, max_running=None)


@attrs.frozen
class Tuning:
    """How the limiter finds a server's real limits and keeps close to them.

    Rate gates (:class:`~._gate.RateGate`):

    :param pace: the share of a configured rate the gate paces at. A server counting C
        requests in a sliding window of W seconds admits a client spaced exactly W/C
        apart with no slack: one request that leaves or arrives late puts C + 1 in a
        window (2 429s in 2,000 submits at exactly 600 a minute). 98 % leaves a
        fiftieth of the window for that jitter.
    :param fleet_pace: the share a fleet sharing the key through Redis paces at. Its
        turns are sent by many processes, each late by its own loop, CPU and network, and
        a window that holds its limit of turns then holds one more: 95 % leaves one
        request of slack in each second at 20 a second (at 98 %, ten batch processes on
        two cores drew a rate 429 in most runs of ``benchmarks/fleet.py``).
    :param decrease: after a 429 the gate paces at this share of the rate refused...
    :param settle: ... and learns the limit at this share of it.
    :param recover_after: successes in a row between two steps up.
    :param increase: each step up multiplies the pace by this, up to the learned limit.
    :param creep: once settled, each step up raises the learned limit this much...
    :param creep_every: ... after this many seconds' worth of successes at the rate in
        force: every 429 costs a pause of a second or more, so creeping back over the
        limit must take much longer than that.
    :param forget: seconds without a refusal after which a learned rate is forgotten: a
        429 storm that had nothing to do with our rate (a deploy, a fault) must not
        throttle the rest of a long batch, and a real limit costs one short episode to
        learn again.
    :param window: how far back the rate at a refusal is measured, in seconds.
    :param min_rate: never pace slower than this (requests per second).
    :param binding: turns booked this far ahead, in seconds, mean the rate binds.
    :param saturated: sending at this share of the rate in force also means it binds.
    :param unlimited: a learned rate above this (requests/s) with no configured one is
        dropped: the gate is unlimited again.

    In-flight slots (:class:`~._slots.InFlightSlots`):

    :param slots_recover_after: accepted submits between two steps up of a lowered bound.
    :param slots_forget: seconds without a refusal before a lowered bound grows back.
    :param slots_episode: refusals this close together (seconds) are one episode: they
        answer submits sent together, so only the first lowers the bound.

    429 policy (:class:`~._policy.RefusalPolicy`):

    :param pause_base: a 429 without ``Retry-After`` pauses every sender this long...
    :param pause_max: ... doubling while they last, up to this (jittered to 50-100 %).
    :param episode_grace: a refusal this soon after a pause ended belongs to the episode
        that caused it. Not longer: refusals that keep coming a second after each pause
        mean the pace after a pause is itself too fast.
    """

    pace: float = 0.98
    fleet_pace: float = 0.95
    decrease: float = 0.9
    settle: float = 0.97
    recover_after: int = 20
    increase: float = 1.05
    creep: float = 1.01
    creep_every: float = 10.0
    forget: float = 60.0
    window: float = 60.0
    min_rate: float = 1.0 / 60.0
    binding: float = 1.0
    saturated: float = 0.9
    unlimited: float = 1000.0
    slots_recover_after: int = 10
    slots_forget: float = 60.0
    slots_episode: float = 1.0
    pause_base: float = 1.0
    pause_max: float = 30.0
    episode_grace: float = 0.5

    def __attrs_post_init__(self) -> None:
        checked: set[str] = set()
        for names, low, high, integer in _TUNING_RANGES:
            for name in names:
                number(name, getattr(self, name), low, high, integer=integer)
            checked.update(names)
        for field in attrs.fields(Tuning):  # the rest are seconds
            if field.name not in checked:
                number(field.name, getattr(self, field.name), 0, MAX_SECONDS)


class Clock(Protocol):
    """Where the limiter reads the time and waits (a fake one in tests)."""

    def now(self) -> float:
        """Seconds on a monotonic clock."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class AnyioClock:
    """The event loop's clock."""

    def now(self) -> float:
        return anyio.current_time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)
