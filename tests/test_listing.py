"""The listing walk, against an in-memory listing: page caps, overlap, the stop, completeness."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leonardo_async import APIError, FrameRef, ImageToVideoRequest, SubmitUncertainError
from leonardo_async._listing import Evidence, Reconciler
from leonardo_async._listing._pages import CLOCK_SKEW, PAGE_SIZE, SAFE_PAGE_SIZE, Listing

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


class MemoryListing:
    """A listing held in memory, newest first, that serves pages as a server would.

    :param cap: the most entries a page holds, whatever is asked
    :param refuse_above: a ``limit`` above this is a 400
    :param grow: entries created at the top after each page is answered (jobs made while
        a walk reads), dated ``NOW``
    """

    def __init__(
        self, count: int, *, cap: int = 1000, refuse_above: int | None = None, grow: int = 0
    ) -> None:
        self.entries: list[dict[str, Any]] = [
            {
                "id": f"g{i}",
                "status": "PENDING",
                "prompt": f"p{i}",
                "createdAt": (NOW - timedelta(seconds=10 * i)).isoformat(),
            }
            for i in range(count)
        ]
        self.cap = cap
        self.refuse_above = refuse_above
        self.grow = grow
        self.asked: list[tuple[int, int]] = []

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        max_answer: int = 0,
    ) -> Any:
        assert method == "GET"
        assert path == "/generations/user/u1"
        assert params is not None
        offset, limit = int(params["offset"]), int(params["limit"])
        self.asked.append((offset, limit))
        if self.refuse_above is not None and limit > self.refuse_above:
            raise APIError(400, method, path, error="limit too large")
        page = self.entries[offset : offset + min(limit, self.cap)]
        self.entries[:0] = [
            {"id": f"new{len(self.asked)}-{i}", "status": "PENDING", "createdAt": NOW.isoformat()}
            for i in range(self.grow)
        ]
        return {"generations": page}


async def _user() -> str:
    return "u1"


async def _walk_ids(listing: Listing, **options: Any) -> tuple[list[str], bool]:
    walk = listing.walk(**options)
    ids = [entry.id async for page in walk for entry in page]
    return ids, walk.complete


@settings(max_examples=40, deadline=None)
@given(count=st.integers(0, 400), cap=st.integers(11, 80))
async def test_a_full_walk_gives_every_entry_once(count: int, cap: int) -> None:
    """Whatever the server's page cap, a walk to the end lists every entry exactly once."""
    server = MemoryListing(count, cap=cap)
    listing = Listing(server, _user)
    ids, complete = await _walk_ids(listing, max_pages=1000)
    assert ids == [entry["id"] for entry in server.entries]
    assert complete
    if count > 2 * cap:
        assert listing.page_size == min(cap, PAGE_SIZE)


async def test_a_refused_page_size_falls_back_to_the_documented_default() -> None:
    """A 400 for limit=50 makes every later page ask for 10."""
    server = MemoryListing(25, refuse_above=SAFE_PAGE_SIZE)
    listing = Listing(server, _user)
    ids, complete = await _walk_ids(listing, max_pages=100)
    assert len(ids) == 25
    assert complete
    assert server.asked[0] == (0, PAGE_SIZE)
    assert {limit for _, limit in server.asked[1:]} == {SAFE_PAGE_SIZE}


async def test_the_page_cap_makes_a_walk_incomplete() -> None:
    """A walk that stops at its page cap says it did not see everything."""
    ids, complete = await _walk_ids(Listing(MemoryListing(200), _user), max_pages=2)
    assert len(ids) == 2 * PAGE_SIZE - 5
    assert not complete


async def test_a_newest_first_walk_stops_below_its_moment() -> None:
    """Newest first, the walk stops at the page that ends older than the moment less skew."""
    server = MemoryListing(2000)  # one entry every 10 s, going back
    since = NOW - timedelta(seconds=200)  # twenty entries back, then the skew's six more
    ids, complete = await _walk_ids(Listing(server, _user), newer_than=since, max_pages=100)
    assert complete
    assert len(server.asked) == 1
    assert len(ids) == PAGE_SIZE
    assert (NOW - since + CLOCK_SKEW).total_seconds() / 10 < len(ids)


async def test_reconciliation_that_cannot_read_its_window_is_uncertain() -> None:
    """A look whose walk hits its page cap raises SubmitUncertainError (never 'not found')."""
    server = MemoryListing(5000)
    for entry in server.entries:
        entry["createdAt"] = NOW.isoformat()  # all inside the window: the walk cannot stop
    reconciler = Reconciler(Listing(server, _user), submit_url="http://x/submit")
    request = ImageToVideoRequest(prompt="mine", image=FrameRef("img"))
    with pytest.raises(SubmitUncertainError, match="more than"):
        await reconciler.find(request, since=NOW, failed_at=NOW)


async def test_reconciliation_with_an_unreadable_listing_is_uncertain() -> None:
    """A listing error during a look is SubmitUncertainError, never a reason to resend."""
    server = MemoryListing(10, refuse_above=0)  # every page refused
    reconciler = Reconciler(Listing(server, _user), submit_url="http://x/submit")
    request = ImageToVideoRequest(prompt="mine", image=FrameRef("img"))
    with pytest.raises(SubmitUncertainError, match="could not be read"):
        await reconciler.find(request, since=NOW, failed_at=NOW)


async def test_a_walk_keeps_going_when_new_entries_push_the_listing_down() -> None:
    """Entries added at the top while a walk reads push older ones under its offsets; the
    walk reads that many more entries before it calls itself cut short."""
    server = MemoryListing(300, grow=20)
    ids, _ = await _walk_ids(Listing(server, _user), max_pages=7)
    assert {f"g{i}" for i in range(300)} <= set(ids)
    assert len(ids) == len(set(ids))
    assert len(server.asked) <= 14


@pytest.mark.parametrize("keeps_seeds", [None, True])
async def test_a_job_differing_only_by_seed_is_a_doubt_until_seeds_are_known(
    keeps_seeds: bool | None,
) -> None:
    """A listed job with our prompt and time but another seed: while it is not known
    whether the server keeps seeds, that is no proof our submit failed (uncertain, not
    resent); once it is known to keep them, that job is another's and ours was not made."""
    server = MemoryListing(3)
    server.entries[0].update(prompt="mine", seed=999, createdAt=NOW.isoformat())
    reconciler = Reconciler(
        Listing(server, _user),
        submit_url="http://x/submit",
        evidence=Evidence(listing_shows_videos=True),
    )
    reconciler.evidence.server_keeps_seeds = keeps_seeds
    request = ImageToVideoRequest(prompt="mine", image=FrameRef("img"), seed=5)
    if keeps_seeds is None:
        with pytest.raises(SubmitUncertainError, match="all but the seed"):
            await reconciler.find(request, since=NOW, failed_at=NOW)
    else:
        assert await reconciler.find(request, since=NOW, failed_at=NOW) is None


@pytest.mark.parametrize("overlap", [True, False])
async def test_a_walk_at_the_end_of_a_growing_listing_stops_there(overlap: bool) -> None:
    """Jobs made while a walk reads push the listing's last entries back under its offset:
    a page shorter than the first, holding only entries already read, is the end (the
    walk read everything the listing held when it began), not a reason to chase the
    growth page after page until the cap calls the walk cut short; nor is it a sign that
    the server caps its pages at the short page's size."""
    server = MemoryListing(45, grow=1)  # fewer than a page; a new job per request
    listing = Listing(server, _user)
    ids, complete = await _walk_ids(
        listing, newer_than=NOW - timedelta(hours=1), max_pages=20, overlap=overlap
    )
    assert complete
    assert {f"g{i}" for i in range(45)} <= set(ids)
    assert len(server.asked) == 2
    assert listing.page_size == PAGE_SIZE


async def test_a_lost_submit_is_ruled_out_while_the_listing_grows() -> None:
    """The chaos run's lost submit: every listed job is inside the look's window and a
    new one is made per request; the look reads the listing to its end and finds no job
    (before, it chased the growth past its 20 pages: "uncertain", the item left ERROR)."""
    server = MemoryListing(45, grow=1)
    for entry in server.entries:
        entry["createdAt"] = NOW.isoformat()
    reconciler = Reconciler(
        Listing(server, _user),
        submit_url="http://x/submit",
        evidence=Evidence(listing_shows_videos=True),
    )
    request = ImageToVideoRequest(prompt="mine", image=FrameRef("img"))
    assert await reconciler.find(request, since=NOW, failed_at=NOW) is None


@settings(max_examples=200, deadline=None)
@given(
    count=st.integers(0, 150),
    cap=st.integers(1, 60),
    grow=st.integers(0, 60),
    overlap=st.booleans(),
)
async def test_a_complete_walk_read_every_entry_however_the_listing_grows(
    count: int, cap: int, grow: int, overlap: bool
) -> None:
    """The money promise's half in the walk: one that calls itself complete has read every
    entry the listing held when it began, whatever the server's page cap and however many
    jobs are made between two pages (a short page that is a capped page is never taken
    for the listing's end)."""
    server = MemoryListing(count, cap=cap, grow=grow)
    ids, complete = await _walk_ids(Listing(server, _user), max_pages=20, overlap=overlap)
    if complete:
        assert {f"g{i}" for i in range(count)} <= set(ids)
    assert len(ids) == len(set(ids))
    if grow == 0 and count <= 10 * min(cap, PAGE_SIZE):
        assert complete
