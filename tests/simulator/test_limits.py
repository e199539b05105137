"""Per-key limits: request windows, submit windows, running jobs, balance, Retry-After."""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import aiohttp
import pytest

from leonardo_async.simulator import JobDurations, Simulator, SimulatorConfig
from leonardo_async.simulator._core import Core
from leonardo_async.simulator._limits import Limiter, SlidingWindow, retry_after_headers
from leonardo_async.simulator.pytest_plugin import SimulatorFactory

from ._support import Api, text_request

LONG = JobDurations.fixed(3600)


def test_window_frees_oldest_slot() -> None:
    """A sliding window says how long until its oldest request leaves it."""
    window = SlidingWindow()
    assert window.wait(0.0, 2, 10.0) is None
    window.add(0.0)
    window.add(4.0)
    assert window.wait(5.0, 2, 10.0) == pytest.approx(5.0)
    assert window.wait(10.0, 2, 10.0) is None


def test_refused_requests_take_no_slot() -> None:
    """A 429 is not counted: after waiting as told, the request gets in."""
    limiter = Limiter()
    config = SimulatorConfig(requests_per_minute=2)
    assert limiter.admit_request("k", 0.0, config) is None
    assert limiter.admit_request("k", 1.0, config) is None
    for now in (2.0, 3.0, 30.0):
        assert limiter.admit_request("k", now, config) == pytest.approx(60.0 - now)
    assert limiter.admit_request("k", 60.0, config) is None
    assert limiter.admit_request("other", 60.0, config) is None


def test_fractional_rate() -> None:
    """2.5 requests a second become 3 per 1.2 s."""
    limiter = Limiter()
    config = SimulatorConfig(requests_per_second=2.5)
    for now in (0.0, 0.1, 0.2):
        assert limiter.admit_request("k", now, config) is None
    assert limiter.admit_request("k", 0.3, config) == pytest.approx(0.9)
    assert limiter.admit_request("k", 1.2, config) is None


@pytest.mark.leonardo_simulator(SimulatorConfig(requests_per_minute=1))
async def test_no_retry_after_by_default(sim: Simulator, session: aiohttp.ClientSession) -> None:
    """Leonardo documents no Retry-After: by default a 429 carries none."""
    api = Api(sim, session)
    assert (await api.call("GET", "/me")).status == 200
    refused = await api.call("GET", "/me")
    assert refused.status == 429
    assert "Retry-After" not in refused.headers


def test_retry_after_styles() -> None:
    """Seconds round up to an integer; dates round up to the next whole second."""
    assert retry_after_headers(0.2, "seconds") == {"Retry-After": "1"}
    assert retry_after_headers(2.01, "seconds") == {"Retry-After": "3"}
    assert retry_after_headers(3.0, "none") == {}
    now = datetime(2026, 11, 25, 14, 7, 30, 500_000, tzinfo=timezone.utc)
    header = retry_after_headers(1.5, "http-date", now)["Retry-After"]
    assert header == "Wed, 25 Nov 2026 14:07:33 GMT"


@pytest.mark.parametrize("style", ["seconds", "http-date", "none"])
async def test_requests_per_minute(
    leonardo_simulator_factory: SimulatorFactory, style: str, session: aiohttp.ClientSession
) -> None:
    """Over ``requests_per_minute`` the API answers 429 with Retry-After in the chosen style."""
    config = SimulatorConfig(requests_per_minute=3, retry_after_style=style)  # type: ignore[arg-type]
    async with leonardo_simulator_factory(config) as sim:
        api = Api(sim, session)
        for _ in range(3):
            assert (await api.call("GET", "/me")).status == 200
        refused = await api.call("GET", "/me")
        assert refused.status == 429
        assert refused.json["code"] == "rate-limit-exceeded"
        header = refused.headers.get("Retry-After")
        if style == "seconds":
            assert header is not None
            assert 1 <= int(header) <= 60
        elif style == "http-date":
            assert header is not None
            assert parsedate_to_datetime(header).tzinfo is not None
        else:
            assert header is None
        assert (await api.call("GET", "/me", auth=False)).status == 401  # auth comes first
        stats = sim.statistics()
        assert stats.rate_limited == 1
        assert stats.responses[429] == 1


@pytest.mark.leonardo_simulator(
    SimulatorConfig(requests_per_second=0.05, retry_after_style="seconds")
)
async def test_requests_per_second_slow_rate(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    """A rate below one a second allows one request per 1/rate seconds."""
    api = Api(sim, session)
    assert (await api.call("GET", "/me")).status == 200
    refused = await api.call("GET", "/me")
    assert refused.status == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 20


@pytest.mark.leonardo_simulator(SimulatorConfig(requests_per_minute=1, extra_api_keys=("k2",)))
async def test_limits_are_per_key(sim: Simulator, session: aiohttp.ClientSession) -> None:
    """Each key has its own window."""
    api = Api(sim, session)
    assert (await api.call("GET", "/me")).status == 200
    assert (await api.call("GET", "/me")).status == 429
    other = {"authorization": "Bearer k2"}
    assert (await api.call("GET", "/me", auth=False, headers=other)).status == 200


@pytest.mark.leonardo_simulator(SimulatorConfig(submits_per_minute=1, retry_after_style="seconds"))
async def test_submits_per_minute(sim: Simulator, session: aiohttp.ClientSession) -> None:
    """The submit window refuses submits but not other calls."""
    api = Api(sim, session)
    image = await api.uploaded_image()
    await api.submit_ok(image)
    refused = await api.submit({"prompt": "p", "imageId": image, "imageType": "UPLOADED"})
    assert refused.status == 429
    assert "Retry-After" in refused.headers
    assert (await api.call("GET", "/me")).status == 200
    assert sim.statistics().generations_created == 1


@pytest.mark.leonardo_simulator(
    SimulatorConfig(
        max_running=2, refuse_at_concurrency=True, durations=LONG, retry_after_style="seconds"
    )
)
async def test_max_running_refusing(sim: Simulator, session: aiohttp.ClientSession) -> None:
    """Refusing at concurrency, a key with ``max_running`` jobs running gets 429 until one
    ends (or is deleted)."""
    api = Api(sim, session)
    image = await api.uploaded_image()
    first = await api.submit_ok(image)
    await api.submit_ok(image)
    refused = await api.submit(
        {"prompt": "p", "imageId": image, "imageType": "UPLOADED", "model": "VEO3_1"}
    )
    assert refused.status == 429
    assert refused.json["code"] == "rate-limit-exceeded"
    assert int(refused.headers["Retry-After"]) >= 1
    assert "concurrency" in refused.json["error"]
    stats = sim.statistics()
    assert (stats.peak_running, stats.running_now, stats.generations_created) == (2, 2, 2)
    assert (stats.peak_queued, stats.peak_attempted, stats.refused_in_flight) == (0, 3, 1)
    await api.call("DELETE", f"/generations/{first}")
    await api.submit_ok(image)
    me = (await api.call("GET", "/me")).json["user_details"][0]
    assert me["apiConcurrencySlots"] == 10


@pytest.mark.leonardo_simulator(SimulatorConfig(api_subscription_tokens=1000, api_paid_tokens=100))
async def test_balance(sim: Simulator, session: aiohttp.ClientSession) -> None:
    """A submit costing more than the balance is a 402; paid tokens are spent after plan ones."""
    api = Api(sim, session)
    image = await api.uploaded_image()
    await api.submit_ok(image, duration=4)  # 1070 credits
    me = (await api.call("GET", "/me")).json["user_details"][0]
    assert (me["apiSubscriptionTokens"], me["apiPaidTokens"]) == (0, 30)
    refused = await api.submit(
        {
            "prompt": "p",
            "imageId": image,
            "imageType": "UPLOADED",
            "model": "VEO3_1",
            "duration": 4,
        }
    )
    assert refused.status == 402
    assert refused.json["code"] == "insufficient-credits"
    sim.configure(api_subscription_tokens=5000)
    await api.submit_ok(image, duration=4)


@pytest.mark.leonardo_simulator(SimulatorConfig(cost_1080p_multiplier=1.5))
async def test_1080p_multiplier(sim: Simulator, session: aiohttp.ClientSession) -> None:
    """``cost_1080p_multiplier`` prices 1080p."""
    api = Api(sim, session)
    reply = await api.submit(
        {
            "prompt": "p",
            "imageId": await api.uploaded_image(),
            "imageType": "UPLOADED",
            "model": "VEO3_1",
            "duration": 4,
            "resolution": "RESOLUTION_1080",
        }
    )
    assert reply.json["motionVideoGenerationJob"]["cost"]["amount"] == "1605"


async def test_duplicates_ignore_the_seed(api: Api, sim: Simulator) -> None:
    """Submitting the same video twice counts a duplicate, whatever the seeds."""
    image = await api.uploaded_image()
    await api.submit_ok(image, seed=1)
    await api.submit_ok(image, seed=2)
    await api.submit_ok(image, seed=3, duration=4)
    assert sim.statistics().duplicate_submissions == 1


@pytest.mark.leonardo_simulator(SimulatorConfig(max_running=2, queue_depth=2, durations=LONG))
async def test_submits_past_the_slots_queue(sim: Simulator, session: aiohttp.ClientSession) -> None:
    """By default a submit with every slot busy is accepted and waits ``PENDING``; only a
    full queue answers 429."""
    api = Api(sim, session)
    image = await api.uploaded_image()
    ids = [await api.submit_ok(image) for _ in range(4)]
    refused = await api.submit(
        {"prompt": "p", "imageId": image, "imageType": "UPLOADED", "model": "VEO3_1"}
    )
    assert refused.status == 429
    assert "queue" in refused.json["error"]
    for gid in ids:
        row = (await api.call("GET", f"/generations/{gid}")).json["generations_by_pk"]
        assert row["status"] == "PENDING"
    stats = sim.statistics()
    assert (stats.peak_running, stats.peak_queued, stats.running_now) == (2, 2, 2)
    assert (stats.generations_created, stats.refused_in_flight) == (4, 1)
    assert stats.peak_attempted == 5


def test_queued_jobs_start_as_slots_free() -> None:
    """A queued job starts when the first busy slot frees, first come, first served, and
    holds that slot until it ends; the queue drains as jobs start."""
    core = Core(SimulatorConfig(max_running=2, durations=JobDurations.fixed(10)))
    request = text_request()
    rows = [core.create_generation(request, {}, "key", 1) for _ in range(5)]
    assert [r.started_at for r in rows[2:]] == [r.finish_at for r in rows[:3]]
    store = core.store
    moment = rows[1].finish_at + 0.001  # the first two ended; the next two took their slots
    assert (store.running("key", moment), store.queued("key", moment)) == (2, 1)
    assert rows[2].status(moment) == "PENDING"
    end = rows[-1].finish_at
    assert (store.running("key", end), store.queued("key", end)) == (0, 0)
    assert core.stats.peak_queued == 3
