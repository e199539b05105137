"""What our own jobs have shown of the listing and the server: the evidence a lost submit
is weighed by.

A lost submit can only be ruled out by the listing's silence when the listing is known to
be timely and to show video jobs at all, and matched only against jobs made after it on
the server's clock. None of that is documented, so it is learnt from the jobs this client
made and was answered for:

* **the listing's lag** (:class:`~._lag.ListingLag`): how late each of them first appeared
  in a page, and how long one has still not;
* **the server's clock** (:class:`~.._transport.ServerClock`): their ``createdAt`` against
  when they were sent and answered (the ``Date`` headers teach it too);
* **whether the server keeps the seeds it is sent**: their listed seed against ours;
* **whether the listing shows video jobs**: one of them, or any finished video, seen there.

:class:`Evidence` is made before the listing, which tells it of every page and every
generation it reads, and the reconciler, which weighs it; nothing is wired afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Final

from .._transport import ServerClock
from ..models import Generation, ImageToVideoRequest
from ._lag import ListingLag

__all__ = ["LISTING_LAG", "Evidence"]

logger = logging.getLogger("leonardo_async")

#: The least seconds after a failed submit within which the listing is expected to show
#: the job, if one was made; the window in force grows with the lag measured.
LISTING_LAG: Final = 20.0
#: Our own answered submits remembered for their ``createdAt`` (the oldest go first).
_MADE_KEPT: Final = 256


class Evidence:
    """What this client's own jobs have shown of the listing and the server.

    :param listing_lag: the least seconds the listing is given to show a new job (the
        window's floor; the window grows with the lag measured)
    :param listing_shows_videos: whether the listing is known to show video jobs
        (``None``: learn it from the listing; ``False``: never take its silence as proof)
    :param clock: the server's clock offset, learnt (also from our own jobs here)
    """

    def __init__(
        self,
        *,
        listing_lag: float = LISTING_LAG,
        listing_shows_videos: bool | None = None,
        clock: ServerClock | None = None,
    ) -> None:
        self.clock = ServerClock() if clock is None else clock
        #: How late the listing shows our jobs, learnt (its floor is ``listing_lag``).
        self.lag = ListingLag(listing_lag)
        #: Whether the server keeps the seeds it is sent (learnt from our own jobs).
        self.server_keeps_seeds: bool | None = None
        #: The listing has shown a video job (one of ours, or a finished video), so a job
        #: it does not show after the lag window was not made.
        self.listing_shows_videos = bool(listing_shows_videos)
        self._learn_listing = listing_shows_videos is None
        #: Our own jobs whose submit was answered: when it was sent and answered (our
        #: clock), to bound the server's clock by their ``createdAt``.
        self._made: dict[str, tuple[datetime, datetime]] = {}
        self._sent_seeds: dict[str, int] = {}
        self._ours: set[str] = set()

    def __repr__(self) -> str:
        return (
            f"<Evidence lag={self.lag!r} clock={self.clock!r} "
            f"keeps_seeds={self.server_keeps_seeds} shows_videos={self.listing_shows_videos}>"
        )

    # --- what we made -------------------------------------------------------------------

    def submitted(
        self,
        generation_id: str,
        request: ImageToVideoRequest,
        *,
        sent: datetime | None = None,
        answered: datetime | None = None,
    ) -> None:
        """Remember a job we made: its seed (does the server keep it?), its id (does the
        listing show our jobs?) and, given ``sent`` and ``answered``, when it was made
        (what does its ``createdAt`` say of the server's clock?)."""
        if sent is not None and answered is not None:
            if len(self._made) >= _MADE_KEPT:
                del self._made[next(iter(self._made))]
            self._made[generation_id] = (sent, answered)
            self.lag.made(generation_id, sent=sent, answered=answered)
        if self.server_keeps_seeds is None and request.seed is not None:
            self._sent_seeds[generation_id] = request.seed
        if self._learn_listing and not self.listing_shows_videos:
            self._ours.add(generation_id)

    def vanished(self, generation_id: str) -> None:
        """A job we made is gone from the server (the tracker gave it the vanish grace):
        the listing will not show it, so its absence says nothing of the lag."""
        self.lag.gone(generation_id)
        self._made.pop(generation_id, None)
        self._ours.discard(generation_id)

    def ours(self, generation_id: str) -> bool:
        """Whether a job we made is still waited for as proof that the listing shows
        video jobs."""
        return generation_id in self._ours

    def forget_seeds(self) -> None:
        """No seed is sent any more: stop waiting to learn whether the server keeps them."""
        self._sent_seeds.clear()

    # --- what the listing showed --------------------------------------------------------

    def paged(self, generation_ids: Sequence[str], read: datetime) -> None:
        """A listing page read by ``read`` showed these ids: learn the listing's lag."""
        self.lag.seen(generation_ids, at=read)

    def listed(self, generation: Generation) -> None:
        """A generation read whole from the listing: learn from it."""
        self.learn(generation)
        if generation.video_url is not None or generation.id in self._ours:
            self.saw_videos()

    def learn(self, generation: Generation) -> None:
        """Learn from one of our own jobs whether the server keeps the seeds it is sent,
        and where its clock stands."""
        made = self._made.pop(generation.id, None)
        if made is not None and generation.created_at is not None:
            self.clock.observe(generation.created_at, sent=made[0], received=made[1])
            logger.debug("server clock: %r", self.clock)
        if not self._sent_seeds:
            return
        sent = self._sent_seeds.pop(generation.id, None)
        if sent is not None and generation.seed is not None:
            self.server_keeps_seeds = generation.seed == sent
            self._sent_seeds.clear()

    def saw_videos(self) -> None:
        """The listing has shown a video job: its silence proves something from now on."""
        if self._learn_listing and not self.listing_shows_videos:
            logger.debug("the generation listing shows video jobs")
            self.listing_shows_videos = True
            self._ours.clear()

    def assume_listing(self, shows_videos: bool) -> None:
        """Take it as known whether the listing shows video jobs (stop learning it)."""
        self.listing_shows_videos = shows_videos
        self._learn_listing = False
        self._ours.clear()

    # --- the window ---------------------------------------------------------------------

    @property
    def listing_lag(self) -> float:
        """The least seconds the listing is given to show a job (the window's floor)."""
        return self.lag.floor

    def window(self, since: datetime, now: datetime | None = None) -> float:
        """Seconds after a failed submit sent at ``since`` within which the listing must
        show its job, as known at ``now``. Our own jobs that are still unlisted count only
        once the listing is known to show video jobs (until then nothing is concluded
        from its silence anyway)."""
        now = datetime.now(timezone.utc) if now is None else now
        return self.lag.window(now=now, since=since if self.listing_shows_videos else None)
