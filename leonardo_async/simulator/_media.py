"""Bytes the storage host hands out or checks: MP4s, posters, presigned upload forms.

Each generation's MP4 is by default the bundled ``clip.mp4`` (a playable 4 s H.264 test
pattern, 640x360 at 8 fps, 38 KB) followed by a ``free`` box naming the generation, so
players, thumbnailers and transcoders accept it, and a test can still compare a download
byte for byte with :meth:`Simulator.video_bytes` (and tell two generations apart) without
the simulator keeping any video in memory. The clip was made once with Debian's ffmpeg::

    ffmpeg -f lavfi -i testsrc2=size=640x360:rate=8:duration=4 -c:v libx264 \\
        -preset veryslow -crf 40 -pix_fmt yuv420p -profile:v baseline \\
        -movflags +faststart -an -map_metadata -1 -fflags +bitexact -flags:v +bitexact clip.mp4
 The presigned form imitates S3's POST policy (fields, base64 policy, HMAC signature)
closely enough that a client which drops or edits a field, or adds credentials, is caught.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
from datetime import datetime, timedelta
from importlib import resources

__all__ = ["CONTENT_TYPES", "clip_bytes", "jpg_bytes", "mp4_bytes", "presigned_fields", "tagged"]

CONTENT_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
}
_ALGORITHM = "AWS4-HMAC-SHA256"


def _box(kind: bytes, payload: bytes) -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


@functools.cache
def clip_bytes() -> bytes:
    """Return the bundled clip, read once."""
    return resources.files(__package__).joinpath("clip.mp4").read_bytes()


def tagged(video: bytes, generation_id: str, size: int) -> bytes:
    """Return *video* followed by a ``free`` box naming *generation_id*.

    The box is padded so the file is at least *size* bytes long (benchmarks want big
    downloads). Appending moves no other box, so the offsets in ``moov`` stay right.
    """
    text = f"leonardo-async simulator generation {generation_id}".encode()
    padding = max(0, size - len(video) - 8 - len(text))
    return video + _box(b"free", text + bytes(padding))


@functools.lru_cache(maxsize=64)
def mp4_bytes(generation_id: str, size: int) -> bytes:
    """Return the default MP4 of *generation_id*: the bundled clip, tagged with the id."""
    return tagged(clip_bytes(), generation_id, size)


def jpg_bytes(generation_id: str) -> bytes:
    """Return a tiny JPEG-framed poster (SOI, JFIF header, comment naming the id, EOI)."""
    jfif = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    text = f"leonardo-async simulator poster {generation_id}".encode()
    comment = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text
    return b"\xff\xd8" + jfif + comment + b"\xff\xd9"


def presigned_fields(
    *, bucket: str, key: str, content_type: str, secret: bytes, issued: datetime, ttl: float
) -> dict[str, str]:
    """Return the form fields of an S3-style presigned POST for *key*.

    :param bucket: the bucket name, also a field.
    :param key: the object key the upload will be stored under.
    :param content_type: the ``Content-Type`` the policy pins.
    :param secret: the HMAC key signing the policy.
    :param issued: the wall-clock (UTC) issue time.
    :param ttl: seconds until the policy expires.
    """
    date = issued.strftime("%Y%m%d")
    amz_date = issued.strftime("%Y%m%dT%H%M%SZ")
    credential = f"ASIASIMULATOR000KEY/{date}/us-east-1/s3/aws4_request"
    expiration = (issued + timedelta(seconds=ttl)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    policy = {
        "expiration": expiration,
        "conditions": [
            {"bucket": bucket},
            {"key": key},
            {"Content-Type": content_type},
            {"X-Amz-Algorithm": _ALGORITHM},
            {"X-Amz-Credential": credential},
            {"X-Amz-Date": amz_date},
        ],
    }
    encoded = base64.b64encode(json.dumps(policy).encode()).decode()
    signature = hmac.new(secret, encoded.encode(), hashlib.sha256).hexdigest()
    return {
        "Content-Type": content_type,
        "bucket": bucket,
        "X-Amz-Algorithm": _ALGORITHM,
        "X-Amz-Credential": credential,
        "X-Amz-Date": amz_date,
        "Policy": encoded,
        "X-Amz-Signature": signature,
        "key": key,
    }
