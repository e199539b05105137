"""The example frames: a small pure-Python PNG writer and a twilight scene to feed it.

``examples/start-frame.png`` and ``examples/end-frame.png`` are drawn by this module
(``python -m leonardo_async.cli._frames examples``), and the demo draws the start frame
itself when it runs outside a checkout, where ``examples/`` is not at hand. The scene is
made of horizontal spans only (a sky gradient, a sun, a sea with its reflection), so a
1280x720 frame takes a fraction of a second in pure Python and compresses to a few KB.
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path
from typing import Final

__all__ = ["END", "START", "draw_frame", "png_bytes", "write_frames"]

WIDTH: Final = 1280
HEIGHT: Final = 720
#: Where the sun is in each frame: 0 is high in the sky, 1 has it half set.
START: Final = 0.0
END: Final = 1.0

Color = tuple[int, int, int]

_SKY_DAY: Final[tuple[Color, ...]] = ((24, 32, 92), (168, 74, 140), (252, 150, 86))
_SKY_DUSK: Final[tuple[Color, ...]] = ((10, 12, 48), (96, 40, 104), (226, 92, 64))
_SEA_TOP: Final[Color] = (72, 48, 112)
_SEA_BOTTOM: Final[Color] = (12, 18, 46)
_SUN: Final[Color] = (255, 228, 160)


def _mix(a: Color, b: Color, t: float) -> Color:
    """Blend two colours, ``t`` from 0 (all ``a``) to 1 (all ``b``)."""
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def _ramp(stops: tuple[Color, ...], t: float) -> Color:
    """The colour at ``t`` (0 to 1) along evenly spaced ``stops``."""
    t = min(max(t, 0.0), 1.0) * (len(stops) - 1)
    i = min(int(t), len(stops) - 2)
    return _mix(stops[i], stops[i + 1], t - i)


def _span(row: bytearray, x0: float, x1: float, color: Color) -> None:
    """Paint pixels ``x0`` to ``x1`` of an RGB row (clipped to the row)."""
    lo, hi = max(0, round(x0)), min(len(row) // 3, round(x1))
    if hi > lo:
        row[lo * 3 : hi * 3] = bytes(color) * (hi - lo)


def draw_frame(t: float, width: int = WIDTH, height: int = HEIGHT) -> list[bytes]:
    """Draw the twilight scene with the sun at ``t`` (0 high, 1 half set); RGB rows."""
    horizon = round(height * 0.64)
    radius = height * 0.11
    sun_x = width * 0.5
    sun_y = horizon - radius * (1.6 - 1.6 * t)
    sky = tuple(_mix(a, b, t) for a, b in zip(_SKY_DAY, _SKY_DUSK, strict=True))
    rows: list[bytes] = []
    for y in range(height):
        if y < horizon:
            base = _ramp(sky, y / horizon)
            row = bytearray(bytes(base) * width)
            dy = abs(y + 0.5 - sun_y)
            for scale, weight in ((1.6, 0.25), (1.25, 0.5), (1.0, 1.0)):
                r = radius * scale
                if dy < r:
                    half = (r * r - dy * dy) ** 0.5
                    _span(row, sun_x - half, sun_x + half, _mix(base, _SUN, weight))
        else:
            depth = (y - horizon) / (height - horizon)
            base = _mix(_SEA_TOP, _SEA_BOTTOM, depth)
            row = bytearray(bytes(base) * width)
            band = (y - horizon) // 6
            half = radius * (1.1 - 0.8 * depth) * (0.6 if band % 2 else 1.0) * (1.0 - 0.5 * t)
            glint = _mix(base, _SUN, 0.55 * (1.0 - depth) * (1.0 - 0.4 * t))
            _span(row, sun_x - half, sun_x + half, glint)
        rows.append(bytes(row))
    return rows


def png_bytes(rows: list[bytes], width: int, height: int) -> bytes:
    """Encode RGB rows (8 bits per channel) as a PNG file."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in rows)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def frame_png(t: float) -> bytes:
    """The frame with the sun at ``t``, as PNG bytes."""
    return png_bytes(draw_frame(t), WIDTH, HEIGHT)


def write_frames(directory: Path) -> list[Path]:
    """Write ``start-frame.png`` and ``end-frame.png`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, t in (("start-frame.png", START), ("end-frame.png", END)):
        path = directory / name
        path.write_bytes(frame_png(t))
        written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover - a maintainer's tool
    for written_path in write_frames(Path(sys.argv[1] if len(sys.argv) > 1 else "examples")):
        print(written_path, written_path.stat().st_size, "bytes")
