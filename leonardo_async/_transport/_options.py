"""Per-call options: what one call of the client may change about the requests it sends.

Users of the openai, replicate and fal clients expect to pass ``timeout=``,
``extra_headers=`` and ``max_retries=`` to one call without making another client.
:class:`CallOptions` holds them, checked when the call starts (before any request), and
the connection applies them to each request the call itself sends: the timeout bounds
each one, the headers go to the API host only (never to the storage or CDN hosts, which
must not see what a caller adds for the API or its gateway), and the retries replace the
client's number for that call. Requests a call leads to indirectly (the listing search
for a lost submit, the tracker's looks) keep the client's settings.

A header may never replace the ``authorization`` the client sends the key in, nor the
ones the HTTP layer owns: such a name is refused, never silently dropped or obeyed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import attrs

from .._errors import ValidationError
from .._validate import MAX_SECONDS, MIN_SECONDS, in_range

__all__ = ["CallOptions", "call_options"]

#: Header names a call may not set: the key's, and those the HTTP layer writes itself.
RESERVED: Final = frozenset(
    {"authorization", "proxy-authorization", "host", "content-length", "transfer-encoding"}
)
#: The most retries one call may ask for.
MAX_RETRIES: Final = 100
#: An HTTP header name (RFC 9110 ``token``).
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _check_headers(_: object, __: attrs.Attribute[Any], headers: Mapping[str, str]) -> None:
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ValidationError(
                "extra_headers", name, "header names made of letters, digits and !#$%&'*+.^_`|~-"
            )
        if name.lower() in RESERVED:
            allowed = (
                "not a header a call may set: the client sends the API key in it (pass "
                "api_key= to the client to use another key)"
                if name.lower() == "authorization"
                else "not a header a call may set: the HTTP layer writes it"
            )
            raise ValidationError(f"extra_headers[{name!r}]", "<not shown>", allowed)
        if not isinstance(value, str) or not value.isprintable():
            raise ValidationError(
                f"extra_headers[{name!r}]", "<not shown>", "one line of printable text"
            )


def _headers(value: Mapping[str, str] | None) -> Mapping[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError("extra_headers", value, "a mapping of header names to values")
    return dict(value)


@attrs.frozen
class CallOptions:
    """What one call changes about the requests it sends (see the module docstring).

    :param timeout: seconds each request of the call may take, answer included (a
        download: its whole transfer); ``None`` keeps the client's ``timeouts``
    :param extra_headers: headers added to the call's requests to the API host
    :param max_retries: retries of each request of the call, after the first attempt
        (``0``: none); ``None`` keeps the client's ``retry`` policy. A submit is never
        resent blindly whatever this says: it is retried only when it provably did not
        arrive or was refused with 429
    """

    timeout: float | None = attrs.field(
        default=None, validator=in_range(MIN_SECONDS, MAX_SECONDS, allow_none=True)
    )
    extra_headers: Mapping[str, str] = attrs.field(
        factory=dict, converter=_headers, validator=_check_headers
    )
    max_retries: int | None = attrs.field(
        default=None, validator=in_range(0, MAX_RETRIES, integer=True, allow_none=True)
    )


def call_options(
    timeout: float | None, extra_headers: Mapping[str, str] | None, max_retries: int | None
) -> CallOptions | None:
    """The options of one call, checked; ``None`` when it changes nothing.

    :raises ValidationError: a timeout or retry count out of range, or a header that is
        malformed or one a call may not set (``authorization`` among them)
    """
    if timeout is None and not extra_headers and max_retries is None:
        return None
    return CallOptions(timeout=timeout, extra_headers=extra_headers or {}, max_retries=max_retries)
