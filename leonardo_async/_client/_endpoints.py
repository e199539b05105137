"""The client's one-request endpoints: generations read or deleted, an image deleted.

Each is one call through the key's connection and one structuring through
:mod:`._wire._convert` (the account is :class:`~._transport._owner.KeyOwner`'s, below the
listing that needs it). :class:`Endpoints` holds them apart from the client, which
delegates to it, so that the door stays a door; the tracker reads generations through it
too (it is the tracker's :class:`~._tracking._job.StatusSource`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime

from .. import _wire as wire
from .._errors import ResponseShapeError
from .._limits import RequestKind
from .._listing import Evidence, Listing, path_segment
from .._transport import CallOptions, Connection
from ..models import Generation

__all__ = ["Endpoints"]

logger = logging.getLogger("leonardo_async")


class Endpoints:
    """The generation and image endpoints of one API key (see the module docstring).

    :param connection: the key's HTTP
    :param listing: the generation listing (a page of it is :meth:`list_generations`)
    :param evidence: learns from every generation read (seeds kept, the server's clock)
    """

    def __init__(self, connection: Connection, listing: Listing, evidence: Evidence) -> None:
        self._connection = connection
        self._evidence = evidence
        #: The key owner's generation listing (the tracker walks it).
        self.listing = listing

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
