"""Finding a lost submit in the generation listing (the matcher and the listing walk)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
import pytest
from _images import png_bytes

from leonardo_async import FrameRef, ImageToVideoRequest, LeonardoClient, SubmitUncertainError
from leonardo_async._listing import Evidence, Listing
from leonardo_async._listing._lag import ListingLag
from leonardo_async._listing._reconciler import Reconciler, is_candidate, pick
from leonardo_async.models import Generation, GenerationStatus
from leonardo_async.simulator import Simulator

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def _request(seed: int | None = 7) -> ImageToVideoRequest:
    return ImageToVideoRequest(prompt="waves", image=FrameRef("img"), seed=seed)


def _generation(gid: str = "g", **changes: object) -> Generation:
    fields: dict[str, object] = {
        "id": gid,
        "status": GenerationStatus.PENDING,
        "prompt": "waves",
        "created_at": NOW,
        "seed": 7,
        "width": 1280,
        "height": 720,
    }
    fields.update(changes)
    return Generation(**fields)  # type: ignore[arg-type]


def test_a_generation_with_our_prompt_size_seed_and_time_is_a_candidate() -> None:
    """Same prompt, size and seed, created after the submit began: it may be ours."""
    assert is_candidate(_generation(), _request(), since=NOW - timedelta(seconds=1))


def test_other_prompt_size_seed_claimed_or_older_rules_a_generation_out() -> None:
    """Each differing fact is enough to rule a listed generation out."""
    since = NOW - timedelta(seconds=1)
    request = _request()
    assert not is_candidate(_generation(prompt="sky"), request, since=since)
    assert not is_candidate(_generation(width=1920), request, since=since)
    assert not is_candidate(_generation(seed=8), request, since=since)
    assert not is_candidate(_generation(), request, since=since, exclude={"g"})
    assert not is_candidate(_generation(), request, since=NOW + timedelta(minutes=5))


def test_a_server_that_ignores_seeds_still_matches_on_the_rest() -> None:
    """When the server is known not to keep seeds, a different seed does not rule out."""
    since = NOW - timedelta(seconds=1)
    assert is_candidate(_generation(seed=8), _request(), since=since, trust_seed=False)


def test_pick_prefers_the_seed_match_then_the_earliest() -> None:
    """Among candidates, the one with our seed wins; then the earliest created."""
    late_match = _generation("b", created_at=NOW + timedelta(seconds=2))
    early_other = _generation("a", seed=3)
    assert pick([early_other, late_match], _request()) is late_match
    first = _generation("c", seed=None, created_at=NOW)
    second = _generation("d", seed=None, created_at=NOW + timedelta(seconds=1))
    assert pick([second, first], _request(seed=None)) is first
    assert pick([], _request()) is None


async def test_walking_the_listing_survives_deletions_between_pages(
    sim: Simulator, client: LeonardoClient
) -> None:
    """Deleting generations mid-walk shifts pages up, yet no entry is skipped or repeated."""
    image = await client.upload_image(png_bytes())
    jobs = [await client.image_to_video(prompt=f"p{i}", image=image) for i in range(60)]
    walked: list[str] = []
    async for generation in client.iter_generations():
        walked.append(generation.id)
        if len(walked) == 40:  # inside the first page of 50: delete five newer ones
            for job in jobs[-5:]:
                assert await client.delete_generation(job.id)
    assert {job.id for job in jobs[:-5]} <= set(walked)
    assert len(walked) == len(set(walked))


class _LateListing:
    """A listing caller whose first read shows nothing and takes ``slow`` seconds (taken
    before the job exists, answered after the lag window has closed: a 429 pause,
    retries); the job is listed from the second read on."""

    def __init__(self, job: dict[str, Any], slow: float) -> None:
        self.job = job
        self.slow = slow
        self.reads = 0

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        max_answer: int = 0,
    ) -> Any:
        self.reads += 1
        if self.reads == 1:
            await anyio.sleep(self.slow)  # the snapshot was empty when it was read
            return {"generations": []}
        first = params is None or int(params.get("offset", 0)) == 0
        return {"generations": [self.job] if first else []}


async def _user() -> str:
    return "u"


async def test_a_look_that_read_the_listing_before_the_window_closed_decides_nothing() -> None:
    """A look that began inside the lag window and ended after it does not rule the job
    out: it read the listing early, so another look follows and finds the late job."""
    since = datetime.now(timezone.utc)
    job = {
        "id": "late",
        "status": "PENDING",
        "prompt": "waves",
        "createdAt": (since + timedelta(seconds=0.1)).isoformat(),
        "seed": 7,
    }
    caller = _LateListing(job, slow=0.4)
    reconciler = Reconciler(
        Listing(caller, _user),
        submit_url="submit",
        evidence=Evidence(listing_shows_videos=True, listing_lag=0.2),
    )
    found = await reconciler.find(_request(), since=since, failed_at=since)
    assert found is not None
    assert found.id == "late"


async def test_a_job_listed_late_by_anyone_widens_the_window_of_a_lost_submit() -> None:
    """Another job, made before the first look (a submit whose answer was lost too, that
    no search found), appears only in the second: the listing is at least that late, so
    the lost submit's window grows past the floor (here past a 1 s cap, which makes the
    submit uncertain at once). Without it, the floor's window closed at the second look
    and a listing later than the floor had the next lost submit sent twice."""
    since = datetime.now(timezone.utc)
    other = {
        "id": "someone-else",
        "status": "PENDING",
        "prompt": "another prompt",
        "createdAt": (since - timedelta(seconds=5)).isoformat(),
    }
    caller = _LateListing(other, slow=0.0)  # shown from the second read on
    evidence = Evidence(listing_shows_videos=True, listing_lag=0.05)
    evidence.lag = ListingLag(0.05, cap=1.0)
    evidence.clock.observe(since, sent=since, received=since)  # our clocks agree
    reconciler = Reconciler(Listing(caller, _user), submit_url="submit", evidence=evidence)
    with pytest.raises(SubmitUncertainError, match="later than 1 s"):
        await reconciler.find(_request(), since=since, failed_at=since)
    longest = evidence.lag.longest
    assert longest is not None
    assert longest >= 5.0  # made 5 s before the first look, shown only in the second


async def test_a_job_made_after_the_last_look_says_nothing_of_the_lag() -> None:
    """A job that may have been made after the last look began (its time, trimmed to a
    second, less than a second before) is new, not late: no sighting."""
    since = datetime.now(timezone.utc)
    other = {
        "id": "new",
        "status": "PENDING",
        "prompt": "another prompt",
        "createdAt": (since - timedelta(seconds=0.5)).isoformat(),
    }
    evidence = Evidence(listing_shows_videos=True, listing_lag=0.05)
    evidence.clock.observe(since, sent=since, received=since)
    reconciler = Reconciler(
        Listing(_LateListing(other, slow=0.0), _user), submit_url="submit", evidence=evidence
    )
    assert await reconciler.find(_request(), since=since, failed_at=since) is None
    assert evidence.lag.longest is None
