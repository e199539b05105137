"""A redacted record of every HTTP exchange a command makes, fit to attach to a bug report.

It is fed by aiohttp's tracing hooks on the client's own session, so it records what
really went over the wire (retries, the presigned upload, the CDN download included)
without a second HTTP layer. Redaction happens when the record is rendered, by rules
that do not depend on what the server sends:

* request headers are never kept (only whether an ``authorization`` header went out),
  and the API key is replaced wherever its text appears;
* a request body is kept only if it is JSON sent to the API host (the multipart upload
  carries the presigned form, so it is reduced to its size);
* in responses, presigned upload targets (``fields`` and their object ``key``) are
  replaced, and every URL's query values are replaced (S3 and CDN URLs carry signatures
  there) except the listing's ``offset`` and ``limit``;
* bodies from other hosts (storage, CDN) are reduced to their size and type.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Final

import aiohttp
import attrs
from yarl import URL

__all__ = ["Exchange", "Transcript", "redact_json", "redact_url"]

#: Response headers worth keeping: they say how the server paces and when it answered.
KEPT_HEADERS: Final = ("date", "retry-after", "content-type", "content-length")
#: Response headers kept by prefix (rate-limit figures, where a server sends them).
KEPT_PREFIXES: Final = ("x-ratelimit",)
#: Query parameters whose values are never secret.
PLAIN_QUERY: Final = frozenset({"offset", "limit"})
#: Keys whose values are a presigned upload target.
PRESIGNED_KEYS: Final = frozenset({"fields", "key"})
REDACTED: Final = "<redacted>"
#: Most bytes of one body kept in memory (API answers are small; videos are not).
MAX_BODY: Final = 64 * 1024


@attrs.define
class Exchange:
    """One request and what came back, as recorded (unredacted; render to redact).

    :param sent_at: local wall-clock time the request started
    :param started: :func:`time.monotonic` at the start, for durations
    """

    method: str
    url: str
    sent_at: datetime
    started: float
    authorized: bool
    request_body: bytearray = attrs.field(factory=bytearray)
    request_size: int = 0
    status: int | None = None
    elapsed: float | None = None
    headers: dict[str, str] = attrs.field(factory=dict)
    body: bytearray = attrs.field(factory=bytearray)
    error: str | None = None

    def json_body(self) -> Any:
        """The response body as JSON, or ``None`` when it is empty or not JSON."""
        return _json_or_none(self.body)

    def server_date(self) -> datetime | None:
        """The server's ``Date`` header, if it sent a readable one."""
        text = self.headers.get("date")
        if not text:
            return None
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)

    def local_midpoint(self) -> datetime | None:
        """Local time halfway through the exchange: when the server most likely answered."""
        if self.elapsed is None:
            return None
        return self.sent_at + timedelta(seconds=self.elapsed / 2)


class Transcript:
    """Records a session's exchanges; :meth:`render` gives them redacted.

    :param api_base: the API root; only requests to its host have their bodies kept
    :param secrets: strings to replace wherever they appear (the API key)
    """

    def __init__(self, api_base: str, secrets: Iterable[str] = ()) -> None:
        self._api_origin = _origin(URL(api_base))
        self._secrets = tuple(s for s in secrets if s)
        self.exchanges: list[Exchange] = []

    def trace_config(self) -> aiohttp.TraceConfig:
        """The aiohttp tracing hooks that feed this transcript (pass to the session)."""
        config = aiohttp.TraceConfig()
        config.on_request_start.append(self._on_start)
        config.on_request_chunk_sent.append(self._on_chunk_sent)
        config.on_request_end.append(self._on_end)
        config.on_response_chunk_received.append(self._on_chunk_received)
        config.on_request_exception.append(self._on_exception)
        return config

    async def _on_start(self, _: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any) -> None:
        exchange = Exchange(
            method=params.method,
            url=str(params.url),
            sent_at=datetime.now(timezone.utc),
            started=time.monotonic(),
            authorized=any(k.lower() == "authorization" for k in params.headers),
        )
        ctx.exchange = exchange
        self.exchanges.append(exchange)

    async def _on_chunk_sent(
        self, _: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any
    ) -> None:
        exchange: Exchange = ctx.exchange
        exchange.request_size += len(params.chunk)
        if self._is_api(exchange.url) and len(exchange.request_body) < MAX_BODY:
            exchange.request_body += params.chunk

    async def _on_end(self, _: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any) -> None:
        exchange: Exchange = ctx.exchange
        response = params.response
        exchange.status = response.status
        exchange.elapsed = time.monotonic() - exchange.started
        for name, value in response.headers.items():
            lower = name.lower()
            if lower in KEPT_HEADERS or lower.startswith(KEPT_PREFIXES):
                exchange.headers[lower] = value

    async def _on_chunk_received(
        self, _: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any
    ) -> None:
        exchange: Exchange = ctx.exchange
        if len(exchange.body) < MAX_BODY:
            exchange.body += params.chunk[: MAX_BODY - len(exchange.body)]

    async def _on_exception(
        self, _: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any
    ) -> None:
        exchange: Exchange = ctx.exchange
        exchange.error = type(params.exception).__name__
        exchange.elapsed = time.monotonic() - exchange.started

    def _is_api(self, url: str) -> bool:
        return _origin(URL(url)) == self._api_origin

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def render(self) -> list[dict[str, Any]]:
        """Every exchange, redacted, as JSON-ready dicts in the order they started."""
        rendered = []
        for exchange in self.exchanges:
            api = self._is_api(exchange.url)
            entry: dict[str, Any] = {
                "at": exchange.sent_at.isoformat(timespec="milliseconds"),
                "method": exchange.method,
                "url": redact_url(exchange.url),
                "authorization": "bearer (redacted)" if exchange.authorized else "none",
                "request": self._payload(exchange.request_body, exchange.request_size, api),
                "status": exchange.status,
                "seconds": None if exchange.elapsed is None else round(exchange.elapsed, 3),
                "headers": dict(exchange.headers),
                "response": self._payload(exchange.body, len(exchange.body), api),
            }
            if exchange.error is not None:
                entry["error"] = exchange.error
            rendered.append(redact_json(entry, self._secrets))
        return rendered

    def _payload(self, raw: bytes | bytearray, size: int, api: bool) -> Any:
        if not size:
            return None
        decoded = _json_or_none(raw) if api else None
        if decoded is None:
            return f"<{size} bytes, not recorded>"
        return redact_json(decoded, self._secrets)

    def write(self, path: Path, header: Mapping[str, Any]) -> None:
        """Write ``header`` and the redacted exchanges to ``path`` as JSON."""
        document = {**redact_json(dict(header), self._secrets), "exchanges": self.render()}
        text = self._scrub(json.dumps(document, indent=2, default=str))
        path.write_text(text + "\n", encoding="utf-8")


def redact_url(url: str) -> str:
    """``url`` with every query value replaced, except the listing's offset and limit."""
    parsed = URL(url)
    if not parsed.query_string:
        return url
    query = [(k, v if k in PLAIN_QUERY else REDACTED) for k, v in parsed.query.items()]
    return str(parsed.with_query(query))


def redact_json(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of JSON ``value`` with presigned targets, URL queries and ``secrets`` redacted.

    Presigned targets are the ``fields`` and ``key`` of an object that has ``fields``
    (``uploadInitImage``); strings that look like URLs lose their query values; any
    string holding a secret has it replaced.
    """
    secrets = tuple(s for s in secrets if s)

    def walk(item: Any) -> Any:
        if isinstance(item, Mapping):
            presigned = "fields" in item
            return {
                walk(k): REDACTED if presigned and k in PRESIGNED_KEYS else walk(v)
                for k, v in item.items()
            }
        if isinstance(item, (list, tuple)):
            return [walk(v) for v in item]
        if isinstance(item, str):
            text = item
            if "://" in text and "?" in text:
                try:
                    text = redact_url(text)
                except ValueError:
                    text = text.split("?", 1)[0] + "?" + REDACTED
            for secret in secrets:
                text = text.replace(secret, REDACTED)
            return text
        return item

    return walk(value)


def _json_or_none(raw: bytes | bytearray) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _origin(url: URL) -> tuple[str, str | None, int | None]:
    return (url.scheme, url.host, url.port)
