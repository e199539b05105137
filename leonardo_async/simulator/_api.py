"""The Leonardo REST routes under ``/api/rest/v1``, as the real API answers them.

Each handler assumes :mod:`._pipeline` already ran (auth, request limits, faults) and does
the route's own checks. Choices where Leonardo is silent: a non-JSON ``content-type`` on a
POST is a 400; an over-balance submit is a 402 (``code: "insufficient-credits"``); another
user's listing is an empty 200 (Hasura's row permissions filter rather than refuse); the
concurrency limit answers 429 with ``Retry-After`` until the key's earliest job finishes.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from aiohttp import web

from ._core import Core
from ._pipeline import (
    API_KEY,
    API_PREFIX,
    CORE,
    json_error,
    pipeline,
    too_many_requests,
)
from ._rules import RuleError, cost_of, parse_submit
from ._state import GenerationRow
from ._wire import cost_json, generation_json, init_image_json, job_json, me_json

__all__ = ["add_api_routes"]

_EXTENSIONS = ("png", "jpg", "jpeg", "webp")


class _BadRequest(Exception):
    """A 400 to answer, with its Hasura code."""

    def __init__(self, message: str, code: str = "validation-failed") -> None:
        super().__init__(message)
        self.code = code


async def _json_body(request: web.Request) -> Any:
    if request.content_type != "application/json":
        raise _BadRequest(
            f"content-type must be application/json, got {request.content_type!r}",
            "invalid-headers",
        )
    try:
        return json.loads(await request.read())
    except (UnicodeDecodeError, ValueError):
        raise _BadRequest(
            "Error in $: Failed reading: not a valid json value", "invalid-json"
        ) from None


def _ok(data: dict[str, Any]) -> web.Response:
    return web.json_response(data)


async def post_init_image(request: web.Request) -> web.Response:
    """``POST /init-image``: issue a presigned upload form for one image."""
    core = request.app[CORE]
    try:
        body = await _json_body(request)
        extension = body.get("extension") if isinstance(body, dict) else None
        if extension not in _EXTENSIONS:
            raise _BadRequest(
                f'"extension" is required and must be one of '
                f"{', '.join(_EXTENSIONS)}, got {extension!r}"
            )
    except _BadRequest as exc:
        return json_error(400, str(exc), exc.code)
    image = core.new_init_image(extension)
    return _ok(
        {
            "uploadInitImage": {
                "id": image.id,
                "url": core.upload_url,
                "fields": json.dumps(image.fields),
                "key": image.key,
            }
        }
    )


async def get_init_image(request: web.Request) -> web.Response:
    """``GET /init-image/{id}``."""
    core = request.app[CORE]
    image = core.store.init_images.get(request.match_info["id"])
    data = None
    if image is not None:
        data = init_image_json(image, core.object_url(image.key), core.config)
    return _ok({"init_images_by_pk": data})


async def delete_init_image(request: web.Request) -> web.Response:
    """``DELETE /init-image/{id}``."""
    image = request.app[CORE].store.delete_init_image(request.match_info["id"])
    return _ok({"delete_init_images_by_pk": None if image is None else {"id": image.id}})


async def _submit(request: web.Request, endpoint: str) -> web.Response:
    core: Core = request.app[CORE]
    api_key = API_KEY.get()
    config, store, now = core.config, core.store, core.now()
    wait = core.limiter.admit_submit(api_key, now, config)
    if wait is not None:
        return too_many_requests(core, wait, "rate limit exceeded: too many generations")
    try:
        body = await _json_body(request)
        if config.reject_seed and isinstance(body, dict) and body.get("seed") is not None:
            raise _BadRequest('"seed" is not supported for this model; send no seed')
        submit = parse_submit(body, endpoint=endpoint, check=core.check_image)
    except (_BadRequest, RuleError) as exc:
        return json_error(400, str(exc), getattr(exc, "code", "validation-failed"))
    refusal = _over_concurrency(core, api_key, now)
    if refusal is not None:
        return refusal
    cost = cost_of(submit, config.cost_1080p_multiplier)
    if cost > store.balance:
        return json_error(
            402,
            f"not enough API credits: this generation costs {cost}, the balance is {store.balance}",
            "insufficient-credits",
        )
    row = core.create_generation(submit, body, api_key, cost)
    faults, route = config.faults, f"POST /generations-{endpoint}"
    if core.faults.applies(faults, route) and core.faults.draw(faults.null_cost_rate, "null_cost"):
        return _ok(job_json(row.id, core.faults.null_cost()))
    return _ok(job_json(row.id, cost_json(row.cost, config.cost_unit)))


def _over_concurrency(core: Core, api_key: str, now: float) -> web.Response | None:
    """The 429 for a submit with every slot busy and the queue full, or ``None``.

    With ``refuse_at_concurrency`` there is no queue: a busy slot set refuses at once.
    """
    config, store = core.config, core.store
    if config.max_running is None:
        return None
    depth = config.queue_depth if config.queue_depth is not None else 20 * config.max_running
    if config.refuse_at_concurrency:
        depth = 0
    running, queued = store.running(api_key, now), store.queued(api_key, now)
    stats = core.stats
    stats.peak_attempted = max(stats.peak_attempted, running + queued + 1)
    if running < config.max_running or queued < depth:
        return None
    stats.refused_in_flight += 1
    wait = max(0.0, store.next_finish(api_key) - now)
    if config.refuse_at_concurrency:
        text = (
            f"concurrency limit reached: {running} generations running (limit {config.max_running})"
        )
    else:
        text = f"queue limit reached: {queued} generations pending (limit {depth})"
    return too_many_requests(core, wait, text)


async def post_image_to_video(request: web.Request) -> web.Response:
    """``POST /generations-image-to-video``."""
    return await _submit(request, "image-to-video")


async def post_text_to_video(request: web.Request) -> web.Response:
    """``POST /generations-text-to-video``."""
    return await _submit(request, "text-to-video")


async def get_generation(request: web.Request) -> web.Response:
    """``GET /generations/{id}``."""
    core = request.app[CORE]
    now = core.now()
    row = core.store.visible_generation(request.match_info["id"], now)
    data = None
    if row is not None:
        data = generation_json(row, now, core.cdn_base, core.config)
        row.shown(now)
    return _ok({"generations_by_pk": data})


async def delete_generation(request: web.Request) -> web.Response:
    """``DELETE /generations/{id}``."""
    core = request.app[CORE]
    row = core.store.delete_generation(request.match_info["id"], core.now())
    return _ok({"delete_generations_by_pk": None if row is None else {"id": row.id}})


def _query_int(request: web.Request, name: str, default: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()):
        raise _BadRequest(f'"{name}" must be a non-negative integer, got {text!r}', "parse-failed")
    return int(text)


async def list_generations(request: web.Request) -> web.Response:
    """``GET /generations/user/{userId}?offset=&limit=``."""
    core = request.app[CORE]
    config, now = core.config, core.now()
    try:
        offset = _query_int(request, "offset", 0)
        limit = min(_query_int(request, "limit", 10), config.listing_max_limit)
    except _BadRequest as exc:
        return json_error(400, str(exc), exc.code)
    page: list[GenerationRow] = []
    if request.match_info["userId"] == config.user_id and config.listing_includes_video:
        rows = core.store.listed(
            now, newest_first=config.listing_order != "oldest", lag=config.listing_lag
        )
        if config.listing_order == "random":
            shuffled = list(rows)
            core.rng.shuffle(shuffled)
            rows = iter(shuffled)
        page = list(itertools.islice(rows, offset, offset + limit))
    if config.listing_drop_rate > 0:
        page = [r for r in page if not core.faults.draw(config.listing_drop_rate, "listing_drop")]
    for row in page:
        row.shown(now)
    return _ok({"generations": [generation_json(r, now, core.cdn_base, config) for r in page]})


async def get_me(request: web.Request) -> web.Response:
    """``GET /me``."""
    core = request.app[CORE]
    return _ok(me_json(core.config, core.store, core.renewal))


def add_api_routes(app: web.Application) -> None:
    """Register the API routes and the request pipeline on *app*."""
    app.middlewares.append(pipeline)
    routes = [
        ("POST", "/init-image", post_init_image),
        ("GET", "/init-image/{id}", get_init_image),
        ("DELETE", "/init-image/{id}", delete_init_image),
        ("POST", "/generations-image-to-video", post_image_to_video),
        ("POST", "/generations-text-to-video", post_text_to_video),
        ("GET", "/generations/user/{userId}", list_generations),
        ("GET", "/generations/{id}", get_generation),
        ("DELETE", "/generations/{id}", delete_generation),
        ("GET", "/me", get_me),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, API_PREFIX + path, handler)
