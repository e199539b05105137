"""The simulator as a server: restart, admin API, webhooks, ``serve``, listing knobs, config."""

from __future__ import annotations

import functools
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web

from leonardo_async.simulator import (
    FaultConfig,
    JobDurations,
    Simulator,
    SimulatorConfig,
    SimulatorStats,
    config_from_mapping,
    serve,
)
from leonardo_async.simulator._config import config_to_json

from ._support import Api, eventually


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_restart_keeps_state(api: Api, sim: Simulator) -> None:
    """After a restart the same ports answer and every generation is still there."""
    gid = await api.submit_ok(await api.uploaded_image())
    ports = (sim.api_port, sim.storage_port)
    await sim.restart()
    assert (sim.api_port, sim.storage_port) == ports
    done = await api.finished(gid)
    assert done["id"] == gid
    download = await api.raw("GET", done["generated_images"][0]["motionMP4URL"])
    assert download.body == sim.video_bytes(gid)
    assert sim.statistics().generations_created == 1


async def test_connections_refused_while_down(api: Api, sim: Simulator) -> None:
    """Between stop and start of a restart, connecting fails."""
    await sim._close_sites()
    try:
        with pytest.raises(aiohttp.ClientConnectionError):
            await api.call("GET", "/me")
    finally:
        await sim._open_sites()
    assert (await api.call("GET", "/me")).status == 200


async def test_fixed_ports(session: aiohttp.ClientSession) -> None:
    """Ports given in the config are used."""
    api_port, storage_port = _free_port(), _free_port()
    # The Simulator class's own port handling and double start, so it is made here.
    async with Simulator(SimulatorConfig(api_port=api_port, storage_port=storage_port)) as sim:
        assert sim.base_url == f"http://127.0.0.1:{api_port}/api/rest/v1"
        assert sim.storage_url == f"http://127.0.0.1:{storage_port}"
        with pytest.raises(RuntimeError):
            await sim.start()


async def test_admin_api(api: Api, sim: Simulator) -> None:
    """Stats, config, reset and generations are readable and writable over HTTP."""
    gid = await api.submit_ok(await api.uploaded_image())
    admin = sim.admin_url
    stats = (await api.raw("GET", f"{admin}/stats")).json
    assert SimulatorStats.from_json(stats) == sim.statistics().__class__.from_json(
        sim.statistics().to_json()
    )
    assert stats["generations_created"] == 1
    assert stats["responses"]["200"] == 2

    changed = await api.raw(
        "POST", f"{admin}/config", json={"max_running": 3, "faults": {"slow_seconds": 2}}
    )
    assert changed.status == 200
    assert sim.config.max_running == 3
    assert sim.config.faults.slow_seconds == 2.0
    assert (await api.raw("GET", f"{admin}/config")).json == config_to_json(sim.config)

    bad: object
    for bad in ({"no_such_knob": 1}, {"max_running": "many"}, {"faults": {"slow_rate": 2}}, []):
        refused = await api.raw("POST", f"{admin}/config", json=bad)
        assert refused.status == 400, bad
    assert sim.config.max_running == 3

    records = (await api.raw("GET", f"{admin}/generations")).json
    assert [r["id"] for r in records] == [gid]
    assert records[0]["body"]["model"] == "VEO3_1"

    assert (await api.raw("POST", f"{admin}/reset")).status == 200
    assert sim.statistics().generations_created == 0
    assert sim.statistics().requests == {}


async def test_stats_json_round_trip(api: Api, sim: Simulator) -> None:
    """A stats snapshot survives JSON."""
    await api.call("GET", "/me")
    sim.configure(faults={"server_error_rate": 1.0})
    await api.call("GET", "/me")
    stats = sim.statistics()
    assert SimulatorStats.from_json(stats.to_json()) == stats


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[tuple[dict[str, str], Any]]]]:
    """Yield (url, received) for a tiny webhook receiver; received holds (headers, json)."""
    received: list[tuple[dict[str, str], Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.json()))
        return web.Response(status=200 if request.path == "/ok" else 500)

    app = web.Application()
    app.router.add_post("/ok", hook)
    app.router.add_post("/broken", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", received
    await runner.cleanup()


async def test_webhook_delivery(api: Api, sim: Simulator, receiver: Any) -> None:
    """A finished generation is POSTed to the webhook with the callback key."""
    base, received = receiver
    sim.configure(webhook_url=f"{base}/ok", webhook_key="hook-secret")
    gid = await api.submit_ok(await api.uploaded_image())

    async def delivered() -> bool:
        return sim.statistics().webhooks_sent == 1

    await eventually(delivered)
    [(headers, payload)] = received
    assert headers["Authorization"] == "Bearer hook-secret"
    assert payload["type"] == "image_generation.complete"
    assert payload["object"] == "generation"
    assert payload["api_version"] == "v1"
    assert isinstance(payload["timestamp"], int)
    event = payload["data"]["object"]
    assert (event["id"], event["status"]) == (gid, "COMPLETE")
    assert event["images"][0]["motionMP4URL"].endswith(f"{gid}.mp4")
    # Leonardo's documented sample sends these as strings.
    assert event["seed"] == str(sim.generation(gid).seed)  # type: ignore[union-attr]
    assert isinstance(event["apiDollarCost"], str)


async def test_webhook_failures_are_counted(api: Api, sim: Simulator, receiver: Any) -> None:
    """Error answers and unreachable receivers count as failures; nothing crashes."""
    base, received = receiver
    image = await api.uploaded_image()
    sim.configure(webhook_url=f"{base}/broken", failure_rate=1.0)
    await api.submit_ok(image)

    async def failed(count: int) -> bool:
        return sim.statistics().webhooks_failed == count

    await eventually(lambda: failed(1))
    sim.configure(webhook_url=f"http://127.0.0.1:{_free_port()}/none")
    await api.submit_ok(image)
    await eventually(lambda: failed(2))
    assert "Authorization" not in received[0][0]
    assert received[0][1]["data"]["object"]["status"] == "FAILED"
    assert received[0][1]["data"]["object"]["images"] == []
    assert (await api.call("GET", "/me")).status == 200


async def test_serve_runs_until_cancelled(session: aiohttp.ClientSession) -> None:
    """``serve`` runs a simulator on the given ports until its task is cancelled."""
    port = _free_port()
    async with anyio.create_task_group() as tg:
        tg.start_soon(functools.partial(serve, SimulatorConfig(), port=port))

        async def up() -> Any:
            try:
                async with session.get(f"http://127.0.0.1:{port}/_sim/stats") as response:
                    return await response.json()
            except aiohttp.ClientConnectionError:
                return None

        stats = await eventually(up)
        assert stats["generations_created"] == 0
        tg.cancel_scope.cancel()


async def test_listing_pages_and_order(api: Api, sim: Simulator) -> None:
    """The listing is newest first, pages with offset/limit, caps limit, and can reorder."""
    sim.configure(max_running=None, listing_max_limit=3)
    image = await api.uploaded_image()
    ids = [await api.submit_ok(image, seed=i) for i in range(5)]
    path = f"/generations/user/{sim.user_id}"

    async def page(query: str) -> list[str]:
        return [g["id"] for g in (await api.call("GET", f"{path}?{query}")).json["generations"]]

    assert await page("offset=0&limit=2") == ids[::-1][:2]
    assert await page("offset=2&limit=100") == ids[::-1][2:5]
    assert await page("offset=9") == []
    assert len(await page("")) == 3
    sim.configure(listing_order="oldest")
    assert await page("limit=3") == ids[:3]
    sim.configure(listing_order="random", listing_max_limit=50)
    assert sorted(await page("limit=50")) == sorted(ids)
    assert await page("limit=0") == []


async def test_listing_knobs(api: Api, sim: Simulator) -> None:
    """Other users see nothing; video can be left out; items can be dropped."""
    await api.submit_ok(await api.uploaded_image())
    path = f"/generations/user/{sim.user_id}"
    other = await api.call("GET", "/generations/user/someone-else")
    assert other.json == {"generations": []}
    sim.configure(listing_includes_video=False)
    assert (await api.call("GET", path)).json == {"generations": []}
    sim.configure(listing_includes_video=True, listing_drop_rate=1.0)
    assert (await api.call("GET", path)).json == {"generations": []}
    assert sim.statistics().faults_injected["listing_drop"] == 1


async def test_admin_config_takes_routes(api: Api, sim: Simulator) -> None:
    """``POST /_sim/config`` with ``routes`` answers the config as JSON, routes as a list."""
    reply = await api.raw(
        "POST", f"{sim.admin_url}/config", json={"faults": {"routes": ["GET /me"]}}
    )
    assert reply.status == 200, reply.body
    assert reply.json["faults"]["routes"] == ["GET /me"]
    assert sim.config.faults.routes == frozenset({"GET /me"})
    shown = await api.raw("GET", f"{sim.admin_url}/config")
    assert shown.json["faults"]["routes"] == ["GET /me"]


def test_config_from_mapping() -> None:
    """Nested knobs merge, JSON types are checked, unknown knobs are refused."""
    base = SimulatorConfig(faults=FaultConfig(slow_rate=0.5))
    config = config_from_mapping({"faults": {"routes": ["GET /me"]}, "seed": 3}, base)
    assert config.faults.slow_rate == 0.5
    assert config.faults.routes == frozenset({"GET /me"})
    assert config.seed == 3
    assert config_from_mapping(config_to_json(config)) == config
    assert config_to_json(config)["faults"]["routes"] == ["GET /me"]
    for bad in (
        {"nope": 1},
        {"seed": "3"},
        {"durations": {"kind": "gamma"}},
        {"listing_includes_video": 1},
        {"requests_per_second": True},
    ):
        with pytest.raises(ValueError, match=r".+"):
            config_from_mapping(bad)


def test_job_durations() -> None:
    """Durations are drawn as configured and never negative."""
    import random

    rng = random.Random(0)
    assert JobDurations.fixed(3).draw(rng) == 3.0
    uniform = JobDurations(kind="uniform", median=10, spread=0.5)
    assert all(5 <= uniform.draw(rng) <= 15 for _ in range(100))
    veo = JobDurations.veo()
    assert all(veo.draw(rng) > 0 for _ in range(100))
    realistic = SimulatorConfig.realistic()
    assert (realistic.requests_per_minute, realistic.submits_per_minute) == (2000, 100)
    assert realistic.durations == veo
