"""Every fault knob, alone and filtered by route, as a client meets it over HTTP."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from leonardo_async.simulator import FaultConfig, JobDurations, Simulator

from ._support import Api, eventually

SUBMIT = "POST /generations-image-to-video"


def _body(image: str) -> dict[str, str]:
    return {"prompt": "p", "imageId": image, "imageType": "UPLOADED", "model": "VEO3_1"}


async def test_server_errors(api: Api, sim: Simulator) -> None:
    """``server_error_rate`` answers 5xx with Hasura's ``internal error``."""
    sim.configure(faults=FaultConfig(server_error_rate=1.0))
    reply = await api.call("GET", "/me")
    assert reply.status in (500, 502, 503)
    assert reply.json == {"error": "internal error", "path": "$", "code": "unexpected"}
    assert sim.statistics().faults_injected["server_error"] == 1


async def test_server_error_burst(api: Api, sim: Simulator) -> None:
    """Once started, a burst fails ``server_error_burst`` requests in a row."""
    sim.configure(faults={"server_error_rate": 1.0, "server_error_burst": 3})
    first = await api.call("GET", "/me")
    sim.configure(faults={"server_error_rate": 0.0})
    statuses = [first.status] + [(await api.call("GET", "/me")).status for _ in range(3)]
    assert statuses[:3] == [first.status] * 3
    assert statuses[3] == 200


async def test_routes_filter(api: Api, sim: Simulator) -> None:
    """``routes`` confines request faults to the named routes."""
    sim.configure(faults={"server_error_rate": 1.0, "routes": ["GET /me"]})
    assert (await api.call("GET", "/me")).status >= 500
    assert (await api.call("GET", "/generations/nothing")).status == 200


async def test_reset_before_creates_nothing(api: Api, sim: Simulator) -> None:
    """A connection dropped before handling leaves no generation behind."""
    image = await api.uploaded_image()
    sim.configure(faults={"reset_before_rate": 1.0, "routes": [SUBMIT]})
    with pytest.raises(aiohttp.ClientError):
        await api.submit(_body(image))
    stats = sim.statistics()
    assert stats.generations_created == 0
    assert stats.faults_injected["reset_before"] == 1
    assert stats.requests[SUBMIT] == 1
    assert sum(stats.responses.values()) == 1  # the init-image; a dropped call has none


async def test_reset_after_submit_creates_the_generation(api: Api, sim: Simulator) -> None:
    """A lost submit response still created the generation: the listing shows it."""
    image = await api.uploaded_image()
    sim.configure(faults={"reset_after_submit_rate": 1.0})
    with pytest.raises(aiohttp.ClientError):
        await api.submit(_body(image))
    [record] = sim.generations
    listing = await api.call("GET", f"/generations/user/{sim.user_id}")
    assert [g["id"] for g in listing.json["generations"]] == [record.id]


async def test_slow_requests_still_happen(api: Api, sim: Simulator) -> None:
    """A slow submit outlives the client's timeout, and the generation is created anyway."""
    image = await api.uploaded_image()
    sim.configure(faults={"slow_rate": 1.0, "slow_seconds": 1.0, "routes": [SUBMIT]})
    with pytest.raises(asyncio.TimeoutError):
        await api.submit(_body(image), timeout=aiohttp.ClientTimeout(total=0.1))

    async def created() -> bool:
        return sim.statistics().generations_created == 1

    await eventually(created)
    assert sim.statistics().faults_injected["slow"] == 1


async def test_malformed_json(api: Api, sim: Simulator) -> None:
    """``malformed_json_rate`` sends a 200 whose JSON body does not parse."""
    sim.configure(faults={"malformed_json_rate": 1.0})
    reply = await api.call("GET", "/me")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    with pytest.raises(ValueError, match=r".*"):
        json.loads(reply.body)


async def test_unexpected_shape(api: Api, sim: Simulator) -> None:
    """``unexpected_shape_rate`` sends well-formed JSON of the wrong shape."""
    sim.configure(faults={"unexpected_shape_rate": 1.0})
    for _ in range(5):
        reply = await api.call("GET", "/generations/x")
        assert reply.status == 200
        assert reply.json != {"generations_by_pk": None}
    assert sim.statistics().faults_injected["unexpected_shape"] == 5


async def test_rate_limit_storm(api: Api, sim: Simulator) -> None:
    """A storm answers 429 (with Retry-After) for ``rate_limit_storm_length`` requests."""
    sim.configure(
        faults={"rate_limit_storm_rate": 1.0, "rate_limit_storm_length": 3},
        retry_after_style="seconds",
    )
    first = await api.call("GET", "/me")
    sim.configure(faults={"rate_limit_storm_rate": 0.0})
    rest = [(await api.call("GET", "/me")).status for _ in range(3)]
    assert [first.status, *rest] == [429, 429, 429, 200]
    assert first.headers["Retry-After"] == "1"
    assert sim.statistics().rate_limited == 3


async def test_upload_expired(api: Api, sim: Simulator) -> None:
    """``upload_expired_rate`` makes a timely upload answer "Policy expired."."""
    sim.configure(faults={"upload_expired_rate": 1.0})
    upload = await api.new_init_image()
    reply = await api.post_form(upload)
    assert reply.status == 403
    assert b"Policy expired." in reply.body


async def test_cdn_truncate(api: Api, sim: Simulator) -> None:
    """A truncated download announces the full length and closes early."""
    gid = await api.submit_ok(await api.uploaded_image())
    url = (await api.finished(gid))["generated_images"][0]["motionMP4URL"]
    sim.configure(faults={"cdn_truncate_rate": 1.0})
    with pytest.raises(aiohttp.ClientPayloadError):
        await api.raw("GET", url)
    assert sim.statistics().downloads == 0
    sim.configure(faults={"cdn_truncate_rate": 0.0})
    assert (await api.raw("GET", url)).body == sim.video_bytes(gid)


async def test_vanish(api: Api, sim: Simulator) -> None:
    """A vanished generation is null on GET and missing from the listing once finished."""
    sim.configure(faults={"vanish_rate": 1.0}, durations=JobDurations.fixed(0.05))
    gid = await api.submit_ok(await api.uploaded_image())

    async def gone() -> bool:
        return await api.generation(gid) is None

    await eventually(gone)
    listing = await api.call("GET", f"/generations/user/{sim.user_id}")
    assert listing.json == {"generations": []}
    assert sim.generations[0].vanished


async def test_faults_do_not_touch_admin(api: Api, sim: Simulator) -> None:
    """The admin API never fails."""
    sim.configure(faults={"server_error_rate": 1.0, "reset_before_rate": 1.0})
    reply = await api.raw("GET", f"{sim.admin_url}/stats")
    assert reply.status == 200


async def test_null_cost(api: Api, sim: Simulator) -> None:
    """``null_cost_rate`` answers a created, charged submit with no usable price."""
    image = await api.uploaded_image()
    sim.configure(faults={"null_cost_rate": 1.0, "routes": [SUBMIT]}, max_running=None)
    seen = []
    for _ in range(12):
        reply = await api.submit(_body(image))
        assert reply.status == 200
        job = reply.json["motionVideoGenerationJob"]
        assert job["generationId"]
        assert job["apiCreditCost"] is None
        seen.append(json.dumps(job["cost"]))
    assert set(seen) == {
        "null",
        '{"amount": null, "unit": null}',
        '{"amount": null, "unit": "CREDITS"}',
    }
    stats = sim.statistics()
    assert stats.generations_created == 12
    assert stats.credits_spent == 12 * 2140  # VEO3_1, 8 s by default
    assert stats.faults_injected["null_cost"] == 12


async def test_gateway_error_after_submit_creates_the_generation(api: Api, sim: Simulator) -> None:
    """A gateway's 502/503/504 after a submit hides a generation that was made and listed."""
    image = await api.uploaded_image()
    sim.configure(faults={"gateway_error_after_submit_rate": 1.0})
    statuses = set()
    for _ in range(9):
        reply = await api.submit(_body(image))
        statuses.add(reply.status)
        assert reply.headers["Content-Type"].startswith("text/html")
        assert str(reply.status).encode() in reply.body
    assert statuses <= {502, 503, 504}
    assert len(statuses) > 1
    assert (await api.call("GET", "/me")).status == 200  # only submits are affected
    listing = await api.call("GET", f"/generations/user/{sim.user_id}", params={"limit": "20"})
    assert len(listing.json["generations"]) == 9 == sim.statistics().generations_created
    assert sim.statistics().faults_injected["gateway_error_after_submit"] == 9


async def test_reject_seed(api: Api, sim: Simulator) -> None:
    """``reject_seed`` refuses a seeded submit with a 400 naming ``seed``; without, it works."""
    image = await api.uploaded_image()
    sim.configure(reject_seed=True)
    reply = await api.submit({**_body(image), "seed": 42})
    assert reply.status == 400
    assert "seed" in reply.error
    assert reply.json["path"] == "$"
    assert sim.statistics().generations_created == 0
    await api.submit_ok(image)
    sim.configure(reject_seed=False)
    await api.submit_ok(image, seed=42)
    assert sim.statistics().generations_created == 2


async def test_listing_lag(api: Api, sim: Simulator) -> None:
    """Under ``listing_lag`` a new generation is readable by id before the listing shows it."""
    sim.configure(listing_lag=3600.0)
    gid = await api.submit_ok(await api.uploaded_image())
    assert (await api.generation(gid)) is not None
    listing = await api.call("GET", f"/generations/user/{sim.user_id}")
    assert listing.json == {"generations": []}
    sim.configure(listing_lag=0.0)
    listing = await api.call("GET", f"/generations/user/{sim.user_id}")
    assert [g["id"] for g in listing.json["generations"]] == [gid]


async def test_echo_authorization(api: Api, sim: Simulator) -> None:
    """``echo_authorization`` repeats the request's key in every error body, and only there."""
    sim.configure(faults={"echo_authorization": True})
    missing = await api.call("GET", "/generations/user/x", params={"offset": "-1"})
    assert missing.status == 400
    assert f"Bearer {sim.api_key}" in missing.error
    assert missing.json["request"] == {"headers": {"authorization": f"Bearer {sim.api_key}"}}
    sim.configure(faults={"gateway_error_after_submit_rate": 1.0})
    page = await api.submit(_body(await api.uploaded_image()))
    assert page.status in (502, 503, 504)
    assert f"Bearer {sim.api_key}".encode() in page.body
    fine = await api.call("GET", "/me")
    assert fine.status == 200
    assert sim.api_key.encode() not in fine.body
