"""Local files in, bytes out: image sniffing for uploads, and atomic video downloads.

Both ends of a generation touch the disk, and both have a way to go quietly wrong: an
upload whose extension lies about its content (Leonardo stores it under the wrong type),
and a download cut short that looks like a finished MP4. This module owns those two
concerns, independent of HTTP.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path
from typing import BinaryIO, Final

from ._errors import ValidationError
from .models import FrameRef, UploadedImage

__all__ = [
    "AtomicFile",
    "FrameSource",
    "ImageData",
    "check_target",
    "is_local_image",
    "read_image",
    "remote_frame",
    "target_problem",
]

#: Extensions ``POST /init-image`` accepts, mapped to the format they name.
EXTENSIONS: Final = {"png": "png", "jpg": "jpeg", "jpeg": "jpeg", "webp": "webp"}
CONTENT_TYPES: Final = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
#: File names ending so are images to upload, never image ids.
IMAGE_SUFFIXES: Final = (".png", ".jpg", ".jpeg", ".webp")
#: Leonardo does not document a size cap for init images; refuse absurd files early.
MAX_IMAGE_BYTES: Final = 50 * 1024 * 1024


def sniff(data: bytes) -> str | None:
    """The image format from the file's first bytes: ``png``, ``jpeg``, ``webp`` or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def is_local_image(value: str | os.PathLike[str]) -> bool:
    """Tell a local file from an image id (ids are opaque, but never look like files)."""
    if isinstance(value, os.PathLike):
        return True
    return os.sep in value or value.lower().endswith(IMAGE_SUFFIXES) or Path(value).is_file()


#: A frame as callers give it: an upload, a frame reference, an image id, or a local path.
FrameSource = UploadedImage | FrameRef | str | os.PathLike[str]


def remote_frame(source: FrameSource, name: str = "image") -> FrameRef | None:
    """The frame if it is already on the server; ``None`` for a local file to upload.

    The rule is by type, never by what is on disk: a ``str`` is an image id, a path
    (``os.PathLike``) is a file. A string shaped like a path (a separator or an image
    extension, which no id has) is refused rather than sent as an id.

    :raises ValidationError: ``source`` is a string that looks like a file path
    """
    if isinstance(source, FrameRef):
        return source
    if isinstance(source, UploadedImage):
        return source.as_frame()
    if isinstance(source, str):
        if "/" in source or os.sep in source or source.lower().endswith(IMAGE_SUFFIXES):
            raise ValidationError(
                name, source, "an image id; to upload a file, pass it as a Path (pathlib.Path)"
            )
        return FrameRef(source)
    return None


class ImageData:
    """An image ready to upload: its bytes, its real format, and a name for the form."""

    __slots__ = ("data", "extension", "filename")

    def __init__(self, data: bytes, extension: str, filename: str) -> None:
        self.data = data
        self.extension = extension
        self.filename = filename

    @property
    def content_type(self) -> str:
        """The MIME type of the image."""
        return CONTENT_TYPES[EXTENSIONS[self.extension]]


def read_image(source: str | os.PathLike[str] | bytes, *, name: str = "image") -> ImageData:
    """Load and check an image: PNG, JPEG or WebP, by content (not by file name).

    A file whose extension disagrees with its content is uploaded as what it really is.

    :param source: a path, or the image bytes
    :param name: what to call the source in error messages (``image``, ``end_image``)
    :raises ValidationError: unreadable, empty, too large, or not PNG/JPEG/WebP
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, filename = bytes(source), "image"
    else:
        path = Path(source)
        data = _read_regular(path, name)
        filename = path.name
    if not data:
        raise ValidationError(name, filename, "a non-empty PNG, JPEG or WebP image")
    if len(data) > MAX_IMAGE_BYTES:
        raise ValidationError(name, filename, f"an image of at most {MAX_IMAGE_BYTES} bytes")
    kind = sniff(data)
    if kind is None:
        raise ValidationError(name, filename, "a PNG, JPEG or WebP image (by content)")
    extension = "jpg" if kind == "jpeg" else kind
    stem = filename.rsplit(".", 1)[0] if "." in filename else filename
    return ImageData(data, extension, f"{stem or 'image'}.{extension}")


def _read_regular(path: Path, name: str) -> bytes:
    """The first bytes of a regular file, refusing a FIFO, a device or a directory.

    Opened without blocking and checked before reading: reading a FIFO waits for a writer
    that may never come, and a device may never end.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ValidationError(name, str(path), f"a readable image file ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # before open(): a directory fd raises there
        os.close(fd)
        raise ValidationError(
            name,
            str(path),
            "not a file: a regular image file (not a FIFO or device, nor a directory)",
        )
    with open(fd, "rb") as handle:
        try:
            return handle.read(MAX_IMAGE_BYTES + 1)
        except OSError as exc:
            raise ValidationError(
                name, str(path), f"a readable image file ({exc.strerror})"
            ) from None


class AtomicFile:
    """A file that appears at its path only when complete.

    Bytes go to a hidden temporary file beside the target; :meth:`commit` flushes, syncs
    and renames it into place in one step, and leaving the ``with`` block without a
    commit deletes it. A crash can leave a ``.part`` file, never a short video under the
    real name.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        self._handle: BinaryIO | None = None
        self.written = 0

    def __enter__(self) -> AtomicFile:
        self._refuse_non_file()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.temp.open("wb")
        return self

    def _refuse_non_file(self) -> None:
        """An ``OSError`` (as the rename would give, or worse, not give) if a non-file is
        in the way: see :func:`target_problem`."""
        problem = target_problem(self.path)
        if problem is not None:
            if problem == "a directory":
                raise IsADirectoryError(errno.EISDIR, "a directory is in the way", str(self.path))
            raise FileExistsError(errno.EEXIST, f"{problem} is in the way", str(self.path))

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``."""
        assert self._handle is not None
        self._handle.write(chunk)
        self.written += len(chunk)

    def commit(self) -> None:
        """Make the file visible under its real name.

        :raises OSError: the bytes could not all reach the disk (it is full ...); the
            temporary file is removed when the ``with`` block is left
        """
        assert self._handle is not None
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self._refuse_non_file()  # again: it may have changed while the bytes came
        os.replace(self.temp, self.path)

    def __exit__(self, *exc_info: object) -> None:
        # Closing flushes what is buffered, which fails on a full disk; the bytes are
        # being thrown away anyway, and the temporary file must go whatever happens.
        try:
            if self._handle is not None and not self._handle.closed:
                with contextlib.suppress(OSError):
                    self._handle.close()
        finally:
            with contextlib.suppress(FileNotFoundError):
                self.temp.unlink()


def target_problem(path: Path) -> str | None:
    """What is in the way of putting a file at ``path``, or ``None`` if nothing is.

    A finished file is renamed over its target, which replaces whatever the name held: a
    directory would make the rename fail late, and a device or pipe (``/dev/full``, a
    FIFO, followed through a symlink too) would be replaced outright, as root even a
    system one. Only a regular file, or nothing, may be there.
    """
    try:
        mode = path.stat().st_mode
    except OSError:
        return None  # nothing there (or a dangling symlink, which the rename replaces)
    if stat.S_ISDIR(mode):
        return "a directory"
    return None if stat.S_ISREG(mode) else "not a regular file"


def check_target(path: Path) -> None:
    """Refuse, before anything is fetched, a target that is not a regular file or new.

    :raises ValidationError: ``path`` names a directory, a device, a pipe or a socket
    """
    problem = target_problem(path)
    if problem is not None:
        raise ValidationError("path", str(path), f"a regular file or a new name ({problem})")
