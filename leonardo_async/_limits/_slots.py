"""In-flight slots: how many generations may be submitted and not yet finished.

The bound is the key's running slots plus, on a server that queues submits past them, a
small queue allowance, so that a slot that frees starts the next job at once rather than
after our next submit. Both parts are learned from the server's answers, never by a
burst of refusals.
"""

from __future__ import annotations

import logging
import math

import anyio

from ._config import AnyioClock, Clock, Tuning

__all__ = ["InFlightSlots"]

logger = logging.getLogger("leonardo_async")


class InFlightSlots:
    """Generations submitted and not seen to finish, bounded by slots plus a queue.

    Each slot is held from just before a submit until the job is seen to end (possibly
    in another task), so borrowers are tokens, not tasks.

    **Probing.** The slots (from ``/me`` or the user) may be more than the server
    allows, so they are trusted only as far as the server has shown them: submits that
    would take the slots in use past the most generations the server has accepted at
    once go one at a time, each waiting for the answer to the one before (a probe). A
    refused probe costs one 429, where a burst of submits sent together past the real
    limit costs one per submit.

    **The queue allowance.** With ``max_queued`` above zero, one probe may go past the
    slots. Accepted, it shows the server queues (:attr:`queues` becomes true) and up to
    ``max_queued`` jobs are kept queued behind the running ones, each further one probed
    as above. Refused, it shows the server refuses at its slots (:attr:`queues` becomes
    false) and the bound holds at the slots from then on.

    **Refusals.** When the server refuses a submit for concurrency, its count of jobs in
    flight is at most ours (we see jobs end late), so the bound comes down to what we
    count in flight, and one further at each refusal at the bound. A refusal whose text
    does not say so is charged here only while what runs is at :attr:`proven` (see
    :attr:`at_proven_high`): below it, the server has shown it runs more, and lowering
    the bound to what runs would let one 429 storm leave a batch running one job at a
    time for a minute or more. A refusal past the
    slots on a server that queues is a full queue: it lowers the allowance only. Without
    refusals for ``slots_forget`` seconds, the bound grows back one per
    ``slots_recover_after`` accepted submits, each new level probed as above.

    :param slots: the running bound, or ``None`` for no bound at all
    :param max_queued: the most jobs to keep queued past the slots
    """

    def __init__(
        self,
        slots: int | None,
        *,
        max_queued: int = 0,
        tuning: Tuning | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._tuning = tuning if tuning is not None else Tuning()
        self._clock = clock if clock is not None else AnyioClock()
        self._slots = slots
        self._limit = slots or 0  # the running limit learned (at most the slots)
        self._max_queued = max_queued if slots is not None else 0
        self._allowance = self._max_queued
        #: Whether the server queues submits past its slots (``None``: not known yet).
        self.queues: bool | None = None if self._max_queued else False
        self._limiter = anyio.CapacityLimiter(self._bound()) if slots is not None else None
        self._successes = 0
        self._running: set[object] = set()  # tokens whose generation exists
        self._sending: set[object] = set()  # tokens whose submit has no answer yet
        self._proven = 0  # most generations the server accepted in flight at once
        self._probe: object | None = None  # the token testing a new high, if any
        self._probe_answered = anyio.Event()
        self._refused_at = -math.inf

    def _bound(self) -> int:
        if self.queues is None:
            return self._limit + 1  # one probe past the slots asks whether it queues
        return self._limit + (self._allowance if self.queues else 0)

    def _resize(self) -> None:
        if self._limiter is not None:
            self._limiter.total_tokens = max(1, self._bound())

    @property
    def total(self) -> int | None:
        """The in-flight bound in force now (``None``: unbounded)."""
        return None if self._limiter is None else int(self._limiter.total_tokens)

    @property
    def limit(self) -> int | None:
        """The running limit in force now: the slots, or fewer if the server refused."""
        return None if self._slots is None else self._limit

    @property
    def allowance(self) -> int:
        """Jobs that may be queued past :attr:`limit` now."""
        return 0 if self._limiter is None else self._bound() - self._limit

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
        """The most generations the server has accepted in flight at once."""
        return self._proven

    @property
    def at_proven_high(self) -> bool:
        """Whether what runs is at :attr:`proven`: only then can a submit's refusal be
        the server's concurrency limit (when no other client uses the key), since it
        has run that many of our jobs at once and its count of ours is at most
        :attr:`running`."""
        return len(self._running) >= self._proven

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
        if self.queues is None and self._slots is not None and len(self._running) > self._limit:
            logger.info("a submit past the %d slots was accepted: the server queues", self._limit)
            self.queues = True
            self._resize()

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

    def assume_queueing(self, queues: bool) -> None:
        """Take it as known whether the server queues submits past its slots (as
        ``doctor`` finds), instead of learning it from a probe: ``False`` holds the bound
        at the slots from now on, ``True`` opens the queue allowance at once (each new
        high is still probed one submit at a time)."""
        if self._limiter is None or (queues and not self._max_queued):
            return  # no bound, or no allowance to open
        self.queues = queues
        self._allowance = self._max_queued if queues else 0
        self._resize()

    def on_submitted(self) -> None:
        """A submit was accepted: long after the last refusal, regrow the bound."""
        if self._limiter is None or self._slots is None:
            return
        if self._clock.now() - self._refused_at < self._tuning.slots_forget:
            return
        self._successes += 1
        if self._successes < self._tuning.slots_recover_after:
            return
        self._successes = 0
        if self._limit < self._slots:
            self._limit += 1
        elif self.queues and self._allowance < self._max_queued:
            self._allowance += 1
        self._resize()

    def on_refused(self) -> None:
        """The server refused a submit for concurrency (or a full queue): bound to what
        is in flight now.

        Refusals arriving together answer submits sent together: only the first of an
        episode (``slots_episode`` seconds) lowers the bound.
        """
        self._successes = 0
        now = self._clock.now()
        first = now - self._refused_at >= self._tuning.slots_episode
        self._refused_at = now
        if self._limiter is None or not first:
            return
        current = int(self._limiter.total_tokens)
        lowered = max(1, min(current - 1, len(self._running)))
        self._proven = min(self._proven, lowered)
        if self.queues and lowered > self._limit + 1:
            self._allowance = lowered - self._limit
            logger.info("queue full: keeping at most %d queued", self._allowance)
        else:  # refused at (or next to) the slots: this server refuses past them
            if self.queues is not False:
                logger.info("a submit past the slots was refused: the server does not queue")
            self.queues = False
            self._allowance = 0
            if lowered < self._limit:
                logger.info("submit refused: running at most %d generations", lowered)
            self._limit = min(self._limit, lowered)
        self._resize()
