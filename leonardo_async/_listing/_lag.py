"""How late the generation listing shows a new job, learnt from our own submits.

A lost submit is sent again only once the listing has been read late enough to show the
job it may have made. A fixed window for that paid twice whenever the listing ran later
than the window, so the window is measured, per key, from the jobs whose submit *was*
answered:

* a job sent at ``sent`` and first seen on a listing page read by ``seen`` bounds the lag
  from above: ``lag <= seen - sent`` (counted only if some page was read in between: a
  first look long after the submit bounds nothing but the time nobody looked). The
  window is 1.5 times the longest of the recent bounds plus a margin, never below the
  floor the caller gives (20 s by default). The margin is 2 s (a lag that varies by a
  second between looks), or the floor if that is smaller: a caller who says the listing
  shows jobs within a tenth of a second is taken at their word for the slack too, while
  every lag measured is still covered one and a half times;
* a job answered at ``answered`` that a complete look at ``now`` did not show bounds it
  from below: ``lag > now - answered``. While such a job is out of the listing, the
  window grows with it: the listing is behind, whatever the past said. Once a job made
  after it is listed, it is taken for gone rather than late (the listing is a lagging
  read of one database, so it shows jobs in the order they were made).

A window past :data:`MAX_LAG` decides nothing: the submit stays uncertain (never sent
again) and a later look or resume settles it. All times are passed in, so that the
arithmetic is tested by computing rather than waiting.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Final

__all__ = ["ListingLag"]

logger = logging.getLogger("leonardo_async")

#: A listing later than this decides nothing: a lost submit stays uncertain.
MAX_LAG: Final = 300.0
#: The window is this many times the longest lag seen, ...
LAG_FACTOR: Final = 1.5
#: ... plus this many seconds (or the floor, if that is smaller).
LAG_MARGIN: Final = 2.0
#: Recent upper bounds kept (a lag that shrinks is believed after this many sightings).
_SAMPLES_KEPT: Final = 64
#: Our answered jobs waiting to be seen in the listing, at most (the oldest go first).
_UNSEEN_KEPT: Final = 512
#: An unseen job counts against the lag only if it was sent no earlier than this before
#: the submit being looked for: a look reads back at least 60 s (the skew margin), so
#: such a job's absence is the listing's lateness, not the walk's stopping short of it.
_COVERED: Final = timedelta(seconds=30)


class ListingLag:
    """A running estimate of the listing's lag for one key.

    :param floor: the window never goes below this many seconds
    :param cap: a window beyond this many seconds decides nothing
    """

    def __init__(self, floor: float, *, cap: float = MAX_LAG) -> None:
        self.floor = floor
        self.cap = max(cap, floor)
        #: Our answered jobs not yet seen in the listing: id -> (sent, answered).
        self._unseen: dict[str, tuple[datetime, datetime]] = {}
        self._bounds: deque[float] = deque(maxlen=_SAMPLES_KEPT)
        #: When the last listing page was read (a sighting on the first page read since
        #: a job was made bounds its lag by however long nobody looked: no evidence).
        self._last_page: datetime | None = None
        #: Sightings measured in all (``_bounds`` keeps the recent ones).
        self.samples = 0

    def __repr__(self) -> str:
        return (
            f"<ListingLag longest {self.longest} s over {self.samples} sightings, "
            f"{len(self._unseen)} unseen, floor {self.floor} s>"
        )

    @property
    def margin(self) -> float:
        """Seconds added to 1.5 times the longest lag: :data:`LAG_MARGIN`, at most the floor."""
        return min(LAG_MARGIN, self.floor)

    @property
    def longest(self) -> float | None:
        """The longest recent upper bound on the lag, or ``None`` before any sighting."""
        return max(self._bounds, default=None)

    def made(self, generation_id: str, *, sent: datetime, answered: datetime) -> None:
        """One of our submits was answered with ``generation_id``: watch for it."""
        if len(self._unseen) >= _UNSEEN_KEPT:
            del self._unseen[next(iter(self._unseen))]
        self._unseen[generation_id] = (sent, answered)

    def seen(self, generation_ids: Iterable[str], *, at: datetime) -> None:
        """A listing page read by ``at`` showed these generations."""
        previous, self._last_page = self._last_page, at
        if not self._unseen:
            return
        newest = None
        for generation_id in generation_ids:
            made = self._unseen.pop(generation_id, None)
            if made is None:
                continue
            newest = made[0] if newest is None else max(newest, made[0])
            if previous is not None and previous >= made[0]:
                self.sighted(at - made[0])
        if newest is not None:
            self._missing(made_before=newest)

    def _missing(self, *, made_before: datetime) -> None:
        """A job sent at ``made_before`` is listed: one of ours answered before then and
        still unlisted is not late but gone (deleted, or never listed), and says nothing
        of the lag. (The listing is a lagging read of one database: it shows jobs in the
        order they were made.)"""
        for generation_id, (_, answered) in list(self._unseen.items()):
            if answered < made_before:
                logger.debug("generation %s is not listed though later jobs are", generation_id)
                del self._unseen[generation_id]

    def gone(self, generation_id: str) -> None:
        """One of our jobs is known gone from the server: stop waiting for it (a job the
        listing will never show would otherwise hold the window open until the cap)."""
        self._unseen.pop(generation_id, None)

    def sighted(self, lag: timedelta) -> None:
        """A job sent ``lag`` before a listing page that showed it (an upper bound)."""
        seconds = max(0.0, lag.total_seconds())
        self._bounds.append(seconds)
        self.samples += 1
        if seconds > self.floor:
            logger.debug("listing showed a job %.1f s after its submit (%r)", seconds, self)

    def behind(self, *, since: datetime, now: datetime) -> float:
        """How late the listing is known to be at ``now``: the longest any of our jobs
        sent from ``since`` less 30 s on has been answered and still not listed."""
        floor = since - _COVERED
        return max(
            (
                (now - answered).total_seconds()
                for sent, answered in self._unseen.values()
                if sent >= floor
            ),
            default=0.0,
        )

    def window(self, *, now: datetime, since: datetime | None = None) -> float:
        """Seconds after a failed submit (sent at ``since``) by which the listing must
        show its job, as known at ``now``; may exceed :attr:`cap`. Without ``since``, our
        jobs not listed yet are not counted."""
        behind = 0.0 if since is None else self.behind(since=since, now=now)
        if self.longest is None and not behind:
            return self.floor
        longest = max(self.longest or 0.0, behind)
        return max(self.floor, LAG_FACTOR * longest + self.margin)

    def forget(self, *, before: datetime) -> None:
        """Stop waiting for jobs answered before ``before`` (past the cap: the listing
        will not show them, a deleted job, or not soon enough to tell anything)."""
        for generation_id, (_, answered) in list(self._unseen.items()):
            if answered < before:
                logger.warning(
                    "generation %s, answered over %.0f s ago, is still not in the listing",
                    generation_id,
                    self.cap,
                )
                del self._unseen[generation_id]
