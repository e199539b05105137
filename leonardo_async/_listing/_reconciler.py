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
once and then again, at doubling pauses, until the lag window has passed since the
failure. The window is measured (:class:`~._lag.ListingLag`: how late our own answered
jobs appeared, and how long one still has not), never below :data:`LISTING_LAG`, and is
weighed again after every look; a window past :data:`~._lag.MAX_LAG`, or a look that could
not read the whole window (its page cap, a listing error), decides nothing: the submit is
then left uncertain, never resent.

Silence proves something only from a listing known to show video jobs: until one of our
own jobs or a finished video has been seen in it (Leonardo does not document that video
generations are listed), a submit not found is left uncertain rather than resent.

The seed policy lives here too, because it exists for matching: the client sends a seed
it chose when the caller gave none, which makes a match exact on servers that keep seeds.
A server that rejects ``seed`` (a 400 naming it) is sent none from then on.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Collection, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Final

import anyio
import attrs

from .._errors import APIError, LeonardoError, ResponseShapeError, SubmitUncertainError
from ..models import MAX_SEED, Generation, ImageToVideoRequest, VideoSpec
from ._evidence import LISTING_LAG, Evidence
from ._pages import CLOCK_SKEW, Listing, ListingEntry, Walk

__all__ = ["LISTING_LAG", "Reconciler", "is_candidate", "pick"]

logger = logging.getLogger("leonardo_async")

#: The pause before the second look; each later pause doubles, the last ends the window.
FIRST_PAUSE: Final = 1.0
#: The most listing pages one look reads (1,000 entries newer than the submit, less skew).
MAX_PAGES: Final = 20
#: How much earlier than the truth a listed ``createdAt`` may read (trimmed timestamps).
_TRIMMED: Final = timedelta(seconds=1)


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
    if request.width is not None and generation.width not in (None, request.width):
        return False
    if request.height is not None and generation.height not in (None, request.height):
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
    """A 400 that rejects the ``seed`` field (a 400 created nothing)."""
    return error.status == 400 and "seed" in (error.error or "").lower()


class Reconciler:
    """Finds lost submits in the listing and keeps the key's seed policy.

    :param listing: the key owner's generation listing
    :param submit_url: the submit endpoint, for the errors raised here
    :param auto_seed: send a random seed when the caller gives none
    :param evidence: what our own jobs have shown of the listing and the server (the
        one the listing tells of its pages; a fresh one by default)
    """

    def __init__(
        self,
        listing: Listing,
        *,
        submit_url: str,
        auto_seed: bool = True,
        evidence: Evidence | None = None,
    ) -> None:
        self._listing = listing
        #: What our own jobs have shown of the listing and the server (its lag, its
        #: clock, whether it keeps seeds and lists videos), which the finding weighs.
        self.evidence = Evidence() if evidence is None else evidence
        self._submit_url = submit_url
        self.auto_seed = auto_seed
        #: The server rejected a ``seed`` (400 naming it): none is sent from then on.
        self.seeds_rejected = False

    # --- seeds --------------------------------------------------------------------------

    def with_seed(self, request: ImageToVideoRequest) -> ImageToVideoRequest:
        """``request`` as it should be sent: a random seed added when it has none and
        ``auto_seed`` is on; no seed at all once the server has rejected one."""
        if self.seeds_rejected:
            return request if request.seed is None else attrs.evolve(request, seed=None)
        if request.seed is not None or not self.auto_seed:
            return request
        return attrs.evolve(request, seed=random.randint(0, MAX_SEED))

    def rejected_seed(self, request: ImageToVideoRequest, error: APIError) -> bool:
        """Whether ``error`` rejected ``request``'s seed; if so, stop sending seeds."""
        if request.seed is None or not names_seed(error):
            return False
        logger.warning("the server rejects 'seed' (%s); sending none from now on", error)
        self.seeds_rejected = True
        self.evidence.forget_seeds()
        return True

    @property
    def trust_seed(self) -> bool:
        """Whether a listed job's different seed rules it out."""
        return self.evidence.server_keeps_seeds is not False and not self.seeds_rejected

    # --- finding ------------------------------------------------------------------------

    async def find(
        self,
        request: VideoSpec,
        *,
        since: datetime,
        failed_at: datetime,
        claimed: Collection[str] = (),
    ) -> Generation | None:
        """The generation a submit of ``request`` started at ``since`` created, if any.

        Looks at once, then at doubling pauses until a look begins at or after the lag
        window has passed since ``failed_at`` (one look if that has passed): only such a
        look can rule the job out. The window is weighed again after each look, since a
        look may show the listing to be later than thought. A look that began earlier and
        ended late (429 pauses, retries) read the listing before the window closed,
        however long it took. ``None`` means every look read the whole window and none
        showed the job.

        :param claimed: generation ids that belong to other submits
        :raises SubmitUncertainError: a look could not read the whole window, or the
            listing is later than :data:`~._lag.MAX_LAG`
        """
        pause = FIRST_PAUSE
        looks = 0
        doubt: Generation | None = None
        #: The entries the last look read, and when it began: a job that existed then and
        #: appears in a later look shows how late the listing is, whoever made it.
        before: tuple[set[str], datetime] | None = None
        while True:
            looks += 1
            began = datetime.now(timezone.utc)
            found, other_seed, listed = await self._look(request, since=since, claimed=claimed)
            if before is not None:
                self._newcomers(listed, before, began=began, since=since)
            before = (set(listed), began)
            if found is not None:
                if looks > 1:  # an earlier look of this search did not show it
                    self.evidence.lag.sighted(datetime.now(timezone.utc) - since)
                return found
            doubt = doubt or other_seed
            window = self.evidence.window(since, began)
            logger.debug(
                "listing lag window %.1f s after look %d (%r)", window, looks, self.evidence.lag
            )
            cap = self.evidence.lag.cap
            if window > cap:
                self.evidence.lag.forget(before=began - timedelta(seconds=cap))
                raise self._uncertain(
                    f"the listing shows jobs later than {cap:g} s (window {window:.0f} s):"
                    " not finding the job there proves nothing yet"
                )
            settled_by = failed_at + timedelta(seconds=window)
            closed = began >= settled_by  # this look read the listing after the window
            left = max(0.0, (settled_by - datetime.now(timezone.utc)).total_seconds())
            if closed and not self.evidence.listing_shows_videos:
                raise self._uncertain(
                    f"not in the listing after {looks} looks, but the listing has not been "
                    "seen to show a video job yet, so that proves nothing"
                )
            if closed and doubt is not None and self.evidence.server_keeps_seeds is None:
                raise self._uncertain(
                    f"generation {doubt.id} matches all but the seed, and whether the "
                    "server keeps the seeds it is sent is not known yet"
                )
            if closed:
                logger.info("no job for the submit in %d looks of the listing", looks)
                return None
            await anyio.sleep(min(pause, left))
            pause *= 2

    def _newcomers(
        self,
        listed: Mapping[str, datetime | None],
        before: tuple[set[str], datetime],
        *,
        began: datetime,
        since: datetime,
    ) -> None:
        """Learn the listing's lag from entries this look shows that the last did not,
        though they were made before it began (on the server's clock, as far as it is
        known): each was that late, at least. A job whose answer was lost and that no
        search found (a search that gave up) is otherwise never measured, and without
        it a listing later than the floor would have a later lost submit sent again."""
        clock = self.evidence.clock
        if clock.low is None or clock.high is None:  # when it was made is not known here
            return
        seen, previous = before
        floor = clock.earliest(since)  # both looks read the listing down to here
        for generation_id, created in listed.items():
            if generation_id in seen or created is None or created < floor:
                continue
            # The latest moment of ours it can have been made at (a trimmed timestamp
            # reads up to a second early), and the earliest.
            made_by = created - timedelta(seconds=clock.low) + _TRIMMED
            if made_by < previous:
                self.evidence.lag.sighted(began - (created - timedelta(seconds=clock.high)))

    async def _look(
        self, request: VideoSpec, *, since: datetime, claimed: Collection[str]
    ) -> tuple[Generation | None, Generation | None, dict[str, datetime | None]]:
        """One walk: the best match, a job that matches all but the seed, and every entry
        read (by id, with its creation time)."""
        trust_seed = self.trust_seed
        candidates = []
        other_seed = None
        listed: dict[str, datetime | None] = {}
        earliest = self.evidence.clock.earliest(since)
        walk = self._walk(since, earliest, MAX_PAGES)
        async for entry in self._entries(walk):
            listed[entry.id] = entry.created_at
            if not self.evidence.listing_shows_videos and (
                entry.id in claimed or self.evidence.ours(entry.id)
            ):
                self.evidence.saw_videos()
            if entry.id in claimed or (
                entry.created_at is not None and entry.created_at < earliest
            ):
                continue
            generation = _read(entry)
            if generation is None:
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
        found = pick(candidates, request)
        if found is None and not walk.complete:
            raise self._uncertain(
                f"the generation listing holds more than {MAX_PAGES} pages since the submit"
            )
        return found, other_seed, listed

    async def strays(
        self,
        requests: Mapping[str, VideoSpec],
        *,
        since: datetime,
        held: Collection[str],
        max_pages: int = MAX_PAGES,
    ) -> tuple[dict[str, list[Generation]], bool]:
        """Listed generations that match one of ``requests`` and are none of ``held``:
        what a batch begun at ``since`` made that none of its items holds.

        Matched as a lost submit is matched (:func:`is_candidate`: the prompt, the size,
        made no earlier than ``since`` on the server's clock, the seed where the server
        keeps seeds). A generation that matches several requests goes to the one whose
        seed it has, else to the first.

        :return: the generations found, by the key of the request each matched, oldest
            first; and whether the walk read the listing back to ``since`` (``False``:
            its page cap came first, and older ones may be missing)
        :raises SubmitUncertainError: the listing could not be read
        """
        by_prompt: dict[str, list[tuple[str, VideoSpec]]] = {}
        for key, request in requests.items():
            by_prompt.setdefault(request.prompt, []).append((key, request))
        trust_seed = self.trust_seed
        earliest = self.evidence.clock.earliest(since)
        found: dict[str, list[Generation]] = {}
        walk = self._walk(since, earliest, max_pages)
        seen: set[str] = set()
        async for entry in self._entries(walk):
            if entry.id in held or entry.id in seen:
                continue
            seen.add(entry.id)
            generation = _read(entry)
            if generation is None:
                continue
            matches = [
                (key, request)
                for key, request in by_prompt.get(generation.prompt or "", ())
                if is_candidate(
                    generation, request, since=since, trust_seed=trust_seed, earliest=earliest
                )
            ]
            if not matches:
                continue
            key = next(
                (k for k, r in matches if r.seed is not None and r.seed == generation.seed),
                matches[0][0],
            )
            found.setdefault(key, []).append(generation)
        for generations in found.values():
            generations.sort(key=lambda g: g.created_at or since)
        return found, walk.complete

    def _walk(self, since: datetime, earliest: datetime, max_pages: int) -> Walk:
        """A walk of the listing from the newest entry down to ``since``, less what the
        server's clock may lag behind ours (``earliest``: the oldest stamp a job made
        since then can carry)."""
        return self._listing.walk(newer_than=since, max_pages=max_pages, skew=since - earliest)

    async def _entries(self, walk: Walk) -> AsyncIterator[ListingEntry]:
        """Every entry the walk reads; a listing that cannot be read decides nothing (a
        resend could pay twice): :class:`SubmitUncertainError`."""
        try:
            async for page in walk:
                for entry in page:
                    yield entry
        except LeonardoError as exc:
            raise self._uncertain(f"the generation listing could not be read ({exc})") from exc

    def _uncertain(self, cause: str) -> SubmitUncertainError:
        return SubmitUncertainError("POST", self._submit_url, cause)


def _read(entry: ListingEntry) -> Generation | None:
    """The entry's generation, or ``None`` (logged) for one this client cannot read."""
    try:
        return entry.generation()
    except ResponseShapeError as exc:
        logger.info("listing entry %s unreadable (%s)", entry.id, exc)
        return None
