"""WebhookReceiver.serve() on a port strangers can reach: slow headers and bodies are cut
off, unauthenticated connections are bounded, and the HTTP error log cannot flood.

Raw sockets over loopback play the attacker; no timing is asserted (each wait is only a
generous bound that turns a hang into a failure).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import anyio
import pytest
from anyio.abc import SocketStream
from test_webhook import KEY, client, leonardo_simulator_config, session  # noqa: F401
from yarl import URL

from leonardo_async import LeonardoClient, WebhookReceiver
from leonardo_async.webhook import LOG_RECORDS_PER_MINUTE

BOUND = 30.0


async def connect(url: str) -> SocketStream:
    parsed = URL(url)
    assert parsed.host is not None
    assert parsed.port is not None
    return await anyio.connect_tcp(parsed.host, parsed.port)


async def closed_by_server(stream: SocketStream) -> bool:
    """Read until the server closes the connection (True) or answers (False)."""
    with anyio.fail_after(BOUND):
        try:
            data = await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
            return True
    return data == b""


@pytest.fixture
async def quick(client: LeonardoClient) -> AsyncIterator[tuple[WebhookReceiver, str]]:  # noqa: F811
    """A receiver with a 0.3 s read timeout, serving at most 4 waiting connections."""
    served = WebhookReceiver(client, callback_key=KEY, read_timeout=0.3)
    async with served.serve(max_connections=4) as url:
        yield served, url


async def test_slow_headers_are_cut_off(quick: tuple[WebhookReceiver, str]) -> None:
    """Half a request line, then silence: the server closes the connection."""
    _, url = quick
    async with await connect(url) as stream:
        await stream.send(b"POST /leonardo/webhook HTTP/1.1\r\nHost: x\r\n")
        assert await closed_by_server(stream)


async def test_a_slow_body_is_408(quick: tuple[WebhookReceiver, str]) -> None:
    """Headers with the right key, then a body that never comes: 408, counted as slow."""
    receiver, url = quick
    head = (
        "POST /leonardo/webhook HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {KEY}\r\nContent-Length: 100\r\n\r\n"
    )
    async with await connect(url) as stream:
        await stream.send(head.encode())
        with anyio.fail_after(BOUND):
            answer = await stream.receive()
    assert answer.startswith(b"HTTP/1.1 408")
    assert receiver.statistics().rejected["slow"] == 1


async def test_idle_connections_past_the_bound_are_dropped_and_callbacks_still_land(
    quick: tuple[WebhookReceiver, str],
    session: object,  # noqa: F811
) -> None:
    """Ten idle sockets against a bound of four: the extra ones are closed at once; once
    the idle ones time out, a real callback is answered."""
    _, url = quick
    idle = [await connect(url) for _ in range(10)]
    try:
        dropped = [await closed_by_server(stream) for stream in idle[4:]]
        assert dropped == [True] * 6
        for stream in idle[:4]:
            assert await closed_by_server(stream)  # the read timeout frees the rest
    finally:
        for stream in idle:
            await stream.aclose()
    async with session.post(  # type: ignore[attr-defined]
        url, json={"type": "other"}, headers={"Authorization": f"Bearer {KEY}"}
    ) as response:
        assert response.status == 202


async def test_the_http_error_log_is_rate_limited(
    quick: tuple[WebhookReceiver, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Two hundred garbage requests log at most a minute's allowance of records."""
    _, url = quick
    caplog.set_level(logging.DEBUG, logger="leonardo_async.webhook.http")
    for _ in range(200):
        async with await connect(url) as stream:
            await stream.send(b"\x16\x03\x01 not http at all\r\n\r\n")
            await closed_by_server(stream)
    records = [r for r in caplog.records if r.name == "leonardo_async.webhook.http"]
    assert len(records) <= LOG_RECORDS_PER_MINUTE
