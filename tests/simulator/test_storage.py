"""The presigned upload and the CDN host: S3's rules, and no API key on another origin."""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp
import pytest

from leonardo_async.simulator import Simulator, SimulatorConfig

from ._support import Api


async def test_storage_is_another_origin(api: Api, sim: Simulator) -> None:
    """The upload URL is on another port than the API."""
    upload = await api.new_init_image()
    assert urlsplit(upload["url"]).port == sim.storage_port != sim.api_port
    assert upload["fields"]["key"] == upload["key"]
    assert set(upload["fields"]) >= {"Policy", "X-Amz-Signature", "Content-Type", "bucket"}


async def test_authorization_header_is_refused(api: Api, sim: Simulator) -> None:
    """Sending the API key to the upload host is a 400, and it is counted."""
    upload = await api.new_init_image()
    reply = await api.post_form(upload, headers=api.auth)
    assert reply.status == 400
    assert b"<Code>InvalidArgument</Code>" in reply.body
    assert b"Only one auth mechanism allowed" in reply.body
    stats = sim.statistics()
    assert stats.storage_auth_headers == 1
    assert stats.uploads_rejected == 1
    assert stats.uploads_completed == 0


async def test_cdn_counts_auth_headers(api: Api, sim: Simulator) -> None:
    """A CDN download carrying the API key is served but counted."""
    gid = await api.submit_ok(await api.uploaded_image())
    url = (await api.finished(gid))["generated_images"][0]["motionMP4URL"]
    reply = await api.raw("GET", url, headers=api.auth)
    assert reply.status == 200
    assert sim.statistics().storage_auth_headers == 1


async def test_missing_field_is_refused(api: Api) -> None:
    """Dropping any field of the form breaks the policy: 403 AccessDenied."""
    upload = await api.new_init_image()
    for name in upload["fields"]:
        fields = {k: v for k, v in upload["fields"].items() if k != name}
        reply = await api.post_form(upload, fields=fields)
        assert reply.status == 403, name
        assert b"<Code>AccessDenied</Code>" in reply.body
        assert b"Invalid according to Policy" in reply.body


async def test_changed_or_extra_field_is_refused(api: Api) -> None:
    """Editing a field or adding one breaks the policy too."""
    upload = await api.new_init_image()
    changed = {**upload["fields"], "Content-Type": "image/jpeg"}
    assert (await api.post_form(upload, fields=changed)).status == 403
    extra = {**upload["fields"], "authorization": "Bearer x"}
    reply = await api.post_form(upload, fields=extra)
    assert reply.status == 403
    assert b"Extra input fields" in reply.body


async def test_file_must_come_last(api: Api) -> None:
    """A file part before the fields is a 400."""
    upload = await api.new_init_image()
    reply = await api.post_form(upload, file_first=True)
    assert reply.status == 400
    assert b"InvalidArgument" in reply.body


async def test_file_is_required(api: Api) -> None:
    """A form without a file is a 400."""
    upload = await api.new_init_image()
    reply = await api.post_form(upload, file=None)
    assert reply.status == 400
    assert b"exactly one file" in reply.body


async def test_form_encoding_is_required(api: Api) -> None:
    """An upload that is not multipart is refused."""
    upload = await api.new_init_image()
    reply = await api.raw("POST", upload["url"], data=b"raw bytes")
    assert reply.status == 412


@pytest.mark.leonardo_simulator(SimulatorConfig(upload_url_ttl=0.0))
async def test_expired_policy(sim: Simulator, session: aiohttp.ClientSession) -> None:
    """Past ``upload_url_ttl`` the upload answers "Policy expired."."""
    api = Api(sim, session)
    upload = await api.new_init_image()
    reply = await api.post_form(upload)
    assert reply.status == 403
    assert b"Policy expired." in reply.body


@pytest.mark.leonardo_simulator(SimulatorConfig(max_upload_bytes=100))
async def test_size_cap(sim: Simulator, session: aiohttp.ClientSession) -> None:
    """Files over ``max_upload_bytes`` are refused with EntityTooLarge."""
    api = Api(sim, session)
    upload = await api.new_init_image()
    reply = await api.post_form(upload, file=b"x" * 101)
    assert reply.status == 400
    assert b"EntityTooLarge" in reply.body
    assert (await api.post_form(upload, file=b"x" * 100)).status == 204


async def test_upload_can_be_repeated(api: Api, sim: Simulator) -> None:
    """Within its lifetime a presigned form may be posted again, like S3's."""
    upload = await api.new_init_image()
    assert (await api.post_form(upload)).status == 204
    assert (await api.post_form(upload, file=b"other")).status == 204
    assert sim.statistics().uploads_completed == 2
