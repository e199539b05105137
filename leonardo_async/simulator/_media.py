"""Bytes the storage host hands out or checks: MP4s, posters, presigned upload forms.

Each generation's MP4 is a function of its id alone, so a test can compare a download
byte for byte with :meth:`Simulator.video_bytes` without the simulator keeping any video in
memory. The presigned form imitates S3's POST policy (fields, base64 policy, HMAC signature)
closely enough that a client which drops or edits a field, or adds credentials, is caught.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
from datetime import datetime, timedelta

__all__ = ["CONTENT_TYPES", "jpg_bytes", "mp4_bytes", "presigned_fields"]

CONTENT_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
}
_ALGORITHM = "AWS4-HMAC-SHA256"


def _box(kind: bytes, payload: bytes) -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


@functools.lru_cache(maxsize=64)
def mp4_bytes(generation_id: str, size: int) -> bytes:
    """Return the MP4 of *generation_id*: ``ftyp``, ``free`` (naming it), ``mdat``.

    The ``mdat`` payload is pseudo-random bytes seeded by the id, padded so the file is
    *size* bytes long (or just long enough for the boxes, if *size* is smaller).
    """
    ftyp = _box(b"ftyp", b"isom" + (0x200).to_bytes(4, "big") + b"isomiso2mp41")
    free = _box(b"free", f"leonardo-async simulator generation {generation_id}".encode())
    payload_size = max(0, size - len(ftyp) - len(free) - 8)
    mdat = _box(b"mdat", hashlib.shake_256(generation_id.encode()).digest(payload_size))
    return ftyp + free + mdat


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
