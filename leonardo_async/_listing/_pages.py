"""The generation listing, ``GET /generations/user/{userId}``: the one module that reads it.

Two parts of the client read the listing. The tracker reads it to learn the status of many
jobs with one request; reconciliation reads it to find out whether a submit whose answer
was lost created a job. Both need the same things done the same way, so they are done
here once:

* the page size: 50 asked for; a server that rejects that (400/422) gets the documented
  default of 10 from then on, and a server whose page shorter than asked is followed by
  entries not read before has its cap learnt (the tracker sizes its walks by it);
* the overlap: each page after the first repeats a few entries of the one before, so a
  generation deleted while we walk (which shifts later ones up) cannot hide one between
  pages; entries seen twice are given once;
* the stop: a listing ordered newest first can stop at the page whose last entry is older
  than the moment of interest, less :data:`CLOCK_SKEW` for a server clock behind ours; any
  walk stops at the listing's end: an empty page, or a page shorter than an earlier one of
  the walk holding only entries already read (jobs made while we walk push the last
  entries back under our offset; chasing them would read a page per new job);
* the entries: each is read through the wire converter into a small
  :class:`ListingEntry` (id, status, creation time); the whole generation is read only when
  asked for, since most entries a tracker reads are jobs still pending.

A walk knows whether it saw everything it was asked to (:attr:`Walk.complete`): one cut
short by its page cap cannot rule a job out.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Final, Protocol

import attrs

from .. import _wire as wire
from .._errors import APIError, ResponseShapeError, ValidationError
from ..models import Generation, GenerationStatus

__all__ = ["CLOCK_SKEW", "Listing", "ListingEntry", "Walk", "path_segment", "read_entry"]

logger = logging.getLogger("leonardo_async")

#: Entries asked for per page.
PAGE_SIZE: Final = 50
#: The listing's documented default page size, used if a server rejects larger pages.
SAFE_PAGE_SIZE: Final = 10
#: The largest page answer, in bytes: a full page is some hundreds of kilobytes, and this
#: leaves room for prompts of any length while an answer that never ends stops here.
PAGE_ANSWER_LIMIT: Final = 32 << 20
#: Entries each page repeats of the previous one (deletions shift pages up).
PAGE_OVERLAP: Final = 5
#: How far a server's clock may run behind ours before a newest-first walk stops too early
#: or a listed job is taken for one older than our submit.
CLOCK_SKEW: Final = timedelta(seconds=60)


class Caller(Protocol):
    """What the listing needs of the connection: one JSON API call."""

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        max_answer: int = ...,
    ) -> Any: ...


@attrs.frozen
class _EntryHead:
    """The part of a listed generation every reader needs; the rest is read on demand."""

    id: str
    status: GenerationStatus | str
    created_at: datetime | None = None


class ListingEntry:
    """One generation as a listing page showed it.

    :ivar id: the generation id
    :ivar status: its status (an unknown status stays a string)
    :ivar created_at: when the server created it, if it said
    """

    __slots__ = ("_listing", "_raw", "_source", "created_at", "id", "status")

    def __init__(self, head: _EntryHead, raw: Any, source: str, listing: Listing) -> None:
        self.id = head.id
        self.status = head.status
        self.created_at = head.created_at
        self._raw = raw
        self._source = source
        self._listing = listing

    def __repr__(self) -> str:
        return f"<ListingEntry {self.id} {self.status}>"

    @property
    def pending(self) -> bool:
        """Whether the job is still running (nothing more to read from this entry)."""
        return self.status == GenerationStatus.PENDING

    def generation(self) -> Generation:
        """The whole generation.

        :raises ResponseShapeError: the entry's other fields cannot be read
        """
        return self._listing.read_generation(self._raw, self._source)


class Walk:
    """One walk down the listing, page by page. Iterate it for pages of new entries.

    :ivar complete: the walk reached the end of the listing or, newest first, entries
        older than ``newer_than``; ``False`` when it stopped at its page cap
    :ivar pages: listing requests made (a rejected page size adds one)
    """

    def __init__(
        self,
        listing: Listing,
        newer_than: datetime | None,
        max_pages: int,
        overlap: bool,
        skew: timedelta = CLOCK_SKEW,
    ) -> None:
        self._listing = listing
        self._overlap = overlap
        self._newer_than = None if newer_than is None else newer_than - skew
        self._max_pages = max_pages
        self.complete = False
        self.pages = 0

    def __aiter__(self) -> AsyncIterator[list[ListingEntry]]:
        return self._walk()

    async def _walk(self) -> AsyncIterator[list[ListingEntry]]:
        offset, seen = 0, set[str]()
        listing = self._listing
        repeated = expected = fullest = short = 0
        # Jobs created while we walk push the listing down under our offsets: what a page
        # repeats beyond the overlap asked for is such a shift, and earns the walk that
        # many more entries' worth of pages (at most twice its cap in all), so that its
        # cap bounds the entries it reads, not the requests.
        step = listing.limit - (PAGE_OVERLAP if self._overlap else 0)
        while self.pages < min(2 * self._max_pages, self._max_pages + repeated // step):
            self.pages += 1
            page = await listing.page(offset, overlap=self._overlap)
            self.pages += page.rejected
            if not page.raw_count:
                self.complete = True
                return
            # A page shorter than an earlier one of this walk is the listing's last: the
            # server would have filled it had it more entries below our offset.
            last = page.raw_count < min(fullest, listing.limit)
            fullest = max(fullest, page.raw_count)
            fresh = [entry for entry in page.entries if entry.id not in seen]
            seen.update(entry.id for entry in fresh)
            if short and fresh:
                # Entries below a page shorter than asked: the server caps its pages. (Only
                # new ones tell: at a growing listing's end, the page after a short one
                # holds entries pushed down from it, which says nothing of a cap.)
                listing.learn_cap(short)
            short = page.raw_count if page.raw_count < listing.limit else 0
            repeated += max(0, len(page.entries) - len(fresh) - expected)
            expected = page.raw_count - page.step
            if logger.isEnabledFor(logging.DEBUG):  # a tracker reads thousands of pages
                logger.debug(
                    "listing page %d: offset=%d limit=%d entries=%d new=%d repeated=%d, %s .. %s",
                    self.pages,
                    offset,
                    listing.limit,
                    page.raw_count,
                    len(fresh),
                    repeated,
                    _stamp(page.entries, 0),
                    _stamp(page.entries, -1),
                )
            offset += page.step
            yield fresh
            if self._newer_than is not None and _ends_before(page.entries, self._newer_than):
                self.complete = True
                return
            if last and not fresh:
                # The end of the listing, holding only entries already read: jobs created
                # meanwhile pushed them down under our offset. Every entry the listing held
                # when the walk began has been read (new ones arrive above, not below), so
                # reading on would only chase the listing's growth one page at a time.
                self.complete = True
                return
        logger.debug("listing walk cut short by its cap: %d pages, offset %d", self.pages, offset)


@attrs.frozen
class Page:
    """One page as read: the readable entries, and how far the next page starts."""

    entries: list[ListingEntry]
    raw_count: int
    step: int
    #: Requests rejected for their page size before this one was read.
    rejected: int = 0


class Listing:
    """The key owner's generation listing.

    :param caller: sends the API request (the client's connection)
    :param user_id: gives the key owner's user id (asked of ``/me`` once)
    :param on_generation: told of every generation read in full from a page (the seed
        policy learns from our own jobs)
    :param on_page: told of the ids every page showed and when it was read (the
        listing's lag is learnt from when our own jobs first appear)
    """

    def __init__(
        self,
        caller: Caller,
        user_id: Callable[[], Awaitable[str]],
        *,
        on_generation: Callable[[Generation], None] | None = None,
        on_page: Callable[[Sequence[str], datetime], None] | None = None,
    ) -> None:
        self._caller = caller
        self._user_id = user_id
        self.on_generation = on_generation
        self.on_page = on_page
        #: The page size asked for (lowered once if the server rejects it).
        self.limit = PAGE_SIZE
        #: The entries a full page holds, as far as the server has shown.
        self.page_size = PAGE_SIZE

    def pages_for(self, depth: int) -> int:
        """Pages a walk reads to reach the entry ``depth`` places below the newest."""
        if depth <= self.page_size:
            return 1
        step = max(1, self.page_size - PAGE_OVERLAP)
        return 1 + math.ceil((depth - self.page_size) / step)

    def walk(
        self,
        *,
        newer_than: datetime | None = None,
        max_pages: int = 20,
        overlap: bool = True,
        skew: timedelta = CLOCK_SKEW,
    ) -> Walk:
        """A walk from the newest entry down, stopping as the module docstring says.

        :param newer_than: what the reader looks for was created after this (an aware
            datetime); a newest-first listing stops below it, less ``skew``
        :param skew: how far behind ours the server's clock may be (the learnt margin of
            :class:`~.._transport.ServerClock`, or a fixed 60 s)
        :param max_pages: the most pages to read; a walk that needs more is incomplete
        :param overlap: start each page a few entries before the last one ended
        """
        return Walk(self, newer_than, max_pages, overlap, skew)

    async def raw_page(self, *, offset: int, limit: int, user_id: str | None = None) -> list[Any]:
        """One page's decoded ``generations`` list, exactly as asked (``list_generations``)."""
        if offset < 0 or limit < 1:
            raise ValidationError("offset/limit", (offset, limit), "offset >= 0 and limit >= 1")
        uid = user_id if user_id is not None else await self._user_id()
        path = f"/generations/user/{path_segment(uid)}"
        data = await self._caller.call(
            "GET", path, params={"offset": offset, "limit": limit}, max_answer=PAGE_ANSWER_LIMIT
        )
        page = data.get("generations") if isinstance(data, dict) else None
        if not isinstance(page, list):
            raise ResponseShapeError(path, ["expected a list @ $.generations"])
        return page

    async def generations(
        self, *, offset: int, limit: int, user_id: str | None = None
    ) -> list[Generation]:
        """One page read whole; any unreadable entry makes the page unreadable."""
        raw = await self.raw_page(offset=offset, limit=limit, user_id=user_id)
        envelope = wire.structure({"generations": raw}, wire.GenerationListEnvelope, "listing")
        self._paged([generation.id for generation in envelope.generations])
        return list(envelope.generations)

    async def page(self, offset: int, *, overlap: bool = True) -> Page:
        """The page at ``offset``, read into entries (unreadable ones are skipped)."""
        limit = self.limit
        try:
            raw = await self.raw_page(offset=offset, limit=limit)
        except APIError as exc:
            if exc.status not in (400, 422) or limit <= SAFE_PAGE_SIZE:
                raise
            logger.info("listing rejected limit=%d; using %d", limit, SAFE_PAGE_SIZE)
            self.limit = self.page_size = SAFE_PAGE_SIZE
            return attrs.evolve(await self.page(offset, overlap=overlap), rejected=1)
        entries = []
        for index, item in enumerate(raw):
            source = f"listing entry {offset + index}"
            try:
                head = wire.structure(item, _EntryHead, source)
            except ResponseShapeError as exc:
                logger.info("skipping an unreadable listing entry: %s", exc)
                continue
            entries.append(ListingEntry(head, item, source, self))
        self._paged([entry.id for entry in entries])
        count = len(raw)
        repeat = PAGE_OVERLAP if overlap and count > 2 * PAGE_OVERLAP else 0
        return Page(entries, count, count - repeat)

    def _paged(self, generation_ids: Sequence[str]) -> None:
        """Tell ``on_page`` what a page just read showed."""
        if self.on_page is not None:
            self.on_page(generation_ids, datetime.now(timezone.utc))

    def read_generation(self, raw: Any, source: str) -> Generation:
        """Read one raw listing entry whole (and tell ``on_generation``).

        :raises ResponseShapeError: the entry cannot be read
        """
        generation = read_entry(raw, source)
        if self.on_generation is not None:
            self.on_generation(generation)
        return generation

    def learn_cap(self, short: int) -> None:
        """A page of ``short`` entries, fewer than asked, was followed by entries not read
        before: the server caps pages at that size."""
        self.page_size = min(self.page_size, short)


def _ends_before(entries: list[ListingEntry], moment: datetime) -> bool:
    """A page ordered newest first whose last entry predates ``moment``: stop walking."""
    stamps = [entry.created_at for entry in entries if entry.created_at is not None]
    if len(stamps) < 2 or any(a < b for a, b in itertools.pairwise(stamps)):
        return False
    return stamps[-1] < moment


def read_entry(raw: Any, source: str) -> Generation:
    """One raw listing entry read whole, as every reader of the listing reads it.

    :raises ResponseShapeError: the entry cannot be read
    """
    return wire.structure(raw, Generation, source)


def _stamp(entries: list[ListingEntry], index: int) -> str:
    """An entry's creation time for the DEBUG log ("-" when there is none)."""
    created = entries[index].created_at if entries else None
    return "-" if created is None else created.isoformat()


def path_segment(value: str) -> str:
    """An id as one URL path segment (ids are opaque; never let one change the path)."""
    if not value or any(c in value for c in "/?#") or value in (".", ".."):
        raise ValidationError("id", value, "a non-empty id without '/', '?' or '#'")
    return value
