"""How bytes leave and come back: the transport seam, and the key's connection over it.

Everything above this package speaks :class:`Request` and :class:`Response`; only
:mod:`._aiohttp` knows aiohttp. Top to bottom:

* :mod:`._base`: :class:`Request`, :class:`Response`, the :class:`Transport` protocol, and
  the two failures below HTTP a transport raises (not sent, maybe sent);
* :mod:`._mock`: :class:`MockTransport`, a function in place of a server, for unit tests;
* :mod:`._aiohttp`: :class:`~._aiohttp.AiohttpTransport`, the default, one aiohttp session;
* :mod:`._clock`: :class:`ServerClock`, the server's clock offset learnt from its answers;
* :mod:`._options`: :class:`CallOptions`, what one call of the client changes about its
  requests (timeout, extra headers, retries);
* :mod:`._connection`: :class:`Connection`, one API key's timeouts, auth, limits, retries
  and error mapping, and :class:`Timeouts`;
* :mod:`._owner`: :class:`KeyOwner`, the key owner's account from ``/me``, asked once;
* :mod:`._transfers`: :class:`Transfers`, the presigned upload and the CDN download,
  each with its own retries.
"""

from __future__ import annotations

from ._base import Form, Request, Response, Transport
from ._clock import ServerClock
from ._connection import DEFAULT_BASE_URL as DEFAULT_BASE_URL  # for the doctor's report
from ._connection import Connection, Timeouts, credentials
from ._mock import MockTransport
from ._options import CallOptions, call_options
from ._owner import KeyOwner
from ._transfers import Transfers

__all__ = [
    "CallOptions",
    "Connection",
    "Form",
    "KeyOwner",
    "MockTransport",
    "Request",
    "Response",
    "ServerClock",
    "Timeouts",
    "Transfers",
    "Transport",
    "call_options",
    "credentials",
]
