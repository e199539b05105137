"""LeonardoClient end to end against the simulator, over real loopback HTTP."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from _helpers import (
    DEADLINE,
    KEY,
    Traffic,
    make_client,
    raises_clean,
    reconfigure,
    requests_to,
    route,
    total_requests,
)
from _images import jpeg_bytes, png_bytes, webp_bytes

from leonardo_async import (
    DownloadError,
    FrameRef,
    Generation,
    GenerationStatus,
    LeonardoClient,
    Model,
    Resolution,
    SubmitUncertainError,
    UploadedImage,
    UploadError,
    ValidationError,
)
from leonardo_async.simulator import Simulator

SUBMIT = "POST /generations-image-to-video"
LISTING = "GET /generations/user/{userId}"


async def test_full_lifecycle(client: LeonardoClient, sim: Simulator, tmp_path: Path) -> None:
    """Upload start and end frames, submit VEO3_1 1080p 8 s, wait, download byte-exact."""
    start_file = tmp_path / "start.png"
    start_file.write_bytes(png_bytes(16, 9))
    end = await client.upload_image(jpeg_bytes())
    with anyio.fail_after(DEADLINE):
        job = await client.image_to_video(
            prompt="a lighthouse at dusk, waves rolling in",
            image=start_file,
            end_image=end,
            model=Model.VEO3_1,
            resolution=Resolution.RESOLUTION_1080,
            duration=8,
        )
        assert job.cost is not None
        assert job.cost.amount > 0
        video = await client.wait(job.id, timeout=DEADLINE)
    assert video.status is GenerationStatus.COMPLETE
    assert (video.width, video.height) == (1920, 1080)
    assert video.video_url is not None
    target = tmp_path / "out" / "video.mp4"
    assert await client.download(video, target) == target
    assert target.read_bytes() == sim.video_bytes(job.id)
    assert sorted(p.name for p in target.parent.iterdir()) == ["video.mp4"]
    stats = sim.statistics()
    assert stats.generations_created == 1
    assert stats.uploads_completed == 2
    assert stats.storage_auth_headers == 0
    record = sim.generation(job.id)
    assert record is not None


@pytest.mark.parametrize(
    "image", [png_bytes(), jpeg_bytes(), webp_bytes()], ids=["png", "jpeg", "webp"]
)
async def test_upload_formats(client: LeonardoClient, sim: Simulator, image: bytes) -> None:
    """PNG, JPEG and WebP frames upload, with the extension taken from their content."""
    uploaded = await client.upload_image(image)
    assert isinstance(uploaded, UploadedImage)
    assert sim.statistics().uploads_completed == 1


async def test_mislabelled_file_is_uploaded_as_what_it_is(
    client: LeonardoClient, sim: Simulator, tmp_path: Path
) -> None:
    """A JPEG saved as .png is uploaded as a jpg, what its content says it is."""
    path = tmp_path / "frame.png"
    path.write_bytes(jpeg_bytes())
    uploaded = await client.upload_image(path)
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{sim.base_url}/init-image/{uploaded.id}",
            headers={"authorization": f"Bearer {KEY}"},
        ) as response,
    ):
        stored = (await response.json())["init_images_by_pk"]
    assert stored["url"].endswith(".jpg")


def bad_inputs(tmp_path: Path) -> list[dict[str, Any]]:
    """Calls that must fail validation, each before any request is made."""
    not_image = tmp_path / "notes.png"
    not_image.write_bytes(b"these are not pixels")
    good = tmp_path / "good.png"
    good.write_bytes(png_bytes())
    return [
        {"duration": 5},
        {"duration": 8.0},
        {"resolution": "RESOLUTION_720", "width": 1920, "height": 1080},
        {"prompt": "  "},
        {"model": "SORA"},
        {"seed": -1},
        {"image": tmp_path / "missing.png"},
        {"image": not_image},
        {"image": good, "end_image": not_image},
        {"image": good, "end_image": b"not an image either"},
        {"image": png_bytes(), "end_image": b""},
        {"image": b"GIF89a...."},
    ]


async def test_validation_happens_before_any_request(
    client: LeonardoClient, sim: Simulator, tmp_path: Path
) -> None:
    """Every invalid call raises ValidationError and sends nothing to API or storage."""
    for bad in bad_inputs(tmp_path):
        call = {"prompt": "a cat", "image": FrameRef("img"), **bad}
        with raises_clean(ValidationError):
            await client.image_to_video(**call)
        assert total_requests(sim) == 0, bad
    assert client.requests_sent == 0


async def test_the_python_api_reads_the_spellings_the_cli_and_batch_files_read(
    client: LeonardoClient, sim: Simulator
) -> None:
    """image_to_video takes ``veo3_1fast``, ``1080p`` and ``9:16`` as the CLI and a batch
    line do (one parser: the enums), and sends the canonical values."""
    image = FrameRef((await client.upload_image(png_bytes())).id)
    job = await client.image_to_video(
        prompt="waves", image=image, model="veo3_1fast", resolution="1080p", orientation="9:16"
    )
    record = sim.generation(job.id)
    assert record is not None
    assert (record.model, record.body["resolution"]) == ("VEO3_1FAST", "RESOLUTION_1080")
    assert (record.width, record.height) == (1080, 1920)
    assert Resolution("720p") is Resolution.RESOLUTION_720
    with pytest.raises(ValidationError, match=r"resolution.*'RESOLUTION_720'.*also.*1080p"):
        await client.image_to_video(prompt="waves", image=image, resolution="4k")


async def test_upload_redone_when_url_expired(
    client: LeonardoClient, sim: Simulator, traffic: Traffic
) -> None:
    """An expired presigned URL is replaced by a fresh one and the upload succeeds."""
    sim.configure(faults={"upload_expired_rate": 1.0})
    traffic.after(
        lambda e: sim.storage_url in e.url and e.method == "POST",
        reconfigure(sim, faults={"upload_expired_rate": 0.0}),
    )
    await client.upload_image(png_bytes())
    stats = sim.statistics()
    assert (stats.uploads_rejected, stats.uploads_completed) == (1, 1)
    assert requests_to(sim, "POST /init-image") == 2


async def test_upload_gives_up_after_short_ttl(client: LeonardoClient, sim: Simulator) -> None:
    """When every presigned URL is already expired the upload fails with UploadError."""
    sim.configure(upload_url_ttl=0.0)
    with raises_clean(UploadError):
        await client.upload_image(png_bytes())
    stats = sim.statistics()
    assert stats.uploads_completed == 0
    assert requests_to(sim, "POST /init-image") >= 2
    assert stats.storage_auth_headers == 0


async def test_a_submit_answer_without_a_price_is_a_success(
    client: LeonardoClient, sim: Simulator
) -> None:
    """``cost`` null or with null members: the job is taken as made, nothing is looked for."""
    sim.configure(faults={"null_cost_rate": 1.0})
    image = FrameRef(await _image(client))
    jobs = [await client.image_to_video(prompt=f"unpriced {i}", image=image) for i in range(4)]
    assert [job.cost for job in jobs] == [None] * 4
    assert [job.id for job in jobs] == [g.id for g in sim.generations]
    assert sim.statistics().faults_injected["null_cost"] == 4
    assert requests_to(sim, "GET /generations/user/{userId}") == 0


async def test_lost_submit_response_is_reconciled(client: LeonardoClient, sim: Simulator) -> None:
    """A submit whose answer is lost is found in the listing: one generation, its id returned."""
    sim.configure(faults={"reset_after_submit_rate": 1.0})
    with anyio.fail_after(DEADLINE):
        job = await client.image_to_video(
            prompt="lost answer", image=FrameRef(await _image(client))
        )
    stats = sim.statistics()
    assert stats.generations_created == 1
    assert stats.duplicate_submissions == 0
    assert stats.faults_injected.get("reset_after_submit") == 1
    [created] = sim.generations
    assert job.id == created.id


async def test_submit_refused_before_arrival_is_resent_once(
    sim: Simulator, traffic: Traffic
) -> None:
    """A submit dropped before it was handled is looked for first, then sent once more
    (by a client that knows the listing shows video jobs)."""
    async with make_client(sim, traffic, listing_shows_videos=True) as client:
        image = await _image(client)
        sim.configure(faults={"reset_before_rate": 1.0, "routes": [SUBMIT]})
        # a dropped request has no response to hook: switch the fault off at the first look
        traffic.after(
            route("/generations/user/", "GET"),
            reconfigure(sim, faults={"reset_before_rate": 0.0}),
        )
        with anyio.fail_after(DEADLINE):
            job = await client.image_to_video(prompt="dropped", image=FrameRef(image))
    stats = sim.statistics()
    assert stats.generations_created == 1
    assert stats.duplicate_submissions == 0
    assert [g.id for g in sim.generations] == [job.id]
    submits = traffic.to("/generations-image-to-video", "POST")
    assert len(submits) == 2
    listings = [e for e in traffic.to("/generations/user/") if e.sent_at > submits[0].sent_at]
    assert listings
    assert listings[0].sent_at < submits[1].sent_at


async def test_submit_5xx_is_never_resent_blindly(sim: Simulator, traffic: Traffic) -> None:
    """A submit answered 5xx is only resent after the listing showed no such job."""
    async with make_client(sim, traffic, listing_shows_videos=True) as client:
        image = await _image(client)
        sim.configure(faults={"server_error_rate": 1.0, "routes": [SUBMIT]})
        with anyio.fail_after(DEADLINE), raises_clean(SubmitUncertainError) as info:
            await client.image_to_video(prompt="always 5xx", image=FrameRef(image))
    assert info.value.__cause__ is not None
    submits = traffic.to("/generations-image-to-video", "POST")
    assert len(submits) >= 2
    for before, after in itertools.pairwise(submits):
        between = [
            e
            for e in traffic.to("/generations/user/")
            if before.sent_at < e.sent_at < after.sent_at
        ]
        assert between, "a submit was resent without looking for the first one"
    assert sim.statistics().generations_created == 0


async def test_download_retried_after_truncation(
    client: LeonardoClient, sim: Simulator, traffic: Traffic, tmp_path: Path
) -> None:
    """A download cut short is retried, and the file appears only when whole."""
    video = await _finished_video(client)
    sim.configure(faults={"cdn_truncate_rate": 1.0})
    traffic.after(route("/cdn/", "GET"), reconfigure(sim, faults={"cdn_truncate_rate": 0.0}))
    target = tmp_path / "v.mp4"
    await client.download(video, target)
    assert target.read_bytes() == sim.video_bytes(video.id)
    assert sim.statistics().faults_injected.get("cdn_truncate") == 1
    assert len(traffic.to("/cdn/")) == 2
    assert os.listdir(tmp_path) == ["v.mp4"]


async def test_download_never_leaves_partial_file(
    client: LeonardoClient, sim: Simulator, tmp_path: Path
) -> None:
    """When every attempt is cut short, DownloadError is raised and no file is left behind."""
    video = await _finished_video(client)
    sim.configure(faults={"cdn_truncate_rate": 1.0})
    target = tmp_path / "v.mp4"
    with anyio.fail_after(DEADLINE), raises_clean(DownloadError):
        await client.download(video, target)
    assert not target.exists()
    assert os.listdir(tmp_path) == []


async def test_a_refused_download_carries_its_status_and_is_not_retried(
    client: LeonardoClient, sim: Simulator, traffic: Traffic, tmp_path: Path
) -> None:
    """A CDN 404 (a wrong or expired URL) is a DownloadError with status 404, asked once."""
    video = await _finished_video(client)
    assert video.video_url is not None
    missing = video.video_url.replace(video.id, "no-such-generation")
    with anyio.fail_after(DEADLINE), raises_clean(DownloadError) as info:
        await client.download(missing, tmp_path / "v.mp4")
    assert info.value.status == 404
    assert len(traffic.to("/cdn/no-such-generation")) == 1
    assert os.listdir(tmp_path) == []


async def test_download_without_video_url(client: LeonardoClient, tmp_path: Path) -> None:
    """A generation without an MP4 URL cannot be downloaded."""
    with raises_clean(DownloadError):
        await client.download(Generation("g", GenerationStatus.PENDING), tmp_path / "x.mp4")


async def test_me_list_and_delete(client: LeonardoClient, sim: Simulator) -> None:
    """me() reads the account; list_generations pages; delete_generation removes a job."""
    account = await client.me()
    assert account.user_id == sim.user_id
    assert account.concurrency_slots == sim.config.concurrency_slots
    image = await _image(client)
    ids = []
    for n in range(3):
        job = await client.image_to_video(prompt=f"clip {n}", image=FrameRef(image))
        ids.append(job.id)
    listed = await client.list_generations(limit=10)
    assert {g.id for g in listed} == set(ids)
    first = await client.list_generations(limit=2)
    rest = await client.list_generations(offset=2, limit=2)
    assert len(first) == 2
    assert {g.id for g in first + rest} == set(ids)
    assert await client.delete_generation(ids[0]) is True
    assert await client.get_generation(ids[0]) is None
    assert await client.delete_generation(ids[0]) is False
    walked = [g.id async for g in client.iter_generations()]
    assert sorted(walked) == sorted(ids[1:])
    with raises_clean(ValidationError):
        await client.list_generations(limit=0)
    for bad_id in ("../me", "a/b", "", ".", "other?x=1", "other#frag"):
        with raises_clean(ValidationError):
            await client.get_generation(bad_id)
        with raises_clean(ValidationError):
            await client.delete_generation(bad_id)


async def test_account_is_cached(client: LeonardoClient, sim: Simulator) -> None:
    """account() asks /me once and remembers it."""
    first = await client.account()
    second = await client.account()
    assert first == second
    assert requests_to(sim, "GET /me") == 1


async def test_client_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without api_key or LEONARDO_API_KEY the client refuses to start."""
    with raises_clean(ValidationError, match="api_key"):
        LeonardoClient()
    monkeypatch.setenv("LEONARDO_API_KEY", KEY)
    monkeypatch.setenv("LEONARDO_BASE_URL", "http://127.0.0.1:9/api/rest/v1")
    client = LeonardoClient()
    assert client.base_url == "http://127.0.0.1:9/api/rest/v1"
    with raises_clean(ValidationError, match="base_url"):
        LeonardoClient(KEY, base_url="ftp://example.com")


async def test_client_made_outside_a_loop_is_usable(sim: Simulator) -> None:
    """A client built before the event loop ran works inside it (no loop bound at init)."""
    made = await anyio.to_thread.run_sync(lambda: LeonardoClient(KEY, base_url=sim.base_url))
    async with made:
        assert (await made.me()).user_id == sim.user_id


# --- helpers ------------------------------------------------------------------------------


async def _image(client: LeonardoClient) -> str:
    return (await client.upload_image(png_bytes())).id


async def _finished_video(client: LeonardoClient) -> Generation:
    with anyio.fail_after(DEADLINE):
        job = await client.image_to_video(prompt="a video", image=FrameRef(await _image(client)))
        return await client.wait(job.id)


async def test_a_lost_submit_is_found_on_a_server_clock_90_s_behind(
    sim: Simulator, traffic: Traffic
) -> None:
    """The server's clock 90 s behind ours (past the 60 s margin assumed before any
    evidence): the offset learnt from the answers' Date headers lets the lost submit's job
    match, so it is found, not paid for again, by a client that takes the listing's
    silence as proof."""
    sim.configure(clock_offset=-90.0)
    async with make_client(sim, traffic, listing_shows_videos=True) as client:
        image = FrameRef(await _image(client))
        offset = client.statistics().server_clock_offset
        assert offset is not None
        assert -92.0 <= offset <= -88.0
        sim.configure(faults={"reset_after_submit_rate": 1.0, "routes": [SUBMIT]})
        traffic.after(
            route("/generations/user/", "GET"),
            reconfigure(sim, faults={"reset_after_submit_rate": 0.0}),
        )
        with anyio.fail_after(DEADLINE):
            job = await client.image_to_video(prompt="ninety behind", image=image)
    stats = sim.statistics()
    assert stats.faults_injected.get("reset_after_submit") == 1
    assert stats.generations_created == 1
    assert stats.duplicate_submissions == 0
    assert [g.id for g in sim.generations] == [job.id]
