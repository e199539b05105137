"""The client's one-request endpoints: the account, and generations read or deleted.

Each is one call through the key's connection and one structuring through
:mod:`._wire._convert`; none has a loop of its own beyond asking ``/me`` again after a garbled
answer. :class:`Endpoints` holds them apart from the client, which delegates to it, so
that the door stays a door; the tracker reads generations through it too (it is the
tracker's :class:`~._tracking._job.StatusSource`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Final

import anyio

from .. import _wire as wire
from .._errors import ResponseShapeError
from .._limits import RequestKind
from .._listing import Evidence, Listing, path_segment
from .._transport import CallOptions, Connection
from ..models import Account, Generation

__all__ = ["Endpoints"]

logger = logging.getLogger("leonardo_async")

_SHAPE_ATTEMPTS: Final = 3


class Endpoints:
    """The account and generation endpoints of one API key (see the module docstring).

    :param connection: the key's HTTP
    :param listing: the generation listing (a page of it is :meth:`list_generations`)
    :param evidence: learns from every generation read (seeds kept, the server's clock)
    """

    def __init__(self, connection: Connection, listing: Listing, evidence: Evidence) -> None:
        self._connection = connection
        self._evidence = evidence
        #: The key owner's generation listing (the tracker walks it).
        self.listing = listing
        self._account: Account | None = None
        self._account_lock = anyio.Lock()

    async def me(self, options: CallOptions | None = None) -> Account:
        """The key owner's account: user id, concurrency slots, token balances."""
        data = await self._connection.call("GET", "/me", options=options)
        account = wire.account_from(wire.structure(data, wire.MeEnvelope, "/me"), "/me")
        self._account = account
        return account

    async def account(self) -> Account:
        """The account, asked of ``/me`` once and then remembered."""
        async with self._account_lock:
            for attempt in range(1, _SHAPE_ATTEMPTS + 1):
                if self._account is not None:
                    break
                try:
                    await self.me()
                except ResponseShapeError:  # a garbled answer: ask again, a few times
                    if attempt == _SHAPE_ATTEMPTS:
                        raise
            assert self._account is not None
            return self._account

    async def account_slots(self) -> int | None:
        """The key's concurrency slots, as ``/me`` reports them (asked once)."""
        return (await self.account()).concurrency_slots

    async def user_id(self) -> str:
        """The key owner's user id (for the generation listing)."""
        return (await self.account()).user_id

    async def delete_image(self, image_id: str, options: CallOptions | None = None) -> bool:
        """Delete an uploaded init image; ``True`` if the server had it."""
        path = f"/init-image/{path_segment(image_id)}"
        data = await self._connection.call("DELETE", path, kind=RequestKind.OTHER, options=options)
        envelope = wire.structure(data, wire.DeletedImageEnvelope, path)
        return envelope.delete_init_images_by_pk is not None

    async def get_generation(
        self, generation_id: str, options: CallOptions | None = None
    ) -> Generation | None:
        """The generation with this id, or ``None`` if the server does not know it."""
        path = f"/generations/{path_segment(generation_id)}"
        data = await self._connection.call("GET", path, options=options)
        generation = wire.structure(data, wire.GenerationEnvelope, path).generations_by_pk
        if generation is not None:
            self._evidence.learn(generation)
        return generation

    async def list_generations(
        self, *, user_id: str | None = None, offset: int = 0, limit: int = 10
    ) -> list[Generation]:
        """One page of the user's generations (the server decides order and page cap)."""
        return await self.listing.generations(offset=offset, limit=limit, user_id=user_id)

    async def iter_generations(
        self, *, created_after: datetime | None = None, max_pages: int = 20
    ) -> AsyncIterator[Generation]:
        """The listing's generations, page by page (as
        :meth:`LeonardoClient.iter_generations <._client.LeonardoClient.iter_generations>`
        says); an unreadable entry is skipped."""
        async for page in self.listing.walk(newer_than=created_after, max_pages=max_pages):
            for entry in page:
                try:
                    yield entry.generation()
                except ResponseShapeError as exc:
                    logger.info("skipping an unreadable listing entry: %s", exc)

    async def delete_generation(
        self, generation_id: str, options: CallOptions | None = None
    ) -> bool:
        """Delete a generation; ``True`` if the server had it."""
        path = f"/generations/{path_segment(generation_id)}"
        data = await self._connection.call("DELETE", path, kind=RequestKind.OTHER, options=options)
        return wire.structure(data, wire.DeletedEnvelope, path).delete_generations_by_pk is not None
