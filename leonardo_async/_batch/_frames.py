"""A batch's frames: each distinct local file uploaded once, and the journal's cache of
uploads trusted until the server says otherwise.

Items that share a frame file wait for its one upload; a file whose upload failed fails
its other items at once (a resume tries again); an image id the journal cached from an
earlier run is sent as is, and dropped, to be uploaded again, when a submit is refused
over it (a 400 created nothing, so that cannot pay twice).
"""

from __future__ import annotations

import hashlib
import logging
import os

import anyio

from .._client import LeonardoClient
from .._errors import APIError, TransportError, UploadError
from .._files import FrameSource, read_image, remote_frame
from ..models import FrameRef, ImageToVideoRequest
from ._journal import BatchJournal

__all__ = ["FrameUploads"]

logger = logging.getLogger("leonardo_async")


class FrameUploads:
    """The uploads of one batch, by file content.

    :param client: the client that uploads
    :param journal: the batch's journal, whose upload cache outlives a run
    :param concurrency: uploads in flight at once
    """

    def __init__(self, client: LeonardoClient, journal: BatchJournal, concurrency: int) -> None:
        self.client = client
        self.journal = journal
        self._limiter = anyio.CapacityLimiter(concurrency)
        #: Content hashes of the files read in this run, by path.
        self._digests: dict[str, str] = {}
        self._inflight: dict[str, anyio.Event] = {}
        #: Frames whose upload failed in this run, by content hash: their other items fail
        #: at once instead of each retrying it in turn (a resume tries again).
        self._failed: dict[str, str] = {}
        #: Image ids this run took from the journal's upload cache, by content hash.
        self._cached: dict[str, str] = {}
        #: Cached image ids the server refused (items that sent one upload again).
        self._stale: set[str] = set()

    async def frame(self, source: FrameSource, name: str) -> FrameRef:
        """``source`` as a frame on the server: a local file is uploaded unless this run
        or the journal's cache already has it, and an upload in flight is waited for.

        :raises UploadError: this file's upload failed already in this run
        """
        remote = remote_frame(source)
        if remote is not None:
            return remote
        path = os.fspath(source)  # type: ignore[arg-type]
        digest = self._digests.get(path)
        if digest is None:
            image = read_image(path, name=name)
            digest = hashlib.sha256(image.data).hexdigest()
            self._digests[path] = digest
        while True:
            failed = self._failed.get(digest)
            if failed is not None:
                raise UploadError(f"{name} {path}: its upload failed in this run ({failed})")
            known = self.journal.uploaded(digest)
            if known is not None:
                self._cached[digest] = known
                return FrameRef(known)
            pending = self._inflight.get(digest)
            if pending is None:
                break
            await pending.wait()
        done = self._inflight[digest] = anyio.Event()
        try:
            async with self._limiter:
                uploaded = await self.client.upload_image(path, name=name)
        except (UploadError, TransportError, APIError) as exc:
            self._failed[digest] = str(exc)
            raise
        finally:
            del self._inflight[digest]
            done.set()
        self.journal.record_upload(digest, uploaded.id)
        return uploaded.as_frame()

    def forget_stale(self, request: ImageToVideoRequest, refusal: APIError) -> bool:
        """After a 400: drop the cached uploads it may be about; whether there were any.

        The cache outlives the images (deleted, or gone with the server's state), and a
        400 created nothing, so uploading again and resubmitting cannot pay twice.
        """
        sent = {frame.id for frame in (request.image, request.end_image) if frame is not None}
        text = (refusal.error or str(refusal)).lower()
        cached = set(self._cached.values())
        stale = {
            image_id
            for image_id in sent
            if image_id in self._stale
            or (image_id in cached and (image_id.lower() in text or "image" in text))
        }
        for digest, image_id in list(self._cached.items()):
            if image_id in stale:
                logger.info("init image %s from the journal is refused; uploading again", image_id)
                self.journal.forget_upload(image_id)
                del self._cached[digest]
        self._stale |= stale
        return bool(stale)
