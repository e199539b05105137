"""Tiny but real PNG, JPEG and WebP images, made in memory for upload tests."""

from __future__ import annotations

import base64
import struct
import zlib

__all__ = ["jpeg_bytes", "png_bytes", "webp_bytes"]

#: A 1x1 baseline JPEG (grey), the smallest file common decoders accept.
_JPEG_1X1 = base64.b64decode(
    "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAAMCAgICAgMCAgIDAwMDBAYEBAQEBAgGBgUGCQgKCgkICQkKDA8MCgsOCwkJ"
    "DRENDg8QEBEQCgwSExIQEw8QEBD/yQALCAABAAEBAREA/8wABgAQEAX/2gAIAQEAAD8A0s8g/9k="
)
#: A 1x1 lossless WebP (VP8L), transparent.
_WEBP_1X1 = base64.b64decode("UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_bytes(width: int = 16, height: int = 9, rgb: tuple[int, int, int] = (40, 90, 200)) -> bytes:
    """Return a valid RGB PNG of one colour, ``width`` x ``height`` pixels."""
    row = b"\x00" + bytes(rgb) * width  # filter type 0, then the pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(row * height))
        + _chunk(b"IEND", b"")
    )


def jpeg_bytes() -> bytes:
    """Return a valid 1x1 JPEG."""
    return _JPEG_1X1


def webp_bytes() -> bytes:
    """Return a valid 1x1 WebP."""
    return _WEBP_1X1
