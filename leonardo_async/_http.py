"""The transport seam: one coroutine that turns a :class:`Request` into a :class:`Response`.

Everything above this module (auth, limits, retries, error mapping, uploads, downloads)
speaks these two values; only :class:`AiohttpTransport` knows aiohttp. Tests of the client,
the tracker and the batch plug in :class:`MockTransport` with a plain function instead of a
server, the way httpx's ``MockTransport`` works::

    def handler(request: Request) -> Response:
        return Response.json(200, {"generations_by_pk": None})

    async with LeonardoClient("key", transport=MockTransport(handler)) as client: ...

A failure below HTTP is raised as one of two errors, because the layer above decides by
them whether a request may be sent again: :class:`NotSentError` (the connection was never
made, nothing reached the server) and :class:`MaybeSentError` (cut off, timed out, garbled:
the server may have acted on it).
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Final, Protocol

import aiohttp
import attrs

from ._errors import MaybeSentError, NotSentError

__all__ = [
    "AiohttpTransport",
    "MaybeSentError",
    "MockTransport",
    "NotSentError",
    "Request",
    "Response",
    "Transport",
]

#: What an aiohttp timeout raises: ``asyncio.TimeoutError``, which is the builtin
#: ``TimeoutError`` only from Python 3.11 on (on 3.10 it is a class of its own).
TIMEOUT_ERRORS: Final = (TimeoutError, asyncio.TimeoutError)


@attrs.frozen
class Form:
    """A multipart form with one file part, which goes last (as S3 requires)."""

    fields: Mapping[str, str]
    filename: str
    data: bytes
    content_type: str


@attrs.frozen
class Request:
    """One HTTP request, before it is sent.

    :param json: a value to send as a JSON body
    :param form: a multipart form to send instead
    :param timeout: seconds for the whole exchange (``None``: unbounded, for streams)
    :param connect_timeout: seconds to open a connection
    :param read_timeout: the longest pause between two chunks (``None``: no such bound)
    :param stream: leave the body unread, for :meth:`Response.iter_chunks`
    """

    method: str
    url: str
    headers: Mapping[str, str] = attrs.field(factory=dict)
    json: Any = None
    params: Mapping[str, str | int] | None = None
    form: Form | None = None
    timeout: float | None = 60.0
    connect_timeout: float = 10.0
    read_timeout: float | None = None
    stream: bool = False

    def __repr__(self) -> str:  # the headers carry the key
        return f"<Request {self.method} {self.url.split('?')[0]}>"


async def _no_chunks() -> AsyncIterator[bytes]:
    return
    yield


async def _nothing() -> None:
    return None


@attrs.frozen
class Response:
    """An HTTP answer: read whole, or (for a streamed request) as chunks.

    :param chunks: the body of a streamed answer, once
    :param release: frees the connection of a streamed answer
    """

    status: int
    headers: Mapping[str, str] = attrs.field(factory=dict)
    body: bytes = b""
    chunks: AsyncIterator[bytes] = attrs.field(factory=_no_chunks, repr=False)
    release: Callable[[], Awaitable[None]] = attrs.field(default=_nothing, repr=False)

    @classmethod
    def json(cls, status: int, value: Any, headers: Mapping[str, str] | None = None) -> Response:
        """An answer with ``value`` as its JSON body."""
        return cls(status, {"content-type": "application/json", **(headers or {})},
                   json.dumps(value).encode())  # fmt: skip

    @property
    def content_length(self) -> int | None:
        """The ``Content-Length`` the server promised, if any."""
        value = next((v for k, v in self.headers.items() if k.lower() == "content-length"), None)
        return int(value) if value is not None and value.isdigit() else None

    def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body in chunks: the stream of a streamed answer, else the body at once."""
        return self.chunks if self.body == b"" else _once(self.body)


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


class Transport(Protocol):
    """What sends requests: one coroutine, a request in, a response out.

    It raises :class:`NotSentError` or :class:`MaybeSentError` for a failure below HTTP;
    an error status is a :class:`Response` like any other.
    """

    async def handle(self, request: Request) -> Response:
        """Send ``request`` and return the answer."""
        ...


Handler = Callable[[Request], "Response | Awaitable[Response]"]


class MockTransport:
    """An in-memory transport: ``handler`` (sync or async) maps each request to an answer."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler

    async def handle(self, request: Request) -> Response:
        """Ask the handler; it may raise :class:`NotSentError` or :class:`MaybeSentError`."""
        result = self._handler(request)
        if inspect.isawaitable(result):
            result = await result
        assert isinstance(result, Response), "a MockTransport handler returns a Response"
        return result


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
            for key, value in request.form.fields.items():
                data.add_field(key, value)
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
            async with resp:
                return Response(resp.status, dict(resp.headers), await resp.read())
        except aiohttp.ClientConnectorError as exc:
            raise NotSentError(describe(exc)) from None
        except (aiohttp.ClientError, *TIMEOUT_ERRORS) as exc:
            raise MaybeSentError(describe(exc)) from None


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
    (TimeoutError, "no answer in time"),
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
