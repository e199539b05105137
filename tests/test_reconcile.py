"""Finding a lost submit in the generation listing (the matcher and the listing walk)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
from _images import png_bytes

from leonardo_async import FrameRef, ImageToVideoRequest, LeonardoClient
from leonardo_async._listing import Listing
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
        "image_width": 1280,
        "image_height": 720,
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
    assert not is_candidate(_generation(image_width=1920), request, since=since)
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
    """A listing caller whose first read is slow: it is taken before the job exists
    and answered after the lag window has closed (a 429 pause, retries); the job is
    listed from then on."""

    def __init__(self, job: dict[str, Any], slow: float) -> None:
        self.job = job
        self.slow = slow
        self.reads = 0

    async def call(
        self, method: str, path: str, *, params: Mapping[str, str | int] | None = None
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
    reconciler = Reconciler(Listing(caller, _user), submit_url="submit", listing_shows_videos=True)
    found = await reconciler.find(
        _request(), since=since, settled_by=since + timedelta(seconds=0.2)
    )
    assert found is not None
    assert found.id == "late"
