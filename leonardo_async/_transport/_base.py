"""The transport seam: one coroutine that turns a :class:`Request` into a :class:`Response`.

Everything above this module (auth, limits, retries, error mapping, uploads, downloads)
speaks these two values; only :class:`~._aiohttp.AiohttpTransport` knows aiohttp. Tests of
the client, the tracker and the batch plug in :class:`~._mock.MockTransport` with a plain
function instead of a server, the way httpx's ``MockTransport`` works::

    def handler(request: Request) -> Response:
        return Response.json(200, {"generations_by_pk": None})

    async with LeonardoClient("key", transport=MockTransport(handler)) as client: ...

A failure below HTTP is raised as one of two errors, because the layer above decides by
them whether a request may be sent again: :class:`NotSentError` (the connection was never
made, nothing reached the server) and :class:`MaybeSentError` (cut off, timed out, garbled:
the server may have acted on it).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol

import attrs

from .._errors import MaybeSentError, NotSentError

__all__ = [
    "Form",
    "MaybeSentError",
    "NotSentError",
    "Request",
    "Response",
    "Transport",
]


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
    :param max_answer: the most bytes of the answer's body to read (``None``: all of it).
        A transport stops reading one byte past it, so that a body longer than the
        bound arrives as ``max_answer + 1`` bytes and the caller can tell it was cut;
        an answer that never ends then costs that much memory and no more
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
    max_answer: int | None = None

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
