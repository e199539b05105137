"""The default transport: requests sent over one aiohttp session.

The only module that knows aiohttp's types: it turns a :class:`~._base.Request` into an
aiohttp call and aiohttp's failures into :class:`NotSentError` (never reached the server)
or :class:`MaybeSentError` (may have), described in words a person can act on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

import aiohttp

from .._errors import MaybeSentError, NotSentError
from ._base import Request, Response

__all__ = ["AiohttpTransport", "describe"]

#: What an aiohttp timeout raises: ``asyncio.TimeoutError``, which is the builtin
#: ``TimeoutError`` only from Python 3.11 on (on 3.10 it is a class of its own).
TIMEOUT_ERRORS: Final = (TimeoutError, asyncio.TimeoutError)
#: What no connection in time raises, from aiohttp 3.10 on (``None`` before): the request
#: was never written, so like a refused connection it is safe to send again. Every other
#: timeout may have come after the request left, and 3.9 tells none apart.
CONNECT_TIMEOUT: Final[type[Exception] | None] = getattr(aiohttp, "ConnectionTimeoutError", None)


class AiohttpTransport:
    """The default transport: one aiohttp session, made on first use inside the loop.

    :param session: a session to use instead of one of our own (its owner closes it)
    :param max_connections: cap on simultaneous connections in our own session
    """

    def __init__(
        self, *, session: aiohttp.ClientSession | None = None, max_connections: int = 100
    ) -> None:
        self._session = session
        self._own_session = session is None
        self._max_connections = max_connections

    def _session_or_new(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, raise_for_status=False)
        return self._session

    async def aclose(self) -> None:
        """Close the session if it is ours."""
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def handle(self, request: Request) -> Response:
        """Send ``request`` over the session."""
        timeout = aiohttp.ClientTimeout(
            total=request.timeout, connect=request.connect_timeout, sock_read=request.read_timeout
        )
        data = None
        if request.form is not None:
            data = aiohttp.FormData()
            for name, value in request.form.fields.items():
                data.add_field(name, value)
            form = request.form
            data.add_field(
                "file", form.data, filename=form.filename, content_type=form.content_type
            )
        try:
            resp = await self._session_or_new().request(
                request.method,
                request.url,
                json=request.json,
                data=data,
                params=request.params,
                headers=dict(request.headers),
                timeout=timeout,
            )
            if request.stream:
                return Response(
                    resp.status, dict(resp.headers), chunks=_chunks(resp), release=_release(resp)
                )
            async with resp:  # leaving it with the body unread closes the connection
                body = await _read(resp, request.max_answer)
                return Response(resp.status, dict(resp.headers), body)
        except aiohttp.ClientConnectorError as exc:
            raise NotSentError(describe(exc)) from None
        except (aiohttp.ClientError, *TIMEOUT_ERRORS) as exc:
            if CONNECT_TIMEOUT is not None and isinstance(exc, CONNECT_TIMEOUT):
                raise NotSentError("no connection in time") from None
            raise MaybeSentError(describe(exc)) from None


async def _read(resp: aiohttp.ClientResponse, limit: int | None) -> bytes:
    """The body, or its first ``limit + 1`` bytes when it is longer: read as it arrives
    and given up on at once, so an answer that never ends cannot fill the memory.

    An answer whose announced length fits is read whole by aiohttp, as any other; one read
    here piece by piece is then told to the session's trace configs as aiohttp's own read
    tells them (``on_response_chunk_received``), so that a caller's tracing (the doctor's
    transcript, a user's ``trace_configs``) sees every answer however it was framed.
    """
    if limit is None or (resp.content_length is not None and resp.content_length <= limit):
        return await resp.read()
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await resp.content.read(min(limit + 1 - size, 1 << 16))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    body = b"".join(parts)
    if size <= limit:
        for trace in getattr(resp, "_traces", ()):
            await trace.send_response_chunk_received(resp.method, resp.url, body)
    return body


async def _chunks(resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for chunk in resp.content.iter_chunked(1 << 16):
            yield chunk
    except (aiohttp.ClientError, *TIMEOUT_ERRORS) as exc:
        raise MaybeSentError(describe(exc)) from None


def _release(resp: aiohttp.ClientResponse) -> Callable[[], Awaitable[None]]:
    async def release() -> None:
        resp.release()

    return release


#: What a low-level failure means, for the ones whose text says little or nothing.
_MEANINGS: Final[tuple[tuple[type[BaseException], str], ...]] = (
    *((kind, "no answer in time") for kind in TIMEOUT_ERRORS),
    (aiohttp.ServerDisconnectedError, "the server closed the connection"),
    (aiohttp.ClientPayloadError, "the response was cut short"),
    (aiohttp.ClientConnectorError, "cannot connect"),
)


def describe(exc: BaseException) -> str:
    """A failure in words a person can act on (aiohttp's class names mean nothing to most)."""
    text = str(exc)
    meaning = next((words for kind, words in _MEANINGS if isinstance(exc, kind)), None)
    if meaning is None:
        return text or "the connection failed"
    if not text or text.startswith(("Server disconnected", "Connection timeout")):
        return meaning
    return text if isinstance(exc, aiohttp.ClientConnectorError) else f"{meaning} ({text})"
