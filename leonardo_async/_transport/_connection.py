"""The connection of one API key: timeouts, auth, limits, retries, error mapping.

The connection speaks JSON dicts, never models, so that the client above it is about
endpoints and the connection about HTTP; the bytes go through a :class:`~._base.Transport`
(aiohttp's by default, an in-memory one in unit tests). Three kinds of traffic leave here
and are kept apart on purpose:

* API calls (:meth:`Connection.call`) go to ``base_url`` with the ``authorization`` header,
  through the key's limits, retried when :func:`~leonardo_async._retry.retry_delay`
  allows;
* the presigned upload (:meth:`Connection.post_form`) goes to a storage host **without**
  the header: S3 rejects a second credential, and the key must never leave for a host
  other than the API;
* downloads (:meth:`Connection.stream`) go to the CDN, also without the header.

Every request has a bounded timeout, and every API answer a bounded size (:data:`ANSWER_LIMIT`
unless the call asks for more), read no further than one byte past it, and a bounded nesting
(:func:`~leonardo_async._wire.loads`): a server that never answers, never stops answering
or answers 100,000 nested ``[`` is an error within one attempt's deadline, never a hang, a
memory exhausted or a traceback. Errors name the method and URL, never the headers; and
since a proxy or gateway may echo the request's ``authorization`` header in its error page,
every answer is read with the key blanked out (:meth:`Connection._scrub`) before anything,
error or log line, is made from it.

A refused key (:class:`AuthenticationError`: 401/403, ``access-denied``, or the 500 that
Leonardo's authorization hook gives a malformed key) is raised at once: asking again cannot
help, and a refused request created nothing, so a refused submit is not uncertain either.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any, Final

import aiohttp
import anyio
import attrs
from yarl import URL

from .. import _wire as wire
from .._errors import (
    APIError,
    AuthenticationError,
    BadJSONError,
    ClientStateError,
    SubmitUncertainError,
    TransportError,
    ValidationError,
    hasura_error,
)
from .._limits import KeyLimiter, RequestKind
from .._retry import Failure, RetryPolicy, parse_retry_after, retry_delay
from .._validate import MAX_SECONDS, MIN_SECONDS, in_range
from ._aiohttp import AiohttpTransport
from ._base import Form, MaybeSentError, NotSentError, Request, Response, Transport
from ._clock import ServerClock
from ._options import CallOptions

__all__ = ["Connection", "Timeouts", "credentials"]

logger = logging.getLogger("leonardo_async")

DEFAULT_BASE_URL: Final = "https://cloud.leonardo.ai/api/rest/v1"
#: How the API root's path ends, on Leonardo and on the simulator.
API_ROOT_PATH: Final = URL(DEFAULT_BASE_URL).path
USER_AGENT: Final = "leonardo-async/0.1"

#: What stands in for the key wherever an answer repeated it.
REDACTED: Final = "[redacted]"

_SECONDS = in_range(MIN_SECONDS, MAX_SECONDS)

#: The largest answer an API call may have unless it says otherwise, in bytes: an account,
#: a generation, a submit's answer or an error take a few kilobytes, so a megabyte is
#: generous and still small (the listing asks for more, :mod:`.._listing._pages`).
ANSWER_LIMIT: Final = 1 << 20


@attrs.frozen
class Timeouts:
    """Bounds on every request, in seconds; none is ever unbounded.

    :param connect: to open a connection (and TLS)
    :param api: one attempt of an API call, the answer's body included: a server that
        takes the request and never answers is given up on after this long, the call
        retried with a warning (a submit looked for in the listing, never sent blind)
    :param upload: one whole presigned upload
    :param download_stall: the longest pause between two chunks of a download; a large
        video may take long, but never stall this long
    """

    connect: float = attrs.field(default=10.0, validator=_SECONDS)
    api: float = attrs.field(default=30.0, validator=_SECONDS)
    upload: float = attrs.field(default=120.0, validator=_SECONDS)
    download_stall: float = attrs.field(default=60.0, validator=_SECONDS)


def credentials(api_key: str | None, base_url: str | None) -> tuple[str, str]:
    """The key and the API root, as given or from ``LEONARDO_API_KEY`` and
    ``LEONARDO_BASE_URL``: read when a client is made (never at import) and checked
    before anything is sent.

    :raises ValidationError: no key, a key with spaces or control characters, or a root
        that is not an http(s) URL
    """
    key = api_key if api_key is not None else os.environ.get("LEONARDO_API_KEY")
    key = key.strip() if isinstance(key, str) else key
    if not key:
        raise ValidationError("api_key", "<missing>", "pass api_key= or set LEONARDO_API_KEY")
    if not key.isprintable() or any(c.isspace() for c in key):
        # Never shown: it is the secret, and its bad character could be a line break
        # that would split a header or a log line.
        raise ValidationError(
            "api_key",
            "<not shown>",
            "one line of visible characters: api_key (or LEONARDO_API_KEY) holds a "
            "space, a line break or a control character inside it",
        )
    url = base_url or os.environ.get("LEONARDO_BASE_URL") or DEFAULT_BASE_URL
    if not url.startswith(("http://", "https://")):
        raise ValidationError("base_url", url, "an http:// or https:// URL")
    return key, url


def _origin(url: URL) -> tuple[str, str | None, int | None]:
    return (url.scheme, url.host, url.port)


class Connection:
    """HTTP to one Leonardo API base URL with one key, inside ``async with`` only.

    :param api_key: the bearer key; kept private, never logged or shown
    :param base_url: the API root, e.g. ``https://cloud.leonardo.ai/api/rest/v1``
    :param limiter: the key's limits, shared with everything else using this key
    :param retry: how to retry requests that are safe to repeat
    :param timeouts: bounds on every request
    :param transport: what sends the bytes (default: aiohttp, closed with this connection)
    :param session: for the default transport: an aiohttp session to use instead of one
        of our own (its owner closes it)
    :param max_connections: for the default transport: cap on simultaneous connections
    :param clock: learns the server's clock offset from each answer's ``Date`` header
    """

    def __init__(
        self,
        api_key: str,
        base_url: str,
        *,
        limiter: KeyLimiter,
        retry: RetryPolicy,
        timeouts: Timeouts,
        transport: Transport | None = None,
        session: aiohttp.ClientSession | None = None,
        max_connections: int = 100,
        clock: ServerClock | None = None,
    ) -> None:
        if transport is not None and session is not None:
            raise ValidationError("session", "<session>", "no session when a transport is given")
        self._base = base_url.rstrip("/")
        self._base_origin = _origin(URL(self._base))
        #: The base URL, for a 404's message, when it lacks the API root's path.
        self._odd_root = None if self._base.endswith(API_ROOT_PATH) else self._base
        self._secret = api_key
        self._headers = {
            "authorization": f"Bearer {api_key}",
            "accept": "application/json",
            "user-agent": USER_AGENT,
        }
        self.limiter = limiter
        self.retry = retry
        self.timeouts = timeouts
        self._default = AiohttpTransport(session=session, max_connections=max_connections)
        self._transport: Transport = self._default if transport is None else transport
        #: Between ``__aenter__`` and ``aclose``: the only time a request may be sent.
        self._open = False
        self.requests_sent = 0
        self.clock = ServerClock() if clock is None else clock

    def __repr__(self) -> str:
        return f"<Connection {self._base}>"

    @property
    def base_url(self) -> str:
        """The API root this connection talks to."""
        return self._base

    def _check_open(self) -> None:
        if not self._open:  # a session made now would outlive the client, never closed
            raise ClientStateError(
                "the client is not open: send requests inside 'async with LeonardoClient()'"
            )

    async def _send(self, request: Request) -> Response:
        self._check_open()
        return await self._transport.handle(request)

    async def aclose(self) -> None:
        """Close the transport if it is ours; no request is sent after this."""
        self._open = False
        await self._default.aclose()  # a no-op unless it made a session

    async def __aenter__(self) -> Connection:
        if self._open:
            raise ClientStateError("the client is already open: enter it once")
        self._open = True
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def is_api_url(self, url: str) -> bool:
        """Whether ``url`` is on the API host (the only host that may see the key)."""
        return _origin(URL(url)) == self._base_origin

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str | int] | None = None,
        kind: RequestKind = RequestKind.READ,
        retry_refused: bool = True,
        max_answer: int = ANSWER_LIMIT,
        options: CallOptions | None = None,
        on_cancelled: Callable[[], None] | None = None,
    ) -> Any:
        """Send one API request and return its decoded JSON body.

        :param retry_refused: retry a 429 here; a caller that holds a scarce slot while
            it waits (a batch submit) says no, to queue again behind the others
        :param max_answer: the largest answer in bytes; a longer one is a bad body, read
            no further than that
        :param options: the calling method's timeout, headers and retries
        :param on_cancelled: called when the caller is cancelled while the request is on
            its way (written, or being written, and not answered): a submit so cut off
            may have made a job nobody will hear of

        Safe requests are retried on network errors, 5xx and 429. A submit
        (``kind=SUBMIT``) is retried only when it provably did not arrive or was refused
        with 429; otherwise :class:`SubmitUncertainError` is raised for the caller to
        reconcile.

        :raises APIError: the server answered with an error status (after retries)
        :raises TransportError: the network failed (after retries)
        """
        request = self.request(
            method, path, body=body, params=params, max_answer=max_answer, options=options
        )
        url = request.url
        policy = self.retry_policy(options)
        creates = kind is RequestKind.SUBMIT
        attempt = 0
        self._check_open()
        while True:
            attempt += 1
            await self.limiter.before(kind)
            started = time.perf_counter()
            status: int | None = None
            retry_after: float | None = None
            raw = b""
            failure: Failure
            try:
                self.requests_sent += 1
                sent_at = datetime.now(timezone.utc)
                try:
                    resp = await self._send(request)
                except anyio.get_cancelled_exc_class():
                    if on_cancelled is not None:
                        on_cancelled()
                    raise
                status = resp.status
                self.clock.observe_date(
                    _header(resp.headers, "date"),
                    sent=sent_at,
                    received=datetime.now(timezone.utc),
                )
                oversized = len(resp.body) > max_answer
                raw = self._scrub(resp.body[:max_answer])
                retry_after = parse_retry_after(_header(resp.headers, "retry-after"))
            except NotSentError as exc:
                failure, cause = Failure.NOT_SENT, self._scrub_text(str(exc))
            except MaybeSentError as exc:
                failure, cause = Failure.MAYBE_SENT, self._scrub_text(str(exc))
            else:
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug(
                        "%s %s -> %d in %.3f s", method, url, status, time.perf_counter() - started
                    )
                if status < 400 and oversized:
                    failure, cause = (
                        Failure.BAD_BODY,
                        f"HTTP {status} with an answer over {_size(max_answer)}, the most "
                        "this request may take (read no further)",
                    )
                elif status < 400:
                    try:
                        decoded = wire.loads(raw) if raw else None
                    except BadJSONError as exc:
                        failure, cause = (
                            Failure.BAD_BODY,
                            f"HTTP {status} with a body that is {exc}",
                        )
                    else:
                        self.limiter.on_success(kind)
                        return decoded
                else:
                    failure, cause = Failure.STATUS, f"HTTP {status}"
                    error = APIError.from_status(
                        status, method, url, _json_or_none(raw), api_root=self._odd_root
                    )
                    if isinstance(error, AuthenticationError):
                        raise error
                    if status == 429:
                        # Everyone pauses; a wait longer than we honour is not imposed on
                        # the other senders, and this request gives up with the server's
                        # figure in the error.
                        too_long = retry_after is not None and retry_after > policy.max_retry_after
                        reason, _ = hasura_error(_json_or_none(raw))
                        pause = self.limiter.on_rate_limited(
                            kind, None if too_long else retry_after, reason=reason
                        )
                        retry_after = retry_after if too_long else pause
            delay = retry_delay(
                policy,
                attempt=attempt,
                creates_generation=creates,
                failure=failure,
                status=status,
                retry_after=retry_after,
                rand=random.random(),
            )
            if delay is None or (status == 429 and not retry_refused):
                raise self._error(method, url, failure, cause, status, raw, retry_after, creates)
            # A refusal is the limiter's everyday business; anything else (no answer in
            # time, a cut connection, a 5xx, a bad body) is said at once, so that a person
            # watching sees within one attempt's deadline what is being tried again.
            logger.log(
                logging.INFO if status == 429 else logging.WARNING,
                "%s %s failed (%s); retry %d of %d in %.2f s",
                method,
                url,
                cause,
                attempt,
                policy.attempts - 1,
                delay,
            )
            if status != 429:
                await anyio.sleep(delay)
            # After a 429 the limiter's shared pause does the waiting for everyone.

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str | int] | None = None,
        max_answer: int = ANSWER_LIMIT,
        options: CallOptions | None = None,
    ) -> Request:
        """The API request :meth:`call` sends for these arguments (the key in it)."""
        headers: Mapping[str, str] = self._headers
        timeout = self.timeouts.api
        if options is not None:
            extra = {name.lower(): value for name, value in options.extra_headers.items()}
            headers = {**self._headers, **extra}  # never authorization: CallOptions refuses it
            timeout = _timeout(options, self.timeouts.api)
        return Request(
            method,
            self._base + path,
            headers=headers,
            json=body,
            params=params,
            timeout=timeout,
            connect_timeout=min(self.timeouts.connect, timeout),
            max_answer=max_answer,
        )

    def retry_policy(self, options: CallOptions | None) -> RetryPolicy:
        """The retries of a call: the client's, or as many as its ``max_retries`` says."""
        if options is None or options.max_retries is None:
            return self.retry
        return attrs.evolve(self.retry, attempts=options.max_retries + 1)

    def shown(self, request: Request) -> Request:
        """``request`` fit to print: the key in its headers replaced by ``[redacted]``."""
        headers = {name: self._scrub_text(value) for name, value in request.headers.items()}
        return attrs.evolve(request, headers=headers)

    def _scrub(self, raw: bytes) -> bytes:
        """``raw`` with every copy of the key replaced, so no error or log can carry it."""
        secret = self._secret.encode()
        return raw.replace(secret, REDACTED.encode()) if secret and secret in raw else raw

    def _scrub_text(self, text: str) -> str:
        """``text`` with every copy of the key replaced."""
        return text.replace(self._secret, REDACTED) if self._secret else text

    def _error(
        self,
        method: str,
        url: str,
        failure: Failure,
        cause: str,
        status: int | None,
        raw: bytes,
        retry_after: float | None,
        creates: bool,
    ) -> Exception:
        if failure is Failure.STATUS and status is not None:
            detail = _json_or_none(raw)
            error = APIError.from_status(
                status, method, url, detail, retry_after=retry_after, api_root=self._odd_root
            )
            if creates and status >= 500:
                uncertain = SubmitUncertainError(
                    method, url, f"HTTP {status} after the body was sent", answered=True
                )
                uncertain.__cause__ = error
                return uncertain
            return error
        if creates and failure is not Failure.NOT_SENT:
            return SubmitUncertainError(method, url, cause, answered=failure is Failure.BAD_BODY)
        return TransportError(method, url, cause)

    async def post_form(
        self,
        url: str,
        fields: Mapping[str, str],
        *,
        filename: str,
        data: bytes,
        content_type: str,
        options: CallOptions | None = None,
    ) -> Response:
        """POST a multipart form to a presigned upload URL, with no authorization header
        (nor a call's extra headers, which are for the API host).

        The ``file`` part goes last, as S3 requires. The caller decides what a status means.
        """
        timeout = _timeout(options, self.timeouts.upload)
        request = Request(
            "POST",
            url,
            form=Form(fields, filename, data, content_type),
            timeout=timeout,
            connect_timeout=min(self.timeouts.connect, timeout),
            max_answer=ANSWER_LIMIT,  # storage answers an empty body or a line of XML
        )
        try:
            return await self._send(request)
        except (NotSentError, MaybeSentError) as exc:
            raise TransportError("POST", _safe_url(url), str(exc)) from None

    @asynccontextmanager
    async def stream(self, url: str, options: CallOptions | None = None) -> AsyncIterator[Response]:
        """GET ``url`` (a CDN URL) for streaming, with no authorization header (nor a
        call's extra headers); a call's ``timeout`` bounds the whole transfer."""
        whole = None if options is None else options.timeout
        request = Request(
            "GET",
            url,
            timeout=whole,
            connect_timeout=self.timeouts.connect
            if whole is None
            else min(self.timeouts.connect, whole),
            read_timeout=self.timeouts.download_stall,
            stream=True,
        )
        try:
            response = await self._send(request)
        except (NotSentError, MaybeSentError) as exc:
            raise TransportError("GET", _safe_url(url), str(exc)) from None
        try:
            yield response
        finally:
            await response.release()


def _timeout(options: CallOptions | None, default: float) -> float:
    """A call's timeout if it set one, else ``default``."""
    return default if options is None or options.timeout is None else options.timeout


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value, whatever the case of its name."""
    return next((v for k, v in headers.items() if k.lower() == name), None)


def _json_or_none(raw: bytes) -> Any:
    """An error response's body as JSON, or ``None`` if it is empty, not JSON or cut."""
    try:
        return wire.loads(raw) if raw else None
    except BadJSONError:
        return None


def _size(count: int) -> str:
    """A byte count as a person reads it: ``1 MiB``, ``512 KiB``, ``100 bytes``."""
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if count >= 1 << shift and count % (1 << shift) == 0:
            return f"{count >> shift} {unit}"
    return f"{count} bytes"


def _safe_url(url: str) -> str:
    """The URL without its query string, which may carry presigned credentials."""
    return str(URL(url).with_query(None))
