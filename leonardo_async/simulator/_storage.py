"""The storage host: the S3-like presigned upload and the CDN serving MP4s and posters.

It listens on its own port, so it is another origin than the API, as S3 and Leonardo's CDN
are. A client that sends its API key there is counted (``storage_auth_headers``), and an
upload carrying an ``Authorization`` header is refused the way S3 refuses two auth
mechanisms. Errors are S3's XML, not Hasura JSON: a client must not assume one error format.
"""

from __future__ import annotations

import hashlib
from xml.sax.saxutils import escape

import anyio
from aiohttp import BodyPartReader, web

from ._core import BUCKET, Core
from ._media import jpg_bytes
from ._pipeline import CORE, Handler

__all__ = ["add_storage_routes"]


def _s3_error(status: int, code: str, message: str) -> web.Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        "<RequestId>SIMULATOR</RequestId></Error>"
    )
    return web.Response(status=status, text=body, content_type="application/xml")


@web.middleware
async def _count(request: web.Request, handler: Handler) -> web.StreamResponse:
    core = request.app[CORE]
    resource = request.match_info.route.resource
    name = resource.canonical if resource is not None else "(unmatched)"
    core.stats.storage_requests[f"{request.method} {name}"] += 1
    if "Authorization" in request.headers:
        core.stats.storage_auth_headers += 1
    return await handler(request)


class _Form:
    """The parts of a multipart upload, in order, with the file's bytes."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.file: bytes | None = None
        self.file_count = 0
        self.field_after_file = False
        self.too_large = False


async def _read_form(request: web.Request, limit: int) -> _Form:
    form = _Form()
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue  # nested multipart: S3 ignores it, so do we
        if part.name == "file":
            form.file_count += 1
            data = bytearray()
            while chunk := await part.read_chunk():
                data += chunk
                if len(data) > limit:
                    form.too_large = True
                    return form
            form.file = bytes(data)
        else:
            if form.file_count:
                form.field_after_file = True
            form.fields[part.name or ""] = await part.text()
    return form


def _check_policy(core: Core, form: _Form) -> web.Response | None:
    image = core.store.init_images_by_key.get(form.fields.get("key", ""))
    if image is None:
        return _s3_error(
            403,
            "AccessDenied",
            'Invalid according to Policy: Policy Condition failed: ["eq", "$key"]',
        )
    for name, expected in image.fields.items():
        if form.fields.get(name) != expected:
            return _s3_error(
                403,
                "AccessDenied",
                "Invalid according to Policy: Policy "
                f'Condition failed: ["eq", "${name}", "{expected}"]',
            )
    extra = sorted(set(form.fields) - set(image.fields))
    if extra:
        return _s3_error(
            403,
            "AccessDenied",
            f"Invalid according to Policy: Extra input fields: {', '.join(extra)}",
        )
    expired = core.now() > image.expires_at
    if expired or core.faults.draw(core.config.faults.upload_expired_rate, "upload_expired"):
        return _s3_error(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
    return None


async def upload(request: web.Request) -> web.Response:
    """``POST /<bucket>``: a presigned S3-style form upload; 204 on success."""
    core = request.app[CORE]
    response = await _upload(request, core)
    if response.status == 204:
        core.stats.uploads_completed += 1
    else:
        core.stats.uploads_rejected += 1
    return response


async def _upload(request: web.Request, core: Core) -> web.Response:
    if "Authorization" in request.headers:
        return _s3_error(
            400,
            "InvalidArgument",
            "Only one auth mechanism allowed; only the "
            "X-Amz-Algorithm query parameter, Signature query string parameter "
            "or the Authorization header should be specified",
        )
    if request.content_type != "multipart/form-data":
        return _s3_error(
            412,
            "PreconditionFailed",
            "Bucket POST must be of the enclosure-type multipart/form-data",
        )
    try:
        form = await _read_form(request, core.config.max_upload_bytes)
    except ValueError as exc:
        return _s3_error(
            400,
            "MalformedPOSTRequest",
            f"The body of your POST request is not well-formed multipart/form-data: {exc}",
        )
    if form.too_large:
        return _s3_error(
            400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size"
        )
    problem = _check_policy(core, form)
    if problem is not None:
        return problem
    if form.file is None or form.file_count != 1:
        return _s3_error(
            400, "InvalidArgument", "POST requires exactly one file upload per request."
        )
    if form.field_after_file:
        return _s3_error(400, "InvalidArgument", "The file must be the last field of the form.")
    image = core.store.init_images_by_key[form.fields["key"]]
    image.uploaded = True
    image.size = len(form.file)
    image.sha256 = hashlib.sha256(form.file).hexdigest()
    image.content_type = form.fields["Content-Type"]
    if core.config.video == "frames":
        image.data = form.file
    return web.Response(status=204)


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """Parse a single ``bytes=`` range into inclusive (start, end); ``None`` if unsatisfiable."""
    unit, _, spec = header.partition("=")
    first, dash, last = spec.strip().partition("-")
    if unit.strip() != "bytes" or not dash or "," in spec:
        return None
    try:
        if not first:
            start, end = max(0, size - int(last)), size - 1
        else:
            start, end = int(first), min(size - 1, int(last)) if last else size - 1
    except ValueError:
        return None
    return (start, end) if 0 <= start <= end else None


async def cdn(request: web.Request) -> web.StreamResponse:
    """``GET /cdn/<generation id>.mp4|.jpg``: the finished video or its poster."""
    core = request.app[CORE]
    gid, _, extension = request.match_info["name"].rpartition(".")
    row = core.store.visible_generation(gid, core.now())
    if row is None or extension not in ("mp4", "jpg") or row.status(core.now()) != "COMPLETE":
        return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
    if extension == "mp4":
        if core.config.video == "frames":  # a CPU second: off the loop, so others go on
            data = await anyio.to_thread.run_sync(core.video_bytes, row)
        else:
            data = core.video_bytes(row)
        content_type = "video/mp4"
    else:
        data, content_type = jpg_bytes(gid), "image/jpeg"
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{hashlib.sha256(data).hexdigest()[:32]}"'}
    status = 200
    if "Range" in request.headers:
        span = _byte_range(request.headers["Range"], len(data))
        if span is None:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
        start, end = span
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        data, status = data[start : end + 1], 206
    if request.method == "GET" and core.faults.draw(
        core.config.faults.cdn_truncate_rate, "cdn_truncate"
    ):
        return await _truncated(request, data, status, headers, content_type)
    if request.method == "GET":
        core.stats.downloads += 1
    return web.Response(body=data, status=status, headers=headers, content_type=content_type)


async def _truncated(
    request: web.Request, data: bytes, status: int, headers: dict[str, str], content_type: str
) -> web.StreamResponse:
    """Announce all of *data* but send half, then close: a CDN connection cut mid-body."""
    response = web.StreamResponse(status=status, headers=headers)
    response.content_type = content_type
    response.content_length = len(data)
    await response.prepare(request)
    await response.write(data[: len(data) // 2])
    if request.transport is not None:
        request.transport.close()
    return response


def add_storage_routes(app: web.Application) -> None:
    """Register the upload and CDN routes on *app*."""
    app.middlewares.append(_count)
    app.router.add_post(f"/{BUCKET}", upload)
    app.router.add_get("/cdn/{name}", cdn)
