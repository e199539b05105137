"""What happens to every API request before and after its route: faults, auth, limits.

The order, chosen to match where each problem lives in a real deployment:

1. unknown path or method: 404/405 with a Hasura-style body;
2. infrastructure faults (``routes`` permitting): dropped connection, delay, 5xx burst,
   429 storm; none of these reach the application, so none take a rate-limit slot;
3. authentication, as Leonardo's Hasura authorization hook answers it: a presented key that
   is not UUID-shaped is a 500 ``Invalid response from authorization hook``, a well-formed
   unknown key (or none at all) a 401 ``access-denied``; then the per-key request windows (429);
   then Hasura's variable check: a query parameter or JSON body key the endpoint does not
   declare is a 400 ``Unexpected variable <name>`` (``strict_variables``);
4. the route itself (which applies the submit window, the rules, concurrency and balance);
5. response faults on a 200 (and, with ``echo_authorization``, the request's key repeated in
   every error body): lost response after a submit, a gateway's 502/503/504 after a
   submit, malformed JSON, wrong shape. The route's side effects (a created generation) have
   happened by then.

The admin API under ``/_sim/`` skips all of it.
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ._config import SimulatorConfig
from ._core import Core
from ._limits import retry_after_headers
from ._rules import DECLARED_BODY, DECLARED_QUERY
from ._wire import error_body

__all__ = [
    "API_KEY",
    "API_PREFIX",
    "CORE",
    "SUBMIT_ROUTES",
    "json_error",
    "pipeline",
    "too_many_requests",
]

API_PREFIX = "/api/rest/v1"
SUBMIT_ROUTES = frozenset({"POST /generations-image-to-video", "POST /generations-text-to-video"})
CORE = web.AppKey("core", Core)
#: The authenticated key, for the route. Each aiohttp request runs in its own task, so a
#: context variable is per request, on every aiohttp version (unlike typed request keys).
API_KEY: contextvars.ContextVar[str] = contextvars.ContextVar("leonardo_sim_api_key")
_DROPPED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "leonardo_sim_dropped", default=False
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def json_error(
    status: int, message: str, code: str, headers: dict[str, str] | None = None
) -> web.Response:
    """Return a Hasura-style error response."""
    return web.json_response(error_body(message, code), status=status, headers=headers)


def too_many_requests(core: Core, wait: float, message: str) -> web.Response:
    """Return a 429 whose ``Retry-After`` follows the configured style."""
    headers = retry_after_headers(wait, core.config.retry_after_style)
    return json_error(429, message, "rate-limit-exceeded", headers)


def _drop(request: web.Request) -> web.Response:
    """Close the connection under the request: the client gets no response at all."""
    transport = request.transport
    if transport is not None:
        transport.close()
    _DROPPED.set(True)
    return web.Response(status=204)  # never written: the transport is closing


def _authenticate(request: web.Request, config: SimulatorConfig) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    presented = token.strip().encode()
    found = None
    for key in config.accepted_keys:  # every key compared, in constant time each
        if hmac.compare_digest(presented, key.encode()):
            found = key
    return found


def _refuse(request: web.Request, config: SimulatorConfig) -> web.Response:
    """Answer a request whose key is not accepted, the way Leonardo's auth hook does."""
    header = request.headers.get("Authorization")
    scheme, _, token = (header or "").partition(" ")
    well_formed = scheme.lower() == "bearer" and _UUID.fullmatch(token.strip()) is not None
    if header is not None and not well_formed and config.auth_hook_errors:
        return json_error(500, "Invalid response from authorization hook", "unexpected")
    return json_error(401, "Invalid API key", "access-denied")


async def _before(request: web.Request, core: Core, route: str) -> web.Response | None:
    faults, injector = core.config.faults, core.faults
    if injector.draw(faults.reset_before_rate, "reset_before"):
        return _drop(request)
    if injector.draw(faults.slow_rate, "slow"):
        # Read the body first: it has arrived, and a client that gives up meanwhile must not
        # stop the work (the real risk of a timed-out submit is that it still happens).
        await request.read()
        await asyncio.sleep(faults.slow_seconds)
    status = injector.server_error(faults)
    if status is not None:
        return json_error(status, "internal error", "unexpected")
    if injector.storm(faults):
        return too_many_requests(core, 1.0, "rate limit exceeded (storm)")
    return None


def _after(request: web.Request, core: Core, route: str, response: Any) -> Any:
    body = getattr(response, "body", None)
    if response.status != 200 or not isinstance(body, bytes):
        return response
    faults, injector = core.config.faults, core.faults
    if route in SUBMIT_ROUTES and injector.draw(
        faults.reset_after_submit_rate, "reset_after_submit"
    ):
        return _drop(request)
    if route in SUBMIT_ROUTES and injector.draw(
        faults.gateway_error_after_submit_rate, "gateway_error_after_submit"
    ):
        status, page = injector.gateway_page()
        return web.Response(status=status, text=page, content_type="text/html")
    if injector.draw(faults.malformed_json_rate, "malformed_json"):
        return web.Response(body=injector.malformed(body), content_type="application/json")
    if injector.draw(faults.unexpected_shape_rate, "unexpected_shape"):
        return web.Response(body=injector.reshape(body), content_type="application/json")
    return response


async def _process(
    request: web.Request, handler: Handler, core: Core, route: str
) -> web.StreamResponse:
    faulty = core.faults.applies(core.config.faults, route)
    if faulty:
        early = await _before(request, core, route)
        if early is not None:
            return early
    api_key = _authenticate(request, core.config)
    if api_key is None:
        return _refuse(request, core.config)
    wait = core.limiter.admit_request(api_key, core.now(), core.config)
    if wait is not None:
        return too_many_requests(core, wait, "rate limit exceeded: too many requests")
    if core.config.strict_variables:
        name = await _undeclared(request, route)
        if name is not None:
            return json_error(400, f"Unexpected variable {name}", "validation-failed")
    API_KEY.set(api_key)
    response = await handler(request)
    return _after(request, core, route, response) if faulty else response


async def _undeclared(request: web.Request, route: str) -> str | None:
    """Return the first query parameter or body key *route* does not declare, if any."""
    declared = DECLARED_QUERY.get(route, frozenset())
    for name in request.query:
        if name not in declared:
            return name
    if route not in DECLARED_BODY or request.content_type != "application/json":
        return None
    try:
        body = json.loads(await request.read())
    except ValueError:
        return None  # the route says what is wrong with it
    if isinstance(body, dict):
        for name in body:
            if name not in DECLARED_BODY[route]:
                return str(name)
    return None


def _echo_authorization(request: web.Request, response: web.StreamResponse) -> web.Response:
    """Repeat the request's ``Authorization`` header in an error body, as a careless proxy does."""
    header = request.headers.get("Authorization", "")
    body = getattr(response, "body", None)
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else ""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        data["error"] = f"{data.get('error', '')} (request authorization: {header})"
        data["request"] = {"headers": {"authorization": header}}
        echoed = web.json_response(data, status=response.status)
    else:
        echoed = web.Response(
            status=response.status,
            text=f"{text}\nauthorization: {header}",
            content_type="text/html",
        )
    for name in ("Retry-After", "Allow"):
        if name in response.headers:
            echoed.headers[name] = response.headers[name]
    return echoed


def _unmatched(request: web.Request, exc: web.HTTPException) -> web.Response:
    if exc.status == 405:
        allow = exc.headers.get("Allow", "")
        return json_error(
            405, f"method {request.method} not allowed", "method-not-allowed", {"Allow": allow}
        )
    return json_error(404, "resource does not exist", "not-found")


@web.middleware
async def pipeline(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run an API request through faults, auth and limits; count it and its answer."""
    if request.path == "/_sim" or request.path.startswith("/_sim/"):  # the admin API
        return await handler(request)
    core = request.app[CORE]
    exc = request.match_info.http_exception
    if exc is not None:
        route = "(unmatched)"
        core.stats.requests[route] += 1
        response: web.StreamResponse = _unmatched(request, exc)
    else:
        canonical = request.match_info.route.resource
        path = canonical.canonical if canonical is not None else request.path
        route = f"{request.method} {path.removeprefix(API_PREFIX)}"
        core.stats.requests[route] += 1
        response = await _process(request, handler, core, route)
    if core.config.faults.echo_authorization and response.status >= 400:
        response = _echo_authorization(request, response)
    if not _DROPPED.get():
        core.stats.responses[response.status] += 1
        if response.status == 429:
            core.stats.rate_limited += 1
    return response
