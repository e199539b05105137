"""Checks that an MP4 is a real video: its boxes, PyAV's decode, and Debian's ``ffprobe``.

PyAV comes with the ``test`` extra, so decoding is always checked. External programs
(``ffprobe``, ``chromium``) may be missing on a developer's machine: the test is skipped
there, but CI sets ``LEONARDO_REQUIRE_TOOLS=1`` and a missing program fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import attrs
import av
import pytest

__all__ = ["REQUIRE_TOOLS", "Decoded", "decode", "ffprobe", "needs_tool", "top_level_boxes"]

#: Read at import: the autouse fixture that clears ``LEONARDO_*`` runs later, per test.
REQUIRE_TOOLS = os.environ.get("LEONARDO_REQUIRE_TOOLS") == "1"


def needs_tool(name: str) -> str:
    """Return the path of program *name*; skip without it, or fail if CI requires tools."""
    found = shutil.which(name)
    if found is None:
        message = f"{name} is not installed (apt-get install ffmpeg chromium)"
        if REQUIRE_TOOLS:
            pytest.fail(f"{message}; LEONARDO_REQUIRE_TOOLS=1 requires it")
        pytest.skip(message)
    return found


def top_level_boxes(data: bytes) -> list[str]:
    """Return the types of the top-level ISO-BMFF boxes of *data*, in order."""
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        if size < 8:
            raise AssertionError(f"box at {offset} has size {size}")
        boxes.append(data[offset + 4 : offset + 8].decode("latin-1"))
        offset += size
    assert offset == len(data), f"boxes end at {offset}, the file at {len(data)}"
    return boxes


@attrs.frozen
class Decoded:
    """What decoding every frame of a video found."""

    codec: str
    width: int
    height: int
    frames: int
    seconds: float
    #: Mean (R, G, B) of the first and of the last frame.
    first_rgb: tuple[float, float, float]
    last_rgb: tuple[float, float, float]


def _mean_rgb(frame: av.VideoFrame) -> tuple[float, float, float]:
    pixels = frame.to_ndarray(format="rgb24")
    red, green, blue = (float(pixels[..., channel].mean()) for channel in range(3))
    return red, green, blue


def decode(path: Path) -> Decoded:
    """Decode every frame of the MP4 at *path* with PyAV (errors raise)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        assert frames, f"{path}: no frame decoded"
        assert stream.duration is not None
        assert stream.time_base is not None
        return Decoded(
            codec=stream.codec_context.name,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            frames=len(frames),
            seconds=float(stream.duration * stream.time_base),
            first_rgb=_mean_rgb(frames[0]),
            last_rgb=_mean_rgb(frames[-1]),
        )


def ffprobe(path: Path) -> dict[str, str]:
    """Return ffprobe's view of the first video stream of *path*, frames counted by decoding."""
    program = needs_tool("ffprobe")
    entries = "stream=codec_name,width,height,nb_read_frames"
    command = [program, "-v", "error", "-count_frames", "-select_streams", "v:0"]
    command += ["-show_entries", entries, "-of", "json", str(path)]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert not result.stderr, result.stderr
    streams: list[dict[str, str]] = json.loads(result.stdout)["streams"]
    assert streams, f"{path}: ffprobe found no video stream"
    return {key: str(value) for key, value in streams[0].items()}
