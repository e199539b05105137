"""Deciding whether a lost submit created a generation, and the seed policy that helps.

There is no idempotency key on ``POST /generations-image-to-video``: when its answer is
lost (a reset, a timeout, a 502/503/504 from a gateway that may have passed the request
on, a 200 we cannot read), the only way to know whether the job exists (and is being
billed) is to look for it in ``GET /generations/user/{userId}``. A listed generation is
ours when it has our prompt, our size, was created no earlier than our submit (on the
server's clock: the offset :class:`~.._transport.ServerClock` learns from ``Date`` headers
and from our own jobs' ``createdAt``, less 60 s before any evidence), has our
seed when the server keeps the seeds it is sent, and is not already claimed by another of
our submits.

The listing may show a new job late (an eventually consistent read). So "not there" means
something only after the listing has had time to catch up: :class:`Reconciler` looks at
once and then again, at doubling pauses, until :data:`LISTING_LAG` seconds after the
failure. A look that could not read the whole window (its page cap, a listing error)
decides nothing: the submit is then left uncertain, never resent.

Silence proves something only from a listing known to show video jobs: until one of our
own jobs or a finished video has been seen in it (Leonardo does not document that video
generations are listed), a submit not found is left uncertain rather than resent.

The seed policy lives here too, because it exists for matching: the client sends a seed
it chose when the caller gave none, which makes a match exact on servers that keep seeds.
A server that refuses ``seed`` (a 400 naming it) is sent none from then on.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Collection, Iterable
from datetime import datetime, timedelta, timezone
from typing import Final

import anyio
import attrs

from .._errors import APIError, LeonardoError, ResponseShapeError, SubmitUncertainError
from .._transport import ServerClock
from ..models import MAX_SEED, Generation, ImageToVideoRequest, VideoSpec
from ._pages import CLOCK_SKEW, Listing

__all__ = ["LISTING_LAG", "Reconciler", "is_candidate", "pick"]

logger = logging.getLogger("leonardo_async")

#: Seconds after a failed submit within which the listing is expected to show the job,
#: if one was made. Against the simulator's lag knob, a 2 s lag is found by the look at
#: 3 s and a 10 s lag by the one at 15 s; a 30 s lag is not (benchmarks/reconcile.py).
LISTING_LAG: Final = 20.0
#: The pause before the second look; each later pause doubles, the last ends the window.
FIRST_PAUSE: Final = 1.0
#: The most listing pages one look reads (1,000 entries newer than the submit, less skew).
MAX_PAGES: Final = 20
#: Our own answered submits remembered for their ``createdAt`` (the oldest go first).
_MADE_KEPT: Final = 256


def is_candidate(
    generation: Generation,
    request: VideoSpec,
    *,
    since: datetime,
    exclude: Collection[str] = (),
    trust_seed: bool = True,
    earliest: datetime | None = None,
) -> bool:
    """Whether ``generation`` may be the one ``request`` created, submitted at ``since``.

    :param since: when the submit started (an aware datetime)
    :param earliest: the earliest server timestamp the job can carry (default: ``since``
        less 60 s, for a server clock nothing is known of)
    :param exclude: generation ids already known to belong to other submits
    :param trust_seed: the server keeps the seeds it is sent, so a different seed rules
        a generation out
    """
    if generation.id in exclude or generation.prompt != request.prompt:
        return False
    if request.width is not None and generation.image_width not in (None, request.width):
        return False
    if request.height is not None and generation.image_height not in (None, request.height):
        return False
    floor = since - CLOCK_SKEW if earliest is None else earliest
    if generation.created_at is not None and generation.created_at < floor:
        return False
    return not (
        trust_seed
        and request.seed is not None
        and generation.seed is not None
        and generation.seed != request.seed
    )


def pick(candidates: Iterable[Generation], request: VideoSpec) -> Generation | None:
    """The best of the candidates: a seed match first, then the earliest created."""

    def rank(generation: Generation) -> tuple[bool, float]:
        created = generation.created_at
        return (
            request.seed is None or generation.seed != request.seed,
            created.timestamp() if created is not None else float("inf"),
        )

    return min(candidates, key=rank, default=None)


def names_seed(error: APIError) -> bool:
    """A 400 that refuses the ``seed`` field (a 400 created nothing)."""
    return error.status == 400 and "seed" in (error.error or "").lower()


class Reconciler:
    """Finds lost submits in the listing and keeps the key's seed policy.

    :param listing: the key owner's generation listing
    :param submit_url: the submit endpoint, for the errors raised here
    :param auto_seed: send a random seed when the caller gives none
    :param listing_lag: seconds the listing may take to show a new job
    :param listing_shows_videos: whether the listing is known to show video jobs
        (``None``: learn it from the listing; ``False``: never take its silence as proof)
    :param clock: the server's clock offset, learnt (also from our own jobs here)
    """

    def __init__(
        self,
        listing: Listing,
        *,
        submit_url: str,
        auto_seed: bool = True,
        listing_lag: float = LISTING_LAG,
        listing_shows_videos: bool | None = None,
        clock: ServerClock | None = None,
    ) -> None:
        self._listing = listing
        self.clock = ServerClock() if clock is None else clock
        #: Our own jobs whose submit was answered: when it was sent and answered (our
        #: clock), to bound the server's clock by their ``createdAt``.
        self._made: dict[str, tuple[datetime, datetime]] = {}
        self._submit_url = submit_url
        self.auto_seed = auto_seed
        self.listing_lag = listing_lag
        #: Whether the server keeps the seeds it is sent (learnt from our own jobs).
        self.server_keeps_seeds: bool | None = None
        #: The server refused a ``seed`` (400 naming it): none is sent from then on.
        self.seeds_refused = False
        self._sent_seeds: dict[str, int] = {}
        #: The listing has shown a video job (one of ours, or a finished video), so a job
        #: it does not show after the lag window was not made.
        self.listing_shows_videos = bool(listing_shows_videos)
        self._learn_listing = listing_shows_videos is None
        self._ours: set[str] = set()

    # --- seeds --------------------------------------------------------------------------

    def with_seed(self, request: ImageToVideoRequest) -> ImageToVideoRequest:
        """``request`` as it should be sent: a random seed added when it has none and
        ``auto_seed`` is on; no seed at all once the server has refused one."""
        if self.seeds_refused:
            return request if request.seed is None else attrs.evolve(request, seed=None)
        if request.seed is not None or not self.auto_seed:
            return request
        return attrs.evolve(request, seed=random.randint(0, MAX_SEED))

    def refused_seed(self, request: ImageToVideoRequest, error: APIError) -> bool:
        """Whether ``error`` refused ``request``'s seed; if so, stop sending seeds."""
        if request.seed is None or not names_seed(error):
            return False
        logger.warning("the server refuses 'seed' (%s); sending none from now on", error)
        self.seeds_refused = True
        self._sent_seeds.clear()
        return True

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
        if self.server_keeps_seeds is None and request.seed is not None:
            self._sent_seeds[generation_id] = request.seed
        if self._learn_listing and not self.listing_shows_videos:
            self._ours.add(generation_id)

    def listed(self, generation: Generation) -> None:
        """A generation read whole from the listing: learn from it."""
        self.learn(generation)
        if generation.video_url is not None or generation.id in self._ours:
            self._shows_videos()

    def assume_listing(self, shows_videos: bool) -> None:
        """Take it as known whether the listing shows video jobs (stop learning it)."""
        self.listing_shows_videos = shows_videos
        self._learn_listing = False
        self._ours.clear()

    def _shows_videos(self) -> None:
        if self._learn_listing and not self.listing_shows_videos:
            logger.debug("the generation listing shows video jobs")
            self.listing_shows_videos = True
            self._ours.clear()

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

    @property
    def trust_seed(self) -> bool:
        """Whether a listed job's different seed rules it out."""
        return self.server_keeps_seeds is not False and not self.seeds_refused

    # --- finding ------------------------------------------------------------------------

    def settled(self, failed_at: datetime) -> datetime:
        """When the listing must show a job made by a submit that failed at ``failed_at``."""
        return failed_at + timedelta(seconds=self.listing_lag)

    async def find(
        self,
        request: VideoSpec,
        *,
        since: datetime,
        settled_by: datetime,
        claimed: Collection[str] = (),
    ) -> Generation | None:
        """The generation a submit of ``request`` started at ``since`` created, if any.

        Looks at once, then at doubling pauses until a look begins at or after
        ``settled_by`` (one look if that has passed): only such a look can rule the job
        out. A look that began earlier and ended late (429 pauses, retries) read the
        listing before the window closed, however long it took. ``None`` means every look
        read the whole window and none showed the job.

        :param claimed: generation ids that belong to other submits
        :raises SubmitUncertainError: a look could not read the whole window
        """
        pause = FIRST_PAUSE
        looks = 0
        doubt: Generation | None = None
        while True:
            looks += 1
            began = datetime.now(timezone.utc)
            found, other_seed = await self._look(request, since=since, claimed=claimed)
            if found is not None:
                return found
            doubt = doubt or other_seed
            closed = began >= settled_by  # this look read the listing after the window
            left = max(0.0, (settled_by - datetime.now(timezone.utc)).total_seconds())
            if closed and not self.listing_shows_videos:
                raise self._uncertain(
                    f"not in the listing after {looks} looks, but the listing has not been "
                    "seen to show a video job yet, so that proves nothing"
                )
            if closed and doubt is not None and self.server_keeps_seeds is None:
                raise self._uncertain(
                    f"generation {doubt.id} matches all but the seed, and whether the "
                    "server keeps the seeds it is sent is not known yet"
                )
            if closed:
                logger.info("no job for the submit in %d looks of the listing", looks)
                return None
            await anyio.sleep(min(pause, left))
            pause *= 2

    async def _look(
        self, request: VideoSpec, *, since: datetime, claimed: Collection[str]
    ) -> tuple[Generation | None, Generation | None]:
        """One walk: the best match, and a job that matches all but the seed."""
        trust_seed = self.trust_seed
        candidates = []
        other_seed = None
        earliest = self.clock.earliest(since)
        walk = self._listing.walk(newer_than=since, max_pages=MAX_PAGES, skew=since - earliest)
        try:
            async for page in walk:
                for entry in page:
                    if not self.listing_shows_videos and (
                        entry.id in claimed or entry.id in self._ours
                    ):
                        self._shows_videos()
                    if entry.id in claimed or (
                        entry.created_at is not None and entry.created_at < earliest
                    ):
                        continue
                    try:
                        generation = entry.generation()
                    except ResponseShapeError as exc:
                        logger.info("listing entry %s unreadable (%s)", entry.id, exc)
                        continue
                    if is_candidate(
                        generation,
                        request,
                        since=since,
                        exclude=claimed,
                        trust_seed=trust_seed,
                        earliest=earliest,
                    ):
                        candidates.append(generation)
                    elif trust_seed and is_candidate(
                        generation,
                        request,
                        since=since,
                        exclude=claimed,
                        trust_seed=False,
                        earliest=earliest,
                    ):
                        other_seed = generation
        except LeonardoError as exc:  # undecided: resending could pay twice
            raise self._uncertain(f"the generation listing could not be read ({exc})") from exc
        found = pick(candidates, request)
        if found is None and not walk.complete:
            raise self._uncertain(
                f"the generation listing holds more than {MAX_PAGES} pages since the submit"
            )
        return found, other_seed

    def _uncertain(self, cause: str) -> SubmitUncertainError:
        return SubmitUncertainError("POST", self._submit_url, cause)
