"""The admin API under ``/_sim/`` on the API port: stats, knobs, stored generations.

Benchmarks run the simulator in another process, so everything a test reads from
:class:`Simulator` in-process is also readable over HTTP here. No auth: it listens on
loopback and is test tooling. It is not counted in the stats and no fault touches it.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
from aiohttp import web

from ._config import config_from_mapping, config_to_json
from ._core import Core
from ._pipeline import CORE
from ._state import GenerationRecord
from ._wire import timestamp

__all__ = ["add_admin_routes", "generation_records", "record_json"]


def generation_records(core: Core) -> tuple[GenerationRecord, ...]:
    """Return every stored generation (deleted ones too), oldest first."""
    now, cdn = core.now(), core.cdn_base
    return tuple(row.record(now, cdn) for row in core.store.generations.values())


def record_json(record: GenerationRecord) -> dict[str, Any]:
    """Return *record* as JSON-ready data (``created_at`` as a Hasura-style timestamp)."""
    data = attrs.asdict(record)
    data["created_at"] = timestamp(record.created_at)
    return data


async def get_stats(request: web.Request) -> web.Response:
    """``GET /_sim/stats``: the :class:`SimulatorStats` snapshot as JSON."""
    core = request.app[CORE]
    return web.json_response(core.stats.snapshot(core.store.running_total(core.now())).to_json())


async def get_config(request: web.Request) -> web.Response:
    """``GET /_sim/config``: every knob, as ``POST /_sim/config`` takes them."""
    return web.json_response(config_to_json(request.app[CORE].config))


async def post_config(request: web.Request) -> web.Response:
    """``POST /_sim/config``: apply a JSON object of knob changes (nested ones merge)."""
    core = request.app[CORE]
    try:
        changes = json.loads(await request.read())
        if not isinstance(changes, dict):
            raise ValueError("the body must be a JSON object of knob changes")
        config = config_from_mapping(changes, base=core.config)
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    core.configure(config)
    return web.json_response(config_to_json(config))


async def post_reset(request: web.Request) -> web.Response:
    """``POST /_sim/reset``: zero the stats (generations and balances stay)."""
    request.app[CORE].stats.reset()
    return web.json_response({"reset": True})


async def get_generations(request: web.Request) -> web.Response:
    """``GET /_sim/generations``: every stored generation, oldest first."""
    records = generation_records(request.app[CORE])
    return web.json_response([record_json(r) for r in records])


#: Every admin route and what it does: the index ``GET /_sim`` answers with this.
ROUTES: dict[str, str] = {
    "GET /_sim/stats": "counters: requests per route, generations, credits spent, peaks",
    "GET /_sim/config": "every knob, as POST /_sim/config takes them",
    "POST /_sim/config": "change knobs: a JSON object, nested ones merge",
    "POST /_sim/reset": "zero the stats (generations and balances stay)",
    "GET /_sim/generations": "every stored generation, oldest first, with its request body",
}


async def get_index(request: web.Request) -> web.Response:
    """``GET /_sim``: the admin routes, so the URL the ``sim`` banner prints answers."""
    return web.json_response({"admin routes": ROUTES})


def add_admin_routes(app: web.Application) -> None:
    """Register the admin routes on *app*."""
    app.router.add_get("/_sim", get_index)
    app.router.add_get("/_sim/", get_index)
    app.router.add_get("/_sim/stats", get_stats)
    app.router.add_get("/_sim/config", get_config)
    app.router.add_post("/_sim/config", post_config)
    app.router.add_post("/_sim/reset", post_reset)
    app.router.add_get("/_sim/generations", get_generations)
