"""The listing's lag, measured from our own submits rather than assumed.

The arithmetic is tested by computing (times passed in); two loopback tests show a
listing later than the client's floor costing nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
import pytest
from _helpers import DEADLINE, Traffic, eventually, make_client, raises_clean
from _images import png_bytes
from hypothesis import given
from hypothesis import strategies as st

from leonardo_async import FrameRef, ImageToVideoRequest, SubmitUncertainError
from leonardo_async._listing import Evidence, Listing, Reconciler
from leonardo_async._listing._lag import LAG_FACTOR, LAG_MARGIN, MAX_LAG, ListingLag
from leonardo_async.simulator import JobDurations, Simulator

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
SUBMIT = "POST /generations-image-to-video"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_no_evidence_keeps_the_floor() -> None:
    """Before anything is measured the window is the floor the caller set."""
    lag = ListingLag(20.0)
    assert lag.window(now=at(0)) == 20.0
    assert lag.window(now=at(100), since=at(99)) == 20.0
    assert lag.longest is None


def test_a_late_sighting_widens_the_window() -> None:
    """A job listed 30 s after its submit, with a look in between: window 1.5 x 30 + 2."""
    lag = ListingLag(20.0)
    lag.made("a", sent=at(0), answered=at(0.5))
    lag.seen([], at=at(10))  # a page read in between, not showing it
    lag.seen(["a"], at=at(30))
    assert lag.longest == 30.0
    assert lag.window(now=at(31)) == LAG_FACTOR * 30.0 + LAG_MARGIN


def test_a_first_look_long_after_the_submit_measures_nothing() -> None:
    """A job first looked for an hour later was listed at some time in that hour: that
    says how long nobody looked, not how late the listing is."""
    lag = ListingLag(20.0)
    lag.made("a", sent=at(0), answered=at(0.5))
    lag.seen(["a"], at=at(3600))
    assert lag.longest is None
    assert lag.window(now=at(3601)) == 20.0


def test_a_job_still_unlisted_holds_the_window_open() -> None:
    """While one of our jobs answered at 0.5 s is unlisted, the listing is at least that
    late: the window for a submit near it keeps growing past the floor."""
    lag = ListingLag(20.0)
    lag.made("a", sent=at(0), answered=at(0.5))
    assert lag.window(now=at(20), since=at(1)) > 20.0
    assert lag.window(now=at(60), since=at(1)) == LAG_FACTOR * 59.5 + LAG_MARGIN
    # A submit made much later than the job is not held by it (a look may not reach it).
    assert lag.window(now=at(600), since=at(300)) == 20.0
    # Without a submit to weigh, unlisted jobs are not counted.
    assert lag.window(now=at(60)) == 20.0


def test_the_margin_is_two_seconds_or_a_smaller_floor() -> None:
    """A floor below the 2 s margin is the margin: 1.5 x the lag plus the floor."""
    for floor, margin in ((20.0, LAG_MARGIN), (2.0, 2.0), (0.05, 0.05), (0.0, 0.0)):
        lag = ListingLag(floor)
        lag.made("a", sent=at(0), answered=at(0.1))
        lag.seen([], at=at(0.2))
        lag.seen(["a"], at=at(0.4))
        assert lag.margin == margin
        assert lag.window(now=at(1)) == pytest.approx(max(floor, LAG_FACTOR * 0.4 + margin))


def test_a_job_unlisted_while_a_later_one_is_listed_is_gone_not_late() -> None:
    """The listing shows jobs in the order they were made: an earlier job still missing
    once a later one is listed was deleted or never listed, and says nothing of the lag."""
    lag = ListingLag(1.0)
    lag.made("vanished", sent=at(0), answered=at(0.2))
    lag.made("later", sent=at(1), answered=at(1.2))
    lag.seen([], at=at(1.5))
    lag.seen(["later"], at=at(2.0))
    assert lag.window(now=at(100), since=at(1)) == LAG_FACTOR * 1.0 + 1.0  # margin: the floor


def test_a_job_known_gone_no_longer_holds_the_window_open() -> None:
    """One of our jobs that vanished from the server is never listed: once the tracker
    says so, its absence stops widening the window (it held every later lost submit
    uncertain until the cap, and a batch's sweep waited that long)."""
    lag = ListingLag(3.0)
    lag.made("vanished", sent=at(0), answered=at(0.2))
    assert lag.window(now=at(100), since=at(10)) == LAG_FACTOR * 99.8 + LAG_MARGIN
    lag.gone("vanished")
    lag.gone("never made here")  # nothing to forget: nothing changes
    assert lag.window(now=at(100), since=at(10)) == 3.0


@given(
    floor=st.floats(0.0, 120.0),
    events=st.lists(
        st.tuples(st.floats(0.0, 600.0), st.floats(0.0, 30.0), st.floats(0.0, 200.0)),
        max_size=30,
    ),
)
def test_the_window_covers_every_recent_sighting_and_never_drops_below_the_floor(
    floor: float, events: list[tuple[float, float, float]]
) -> None:
    """For any sightings, the window holds the floor and 1.5 x each measured bound."""
    lag = ListingLag(floor)
    bounds = []
    for index, (sent, answer, listed) in enumerate(events):
        gid = f"g{index}"
        lag.made(gid, sent=at(sent), answered=at(sent + answer))
        lag.seen([], at=at(sent + answer))
        lag.seen([gid], at=at(sent + answer + listed))
        bounds.append(answer + listed)
    window = lag.window(now=at(2000))
    assert window >= floor
    for bound in bounds[-64:]:
        assert window >= LAG_FACTOR * bound + min(LAG_MARGIN, floor) - 1e-4  # microseconds


class _EmptyListing:
    """A listing that never shows anything (the job we wait for is not there yet)."""

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        max_answer: int = 0,
    ) -> Any:
        return {"generations": []}


async def _user() -> str:
    return "u"


async def test_a_listing_later_than_the_cap_leaves_the_submit_uncertain() -> None:
    """Our job answered six minutes ago is still unlisted: the listing is later than the
    cap, so not finding a lost submit there proves nothing and nothing is resent."""
    now = datetime.now(timezone.utc)
    long_ago = now - timedelta(seconds=MAX_LAG + 60)
    reconciler = Reconciler(
        Listing(_EmptyListing(), _user),
        submit_url="submit",
        evidence=Evidence(listing_shows_videos=True),
    )
    request = ImageToVideoRequest(prompt="waves", image=FrameRef("img"), seed=1)
    reconciler.evidence.submitted("ours", request, sent=long_ago, answered=long_ago)
    with raises_clean(SubmitUncertainError, match="later than"):
        await reconciler.find(request, since=long_ago, failed_at=long_ago)


def _submits(traffic: Traffic) -> int:
    return len(traffic.to("/generations-image-to-video", "POST"))


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(30.0), listing_lag=1.5)
async def test_a_listing_later_than_the_floor_is_learnt_and_waited_for(sim: Simulator) -> None:
    """The listing runs 1.5 s late, the client's floor is 0.2 s: once it has seen how late
    its own job appeared, a lost submit is looked for that long, found, and not resent."""
    traffic = Traffic()
    async with make_client(sim, traffic, listing_lag=0.2) as client:
        image = FrameRef((await client.upload_image(png_bytes())).id)
        first = await client.submit(ImageToVideoRequest(prompt="first", image=image))

        async def listed() -> bool:
            return first.id in [g.id for g in await client.list_generations(limit=10)]

        await eventually(listed)
        stats = client.statistics()
        assert stats.listing_lag_seen is not None
        assert stats.listing_lag_seen >= 1.5
        assert stats.listing_lag is not None
        assert stats.listing_lag > 1.5 * 1.5
        sim.configure(faults={"gateway_error_after_submit_rate": 1.0, "routes": [SUBMIT]})
        with anyio.fail_after(DEADLINE):
            lost = await client.submit(ImageToVideoRequest(prompt="lost", image=image))
        assert _submits(traffic) == 2
        assert sorted(g.id for g in sim.generations) == sorted([first.id, lost.id])


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(30.0), listing_lag=1.5)
async def test_our_own_unlisted_job_holds_a_lost_submit_back(sim: Simulator) -> None:
    """Nothing measured yet, but the job answered a moment ago is not listed either: the
    listing is late, so the lost submit next to it is waited for rather than resent."""
    traffic = Traffic()
    async with make_client(sim, traffic, listing_lag=0.2, listing_shows_videos=True) as client:
        image = FrameRef((await client.upload_image(png_bytes())).id)
        first = await client.submit(ImageToVideoRequest(prompt="first", image=image))
        sim.configure(faults={"gateway_error_after_submit_rate": 1.0, "routes": [SUBMIT]})
        with anyio.fail_after(DEADLINE):
            lost = await client.submit(ImageToVideoRequest(prompt="lost", image=image))
        assert _submits(traffic) == 2
        assert sorted(g.id for g in sim.generations) == sorted([first.id, lost.id])
        assert (client.statistics().listing_lag_seen or 0.0) >= 1.5
