"""The in-memory transport: a function in place of a server, for unit tests.

A handler maps each :class:`~._base.Request` to a :class:`~._base.Response` (or raises
:class:`NotSentError` or :class:`MaybeSentError`), so the client, the tracker and the
batch can be tested without a socket.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from ._base import Request, Response

__all__ = ["MockTransport"]


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
