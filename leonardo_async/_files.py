"""Local files in, bytes out: image sniffing for uploads, and atomic video downloads.

Both ends of a generation touch the disk, and each has ways to go quietly wrong: an
upload whose extension lies about its content (Leonardo stores it under the wrong type),
a frame of the other orientation than the video (Leonardo crops it, and most of the
picture may go), and a download cut short that looks like a finished MP4. This module
owns those concerns, independent of HTTP.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import secrets
import stat
from pathlib import Path
from typing import BinaryIO, Final, Literal

import attrs

from ._errors import ValidationError
from .models import FrameRef, Orientation, UploadedImage, VideoSpec

__all__ = [
    "AtomicFile",
    "FrameMisfit",
    "FrameSource",
    "ImageData",
    "check_target",
    "frame_misfit",
    "image_file_size",
    "image_size",
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


def image_size(data: bytes) -> tuple[int, int] | None:
    """The width and height of a PNG, JPEG or WebP picture as it is shown, from its
    header; ``None`` when the header does not say (cut short, or another format).

    A JPEG's EXIF orientation is applied, as viewers apply it: a phone's portrait photo
    is often stored landscape and marked "turn 90 degrees".
    """
    kind = sniff(data)
    size: tuple[int, int] | None
    if kind == "png":
        if data[12:16] != b"IHDR" or len(data) < 24:
            return None
        size = (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"))
    elif kind == "jpeg":
        size = _jpeg_size(data)
    elif kind == "webp":
        size = _webp_size(data)
    else:
        return None
    return size if size is not None and size[0] > 0 and size[1] > 0 else None


#: JPEG markers with no length after them: TEM, RST0-7, SOI.
_BARE_MARKERS: Final = frozenset({0x01, *range(0xD0, 0xD9)})
#: The start-of-frame markers (which carry the size): C0-CF but DHT, JPG and DAC.
_FRAME_MARKERS: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """The size in a JPEG's start-of-frame segment, turned by its EXIF orientation."""
    at, turned = 2, False
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # a fill byte before the marker
            at += 1
            continue
        if marker in _BARE_MARKERS:
            at += 2
            continue
        if marker in (0xD9, 0xDA):  # the end, or the scan, before any frame header
            return None
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        segment = data[at + 4 : at + 2 + length]
        if marker == 0xE1 and segment.startswith(b"Exif\0\0"):
            turned = _exif_turned(segment[6:])
        elif marker in _FRAME_MARKERS:
            if len(segment) < 5:
                return None
            height = int.from_bytes(segment[1:3], "big")
            width = int.from_bytes(segment[3:5], "big")
            return (height, width) if turned else (width, height)
        at += 2 + max(length, 2)
    return None


_BYTE_ORDERS: Final[dict[bytes, Literal["little", "big"]]] = {b"II": "little", b"MM": "big"}


def _exif_turned(tiff: bytes) -> bool:
    """Whether an EXIF block's orientation (tag 0x0112) turns the picture a quarter
    (values 5 to 8), which swaps its width and height on screen."""
    order = _BYTE_ORDERS.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return False
    directory = int.from_bytes(tiff[4:8], order)
    count = int.from_bytes(tiff[directory : directory + 2], order)
    for entry in range(directory + 2, directory + 2 + 12 * count, 12):
        if entry + 12 > len(tiff):
            break
        if int.from_bytes(tiff[entry : entry + 2], order) == 0x0112:
            return int.from_bytes(tiff[entry + 8 : entry + 10], order) in (5, 6, 7, 8)
    return False


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """The canvas size of a WebP: lossy (``VP8 ``), lossless (``VP8L``) or extended."""
    chunk, body = data[12:16], data[20:30]
    if len(body) < 10:
        return None
    if chunk == b"VP8 " and body[3:6] == b"\x9d\x01\x2a":
        return (
            int.from_bytes(body[6:8], "little") & 0x3FFF,
            int.from_bytes(body[8:10], "little") & 0x3FFF,
        )
    if chunk == b"VP8L" and body[0] == 0x2F:
        bits = int.from_bytes(body[1:5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(body[4:7], "little") + 1, int.from_bytes(body[7:10], "little") + 1
    return None


#: Enough of a file for its header's size: a JPEG's EXIF and colour profile come first.
HEADER_BYTES: Final = 256 * 1024


def image_file_size(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """The size of the image in a file, from its first bytes only (see
    :func:`image_size`); ``None`` if it cannot be read or told."""
    try:
        with open(path, "rb") as handle:
            return image_size(handle.read(HEADER_BYTES))
    except OSError:
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

    @property
    def size(self) -> tuple[int, int] | None:
        """Width and height as shown, from the header (see :func:`image_size`)."""
        return image_size(self.data)


def _shape(width: int, height: int) -> str:
    """``landscape 16:9``, ``portrait 2:3``, ``square 1:1``, ``portrait 0.57:1``."""
    name = "landscape" if width > height else "portrait" if height > width else "square"
    common = math.gcd(width, height)
    w, h = width // common, height // common
    return f"{name} {w}:{h}" if max(w, h) <= 32 else f"{name} {width / height:.2f}:1"


def _kept(frame: tuple[int, int], video: tuple[int, int]) -> float:
    """The share of a frame's picture left when it is cropped to the video's ratio."""
    ratio = (frame[0] / frame[1]) / (video[0] / video[1])
    return min(ratio, 1 / ratio)


@attrs.frozen
class FrameMisfit:
    """A frame closer in shape to the other orientation than to the video's, so that
    Leonardo's crop to the video's ratio loses more of it than the other would.

    :param label: how to name the frame: ``image start.png``
    :param size: the frame's width and height as shown
    :param video: the video's width and height
    """

    label: str
    size: tuple[int, int]
    video: tuple[int, int]

    @property
    def fits(self) -> Orientation:
        """The orientation that crops the frame less."""
        return Orientation.LANDSCAPE if self.video[1] > self.video[0] else Orientation.PORTRAIT

    def text(self, fix: str) -> str:
        """The warning: both shapes, how much the crop keeps, and ``fix`` (how to ask
        for :attr:`fits` in the caller's words, ``--orientation portrait``)."""
        (w, h), (vw, vh) = self.size, self.video
        return (
            f"{self.label} is {w}x{h} ({_shape(w, h)}) but the video is {vw}x{vh} "
            f"({_shape(vw, vh)}): Leonardo crops the frame to the video's shape, keeping "
            f"{_kept(self.size, self.video):.0%} of the picture; {fix} makes a {vh}x{vw} "
            f"video that keeps {_kept(self.size, (vh, vw)):.0%}"
        )


def frame_misfit(size: tuple[int, int] | None, spec: VideoSpec, label: str) -> FrameMisfit | None:
    """The misfit of a frame of ``size`` in ``spec``'s video, or ``None`` if its shape is
    nearer the video's than the other orientation's (or either size is unknown).

    A square frame fits both alike, and a 4:3 one in a 16:9 video is cropped by either
    orientation less by this one: neither is a misfit, since no option would help.
    """
    width, height = spec.width, spec.height
    if size is None or type(width) is not int or type(height) is not int or width == height:
        return None
    video = (width, height)
    if _kept(size, video) >= _kept(size, (height, width)):
        return None
    return FrameMisfit(label, size, video)


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


def check_target(path: Path, *, field: str = "path") -> None:
    """Refuse, before anything is fetched, a target that is not a regular file or new.

    :param field: the caller's name for ``path``, for the error
    :raises ValidationError: ``path`` names a directory, a device, a pipe or a socket
    """
    problem = target_problem(path)
    if problem is not None:
        raise ValidationError(field, str(path), f"a regular file or a new name ({problem})")
