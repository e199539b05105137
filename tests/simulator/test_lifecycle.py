"""The whole life of a video through the simulator, over real loopback HTTP."""

from __future__ import annotations

import hashlib
import os
import re
from datetime import datetime

import aiohttp
import pytest

from leonardo_async.simulator import JobDurations, Simulator, SimulatorConfig
from leonardo_async.simulator._wire import stamp
from leonardo_async.simulator.pytest_plugin import SimulatorFactory

from ._support import PNG, Api, eventually

VEO_BODY = {
    "prompt": "a lighthouse at dusk",
    "imageType": "UPLOADED",
    "resolution": "RESOLUTION_1080",
    "duration": 8,
    "height": 1080,
    "width": 1920,
    "model": "VEO3_1",
}


async def test_full_lifecycle(api: Api, sim: Simulator) -> None:
    """Upload a frame, submit, poll to COMPLETE, list, download byte-exact, delete (with
    undeclared keys ignored, as a lenient server would)."""
    sim.configure(strict_variables=False)
    start = await api.uploaded_image()
    end = await api.uploaded_image("jpg")
    body = {
        **VEO_BODY,
        "imageId": start,
        "endFrameImage": {"id": end, "type": "UPLOADED"},
        "seed": 42,
        "isPublic": False,
        "someFutureField": [1, 2],
    }
    reply = await api.submit(body)
    assert reply.status == 200
    job = reply.json["motionVideoGenerationJob"]
    assert job["apiCreditCost"] is None
    assert job["cost"] == {"amount": "2140", "unit": "CREDITS"}
    gid = job["generationId"]

    pending = await api.generation(gid)
    assert pending["id"] == gid
    assert pending["seed"] == 42
    assert (pending["imageWidth"], pending["imageHeight"]) == (1920, 1080)
    assert pending["status"] in ("PENDING", "COMPLETE")

    done = await api.finished(gid)
    assert done["status"] == "COMPLETE"
    assert done["prompt"] == "a lighthouse at dusk"
    assert done["generation_elements"] == []
    [image] = done["generated_images"]
    assert image["motionModel"] == "VEO3_1"
    assert image["url"].startswith(sim.storage_url)
    assert image["url"].endswith(".jpg")

    download = await api.raw("GET", image["motionMP4URL"])
    assert download.status == 200
    assert download.headers["Content-Type"] == "video/mp4"
    assert int(download.headers["Content-Length"]) == len(download.body)
    assert download.body == sim.video_bytes(gid)
    assert download.body[4:8] == b"ftyp"
    poster = await api.raw("GET", image["url"])
    assert poster.status == 200
    assert poster.body.startswith(b"\xff\xd8")
    assert poster.body.endswith(b"\xff\xd9")

    listing = await api.call("GET", f"/generations/user/{sim.user_id}")
    assert [g["id"] for g in listing.json["generations"]] == [gid]

    [record] = sim.generations
    assert record.id == gid
    assert record.body == body
    assert record.status == "COMPLETE"
    assert record.video_url == image["motionMP4URL"]

    deleted = await api.call("DELETE", f"/generations/{gid}")
    assert deleted.json == {"delete_generations_by_pk": {"id": gid}}
    assert await api.generation(gid) is None
    listing = await api.call("GET", f"/generations/user/{sim.user_id}")
    assert listing.json == {"generations": []}
    again = await api.call("DELETE", f"/generations/{gid}")
    assert again.json == {"delete_generations_by_pk": None}
    gone = await api.raw("GET", image["motionMP4URL"])
    assert gone.status == 404

    stats = sim.statistics()
    assert stats.generations_created == 1
    assert stats.uploads_completed == 2
    assert stats.downloads == 2  # the MP4 and its poster
    assert stats.storage_auth_headers == 0
    assert stats.credits_spent == 2140


async def test_defaults_for_veo(api: Api, sim: Simulator) -> None:
    """A bare Veo 3.1 body gets 8 s, 720p landscape; seeds are drawn when not given."""
    image = await api.uploaded_image()
    gid = await api.submit_ok(image)
    found = await api.generation(gid)
    assert (found["imageWidth"], found["imageHeight"]) == (1280, 720)
    assert isinstance(found["seed"], int)
    record = sim.generation(gid)
    assert record is not None
    assert (record.duration, record.model, record.cost) == (8, "VEO3_1", 2140)


async def test_fast_model_costs_half(api: Api) -> None:
    """VEO3_1FAST costs about half of VEO3_1 for the same duration."""
    image = await api.uploaded_image()
    reply = await api.submit(
        {
            **VEO_BODY,
            "imageId": image,
            "model": "VEO3_1FAST",
            "duration": 4,
            "resolution": "RESOLUTION_720",
            "width": 720,
            "height": 1280,
        }
    )
    assert reply.json["motionVideoGenerationJob"]["cost"]["amount"] == "535"


async def test_generated_image_as_start_frame(api: Api) -> None:
    """A finished generation's image id works as a GENERATED frame; its generation id does not."""
    gid = await api.submit_ok(await api.uploaded_image())
    done = await api.finished(gid)
    image_id = done["generated_images"][0]["id"]
    body = {"prompt": "again", "imageId": image_id, "imageType": "GENERATED", "model": "VEO3_1"}
    assert (await api.submit(body)).status == 200
    wrong = await api.submit({**body, "imageId": gid})
    assert wrong.status == 400
    assert '"imageId"' in wrong.error


async def test_text_to_video(api: Api) -> None:
    """The text-to-video endpoint takes the body without image fields."""
    reply = await api.call(
        "POST",
        "/generations-text-to-video",
        json={"prompt": "rain on a window", "model": "VEO3_1FAST"},
    )
    assert reply.status == 200
    gid = reply.json["motionVideoGenerationJob"]["generationId"]
    done = await api.finished(gid)
    assert done["generated_images"][0]["imageToVideo"] is False


async def test_init_image_get_and_delete(api: Api) -> None:
    """An init image can be read back and deleted; a deleted one cannot start a video."""
    image = await api.uploaded_image()
    found = await api.call("GET", f"/init-image/{image}")
    assert found.json["init_images_by_pk"]["id"] == image
    assert "createdAt" in found.json["init_images_by_pk"]
    deleted = await api.call("DELETE", f"/init-image/{image}")
    assert deleted.json == {"delete_init_images_by_pk": {"id": image}}
    assert (await api.call("GET", f"/init-image/{image}")).json == {"init_images_by_pk": None}
    assert (await api.call("DELETE", f"/init-image/{image}")).json == {
        "delete_init_images_by_pk": None
    }
    reply = await api.submit({**VEO_BODY, "imageId": image})
    assert reply.status == 400


async def test_unknown_generation_is_null(api: Api) -> None:
    """An unknown id answers 200 with ``generations_by_pk: null``."""
    assert await api.generation("not-a-real-id") is None


async def test_me(api: Api, sim: Simulator) -> None:
    """``/me`` reports the user, the concurrency slots and a balance that submits lower."""
    before = (await api.call("GET", "/me")).json["user_details"][0]
    assert before["user"] == {"id": sim.user_id, "username": "simulator"}
    assert before["apiConcurrencySlots"] == 10
    assert before["apiPaidTokens"] is None
    await api.submit_ok(await api.uploaded_image(), duration=4)
    after = (await api.call("GET", "/me")).json["user_details"][0]
    assert before["apiSubscriptionTokens"] - after["apiSubscriptionTokens"] == 1070


async def test_download_ranges(api: Api, sim: Simulator) -> None:
    """The CDN answers byte ranges with 206 and refuses impossible ones with 416."""
    gid = await api.submit_ok(await api.uploaded_image())
    url = (await api.finished(gid))["generated_images"][0]["motionMP4URL"]
    full = sim.video_bytes(gid)
    part = await api.raw("GET", url, headers={"Range": "bytes=100-199"})
    assert part.status == 206
    assert part.body == full[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(full)}"
    tail = await api.raw("GET", url, headers={"Range": "bytes=-10"})
    assert tail.body == full[-10:]
    rest = await api.raw("GET", url, headers={"Range": "bytes=4000-"})
    assert rest.body == full[4000:]
    bad = await api.raw("GET", url, headers={"Range": f"bytes={len(full)}-"})
    assert bad.status == 416
    head = await api.raw("HEAD", url)
    assert int(head.headers["Content-Length"]) == len(full)


async def test_cdn_unknown_and_pending(api: Api, sim: Simulator) -> None:
    """The CDN has nothing for unknown ids or generations still pending."""
    sim.configure(durations=JobDurations.fixed(3600))
    gid = await api.submit_ok(await api.uploaded_image())
    for name in (f"{gid}.mp4", "nothing.mp4", f"{gid}.gif"):
        reply = await api.raw("GET", f"{sim.storage_url}/cdn/{name}")
        assert reply.status == 404
        assert b"<Code>NoSuchKey</Code>" in reply.body


async def test_failed_generations_have_no_images(api: Api, sim: Simulator) -> None:
    """With ``failure_rate=1`` jobs end FAILED with an empty image list."""
    sim.configure(failure_rate=1.0)
    gid = await api.submit_ok(await api.uploaded_image())
    done = await api.finished(gid)
    assert done["status"] == "FAILED"
    assert done["generated_images"] == []


async def test_upload_sha_is_recorded(api: Api, sim: Simulator) -> None:
    """The simulator keeps the size and digest of what was uploaded."""
    upload = await api.new_init_image("webp")
    assert upload["fields"]["Content-Type"] == "image/webp"
    assert (await api.post_form(upload)).status == 204
    image = sim._core.store.init_images[upload["id"]]
    assert image.size == len(PNG)
    assert image.sha256 == hashlib.sha256(PNG).hexdigest()


async def test_pytest_plugin_fixture(leonardo_simulator: Simulator) -> None:
    """The plugin's fixture yields a running simulator and points the env vars at it."""
    assert os.environ["LEONARDO_BASE_URL"] == leonardo_simulator.base_url
    assert os.environ["LEONARDO_API_KEY"] == leonardo_simulator.api_key
    async with aiohttp.ClientSession() as session:
        api = Api(leonardo_simulator, session)
        assert (await api.call("GET", "/me")).status == 200


@pytest.mark.parametrize("suffix", ["", "Z", "+00:00"])
async def test_created_at_format(
    leonardo_simulator_factory: SimulatorFactory, suffix: str, session: aiohttp.ClientSession
) -> None:
    """``createdAt`` has milliseconds and the configured zone suffix."""
    config = SimulatorConfig(created_at_suffix=suffix, timestamp_style="milliseconds")
    async with leonardo_simulator_factory(config) as sim:
        api = Api(sim, session)
        gid = await api.submit_ok(await api.uploaded_image())
        created = (await api.generation(gid))["createdAt"]
        stem = created.removesuffix(suffix) if suffix else created
        assert len(stem) == len("2026-11-25T14:07:30.123")
        assert created.endswith(suffix)


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2023, 11, 25, 20, 49, 8, 35000), "2023-11-25T20:49:08.035"),
        (datetime(2023, 11, 25, 20, 49, 8, 30000), "2023-11-25T20:49:08.03"),
        (datetime(2023, 11, 25, 20, 49, 8, 300000), "2023-11-25T20:49:08.3"),
        (datetime(2023, 11, 25, 20, 49, 8), "2023-11-25T20:49:08"),
        (datetime(2023, 11, 25, 20, 49, 8, 123456), "2023-11-25T20:49:08.123456"),
        (datetime(2023, 11, 25, 20, 49, 8, 120), "2023-11-25T20:49:08.00012"),
    ],
)
def test_postgres_timestamps_trim_the_fraction(moment: datetime, text: str) -> None:
    """By default timestamps come as Postgres prints them: trailing zeros trimmed, no zone."""
    assert SimulatorConfig().timestamp_style == "postgres"
    assert stamp(moment, SimulatorConfig()) == text


async def test_created_at_is_trimmed_by_default(api: Api) -> None:
    """The API's ``createdAt`` has no zone and no trailing zero in its fraction."""
    gid = await api.submit_ok(await api.uploaded_image())
    created = (await api.generation(gid))["createdAt"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,5}[1-9])?", created), created


async def test_seeded_runs_repeat(
    leonardo_simulator_factory: SimulatorFactory, session: aiohttp.ClientSession
) -> None:
    """Two simulators with the same seed hand out the same ids and seeds."""
    seen = []
    for _ in range(2):
        async with leonardo_simulator_factory(SimulatorConfig(seed=7)) as sim:
            api = Api(sim, session)
            gid = await api.submit_ok(await api.uploaded_image())
            seen.append((gid, (await api.generation(gid))["seed"]))
    assert seen[0] == seen[1]


async def test_many_jobs_are_cheap(api: Api, sim: Simulator) -> None:
    """Thousands of generations cost no task each: running counts drain lazily."""
    sim.configure(max_running=None, durations=JobDurations.fixed(0.2))
    image = await api.uploaded_image()
    for i in range(300):
        await api.submit_ok(image, seed=i)
    assert sim.statistics().generations_created == 300

    async def drained() -> bool:
        return sim.statistics().running_now == 0

    await eventually(drained)


async def test_seen_at_is_when_an_answer_first_showed_the_end(api: Api, sim: Simulator) -> None:
    """A record's ``seen_at`` stays ``None`` while answers show the job pending, and is the
    moment of the first answer, by id or by a listing page, that showed it finished."""
    sim.configure(durations=JobDurations(kind="fixed", median=1.0))
    image = await api.uploaded_image()
    by_id, by_page = await api.submit_ok(image), await api.submit_ok(image)
    pending = await api.generation(by_id)
    assert pending["status"] == "PENDING"
    record = sim.generation(by_id)
    assert record is not None
    assert record.seen_at is None
    await api.finished(by_id)
    seen = sim.generation(by_id)
    assert seen is not None
    assert seen.seen_at is not None
    assert seen.seen_at >= seen.finish_at
    unlisted = sim.generation(by_page)
    assert unlisted is not None
    assert unlisted.seen_at is None

    async def page_shows_it_done() -> bool:
        listing = await api.call("GET", f"/generations/user/{sim.user_id}")
        return any(
            g["id"] == by_page and g["status"] == "COMPLETE" for g in listing.json["generations"]
        )

    await eventually(page_shows_it_done)
    listed = sim.generation(by_page)
    assert listed is not None
    assert listed.seen_at is not None
    assert listed.seen_at >= listed.finish_at
    again = await api.generation(by_id)
    assert again["status"] == "COMPLETE"
    kept = sim.generation(by_id)
    assert kept is not None
    assert kept.seen_at == seen.seen_at
