"""Moving files: frames up to presigned storage, videos down from the CDN, with retries.

Neither transfer is an API call in the usual sense: the upload goes to a storage host and
the download to a CDN, both without the key, and each has its own way to fail and to be
retried. An upload whose presigned form is refused (or has expired) asks for a fresh one;
a download cut short is fetched again, and a refusal by status (a 4xx: the URL is wrong or
has expired) is not. The file side of both (sniffing images, atomic files) is
:mod:`._files`. A request's frames are resolved here too (:meth:`Transfers.frames`): an
id or an earlier upload is sent as it is, a local file is uploaded first.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Final

import anyio

from .. import _wire as wire
from .._errors import DownloadError, ResponseShapeError, TransportError, UploadError
from .._files import (
    AtomicFile,
    FrameSource,
    ImageData,
    check_target,
    read_image,
    remote_frame,
)
from .._limits import RequestKind
from .._retry import backoff_delay
from ..models import FrameRef, Generation, UploadedImage
from ._base import MaybeSentError
from ._connection import Connection
from ._options import CallOptions

__all__ = ["Transfers"]

logger = logging.getLogger("leonardo_async")

UPLOAD_ATTEMPTS: Final = 3
DOWNLOAD_ATTEMPTS: Final = 4


class Transfers:
    """Uploads and downloads over one connection (the client's)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def upload(
        self,
        source: str | os.PathLike[str] | bytes,
        *,
        name: str = "image",
        options: CallOptions | None = None,
    ) -> UploadedImage:
        """Upload a frame: ``POST /init-image``, then the file to the presigned URL.

        A call's ``max_retries`` caps the fresh URLs asked for too.

        :raises ValidationError: the file is unreadable or not a PNG, JPEG or WebP image
        :raises UploadError: the upload failed even with fresh URLs
        """
        return await self._upload(read_image(source, name=name), options)

    async def _upload(self, image: ImageData, options: CallOptions | None) -> UploadedImage:
        problem = "no attempt made"
        attempts = _attempts(UPLOAD_ATTEMPTS, options)
        for attempt in range(1, attempts + 1):
            data = await self._connection.call(
                "POST",
                "/init-image",
                body={"extension": image.extension},
                kind=RequestKind.OTHER,
                options=options,
            )
            try:
                target = wire.structure(data, wire.UploadEnvelope, "/init-image").upload_init_image
                if target is None:
                    raise UploadError("POST /init-image answered no upload target")
                response = await self._connection.post_form(
                    target.url,
                    target.form_fields(),
                    filename=image.filename,
                    data=image.data,
                    content_type=image.content_type,
                    options=options,
                )
            except (TransportError, ResponseShapeError, UploadError) as exc:
                problem = str(exc)
            else:
                if 200 <= response.status < 300:
                    return UploadedImage(target.id)
                problem = f"HTTP {response.status}: {response.body[:200]!r}"
            logger.info("upload attempt %d failed (%s); asking for a new URL", attempt, problem)
        raise UploadError(f"upload of {image.filename} failed: {problem}")

    async def frames(
        self,
        image: FrameSource | bytes,
        end_image: FrameSource | bytes | None,
        options: CallOptions | None = None,
        *,
        inspect: Callable[[str, os.PathLike[str] | bytes, ImageData], None] | None = None,
    ) -> tuple[FrameRef, FrameRef | None]:
        """The start and end frames as the server knows them, uploading local files.

        Both local files are read, checked and shown to ``inspect`` (with their name,
        ``image`` or ``end_image``, and source) before either is uploaded, so a bad end
        frame costs no upload of the start frame; each file is read once.

        :raises ValidationError: a file is unreadable or not an image, or a ``str`` looks
            like a path
        """
        local: dict[str, ImageData] = {}
        for name, source in (("image", image), ("end_image", end_image)):
            if isinstance(source, (bytes, os.PathLike)):
                local[name] = data = read_image(source, name=name)
                if inspect is not None:
                    inspect(name, source, data)
            elif source is not None:
                remote_frame(source, name)  # a str shaped like a path raises here
        start = await self._frame(image, local.get("image"), options)
        end = None
        if end_image is not None:
            end = await self._frame(end_image, local.get("end_image"), options)
        return start, end

    async def _frame(
        self, source: FrameSource | bytes, data: ImageData | None, options: CallOptions | None
    ) -> FrameRef:
        """The frame on the server: ``data`` (a local file, read) uploaded, else the id."""
        if data is not None:
            return (await self._upload(data, options)).as_frame()
        assert not isinstance(source, bytes)  # bytes are local: read into data
        remote = remote_frame(source)
        assert remote is not None  # not PathLike either, so an id
        return remote

    async def download(
        self,
        source: Generation | str,
        path: str | os.PathLike[str],
        options: CallOptions | None = None,
    ) -> Path:
        """Download a finished video to ``path`` whole, or leave nothing there.

        A call's ``timeout`` bounds each attempt's whole transfer, and its
        ``max_retries`` the attempts after the first.

        :raises ValidationError: ``path`` is a directory, a device or another non-file
        :raises DownloadError: the video could not be fetched whole (``status`` is the
            HTTP status when the CDN refused it)
        """
        target = Path(path)
        check_target(target)  # before anything is fetched
        url = source.video_url if isinstance(source, Generation) else source
        if not url:
            raise DownloadError(f"generation {getattr(source, 'id', '?')} has no video URL")
        problem = ""
        status: int | None = None
        attempts = _attempts(DOWNLOAD_ATTEMPTS, options)
        for attempt in range(1, attempts + 1):
            try:
                if await self._download_once(url, target, options):
                    return target
                problem = "the transfer ended short of Content-Length"
            except (TransportError, DownloadError) as exc:
                problem = str(exc)
                status = exc.status if isinstance(exc, DownloadError) else None
                if status is not None and 400 <= status < 500:
                    break  # the URL is wrong or expired: asking again will not help
            logger.info("download attempt %d failed (%s)", attempt, problem)
            if attempt < attempts:
                retry = self._connection.retry
                await anyio.sleep(backoff_delay(retry, attempt - 1, random.random()))
        raise DownloadError(f"download to {target} failed: {problem}", status=status)

    async def _download_once(self, url: str, target: Path, options: CallOptions | None) -> bool:
        async with self._connection.stream(url, options) as response:
            if response.status != 200:
                raise DownloadError(
                    f"GET {url.split('?')[0]} -> HTTP {response.status}", status=response.status
                )
            expected = response.content_length
            with AtomicFile(target) as out:
                try:
                    async for chunk in response.iter_chunks():
                        out.write(chunk)
                except MaybeSentError:
                    return False
                if expected is not None and out.written != expected:
                    return False
                out.commit()
        return True


def _attempts(default: int, options: CallOptions | None) -> int:
    """A transfer's attempts: its own number, or one more than a call's ``max_retries``."""
    if options is None or options.max_retries is None:
        return default
    return options.max_retries + 1
