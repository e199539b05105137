"""The API key's owner, as ``/me`` tells: asked once and remembered.

Two parts need the owner's account without asking for it themselves: the listing, whose
path names the owner's user id, and the limiter, whose ``"account"`` running limit is
the account's concurrency slots. Both are below the client, and ``/me`` goes through the
connection the limiter paces, so :class:`KeyOwner` sits on the connection and is passed
to each of them as it is needed (the listing at construction, the limiter with each
slot it is asked for), never reached back for.
"""

from __future__ import annotations

from typing import Final

import anyio

from .. import _wire as wire
from .._errors import ResponseShapeError
from ..models import Account
from ._connection import Connection
from ._options import CallOptions

__all__ = ["KeyOwner"]

#: ``/me`` answers read before a garbled one is given up on.
_SHAPE_ATTEMPTS: Final = 3


class KeyOwner:
    """The key owner's account (user id, concurrency slots, token balances).

    :param connection: the key's HTTP
    """

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._account: Account | None = None
        self._lock = anyio.Lock()

    async def me(self, options: CallOptions | None = None) -> Account:
        """Ask ``/me`` now (and remember the answer)."""
        data = await self._connection.call("GET", "/me", options=options)
        account = wire.account_from(wire.structure(data, wire.MeEnvelope, "/me"), "/me")
        self._account = account
        return account

    async def account(self) -> Account:
        """The account, asked of ``/me`` once and then remembered; a garbled answer is
        asked again, a few times."""
        async with self._lock:
            for attempt in range(1, _SHAPE_ATTEMPTS + 1):
                if self._account is not None:
                    break
                try:
                    await self.me()
                except ResponseShapeError:
                    if attempt == _SHAPE_ATTEMPTS:
                        raise
            assert self._account is not None
            return self._account

    async def slots(self) -> int | None:
        """The key's concurrency slots, as ``/me`` reports them (asked once)."""
        return (await self.account()).concurrency_slots

    async def user_id(self) -> str:
        """The key owner's user id (for the generation listing)."""
        return (await self.account()).user_id
