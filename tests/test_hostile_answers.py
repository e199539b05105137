"""Hostile answers over real loopback sockets: a body that never ends, a huge one, 100,000
nested ``[``, a server that takes the request and never answers, one that answers a byte
at a time. Each ends as one error a caller can catch (a submit as uncertain, never sent
again blind), within one attempt's deadline and with bounded memory; the listing and the
downloads, whose answers are rightly large, are not cut.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from _cli import cli
from _helpers import DEADLINE, KEY, NO_LIMITS, QUICK_RETRY, eventually, raises_clean
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from leonardo_async import (
    LeonardoClient,
    MockTransport,
    Request,
    Response,
    RetryPolicy,
    SubmitUncertainError,
    Timeouts,
    TransportError,
)
from leonardo_async import _wire as wire
from leonardo_async._errors import BadJSONError
from leonardo_async._wire._json import MAX_DEPTH

PREFIX = "/api/rest/v1"
MIB = 1 << 20
ME = {
    "user_details": [
        {
            "user": {"id": "u1", "username": "hostile"},
            "apiConcurrencySlots": 10,
            "apiSubscriptionTokens": 1000,
            "apiPaidTokens": 0,
        }
    ]
}
#: The quickest attempts: these tests are about what ends an attempt, not about backoff.
SHORT = Timeouts(connect=2.0, api=0.5)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Hostile:
    """A loopback server whose routes a test sets, counting the requests to each."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self.seen: Counter[str] = Counter()
        self.base_url = ""
        self.origin = ""

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.removeprefix(PREFIX)
        self.seen[f"{request.method} {path}"] += 1
        handler = self.routes.get((request.method, path))
        if handler is None:
            return web.json_response(ME) if path == "/me" else web.Response(status=404)
        return await handler(request)


@pytest.fixture
async def hostile() -> AsyncIterator[Hostile]:
    """A :class:`Hostile` server on a free loopback port, for the test's length."""
    server = Hostile()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server._dispatch)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.origin = f"http://127.0.0.1:{port}"
    server.base_url = server.origin + PREFIX
    try:
        yield server
    finally:
        await runner.cleanup()


def client_on(server: Hostile, **options: Any) -> LeonardoClient:
    settings: dict[str, Any] = {"limits": NO_LIMITS, "retry": QUICK_RETRY, **options}
    return LeonardoClient(KEY, base_url=server.base_url, **settings)


async def endless(request: web.Request) -> web.StreamResponse:
    """A 200 whose body never ends (chunked, a megabyte after another)."""
    response = web.StreamResponse(headers={"content-type": "application/json"})
    await response.prepare(request)
    await response.write(b'{"user_details": [')
    with contextlib.suppress(ConnectionError):  # the client stopped reading
        while True:
            await response.write(b" " * MIB)
    return response


async def huge(request: web.Request) -> web.StreamResponse:
    """A 200 that says, and sends, a body of 64 MiB."""
    response = web.StreamResponse(headers={"content-type": "application/json"})
    response.content_length = 64 * MIB
    await response.prepare(request)
    with contextlib.suppress(ConnectionError):  # the client stopped reading
        for _ in range(64):
            await response.write(b" " * MIB)
    return response


async def nested(request: web.Request) -> web.StreamResponse:
    """100,000 ``[`` and nothing else: ``json.loads`` alone recurses until it breaks."""
    return web.Response(body=b"[" * 100_000, content_type="application/json")


async def silent(request: web.Request) -> web.StreamResponse:
    """Takes the request and never answers."""
    await request.read()
    await anyio.sleep_forever()
    raise AssertionError("unreachable")


async def drip(request: web.Request) -> web.StreamResponse:
    """Answers at once, then one byte of the body every 50 ms, forever."""
    response = web.StreamResponse(headers={"content-type": "application/json"})
    await response.prepare(request)
    with contextlib.suppress(ConnectionError):  # the client gave up
        while True:
            await response.write(b" ")
            await anyio.sleep(0.05)
    return response


@pytest.mark.parametrize("handler", [endless, huge], ids=["endless", "huge"])
async def test_an_answer_over_the_limit_is_read_no_further(
    hostile: Hostile, handler: Handler
) -> None:
    """A /me that never ends (or is 64 MiB) is a TransportError naming the limit."""
    hostile.routes["GET", "/me"] = handler
    with anyio.fail_after(DEADLINE):  # without the cap: memory grows until the deadline
        async with client_on(hostile) as client:
            with raises_clean(TransportError, match="over 1 MiB") as info:
                await client.me()
    assert "/me" in info.value.url
    assert hostile.seen["GET /me"] == QUICK_RETRY.attempts  # a bad body: tried again


async def test_a_listing_page_may_be_larger_than_other_answers(hostile: Hostile) -> None:
    """The listing's own, larger limit: a 2 MiB page of long prompts is read whole."""
    entry = {"id": "g1", "status": "COMPLETE", "prompt": "x" * (2 * MIB)}

    async def page(request: web.Request) -> web.StreamResponse:
        return web.json_response({"generations": [entry]})

    hostile.routes["GET", "/generations/user/u1"] = page
    with anyio.fail_after(DEADLINE):
        async with client_on(hostile) as client:
            generations = await client.list_generations(user_id="u1")
    assert [g.id for g in generations] == ["g1"]


async def test_a_download_is_not_cut_at_an_answer_limit(hostile: Hostile, tmp_path: Path) -> None:
    """A video is streamed to its file, however far past the API's answer limit."""
    video = bytes(range(256)) * (12 * MIB // 256)

    async def cdn(request: web.Request) -> web.StreamResponse:
        return web.Response(body=video, content_type="video/mp4")

    hostile.routes["GET", "/video.mp4"] = cdn
    with anyio.fail_after(DEADLINE):
        async with client_on(hostile) as client:
            path = await client.download(hostile.origin + PREFIX + "/video.mp4", tmp_path / "v.mp4")
    assert path.read_bytes() == video


async def test_deep_nesting_is_a_bad_answer_not_a_recursion_error(hostile: Hostile) -> None:
    """100,000 nested ``[`` is a TransportError that says so, never a RecursionError."""
    hostile.routes["GET", "/me"] = nested
    with anyio.fail_after(DEADLINE):
        async with client_on(hostile) as client:
            with raises_clean(TransportError, match="nested deeper than 64 levels"):
                await client.me()


@pytest.mark.parametrize("handler", [silent, drip], ids=["silent", "drip"])
async def test_no_answer_in_time_ends_each_attempt_with_a_warning(
    hostile: Hostile, handler: Handler, caplog: pytest.LogCaptureFixture
) -> None:
    """A silent or dripping server: each attempt ends at Timeouts.api, each retry is a
    WARNING naming the request, the failure and the retry, and then a TransportError."""
    hostile.routes["GET", "/me"] = handler
    retry = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02)
    caplog.set_level(logging.WARNING, logger="leonardo_async")
    with anyio.fail_after(DEADLINE):
        async with client_on(hostile, retry=retry, timeouts=SHORT) as client:
            with raises_clean(TransportError, match="no answer in time"):
                await client.me()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    for number, message in enumerate(warnings, 1):
        assert message.startswith("GET " + hostile.base_url + "/me failed (no answer in time")
        assert f"retry {number} of 2" in message
    assert hostile.seen["GET /me"] == 3


@pytest.mark.parametrize("handler", [silent, endless, nested], ids=["silent", "endless", "nested"])
async def test_a_submit_without_a_usable_answer_is_uncertain_and_never_resent(
    hostile: Hostile, handler: Handler
) -> None:
    """The submit's answer never comes, never ends or nests too deep: it may have made the
    job, so it is looked for in the listing (empty here) and left uncertain, sent once."""

    async def empty(request: web.Request) -> web.StreamResponse:
        return web.json_response({"generations": []})

    hostile.routes["POST", "/generations-image-to-video"] = handler
    hostile.routes["GET", "/generations/user/u1"] = empty
    with anyio.fail_after(DEADLINE):
        async with client_on(hostile, timeouts=SHORT, listing_lag=0.05) as client:
            with raises_clean(SubmitUncertainError):
                await client.image_to_video(prompt="waves", image="init-image-id")
    assert hostile.seen["POST /generations-image-to-video"] == 1
    assert hostile.seen["GET /generations/user/u1"] >= 1


async def test_a_submit_that_found_no_connection_in_time_was_not_sent(hostile: Hostile) -> None:
    """The only connection is held by a silent request: the submit waits for one past
    Timeouts.connect, so nothing left and it may be tried again (NotSent), never taken
    for a maybe-made job; the server never sees it."""
    hostile.routes["GET", "/me"] = silent
    timeouts = Timeouts(connect=0.3, api=20.0)
    with anyio.fail_after(DEADLINE):
        async with (
            client_on(hostile, timeouts=timeouts, max_connections=1) as client,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(client.me)  # holds the one connection, never answered
            await eventually(lambda: hostile.seen["GET /me"] == 1)
            with raises_clean(TransportError, match="no connection in time") as info:
                await client.image_to_video(prompt="waves", image="init-image-id")
            tg.cancel_scope.cancel()
    assert not isinstance(info.value, SubmitUncertainError)
    assert hostile.seen["POST /generations-image-to-video"] == 0


async def test_a_transport_that_reads_past_the_limit_is_held_to_it() -> None:
    """A custom transport that hands over a whole 2 MiB /me (ignoring ``max_answer``):
    the connection still refuses it, having asked for at most 1 MiB."""
    asked: list[int | None] = []

    def handler(request: Request) -> Response:
        asked.append(request.max_answer)
        return Response(200, {}, b'{"user_details": []}' + b" " * (2 * MIB))

    retry = RetryPolicy(attempts=1)
    transport = MockTransport(handler)
    async with LeonardoClient(KEY, transport=transport, limits=NO_LIMITS, retry=retry) as client:
        with raises_clean(TransportError, match="over 1 MiB"):
            await client.me()
    assert asked == [MIB]


def test_the_default_attempt_deadline_is_at_most_30_seconds() -> None:
    """A user hears of a server that does not answer within about 30 s, not minutes."""
    assert Timeouts().api <= 30.0


@pytest.mark.parametrize("handler", [endless, nested], ids=["endless", "nested"])
async def test_the_cli_says_one_line_and_exits_3(
    hostile: Hostile,
    handler: Handler,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``account`` on a hostile /me: exit 3, one error line, no traceback, no key."""
    hostile.routes["GET", "/me"] = handler
    monkeypatch.setenv("LEONARDO_API_KEY", KEY)
    monkeypatch.setenv("LEONARDO_BASE_URL", hostile.base_url)
    with anyio.fail_after(DEADLINE):
        assert await cli("account") == 3
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("leonardo-async: error:")]
    assert len(errors) == 1, err
    assert "/me" in errors[0]
    assert "Traceback" not in err
    assert KEY not in err


@given(depth=st.integers(min_value=0, max_value=3 * MAX_DEPTH))
def test_json_nesting_is_read_up_to_the_limit_and_refused_past_it(depth: int) -> None:
    """Arrays and objects nested ``depth`` deep: read up to MAX_DEPTH, BadJSONError past it."""
    value: Any = 0
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    text = json.dumps(value)
    if depth <= MAX_DEPTH:
        assert wire.loads(text.encode()) == value
    else:
        with pytest.raises(BadJSONError, match="nested deeper"):
            wire.loads(text.encode())


@pytest.mark.parametrize("raw", [b"[" * 100_000, b'{"a":' * 100_000, b"{not json", b"\xff"])
def test_bytes_that_are_no_readable_json_are_bad_json(raw: bytes) -> None:
    """Whatever the bytes, reading them ends in BadJSONError (a ValueError), nothing else."""
    with pytest.raises(BadJSONError):
        wire.loads(raw)


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
async def test_a_bounded_read_is_still_seen_by_the_sessions_trace_configs(
    hostile: Hostile, chunked: bool
) -> None:
    """Whether the answer announces its length (read whole) or not (read piece by piece
    under the limit), a caller's ``on_response_chunk_received`` sees the body: the
    doctor's transcript and users' tracing depend on it."""

    async def me(request: web.Request) -> web.StreamResponse:
        if not chunked:
            return web.json_response(ME)
        response = web.StreamResponse(headers={"content-type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(json.dumps(ME).encode())
        await response.write_eof()
        return response

    hostile.routes["GET", "/me"] = me
    received = bytearray()

    async def on_chunk(_: aiohttp.ClientSession, __: Any, params: Any) -> None:
        received.extend(params.chunk)

    trace = aiohttp.TraceConfig()
    trace.on_response_chunk_received.append(on_chunk)
    async with (
        aiohttp.ClientSession(trace_configs=[trace]) as session,
        client_on(hostile, session=session) as client,
    ):
        account = await client.me()
    assert account.username == "hostile"
    assert json.loads(received) == ME
