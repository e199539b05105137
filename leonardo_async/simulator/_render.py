"""Videos made from a generation's own frames (the ``video="frames"`` knob; needs PyAV).

A downstream step (thumbnails, a transcode, a contact sheet) is best tested on a video that
looks like the request: this one starts on the start frame and crossfades into the end
frame, at the requested width, height and duration. Without an end frame it fades the start
frame to black; a frame that is not an uploaded image (a ``GENERATED`` id, text-to-video)
is a flat card coloured from its id, so the video still differs per frame. A few frames a
second keep it cheap (8 s of 1080p is about a second of encoding). PyAV and numpy are the
``video`` extra (``pip install 'leonardo-async[video]'``); PyAV's wheels carry libx264.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["FPS", "RenderUnavailableError", "check_available", "render_mp4"]

#: Frames per second of a rendered video: enough to see the move, cheap to encode.
FPS = 4


class RenderUnavailableError(RuntimeError):
    """PyAV or numpy is missing, so ``video="frames"`` cannot work."""


def check_available() -> None:
    """Raise :class:`RenderUnavailableError` unless PyAV (with libx264) and numpy import."""
    try:
        import av
        import numpy  # noqa: F401
    except ImportError as exc:
        raise RenderUnavailableError(
            f"video='frames' needs PyAV and numpy ({exc.name} is not installed): "
            "pip install 'leonardo-async[video]'"
        ) from None
    if "libx264" not in av.codecs_available:
        raise RenderUnavailableError("video='frames' needs a PyAV built with libx264")


def _card(key: str, width: int, height: int) -> NDArray[np.uint8]:
    """A flat frame coloured by *key*: the stand-in for a frame with no pixels here."""
    import numpy as np

    red, green, blue = hashlib.sha256(key.encode()).digest()[:3]
    return np.full((height, width, 3), (red, green, blue), dtype=np.uint8)


def _picture(data: bytes, width: int, height: int) -> NDArray[np.uint8]:
    """Decode image *data* and scale it to cover width x height, cropping the overflow."""
    import av

    with av.open(io.BytesIO(data)) as container:
        frame = next(container.decode(video=0))
    scale = max(width / frame.width, height / frame.height)
    scaled_w = max(width, round(frame.width * scale))
    scaled_h = max(height, round(frame.height * scale))
    pixels: NDArray[np.uint8] = frame.reformat(scaled_w, scaled_h, format="rgb24").to_ndarray()
    left, top = (scaled_w - width) // 2, (scaled_h - height) // 2
    return pixels[top : top + height, left : left + width]


def _frame(image: bytes | None, key: str, width: int, height: int) -> NDArray[np.uint8]:
    import av

    if image is None:
        return _card(key, width, height)
    try:
        return _picture(image, width, height)
    except (av.FFmpegError, StopIteration):  # an upload that is no image still gets a video
        return _card(key, width, height)


def render_mp4(
    *,
    start: bytes | None,
    end: bytes | None,
    start_key: str,
    width: int,
    height: int,
    duration: float,
) -> bytes:
    """Return an H.264 MP4 crossfading from *start* to *end* (to black if *end* is None).

    :param start: the start frame's image bytes, or ``None`` for a card.
    :param end: the end frame's image bytes, or ``None``.
    :param start_key: names the start frame; colours its card when *start* is ``None``.
    :param width: the video's width in pixels (even).
    :param height: the video's height in pixels (even).
    :param duration: seconds.
    :raises RenderUnavailableError: without PyAV or numpy.
    """
    check_available()
    import numpy as np

    first = _frame(start, start_key, width, height).astype(np.float32)
    last = (
        np.zeros_like(first)
        if end is None
        else _frame(end, start_key + "/end", width, height).astype(np.float32)
    )
    count = max(2, round(duration * FPS))
    # A file, not a BytesIO: +faststart (moov first, so a player starts before the end
    # arrives) rewrites the file by name when it closes.
    with tempfile.TemporaryDirectory(prefix="leonardo-sim-") as folder:
        path = Path(folder) / "video.mp4"
        _encode(path, first, last, count)
        return path.read_bytes()


def _encode(path: Path, first: NDArray[np.float32], last: NDArray[np.float32], count: int) -> None:
    import av
    import numpy as np

    height, width = first.shape[:2]
    options: dict[str, Any] = {"movflags": "+faststart"}
    with av.open(str(path), "w", format="mp4", options=options) as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "32"}
        for index in range(count):
            mix = index / (count - 1)
            pixels = (first * (1.0 - mix) + last * mix).round().astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
