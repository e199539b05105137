"""Webhook fan-in: a callback that lands on one replica ends the wait on another, through a
real Redis, with the simulator calling the receiver back over real loopback HTTP.

Each replica is its own :class:`LeonardoClient` on one key and one Redis. That a wait was
ended by the callback and not by a poll is shown by counts (a poll schedule whose first
look is hours away, the tracker's and the simulator's request counts), never by timing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import pytest
from _helpers import DEADLINE, FAST, KEY, eventually, make_client, requests_to
from _images import png_bytes
from _redis import (
    PrivateRedis,
    namespace_keys,
    unique_namespace,
)
from hypothesis import given
from hypothesis import strategies as st

from leonardo_async import (
    GeneratedImage,
    Generation,
    GenerationStatus,
    LeonardoClient,
    PollSchedule,
    RedisLimits,
    WebhookReceiver,
)
from leonardo_async import _wire as wire
from leonardo_async._limits._redis import key_prefix
from leonardo_async.simulator import JobDurations, Simulator, SimulatorConfig

CALLBACK_KEY = "callback-key-for-fan-in-tests"
#: A first look six hours away: a wait that ends within a test was ended by a callback.
NEVER = PollSchedule(initial=6 * 3600, max_interval=6 * 3600)
STATUS = "GET /generations/{id}"
LISTING = "GET /generations/user/{userId}"
FANIN_AWAY = "webhook callbacks are not passed between replicas"
FANIN_BACK = "webhook callbacks are passed between replicas again"


@pytest.fixture
def leonardo_simulator_config() -> SimulatorConfig:
    """The canary key; jobs take a second; callbacks carry the callback key."""
    return SimulatorConfig(
        api_key=KEY, durations=JobDurations.fixed(1.0), webhook_key=CALLBACK_KEY, seed=7
    )


@asynccontextmanager
async def _receiver(client: LeonardoClient, sim: Simulator) -> AsyncIterator[WebhookReceiver]:
    """A receiver of ``client``'s, served on loopback, where ``sim`` calls back."""
    receiver = WebhookReceiver(client, callback_key=CALLBACK_KEY)
    async with receiver.serve() as url:
        sim.configure(webhook_url=url)
        yield receiver


def _looks(client: LeonardoClient) -> int:
    stats = client.tracker_statistics()
    return stats.polls + stats.listing_pages


async def test_a_callback_on_one_replica_ends_the_wait_on_another(
    sim: Simulator, shared: RedisLimits
) -> None:
    """The simulator calls back replica A while B waits on the job with its first look
    hours away: B's wait ends from the callback, with no status request from anyone; C,
    on the same key and Redis but waiting on nothing, sends nothing and ends nothing; and
    the API key is in no Redis key, channel or message."""
    import redis.asyncio as aioredis

    spy = aioredis.Redis.from_url(shared.url)
    heard = spy.pubsub()
    await heard.psubscribe(f"{shared.namespace}:*")
    try:
        async with (
            make_client(sim, redis=shared) as a,
            make_client(sim, redis=shared, poll_schedule=NEVER) as b,
            make_client(sim, redis=shared, poll_schedule=NEVER) as c,
            _receiver(a, sim) as receiver,
        ):
            channel = f"{key_prefix(shared.namespace, KEY)}:callbacks"
            for garbage in (b"not JSON", b"[]", json.dumps({"generation": {"id": 7}}).encode()):
                await spy.publish(channel, garbage)  # read past, not a failure
            job = await b.image_to_video(prompt="a fox at dawn", image=png_bytes())
            with anyio.fail_after(DEADLINE):
                done = await b.wait(job.id)
            assert done.status is GenerationStatus.COMPLETE
            assert done.video_url
            assert (requests_to(sim, STATUS), requests_to(sim, LISTING)) == (0, 0)
            assert _looks(b) == 0
            assert b.tracker_statistics().complete == 1
            stats = receiver.statistics()
            assert (stats.accepted, stats.resolved) == (1, 0)  # A waited on nothing
            assert c.requests_sent == 0
            assert c.tracker_statistics().complete == 0

            channels = [x.decode() for x in await spy.pubsub_channels(f"{shared.namespace}:*")]
            assert channels == [channel]
            names = namespace_keys(shared.url, shared.namespace) + channels
            assert names
            assert not [name for name in names if KEY in name]
        published: list[bytes] = []
        with anyio.fail_after(DEADLINE):
            while len(published) < 4:  # the three read past, then the callback
                message = await heard.get_message(timeout=1.0)
                if message is not None and message["type"] == "pmessage":
                    published.append(message["data"])
        assert not [m for m in published if KEY.encode() in m]
        assert json.loads(published[-1])["generation"]["id"] == job.id
    finally:
        await heard.aclose()
        await spy.aclose()


async def test_with_redis_stopped_polling_ends_the_wait_and_callbacks_pass_again_once_back(
    sim: Simulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis stopped: the callback still lands on A, B's wait on the job still ends by its
    own polls, nothing hangs, and each replica says so once at WARNING. Redis started
    again: both subscribe again by themselves, and a callback on A ends B's next wait
    without a look."""
    import redis

    caplog.set_level(logging.INFO, logger="leonardo_async")
    server = PrivateRedis(tmp_path)
    server.start()
    namespace = unique_namespace()
    config = RedisLimits(server.url, namespace=namespace, lease=0.6, timeout=0.2)
    channel = f"{key_prefix(namespace, KEY)}:callbacks"
    spy = redis.Redis.from_url(server.url, socket_timeout=2)

    def subscribers() -> int:
        try:
            return int(dict(spy.pubsub_numsub(channel))[channel.encode()])
        except redis.RedisError:
            return 0

    def said(text: str) -> int:
        return sum(text in record.getMessage() for record in caplog.records)

    try:
        async with (
            make_client(sim, redis=config) as a,
            make_client(sim, redis=config, poll_schedule=NEVER) as b,
            _receiver(a, sim) as receiver,
        ):
            assert subscribers() == 2
            server.stop()
            with anyio.fail_after(DEADLINE):
                first = await a.image_to_video(prompt="made while Redis is away", image=png_bytes())
                ended = await b.track(first.id, schedule=FAST)
            assert ended.status is GenerationStatus.COMPLETE
            assert _looks(b) >= 1  # ended by B's own looks
            await eventually(lambda: receiver.statistics().accepted == 1)
            await eventually(lambda: said(FANIN_AWAY) == 2)  # once for each replica

            server.start()
            await eventually(lambda: subscribers() == 2 and said(FANIN_BACK) >= 2)
            looks = _looks(b)
            second = await b.image_to_video(prompt="made once Redis is back", image=png_bytes())
            with anyio.fail_after(DEADLINE):
                done = await b.wait(second.id)
            assert done.status is GenerationStatus.COMPLETE
            assert _looks(b) == looks  # ended by the callback A received
            assert receiver.statistics().accepted == 2
            assert said(FANIN_AWAY) == 2
    finally:
        spy.close()
        server.stop()


_statuses = st.sampled_from(list(GenerationStatus)) | st.text(min_size=1).filter(
    lambda s: s not in {m.value for m in GenerationStatus}
)
_optional_text = st.none() | st.text()
_generations = st.builds(
    Generation,
    id=st.text(min_size=1),
    status=_statuses,
    prompt=_optional_text,
    created_at=st.none()
    | st.datetimes(
        min_value=datetime(1000, 1, 1),
        timezones=st.builds(
            timezone, st.integers(-23 * 60, 23 * 60).map(lambda m: timedelta(minutes=m))
        ),
    ),
    seed=st.none() | st.integers(min_value=0, max_value=2**63 - 1),
    width=st.none() | st.integers(min_value=1, max_value=10_000),
    height=st.none() | st.integers(min_value=1, max_value=10_000),
    generated_images=st.lists(
        st.builds(
            GeneratedImage,
            id=_optional_text,
            url=_optional_text,
            motion_mp4_url=_optional_text,
            nsfw=st.none() | st.booleans(),
        ),
        max_size=3,
    ).map(tuple),
)


@given(_generations)
def test_a_generation_passed_on_is_read_back_the_same(generation: Generation) -> None:
    """What one replica publishes (the generation in the API's JSON) the others read back
    as the same generation."""
    data: Any = json.loads(json.dumps(wire.dumps_generation(generation)))
    assert wire.structure(data, Generation, "test") == generation
