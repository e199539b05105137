"""An optional receiver for Leonardo's webhook callbacks, feeding the job tracker.

Leonardo can POST a callback when a generation finishes (configured once per production
API key: an HTTPS URL plus an optional callback key, sent back as ``authorization: Bearer
<key>``; there is no signature). The only documented event is
``image_generation.complete``, and whether video jobs fire it at all is not documented.
So a callback only *speeds up* completion: the tracker resolves a job the moment its
callback arrives, and keeps polling every job on its schedule as the safety net for
callbacks that never come, arrive before the job is tracked, or are lost on the way.

Behind a load balancer any replica may receive any job's callback. A receiver of a
client made with ``redis=`` passes each callback it accepts to every client of the key
on that Redis (``LeonardoClient.notify``), so the replica waiting on the job ends it at
once; Redis slow or gone delays only that (the answer never waits for Redis), and
polling still ends the job.

Mount :attr:`WebhookReceiver.handler` on your own :mod:`aiohttp.web` application, or let
:meth:`WebhookReceiver.serve` run a small server of its own::

    receiver = WebhookReceiver(client, callback_key=os.environ["LEONARDO_CALLBACK_KEY"])
    app.router.add_post("/leonardo/webhook", receiver.handler)
    # or
    async with receiver.serve(host="0.0.0.0", port=8080) as url:
        ...

The handler answers every request without raising: 401 for a missing or wrong callback
key, 413 for a body over ``max_body``, 400 for a body that is not JSON or not a callback,
202 for event types it does not handle, and 200 otherwise (a generation that is not
tracked is simply ignored). A callback is trusted only as far as its key: with no
``callback_key``, anyone who can reach the receiver can finish or fail tracked jobs and
hand out video URLs.

:meth:`~WebhookReceiver.serve` is hardened for a port the internet can reach, but is not
a full web server: each connection gets ``read_timeout`` to send its request line,
headers and body, at most ``max_connections`` may wait unauthenticated at once (more
are dropped), and the HTTP layer's error log is rate-limited. In production, put a TLS
reverse proxy in front of it (nginx, Caddy, a cloud load balancer) with its own
timeouts and connection limits.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from types import MappingProxyType
from typing import Any, Final

import aiohttp
import anyio
import attrs
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from . import _wire as wire
from ._client import LeonardoClient
from ._errors import ResponseShapeError, ValidationError
from ._tracking import JobTracker
from ._validate import MAX_SECONDS, MIN_SECONDS, number
from .models import Generation

__all__ = ["WebhookReceiver", "WebhookStatistics"]

logger = logging.getLogger("leonardo_async")

#: Largest callback body read by default; a generation callback is a few kilobytes.
DEFAULT_MAX_BODY: Final = 256 * 1024
#: Event types handled by default: the one Leonardo documents.
DEFAULT_EVENT_TYPES: Final = ("image_generation.complete",)
#: Where :meth:`WebhookReceiver.serve` mounts the handler.
DEFAULT_PATH: Final = "/leonardo/webhook"
#: Seconds a caller has to send its request (line, headers, then body).
DEFAULT_READ_TIMEOUT: Final = 10.0
#: Connections :meth:`WebhookReceiver.serve` lets wait unauthenticated at once.
DEFAULT_MAX_CONNECTIONS: Final = 64
#: HTTP-layer error records logged per minute by :meth:`WebhookReceiver.serve`.
LOG_RECORDS_PER_MINUTE: Final = 20
_SOURCE: Final = "webhook callback"
_MAX_DETAIL: Final = 200


def _frozen_counts(value: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(value))


@attrs.frozen
class WebhookStatistics:
    """A snapshot of what a :class:`WebhookReceiver` has received.

    :param accepted: authenticated, well-formed callbacks of a handled event type
    :param ignored: authenticated, well-formed callbacks of other event types
    :param resolved: accepted callbacks that finished a tracked job (complete or failed)
    :param rejected: refused requests per reason: ``"unauthorized"`` (401),
        ``"too_large"`` (413), ``"unreadable"`` (the body could not be read),
        ``"malformed_json"`` and ``"bad_shape"`` (400)
    """

    accepted: int = 0
    ignored: int = 0
    resolved: int = 0
    rejected: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_counts)


class WebhookReceiver:
    """Receives Leonardo's callbacks and resolves tracked jobs as they arrive.

    Polling stays on: Leonardo documents only ``image_generation.complete`` and not
    whether video jobs send it, so callbacks make completion faster, never required.

    :param tracker: the client to feed (with ``redis=``, every client of the key on that
        Redis hears each accepted callback too), or a tracker of one's own
    :param callback_key: the callback key configured with the API key; requests must
        carry ``authorization: Bearer <callback_key>``. ``None`` accepts every request
        (a warning is logged): only for receivers no one else can reach.
    :param max_body: largest body accepted, in bytes; larger ones get 413
    :param event_types: callback ``type`` values that carry a generation; others are
        acknowledged with 202 and ignored
    :param read_timeout: seconds a caller has to send its body (408 after), and, under
        :meth:`serve`, its request line and headers (the connection is closed after)
    """

    def __init__(
        self,
        tracker: JobTracker | LeonardoClient,
        *,
        callback_key: str | None,
        max_body: int = DEFAULT_MAX_BODY,
        event_types: Collection[str] = DEFAULT_EVENT_TYPES,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
    ) -> None:
        if callback_key is not None and (not isinstance(callback_key, str) or not callback_key):
            raise ValidationError("callback_key", "<not shown>", "a non-empty string or None")
        if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 1:
            raise ValidationError("max_body", max_body, "a positive number of bytes")
        self._tracker = tracker
        self._key = None if callback_key is None else _key_bytes(callback_key)
        self.max_body = max_body
        self.event_types = frozenset(event_types)
        number("read_timeout", read_timeout, MIN_SECONDS, MAX_SECONDS)
        self.read_timeout = read_timeout
        self._gate: _Gate | None = None
        self._accepted = self._ignored = self._resolved = 0
        self._rejected: Counter[str] = Counter()
        if self._key is None:
            logger.warning(
                "webhook receiver has no callback key: any caller that reaches it can "
                "finish or fail tracked jobs"
            )

    def __repr__(self) -> str:
        auth = "with callback key" if self._key is not None else "without callback key"
        return f"<WebhookReceiver {auth}, {self._accepted} accepted>"

    def statistics(self) -> WebhookStatistics:
        """A snapshot of the requests received so far."""
        return WebhookStatistics(
            accepted=self._accepted,
            ignored=self._ignored,
            resolved=self._resolved,
            rejected=self._rejected,
        )

    # --- the handler --------------------------------------------------------------------

    async def handler(self, request: web.Request) -> web.Response:
        """Handle one callback POST (mount this on an :mod:`aiohttp.web` router).

        Answers at once; a finished job's handle is resolved before the answer is sent.
        """
        if not self._authorized(request.headers.get("Authorization")):
            logger.info("webhook request from %s refused: bad callback key", request.remote)
            return self._reject("unauthorized", 401, "missing or wrong callback key")
        if self._gate is not None:
            self._gate.admit(request.protocol)
        length = request.content_length
        if length is not None and length > self.max_body:
            return self._reject("too_large", 413, f"body over {self.max_body} bytes")
        try:
            with anyio.fail_after(self.read_timeout):
                body = await self._read(request)
        except TimeoutError:
            return self._reject("slow", 408, f"body not sent within {self.read_timeout:g} s")
        except (aiohttp.ClientError, HttpProcessingError, OSError):
            return self._reject("unreadable", 400, "request body could not be read")
        if body is None:
            return self._reject("too_large", 413, f"body over {self.max_body} bytes")
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return self._reject("malformed_json", 400, "body is not JSON")
        try:
            event = wire.structure(data, wire.CallbackEvent, _SOURCE)
            if event.type not in self.event_types:
                self._ignored += 1
                return web.json_response({"ignored": "event type not handled"}, status=202)
            generation = wire.structure(data, wire.GenerationCallback, _SOURCE).generation()
        except ResponseShapeError as exc:
            return self._reject("bad_shape", 400, "; ".join(exc.problems))
        self._accepted += 1
        resolved = self._notify(generation)
        return web.json_response({"resolved": resolved})

    def _authorized(self, header: str | None) -> bool:
        """Whether ``header`` carries the callback key, compared in constant time."""
        if self._key is None:
            return True
        scheme, _, token = (header or "").strip().partition(" ")
        given = _key_bytes(token.strip())
        # Compare even when the scheme is wrong, so the answer takes the same path.
        return hmac.compare_digest(given, self._key) and scheme.lower() == "bearer"

    async def _read(self, request: web.Request) -> bytes | None:
        """The whole body, or ``None`` once it grows past ``max_body``.

        Reads the stream directly, so a chunked body with no ``Content-Length`` is
        bounded too (and an application's own ``client_max_size`` does not apply).
        """
        body = bytearray()
        async for chunk in request.content.iter_any():
            body += chunk
            if len(body) > self.max_body:
                return None
        return bytes(body)

    def _notify(self, generation: Generation) -> bool:
        """Feed the tracker; whether that finished a tracked job."""
        try:
            resolved = self._tracker.notify(generation)
        except Exception:
            # The job's handle is settled before progress callbacks run, so a callback's
            # failure is the application's to see in the log, not Leonardo's as a 500.
            logger.exception("tracker failed on the callback for %s", generation.id)
            resolved = True
        if resolved:
            self._resolved += 1
            logger.debug("generation %s resolved by webhook", generation.id)
        return resolved

    def _reject(self, reason: str, status: int, detail: str) -> web.Response:
        self._rejected[reason] += 1
        return web.json_response({"error": detail[:_MAX_DETAIL]}, status=status)

    # --- a server of its own ------------------------------------------------------------

    @asynccontextmanager
    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        path: str = DEFAULT_PATH,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> AsyncIterator[str]:
        """Run a small HTTP server for the handler; yield its callback URL.

        Leonardo needs a public HTTPS URL, so in production this sits behind a TLS
        proxy or tunnel; the yielded URL is the local one. The server stops on exit.

        :param host: interface to bind; a wildcard address yields a loopback URL
        :param port: port to bind; ``0`` picks a free one
        :param path: where the handler is mounted
        :param max_connections: connections that may wait unauthenticated at once; more
            are closed as they arrive (each waits at most ``read_timeout``)
        """
        number("max_connections", max_connections, 1, 100_000, integer=True)
        app = web.Application(client_max_size=self.max_body)
        app.router.add_post(path, self.handler)
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=5.0,
            keepalive_timeout=self.read_timeout,
            logger=_rate_limited(logging.getLogger("leonardo_async.webhook.http")),
        )
        await runner.setup()
        self._gate = _Gate(runner.server, max_connections, self.read_timeout)
        server = None
        try:
            loop = asyncio.get_running_loop()
            server = await loop.create_server(self._gate, host, port)
            yield _url(server.sockets[0].getsockname(), path)
        finally:
            if server is not None:
                server.close()
            await runner.cleanup()  # closes the connections it handles
            if self._gate is not None:
                self._gate.close_all()
            self._gate = None


class _Gate:
    """The listening socket's protocol factory, bounding what unauthenticated callers hold.

    A connection counts as waiting from its accept until the handler has its headers
    and the right key: at most ``limit`` wait at once (more are closed as they come),
    and each is closed if still waiting after ``timeout`` (a slow-headers attack).
    """

    def __init__(self, server: web.Server | None, limit: int, timeout: float) -> None:
        assert server is not None
        self._server = server
        self._limit = limit
        self._timeout = timeout
        #: Each leaves when admitted or when its timer fires, so this stays bounded.
        self._waiting: set[Any] = set()

    def __call__(self) -> Any:
        protocol = self._server()
        loop = asyncio.get_running_loop()
        if len(self._waiting) >= self._limit:
            loop.call_soon(self._drop, protocol, 2)
        else:
            self._waiting.add(protocol)
            loop.call_later(self._timeout, self._expire, protocol)
        return protocol

    def close_all(self) -> None:
        """Close the connections still waiting (the server is going away)."""
        for protocol in list(self._waiting):
            self._drop(protocol, 0)
        self._waiting.clear()

    def admit(self, protocol: Any) -> None:
        """The caller has sent its headers and the right key: no longer bounded here."""
        self._waiting.discard(protocol)

    def _expire(self, protocol: Any) -> None:
        if protocol in self._waiting:
            self._waiting.discard(protocol)
            self._drop(protocol, 0)

    def _drop(self, protocol: Any, tries: int) -> None:
        transport = protocol.transport
        if transport is None and tries > 0:  # not connected yet: connection_made is next
            asyncio.get_running_loop().call_soon(self._drop, protocol, tries - 1)
        elif transport is not None:
            transport.close()


class _RateLimit(logging.Filter):
    """Passes ``per_minute`` records a minute; counts the rest and says so once it may."""

    def __init__(self, per_minute: int) -> None:
        super().__init__()
        self._per_minute = per_minute
        self._start = time.monotonic()
        self._passed = self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now - self._start >= 60.0:
            if self._suppressed:
                record.msg = f"{record.getMessage()} ({self._suppressed} more suppressed)"
                record.args = None
            self._start, self._passed, self._suppressed = now, 0, 0
        self._passed += 1
        if self._passed > self._per_minute:
            self._suppressed += 1
            return False
        return True


def _rate_limited(log: logging.Logger) -> logging.Logger:
    if not any(isinstance(f, _RateLimit) for f in log.filters):
        log.addFilter(_RateLimit(LOG_RECORDS_PER_MINUTE))
    return log


def _key_bytes(key: str) -> bytes:
    # surrogatepass: header text may hold escaped undecodable bytes; never raise on it.
    return key.encode("utf-8", "surrogatepass")


def _url(address: Any, path: str) -> str:
    """The callback URL of a bound socket address (wildcards become loopback)."""
    host, port = address[0], address[1]
    if host in ("0.0.0.0", ""):  # noqa: S104 - mapping a wildcard, not binding one
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}{path}"
