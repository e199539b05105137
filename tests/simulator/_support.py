"""Helpers the simulator tests share: raw HTTP calls, uploads, submits, waiting on state.

Everything goes over real loopback HTTP with a plain aiohttp session: the simulator is
tested the way a client meets it. Waiting polls with a generous deadline and never asserts
on timing, so a slow machine passes.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import anyio
from multidict import CIMultiDictProxy

from leonardo_async.simulator import Simulator
from leonardo_async.simulator._rules import SubmitRequest

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
DEADLINE = 30.0


class Reply:
    """A response read in full: status, headers, raw body, parsed JSON when it parses."""

    def __init__(self, status: int, headers: CIMultiDictProxy[str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self) -> Any:
        """Return the body parsed as JSON."""
        return json.loads(self.body)

    @property
    def error(self) -> str:
        """Return the Hasura error text of the body."""
        text: str = self.json["error"]
        return text


class Api:
    """Raw calls to one simulator."""

    def __init__(self, sim: Simulator, session: aiohttp.ClientSession) -> None:
        self.sim = sim
        self.session = session

    @property
    def auth(self) -> dict[str, str]:
        """Return the authorization header of the simulator's key."""
        return {"authorization": f"Bearer {self.sim.api_key}"}

    async def call(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> Reply:
        """Call an API path (relative to the base URL) and read the whole answer."""
        headers = {**(self.auth if auth else {}), **kwargs.pop("headers", {})}
        async with self.session.request(
            method, self.sim.base_url + path, headers=headers, **kwargs
        ) as response:
            return Reply(response.status, response.headers, await response.read())

    async def raw(self, method: str, url: str, **kwargs: Any) -> Reply:
        """Call any absolute URL (storage, admin) and read the whole answer."""
        async with self.session.request(method, url, **kwargs) as response:
            return Reply(response.status, response.headers, await response.read())

    async def new_init_image(self, extension: str = "png") -> dict[str, Any]:
        """Ask for a presigned upload; return ``uploadInitImage`` with ``fields`` decoded."""
        reply = await self.call("POST", "/init-image", json={"extension": extension})
        assert reply.status == 200, reply.body
        upload: dict[str, Any] = reply.json["uploadInitImage"]
        upload["fields"] = json.loads(upload["fields"])
        return upload

    async def post_form(
        self,
        upload: dict[str, Any],
        *,
        fields: dict[str, str] | None = None,
        file: bytes | None = PNG,
        file_first: bool = False,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """POST a multipart form to the presigned URL (fields as given, file last)."""
        form = aiohttp.FormData(default_to_multipart=True)
        if file is not None and file_first:
            form.add_field("file", file, filename="frame.png", content_type="image/png")
        for name, value in (upload["fields"] if fields is None else fields).items():
            form.add_field(name, value)
        if file is not None and not file_first:
            form.add_field("file", file, filename="frame.png", content_type="image/png")
        return await self.raw("POST", upload["url"], data=form, headers=headers or {})

    async def uploaded_image(self, extension: str = "png") -> str:
        """Create and upload an init image; return its id."""
        upload = await self.new_init_image(extension)
        reply = await self.post_form(upload)
        assert reply.status == 204, reply.body
        image_id: str = upload["id"]
        return image_id

    async def submit(self, body: dict[str, Any], **kwargs: Any) -> Reply:
        """POST an image-to-video body."""
        return await self.call("POST", "/generations-image-to-video", json=body, **kwargs)

    async def submit_ok(self, image_id: str, **fields: Any) -> str:
        """Submit a valid Veo 3.1 body (plus *fields*); return the generation id."""
        body = {
            "prompt": "a lighthouse at dusk",
            "imageId": image_id,
            "imageType": "UPLOADED",
            "model": "VEO3_1",
            **fields,
        }
        reply = await self.submit(body)
        assert reply.status == 200, reply.body
        gid: str = reply.json["motionVideoGenerationJob"]["generationId"]
        return gid

    async def generation(self, gid: str) -> Any:
        """Return ``generations_by_pk`` for *gid*."""
        reply = await self.call("GET", f"/generations/{gid}")
        assert reply.status == 200, reply.body
        return reply.json["generations_by_pk"]

    async def finished(self, gid: str) -> dict[str, Any]:
        """Poll *gid* until it is no longer ``PENDING``; return it."""

        async def done() -> Any:
            found = await self.generation(gid)
            return found if found is not None and found["status"] != "PENDING" else None

        result: dict[str, Any] = await eventually(done)
        return result


async def eventually(probe: Callable[[], Awaitable[Any]], deadline: float = DEADLINE) -> Any:
    """Call *probe* until it returns something truthy, failing after *deadline* seconds."""
    with anyio.fail_after(deadline):
        while True:
            result = await probe()
            if result:
                return result
            await anyio.sleep(0.02)


def text_request() -> SubmitRequest:
    """A valid parsed text-to-video submit, for driving the simulator's core directly."""
    return SubmitRequest(
        endpoint="text-to-video",
        prompt="p",
        negative_prompt=None,
        image_id=None,
        image_type=None,
        end_frame=None,
        model="VEO3_1",
        duration=8,
        resolution="RESOLUTION_720",
        width=1280,
        height=720,
        public=False,
        seed=None,
    )
