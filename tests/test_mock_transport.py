"""Unit tests of client, tracker and batch logic over an in-memory transport: no sockets.

:class:`FakeAPI` answers from a few dicts the way the wire format says (see the loopback
simulator tests for the real server side); each test changes one of its answers to reach
the branch it is about. Nothing is mocked below our own :class:`Transport` protocol.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from _helpers import (
    DEADLINE,
    KEY,
    MOCK_BASE,
    QUICK_RETRY,
    assert_no_key,
    mock_client,
    raises_clean,
)
from _images import png_bytes

from leonardo_async import (
    BatchItem,
    BatchResult,
    BatchSubmitter,
    FrameRef,
    GenerationFailedError,
    ImageToVideoRequest,
    LeonardoClient,
    Limits,
    MaybeSentError,
    MockTransport,
    NotFoundError,
    NotSentError,
    Request,
    Response,
    SubmitUncertainError,
    TransportError,
    ValidationError,
    VideoSpec,
)

BASE = MOCK_BASE
CDN = "https://cdn.test"
VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(range(200))


class FakeAPI:
    """An in-memory Leonardo: jobs finish after ``looks`` status requests each."""

    def __init__(self, looks: int = 2, fail: bool = False) -> None:
        self.looks = looks
        self.fail = fail
        self.seen: Counter[str] = Counter()
        self.requests: list[Request] = []
        self.jobs: dict[str, int] = {}
        self.bodies: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self.created = datetime.now(timezone.utc).isoformat(timespec="milliseconds")

    def route(self, request: Request) -> str:
        path = request.url.removeprefix(BASE)
        if request.url.startswith(CDN):
            return "GET cdn"
        if path.startswith("/generations/user/"):
            return "GET listing"
        if path.startswith("/generations/"):
            return f"{request.method} /generations/{{id}}"
        return f"{request.method} {path}"

    def handle(self, request: Request) -> Response:
        self.requests.append(request)
        route = self.route(request)
        self.seen[route] += 1
        if route == "GET /me":
            user = {"user": {"id": "u-1", "username": "tester"}, "apiConcurrencySlots": 3}
            return Response.json(200, {"user_details": [user]})
        if route == "POST /generations-image-to-video":
            job_id = f"gen-{next(self._ids)}"
            self.jobs[job_id] = 0
            self.bodies[job_id] = dict(request.json)
            job = {"generationId": job_id, "apiCreditCost": None, "cost": None}
            return Response.json(200, {"motionVideoGenerationJob": job})
        if route == "GET /generations/{id}":
            job_id = request.url.rsplit("/", 1)[1]
            if job_id not in self.jobs:
                return Response.json(200, {"generations_by_pk": None})
            self.jobs[job_id] += 1
            return Response.json(200, {"generations_by_pk": self.generation(job_id)})
        if route == "GET listing":
            params = request.params or {}
            offset, limit = int(params.get("offset", 0)), int(params.get("limit", 10))
            page = list(reversed(self.jobs))[offset : offset + limit]
            for job_id in page:  # a listing is a look at each job it shows
                self.jobs[job_id] += 1
            return Response.json(200, {"generations": [self.generation(i) for i in page]})
        if route == "GET cdn":
            return Response(200, {"content-length": str(len(VIDEO))}, VIDEO)
        return Response.json(404, {"error": "not found", "path": "$", "code": "not-found"})

    def generation(self, job_id: str) -> dict[str, Any]:
        done = self.jobs[job_id] >= self.looks
        status = ("FAILED" if self.fail else "COMPLETE") if done else "PENDING"
        image = {"id": f"img-{job_id}", "url": f"{CDN}/{job_id}.jpg",
                 "motionMP4URL": f"{CDN}/{job_id}.mp4"}  # fmt: skip
        images = [image] if status == "COMPLETE" else []
        body = self.bodies[job_id]
        return {"id": job_id, "status": status, "createdAt": self.created,
                "prompt": body["prompt"], "seed": body.get("seed"),
                "generated_images": images}  # fmt: skip


def client_on(handler: Any, **options: Any) -> LeonardoClient:
    """A client whose every request goes to ``handler``, one poll per job by default."""
    return mock_client(handler, **{"batched_status": False, **options})


async def test_a_job_goes_from_submit_to_video_without_a_socket(tmp_path: Path) -> None:
    """Submit, wait and download run end to end over the mock transport."""
    api = FakeAPI(looks=2)
    async with client_on(api.handle) as client:
        job = await client.image_to_video(prompt="waves", image=FrameRef("img-0"))
        video = await client.wait(job.id)
        path = await client.download(video, tmp_path / "out.mp4")
    assert path.read_bytes() == VIDEO
    assert api.seen["POST /generations-image-to-video"] == 1
    assert api.seen["GET /generations/{id}"] >= 2
    submit = next(r for r in api.requests if r.method == "POST")
    assert submit.json["imageId"] == "img-0"
    assert submit.headers["authorization"] == f"Bearer {KEY}"
    cdn = next(r for r in api.requests if r.url.startswith(CDN))
    assert "authorization" not in {k.lower() for k in cdn.headers}
    assert KEY not in repr(submit)


async def test_async_handlers_work_like_sync_ones() -> None:
    """A coroutine handler is awaited."""
    api = FakeAPI(looks=1)

    async def handler(request: Request) -> Response:
        await anyio.lowlevel.checkpoint()
        return api.handle(request)

    async with client_on(handler) as client:
        account = await client.me()
    assert account.user_id == "u-1"


async def test_a_failed_job_raises_with_the_generation() -> None:
    """The tracker turns a FAILED status into GenerationFailedError."""
    api = FakeAPI(looks=1, fail=True)
    async with client_on(api.handle) as client:
        job = await client.image_to_video(prompt="waves", image="img-0")
        with pytest.raises(GenerationFailedError) as info:
            await client.wait(job.id)
    assert info.value.generation.id == job.id


async def test_a_refused_connection_is_retried_for_reads_and_named_when_it_persists() -> None:
    """Reads are retried after NotSentError; when it persists the error names the URL."""
    calls: list[str] = []

    def handler(request: Request) -> Response:
        calls.append(request.url)
        raise NotSentError("cannot connect")

    async with client_on(handler) as client:
        with raises_clean(TransportError, match="cannot connect") as info:
            await client.get_generation("g-1")
    assert len(calls) == QUICK_RETRY.attempts
    assert "/generations/g-1" in str(info.value)


def first_submit_cut(api: FakeAPI) -> Callable[[Request], Response]:
    """``api``, but the first submit's connection is closed after the job is made."""
    cut = [True]

    def handler(request: Request) -> Response:
        answer = api.handle(request)
        if request.method == "POST" and cut[0]:
            cut[0] = False
            raise MaybeSentError("the server closed the connection")
        return answer

    return handler


async def test_a_lost_submit_is_found_in_the_listing_not_sent_again() -> None:
    """A submit cut off after it arrived is looked up in the listing, never paid twice."""
    api = FakeAPI(looks=1)
    handler = first_submit_cut(api)
    async with client_on(handler, listing_shows_videos=True) as client:
        job = await client.image_to_video(prompt="waves", image="img-0")
    assert api.seen["POST /generations-image-to-video"] == 1
    assert job.id in api.jobs


async def test_a_runner_takes_each_step_of_a_submit_through_client_submitter() -> None:
    """``client.submitter`` gives a journaling runner the steps apart: the seed it writes
    down is the one sent, the slot it took is the one its job keeps (a lost answer found in
    the listing, not sent again), a claimed id is not taken for another submit, and an
    earlier run's job is adopted into the key's bound."""
    api = FakeAPI(looks=10_000)  # the jobs stay pending, so they keep their slots
    handler = first_submit_cut(api)
    resends: list[None] = []
    limits = Limits(requests_per_minute=None, submits_per_minute=None, max_running=3)
    async with client_on(handler, limits=limits, listing_shows_videos=True) as client:
        runner = client.submitter
        spec = VideoSpec(prompt="waves")
        request = runner.with_seed(ImageToVideoRequest.of(spec, FrameRef("img-0")))
        assert request.seed is not None
        since = datetime.now(timezone.utc)
        slot = await runner.take_slot()
        job = await runner.submit(request, slot=slot, on_resend=lambda: resends.append(None))
        assert (api.seen["POST /generations-image-to-video"], resends) == (1, [])
        assert api.bodies[job.id]["seed"] == request.seed
        assert client.statistics().in_flight == 1
        found = await runner.find_submitted(request, since=since)
        assert found is not None
        assert found.id == job.id
        assert await runner.find_submitted(request, since=since, claimed={job.id}) is None
        api.jobs["gen-earlier"], api.bodies["gen-earlier"] = 0, {"prompt": "earlier"}
        await runner.adopt("gen-earlier")
        assert client.statistics().in_flight == 2


async def test_a_garbled_submit_answer_is_uncertain_when_the_listing_cannot_rule_it_out() -> None:
    """An unreadable submit answer, with a listing that never shows the job, stays uncertain."""
    api = FakeAPI(looks=1)

    def handler(request: Request) -> Response:
        if request.method == "POST":
            api.handle(request)
            return Response(200, {}, b"{not json")
        if "/generations/user/" in request.url:
            return Response.json(200, {"generations": []})
        return api.handle(request)

    async with client_on(handler) as client:
        with raises_clean(SubmitUncertainError):
            await client.image_to_video(prompt="waves", image="img-0")
    assert api.seen["POST /generations-image-to-video"] == 1


async def test_an_unknown_generation_is_none_and_a_404_is_not_found() -> None:
    """``generations_by_pk: null`` reads as None; a 404 status raises NotFoundError."""
    api = FakeAPI()
    async with client_on(api.handle) as client:
        assert await client.get_generation("nope") is None
        with raises_clean(NotFoundError):
            await client.delete_image("img-x")  # the fake has no such route


async def test_invalid_parameters_send_nothing() -> None:
    """A bad duration is refused before any request reaches the transport."""
    api = FakeAPI()
    async with client_on(api.handle) as client:
        with pytest.raises(ValidationError, match="duration"):
            await client.image_to_video(prompt="waves", image="img-0", duration=7)
    assert api.requests == []


async def test_a_batch_gives_one_result_per_item_and_pays_once_each(tmp_path: Path) -> None:
    """Every batch item ends COMPLETE with its video, one submit each."""
    api = FakeAPI(looks=2)
    items = [BatchItem.create(prompt=f"shot {i}", image=FrameRef("img-0")) for i in range(5)]
    async with client_on(api.handle) as client, BatchSubmitter(client, out_dir=tmp_path) as batch:
        results: list[BatchResult] = []
        await batch.run(items, on_result=results.append)
    assert sorted(r.status for r in results) == ["COMPLETE"] * 5
    assert api.seen["POST /generations-image-to-video"] == 5
    assert len({r.generation_id for r in results}) == 5
    assert all(r.video is not None and r.video.read_bytes() == VIDEO for r in results)
    for result in results:
        assert_no_key(result)


async def test_the_client_refuses_a_session_beside_a_transport() -> None:
    """``transport=`` and ``session=`` are two answers to one question: both is an error."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        with pytest.raises(ValidationError, match="session"):
            LeonardoClient(KEY, transport=MockTransport(FakeAPI().handle), session=session)


def test_response_json_is_what_it_says() -> None:
    """``Response.json`` encodes the value and says so in its headers."""
    response = Response.json(201, {"a": [1, 2]})
    assert (response.status, json.loads(response.body)) == (201, {"a": [1, 2]})
    assert response.headers["content-type"] == "application/json"
    assert response.content_length is None


async def test_the_tracker_watches_many_jobs_through_listing_pages() -> None:
    """With batched status, many running jobs end through listing pages, not one GET each."""
    api = FakeAPI(looks=3)
    async with client_on(api.handle, batched_status=True, listing_shows_videos=True) as client:
        jobs = [await client.image_to_video(prompt=f"shot {i}", image="img-0") for i in range(8)]
        handles = [client.track(job.id) for job in jobs]
        with anyio.fail_after(DEADLINE):
            finished = [await handle for handle in handles]
    assert [g.status.value for g in finished] == ["COMPLETE"] * 8
    assert api.seen["GET listing"] >= 1, api.seen
    assert api.seen["GET /generations/{id}"] < 3 * len(jobs)


@pytest.mark.parametrize("value", ["start.png", "frames/a", "A.JPEG"])
async def test_a_path_shaped_string_is_refused_not_sent_as_an_id(value: str) -> None:
    """A ``str`` is an image id; one shaped like a path is refused before any request."""
    api = FakeAPI()
    async with client_on(api.handle) as client:
        with pytest.raises(ValidationError, match=r"end_image.*pass it as a Path"):
            await client.image_to_video(prompt="waves", image="img-0", end_image=value)
    assert api.requests == []


async def test_a_string_is_an_id_even_when_such_a_file_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk is never probed: a ``str`` naming an existing file is still sent as an id."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "img-0").write_bytes(png_bytes())
    api = FakeAPI(looks=1)
    async with client_on(api.handle) as client:
        await client.image_to_video(prompt="waves", image="img-0")
    submit = next(r for r in api.requests if r.method == "POST")
    assert submit.json["imageId"] == "img-0"
    assert api.seen["POST /init-image"] == 0


async def test_a_raw_listing_page_is_the_servers_entries_unread() -> None:
    """``raw_listing_page`` gives the entries as sent (unknown keys, odd values and all),
    for the doctor to judge; a bad offset is refused before any request."""
    odd = [{"id": "g-1", "status": "SOMETHING_NEW", "createdAt": "yesterday", "extra": [1]}]

    def handler(request: Request) -> Response:
        if request.url.endswith("/me"):
            user = {"user": {"id": "u-1", "username": "tester"}, "apiConcurrencySlots": 3}
            return Response.json(200, {"user_details": [user]})
        assert request.params == {"offset": 5, "limit": 50}
        return Response.json(200, {"generations": odd})

    async with client_on(handler) as client:
        assert await client.raw_listing_page(offset=5, limit=50) == odd
        sent = client.requests_sent
        with pytest.raises(ValidationError, match="offset"):
            await client.raw_listing_page(offset=-1)
        assert client.requests_sent == sent
