"""The batch's parts on their own, over MockTransport: its slots, its tally, its frames.

:class:`BatchSlots` nests the batch's own running bound inside the key's,
:class:`BatchTally` counts a run, and :class:`FrameUploads` uploads each distinct file
once; each is driven directly on a client whose every request goes to a handler here.
Nothing waits: a blocked slot is seen with :func:`anyio.wait_all_tasks_blocked`. The
batch as a whole, over the simulator, is tests/test_batch.py's.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import anyio
import pytest
from _helpers import KEY, NO_LIMITS, QUICK_RETRY
from _images import png_bytes

from leonardo_async import (
    APIError,
    FrameRef,
    ImageToVideoRequest,
    Journal,
    LeonardoClient,
    Limits,
    MockTransport,
    Request,
    Response,
    UploadError,
)
from leonardo_async._batch._frames import FrameUploads
from leonardo_async._batch._ledger import Ledger
from leonardo_async._batch._slots import BatchSlots, Held
from leonardo_async._batch._tally import STEPS, BatchTally

BASE = "https://api.test/v1"
S3 = "https://s3.test/bucket"


class Uploads:
    """The API's upload half: ``POST /init-image`` hands out presigned targets, the bucket
    takes the file (or refuses every file, when ``refuse`` is set)."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.refuse = False

    def handle(self, request: Request) -> Response:
        if request.url == f"{BASE}/init-image":
            self.seen["init"] += 1
            n = self.seen["init"]
            target = {"id": f"img-{n}", "url": S3, "fields": json.dumps({"key": f"k{n}"})}
            return Response.json(200, {"uploadInitImage": target})
        if request.url == S3:
            self.seen["bucket"] += 1
            return Response(403 if self.refuse else 204, {}, b"")
        if request.url == f"{BASE}/me":
            user = {"user": {"id": "u-1", "username": "tester"}, "apiConcurrencySlots": 3}
            return Response.json(200, {"user_details": [user]})
        return Response.json(404, {"error": "not found", "path": "$", "code": "not-found"})


def client_on(uploads: Uploads, limits: Limits = NO_LIMITS) -> LeonardoClient:
    return LeonardoClient(
        KEY,
        base_url=BASE,
        limits=limits,
        retry=QUICK_RETRY,
        transport=MockTransport(uploads.handle),
    )


# --- slots --------------------------------------------------------------------------------


async def test_the_batchs_own_bound_nests_inside_the_keys() -> None:
    """With a batch bound of three inside a key bound of one, the second item waits for
    the key's slot (not the batch's); giving the first back lets it through, and its
    window is the batch's own bound."""
    key = Limits(requests_per_minute=None, submits_per_minute=None, max_running=1)
    async with client_on(Uploads(), key) as client:
        slots = BatchSlots(client, Limits(max_running=3))
        assert await slots.in_flight_bound() == 3
        first = await slots.take()
        assert first.slot is not None
        taken: list[Held] = []

        async def take() -> None:
            taken.append(await slots.take())

        async with anyio.create_task_group() as tg:
            tg.start_soon(take)
            await anyio.wait_all_tasks_blocked()
            assert taken == [], "the key's one slot is held"
            slots.give(first)
            await anyio.wait_all_tasks_blocked()
        assert len(taken) == 1
        assert taken[0].slot is not None
        slots.give(taken[0])


async def test_an_adopted_job_takes_the_batchs_slot_but_not_the_keys() -> None:
    """take(slot=False), for a job of an earlier run, holds the batch's slot only: it gets
    through while the key's slots are all held, and the batch's bound still counts it."""
    key = Limits(requests_per_minute=None, submits_per_minute=None, max_running=1)
    async with client_on(Uploads(), key) as client:
        slots = BatchSlots(client, Limits(max_running=2))
        submitting = await slots.take()
        adopted = await slots.take(slot=False)
        assert adopted.slot is None
        third: list[Held] = []

        async def take() -> None:
            third.append(await slots.take(slot=False))

        async with anyio.create_task_group() as tg:
            tg.start_soon(take)
            await anyio.wait_all_tasks_blocked()
            assert third == [], "the batch's two slots are held"
            slots.give(adopted)
        slots.give(submitting)
        slots.give(third[0])


async def test_a_take_cancelled_while_waiting_for_the_key_gives_the_batchs_slot_back() -> None:
    """An item cancelled while it waits for the key's slot gives back the batch's slot
    it already took, so the batch's bound does not shrink by one."""
    key = Limits(requests_per_minute=None, submits_per_minute=None, max_running=1)
    async with client_on(Uploads(), key) as client:
        slots = BatchSlots(client, Limits(max_running=2))
        held = await slots.take()
        async with anyio.create_task_group() as tg:
            tg.start_soon(slots.take)
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
        with anyio.fail_after(5):  # the freed slot is there at once (never waited for)
            adopted = await slots.take(slot=False)
        slots.give(adopted)
        slots.give(held)


async def test_without_its_own_bound_the_in_flight_bound_is_the_keys() -> None:
    key = Limits(requests_per_minute=None, submits_per_minute=None, max_running=4)
    async with client_on(Uploads(), key) as client:
        slots = BatchSlots(client, None)
        assert slots.running_limit is None
        assert await slots.in_flight_bound() == await client.in_flight_bound() == 4
        held = await slots.take()
        assert held.slot is not None
        slots.give(held)
        assert client.statistics().in_flight == 0


# --- tally --------------------------------------------------------------------------------


async def test_the_tally_counts_steps_results_and_this_runs_requests() -> None:
    """Statistics read the steps and results counted into the tally; a summary counts
    the requests since start(); restart_results counts a second run afresh."""
    uploads = Uploads()
    async with client_on(uploads) as client:
        tally = BatchTally(client, Ledger())
        await client.upload_image(png_bytes())  # before the run: not the run's requests
        tally.start()
        tally.total = 7
        for step, count in zip(STEPS, (3, 1, 0, 2, 1), strict=True):
            tally.steps[step] = count
        tally.ended.update(COMPLETE=4, FAILED=1, ERROR=2)
        await client.upload_image(png_bytes())
        stats = tally.statistics()
        assert (stats.total, stats.queued, stats.uploading, stats.running) == (7, 3, 1, 2)
        assert (stats.downloading, stats.complete, stats.failed, stats.errors) == (1, 4, 1, 2)
        assert stats.running_limit == client.statistics().running_limit
        tally.running_limit = 5
        assert tally.statistics().running_limit == 5
        summary = tally.summary()
        assert (summary.total, summary.complete, summary.errors) == (7, 4, 2)
        assert summary.requests == 1, "the run's upload: one API request (the bucket's aside)"
        tally.restart_results()
        assert tally.summary().total == 0
        assert tally.statistics().running == 2, "the steps are now, not per run"


# --- frames -------------------------------------------------------------------------------


def frame_files(folder: Path, count: int) -> list[Path]:
    files = []
    for n in range(count):
        path = folder / f"frame-{n}.png"
        path.write_bytes(png_bytes(rgb=(n * 40, 10, 200)))
        files.append(path)
    return files


async def test_each_distinct_file_is_uploaded_once_however_many_items_share_it(
    tmp_path: Path,
) -> None:
    """Twelve items over three files (one of them twice, under another name) upload two
    files' worth: items on one file wait for its one upload, and the same bytes under
    another path are the same frame."""
    uploads = Uploads()
    a, b, c = frame_files(tmp_path, 3)
    twin = tmp_path / "twin-of-a.png"
    twin.write_bytes(a.read_bytes())
    sources = [a, b, twin, c] * 3
    got: dict[int, FrameRef] = {}
    with Journal() as journal:
        async with client_on(uploads) as client:
            frames = FrameUploads(client, journal, concurrency=2)

            async def frame(n: int) -> None:
                got[n] = await frames.frame(sources[n], "image")

            async with anyio.create_task_group() as tg:
                for n in range(len(sources)):
                    tg.start_soon(frame, n)
            assert uploads.seen == {"init": 3, "bucket": 3}
            by_source = {sources[n]: got[n] for n in got}
            assert by_source[a] == by_source[twin]
            assert len({by_source[a], by_source[b], by_source[c]}) == 3
            digest = hashlib.sha256(a.read_bytes()).hexdigest()
            assert journal.uploaded(digest) == by_source[a].id

            # A later run on the same journal sends the cached ids and uploads nothing.
            again = FrameUploads(client, journal, concurrency=2)
            assert await again.frame(twin, "image") == by_source[a]
            assert uploads.seen["init"] == 3


async def test_a_file_whose_upload_failed_fails_its_other_items_at_once(tmp_path: Path) -> None:
    """A bucket that refuses the file: the first item's upload fails after its attempts,
    and the next item on that file fails without a single request more."""
    uploads = Uploads()
    uploads.refuse = True
    (path,) = frame_files(tmp_path, 1)
    with Journal() as journal:
        async with client_on(uploads) as client:
            frames = FrameUploads(client, journal, concurrency=2)
            with pytest.raises(UploadError):
                await frames.frame(path, "image")
            sent = client.requests_sent
            assert uploads.seen["bucket"] >= 1
            with pytest.raises(UploadError, match="its upload failed in this run"):
                await frames.frame(path, "end_image")
            assert client.requests_sent == sent


async def test_a_frame_already_on_the_server_is_sent_as_it_is(tmp_path: Path) -> None:
    uploads = Uploads()
    with Journal() as journal:
        async with client_on(uploads) as client:
            frames = FrameUploads(client, journal, concurrency=1)
            ref = FrameRef("img-there")
            assert await frames.frame(ref, "image") is ref
            assert await frames.frame("img-by-id", "image") == FrameRef("img-by-id")
    assert uploads.seen == {}


async def test_a_refused_cached_upload_is_forgotten_and_uploaded_again(tmp_path: Path) -> None:
    """A 400 about an image this run took from the journal's cache drops it (a 400 made
    nothing, so uploading again cannot pay twice); a 400 about something else, or about
    an image this run uploaded itself, keeps the cache."""
    uploads = Uploads()
    path, other = frame_files(tmp_path, 2)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with Journal() as journal:
        journal.record_upload(digest, "img-old")
        async with client_on(uploads) as client:
            frames = FrameUploads(client, journal, concurrency=1)
            cached = await frames.frame(path, "image")
            fresh = await frames.frame(other, "end_image")
            assert cached == FrameRef("img-old")
            assert uploads.seen["init"] == 1
            request = ImageToVideoRequest(prompt="waves", image=cached, end_image=fresh)
            url = f"{BASE}/generations-image-to-video"
            about_prompt = APIError(400, "POST", url, error="prompt is too long")
            assert not frames.forget_stale(request, about_prompt)
            assert journal.uploaded(digest) == "img-old"
            about_image = APIError(400, "POST", url, error="init image img-old not found")
            assert frames.forget_stale(request, about_image)
            assert journal.uploaded(digest) is None
            assert journal.uploaded(hashlib.sha256(other.read_bytes()).hexdigest()) == fresh.id
            assert await frames.frame(path, "image") != cached
            assert uploads.seen["init"] == 2
