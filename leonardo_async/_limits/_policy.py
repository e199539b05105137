"""Whose fault a 429 is: which of a key's limits a refusal is charged to, and the pause.

A 429 does not say which limit it was. The policy decides from what the limiter sees
(the error text, which gate is binding, refusals in a row, what runs against what the
server has accepted at once) which gate or bound to lower, and how long every sender
pauses.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ._config import Tuning
from ._gate import RateGate
from ._slots import InFlightSlots

__all__ = ["RefusalPolicy", "about_concurrency"]


def about_concurrency(reason: str | None) -> bool:
    """Whether a refusal's error text says it is about jobs in flight (running, queued)."""
    text = (reason or "").lower()
    return any(word in text for word in ("concurren", "running", "slots", "queue"))


class RefusalPolicy:
    """Charges each 429 to one limit of the key and picks the shared pause.

    :param random: a source of jitter in [0, 1) (seeded in tests)
    """

    def __init__(self, tuning: Tuning, *, random: Callable[[], float] = random.random) -> None:
        self._tuning = tuning
        self._random = random
        self._in_a_row = 0
        self._submit_refusals = 0

    def on_success(self, submit: bool) -> None:
        """A request was accepted: the run of refusals is over."""
        self._in_a_row = 0
        if submit:
            self._submit_refusals = 0

    def pause_for(self, retry_after: float | None) -> float:
        """``Retry-After`` when the server gave one; else a jittered, doubling pause."""
        if retry_after is not None:
            return retry_after
        tuning = self._tuning
        doubling = float(2 ** min(self._in_a_row - 1, 16))
        ceiling = min(tuning.pause_max, tuning.pause_base * doubling)
        return ceiling * (0.5 + 0.5 * self._random())

    def on_rate_limited(
        self,
        *,
        submit: bool,
        retry_after: float | None,
        reason: str | None,
        requests: RateGate,
        submits: RateGate,
        slots: InFlightSlots | None,
        lower: Callable[[RateGate], None] = RateGate.lower,
    ) -> float:
        """Pause every sender, lower the limit the refusal is charged to; return the pause.

        A rate is lowered through ``lower`` (the gate learns the rate it was refused at,
        unless the caller lowers it elsewhere: a fleet's shared bucket).

        When the refusal of a submit says it is about concurrency (the error text mentions
        it), the in-flight bound comes down to the generations the server accepted and we
        have not seen finish: never below the server's real limit, since its count can
        only be lower than ours. No rate is lowered for it, and only submits pause: the
        polls are what see a slot free up.

        A refused read lowers the request rate. A refused submit may have run into any of
        three limits. If the request gate's rate is what holds requests back
        (:attr:`RateGate.binding`), the request limit is the likely one, and the request
        rate comes down (the submit rate too if its gate binds as well). Otherwise the
        submit rate comes down (a submit limit must not slow the polls down).

        The in-flight limit is the third, and a 429 without such text (the real API's
        text is not documented) is charged to it only on evidence that can be about
        concurrency: two such submit refusals in a row, each while what runs is at the
        most the server has accepted at once (:attr:`InFlightSlots.at_proven_high`).
        Below that high the server has shown that it runs more, and its count of our
        jobs is at most ours, so the refusal is about a rate (or a storm): it stays
        charged to the submit rate, already lowered and paused. (Counting the submits
        still unanswered as if accepted would be exact, but a storm that refuses a few
        submits sent together would then collapse the bound to the one job running; the
        cost of not counting them is that a real concurrency refusal that overtakes
        another submit's acceptance is charged to the rate once, and the next counts.)
        Any other refusal in the run ends the pair: a refused read (a concurrency limit
        refuses only submits, a storm or a request limit refuses reads too), a submit
        below the high, or one charged to the request rate.

        Another client on the same key holds slots we do not count, so its jobs can
        make the server refuse ours below our high. Text-less, those refusals then
        cost pauses (doubling while they last) and a lowered submit rate, forgotten a
        minute after the last one, but never a collapsed bound; with concurrency text
        they lower the bound as above.
        """
        self._in_a_row += 1
        requests_bind, submits_bind = requests.binding, submits.binding
        # A request refused while a pause is in force left before the pause began, and
        # one refused just after it ended may still meet the server's memory of the time
        # before it: the same episode, already answered by lowering once. (Lowering
        # again on a rate measured over a moment would collapse the pace in a storm.)
        grace_over = requests.since_pause >= self._tuning.episode_grace
        pause = self.pause_for(retry_after)
        concurrency = submit and about_concurrency(reason)
        if not concurrency:
            requests.pause(pause)
        submits.pause(pause)
        if concurrency:
            if slots is not None:
                slots.on_refused()
            return pause
        if submit and not requests_bind:
            if grace_over:
                lower(submits)
        elif grace_over:  # a read, or a submit while the request gate binds
            lower(requests)
            if submit and submits_bind:
                lower(submits)
        if submit and not requests_bind and slots is not None and slots.at_proven_high:
            self._submit_refusals += 1
            if self._submit_refusals >= 2:
                slots.on_refused()
        else:  # a refusal that cannot be about concurrency ends the pair
            self._submit_refusals = 0
        return pause
