"""Submit-body rules, auth and routing: what the simulator refuses, and how it says so."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leonardo_async.simulator import Simulator, SimulatorConfig
from leonardo_async.simulator.pytest_plugin import SimulatorFactory

from ._support import Api

VEO_SIZES = {
    "RESOLUTION_720": [(1280, 720), (720, 1280)],
    "RESOLUTION_1080": [(1920, 1080), (1080, 1920)],
}
MISSING = object()

#: For each field, values the simulator must refuse (MISSING: leave the field out).
INVALID: dict[str, list[Any]] = {
    "prompt": [MISSING, "", "   ", 5, None, ["a"]],
    "imageType": [MISSING, "uploaded", "URL", 3, None],
    "imageId": [MISSING, "", 7, "no-such-image", None],
    "endFrameImage": [
        "x",
        [],
        {"id": "no-such-image", "type": "UPLOADED"},
        {"type": "UPLOADED"},
        {"id": "{image}"},
        {"id": "{image}", "type": "X"},
    ],
    "model": ["VEO3", "VEO3FAST", "veo3_1", "SORA", 1],
    "duration": [5, 8.0, "8", True, 10, 0, -4],
    "resolution": ["RESOLUTION_480", "1080p", 720],
    "width": [1280.0, "1280", 1000, 1080],
    "isPublic": ["yes", 1],
    "seed": [-1, 2**31, 1.5, "3", True],
    "negativePrompt": [3, ["x"]],
    "promptEnhance": ["true", 0],
    "promptEnhanceInstruction": [5],
    "frameInterpolation": [0, "no"],
    "styleIds": ["abc", [1], {}],
    "elements": [{}, "x"],
}


@st.composite
def valid_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Draw a valid Veo 3.1 body (``{image}`` stands for an uploaded image id)."""
    body: dict[str, Any] = {
        "prompt": draw(st.text(min_size=1).filter(str.strip)),
        "imageId": "{image}",
        "imageType": "UPLOADED",
        "model": draw(st.sampled_from(["VEO3_1", "VEO3_1FAST"])),
    }
    if draw(st.booleans()):
        body["duration"] = draw(st.sampled_from([4, 6, 8]))
    if draw(st.booleans()):
        resolution = draw(st.sampled_from(sorted(VEO_SIZES)))
        body["resolution"] = resolution
        if draw(st.booleans()):
            body["width"], body["height"] = draw(st.sampled_from(VEO_SIZES[resolution]))
    elif draw(st.booleans()):
        body["width"], body["height"] = draw(st.sampled_from(VEO_SIZES["RESOLUTION_720"]))
    optional = {
        "endFrameImage": st.just({"id": "{image}", "type": "UPLOADED"}),
        "isPublic": st.booleans(),
        "seed": st.integers(0, 2**31 - 1),
        "negativePrompt": st.text(),
        "promptEnhance": st.booleans(),
        "promptEnhanceInstruction": st.text(),
        "frameInterpolation": st.booleans(),
        "styleIds": st.lists(st.text(max_size=8), max_size=3),
        "elements": st.lists(st.fixed_dictionaries({"akUUID": st.text(max_size=8)}), max_size=2),
        "anUnknownKey": st.integers(),
    }
    for name, values in optional.items():
        if draw(st.booleans()):
            body[name] = draw(values)
    return body


def _fill(value: Any, image: str) -> Any:
    if value == "{image}":
        return image
    if isinstance(value, dict):
        return {k: _fill(v, image) for k, v in value.items()}
    return value


@pytest.fixture
async def roomy(
    leonardo_simulator_factory: SimulatorFactory, session: aiohttp.ClientSession
) -> Any:
    """Yield (api, uploaded image id) on a simulator with no concurrency limit that ignores
    undeclared keys (the bodies drawn carry one at times)."""
    config = SimulatorConfig(max_running=None, strict_variables=False)
    async with leonardo_simulator_factory(config) as sim:
        api = Api(sim, session)
        yield api, await api.uploaded_image()


_settings = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_settings
@given(body=valid_bodies())
async def test_valid_bodies_are_accepted(roomy: Any, body: dict[str, Any]) -> None:
    """Every body within the Veo 3.1 rules is accepted and recorded exactly as sent."""
    api, image = roomy
    sent = _fill(body, image)
    reply = await api.submit(sent)
    assert reply.status == 200, reply.body
    gid = reply.json["motionVideoGenerationJob"]["generationId"]
    record = api.sim.generation(gid)
    assert record.body == sent
    if "seed" in sent:
        assert record.seed == sent["seed"]


@st.composite
def invalid_bodies(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """Draw a valid body with exactly one field broken; return (field, body)."""
    body = draw(valid_bodies())
    field = draw(st.sampled_from(sorted(INVALID)))
    value = draw(st.sampled_from(INVALID[field]))
    if value is MISSING:
        body.pop(field, None)
    else:
        body[field] = value
    if field == "width":  # a size outside the allowed pairs, whatever the resolution
        body["height"] = 720
        body.pop("resolution", None)
    if field in ("duration", "resolution", "width"):
        body["model"] = draw(st.sampled_from(["VEO3_1", "VEO3_1FAST"]))
    return field, body


@_settings
@given(case=invalid_bodies())
async def test_invalid_bodies_name_the_field(roomy: Any, case: tuple[str, dict[str, Any]]) -> None:
    """A body with one broken field gets a 400 Hasura body naming that field."""
    api, image = roomy
    field, body = case
    before = api.sim.statistics().generations_created
    reply = await api.submit(_fill(body, image))
    assert reply.status == 400, (field, body)
    assert set(reply.json) == {"error", "path", "code"}
    assert f'"{field}"' in reply.error
    assert api.sim.statistics().generations_created == before


async def test_error_lists_allowed_values(api: Api) -> None:
    """Errors say what would have been accepted."""
    image = await api.uploaded_image()
    base = {"prompt": "p", "imageId": image, "imageType": "UPLOADED", "model": "VEO3_1"}
    duration = await api.submit({**base, "duration": 5})
    assert "4, 6, 8" in duration.error
    size = await api.submit({**base, "resolution": "RESOLUTION_1080", "width": 1280, "height": 720})
    assert "1920x1080 or 1080x1920" in size.error
    model = await api.submit({**base, "model": "VEO3"})
    assert "retired" in model.error
    assert "VEO3_1" in model.error


async def test_image_must_be_uploaded(api: Api) -> None:
    """An init image whose file never arrived cannot start a video."""
    upload = await api.new_init_image()
    body = {"prompt": "p", "imageId": upload["id"], "imageType": "UPLOADED", "model": "VEO3_1"}
    reply = await api.submit(body)
    assert reply.status == 400
    assert "never uploaded" in reply.error


async def test_legacy_models_have_loose_rules(api: Api) -> None:
    """Older models accept other durations and sizes; an omitted model means MOTION2."""
    image = await api.uploaded_image()
    base = {"prompt": "p", "imageId": image, "imageType": "UPLOADED"}
    kling = await api.submit(
        {**base, "model": "KLING2_5", "duration": 10, "width": 1000, "height": 1000}
    )
    assert kling.status == 200
    bare = await api.submit(base)
    gid = bare.json["motionVideoGenerationJob"]["generationId"]
    record = api.sim.generation(gid)
    assert record is not None
    assert record.model == "MOTION2"


@pytest.mark.parametrize(
    "data",
    [b"{not json", b"[1, 2]", b'"text"', b"null", b"\xff\xfe"],
)
async def test_body_must_be_a_json_object(api: Api, data: bytes) -> None:
    """Bodies that are not a JSON object are refused with 400."""
    reply = await api.call(
        "POST",
        "/generations-image-to-video",
        data=data,
        headers={"content-type": "application/json"},
    )
    assert reply.status == 400
    assert reply.json["path"] == "$"


async def test_content_type_must_be_json(api: Api) -> None:
    """A submit sent as a form or text is refused with 400."""
    reply = await api.call(
        "POST",
        "/generations-image-to-video",
        data="prompt=x",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert reply.status == 400
    assert "content-type" in reply.error


@pytest.mark.parametrize("body", [{}, {"extension": "gif"}, {"extension": "PNG"}, [], "png"])
async def test_init_image_extension(api: Api, body: Any) -> None:
    """``/init-image`` takes only png, jpg, jpeg and webp, and names the field otherwise."""
    reply = await api.call("POST", "/init-image", json=body)
    assert reply.status == 400
    assert '"extension"' in reply.error


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer wrong-key"},
        {"authorization": "Basic sim-test-key-0000"},
        {"authorization": "sim-test-key-0000"},
        {"authorization": "Bearer "},
    ],
)
async def test_bad_keys_are_refused(api: Api, headers: dict[str, str]) -> None:
    """Without the auth-hook errors, missing or wrong keys get 401 ``access-denied``."""
    api.sim.configure(auth_hook_errors=False)
    reply = await api.call("GET", "/me", auth=False, headers=headers)
    assert reply.status == 401
    assert reply.json == {"error": "Invalid API key", "path": "$", "code": "access-denied"}


@pytest.mark.parametrize(
    ("method", "path", "extra"),
    [
        ("POST", "/generations-image-to-video", {"json": {"anUnknownKey": 1}}),
        ("POST", "/generations-text-to-video", {"json": {"imageId": "x"}}),
        ("POST", "/init-image", {"json": {"extension": "png", "size": 10}}),
        ("GET", "/generations/user/u", {"params": {"offset": "0", "order": "asc"}}),
        ("GET", "/generations/g", {"params": {"fields": "id"}}),
        ("GET", "/me", {"params": {"verbose": "1"}}),
    ],
)
async def test_undeclared_variables_are_refused(
    api: Api, method: str, path: str, extra: dict[str, Any]
) -> None:
    """A body key or query parameter the endpoint does not declare is Hasura's 400."""
    image = await api.uploaded_image()
    if "json" in extra and path.startswith("/generations-"):
        extra["json"] = {"prompt": "p", "imageId": image, "imageType": "UPLOADED", **extra["json"]}
    reply = await api.call(method, path, **extra)
    assert reply.status == 400
    unknown = (set(extra.get("json", {})) | set(extra.get("params", {}))) - {
        "prompt", "imageId", "imageType", "extension", "offset"
    }  # fmt: skip
    if path == "/generations-text-to-video":
        unknown = {"imageId"}
    assert reply.json == {
        "error": f"Unexpected variable {unknown.pop()}",
        "path": "$",
        "code": "validation-failed",
    }
    assert api.sim.statistics().generations_created == 0
    api.sim.configure(strict_variables=False)
    assert (await api.call(method, path, **extra)).status == 200  # ignored when not strict


@pytest.mark.parametrize(
    "header",
    [
        "Bearer wrong-key",
        "Bearer sim-test-key-0000x",
        "Basic 5f0e6c1a-2b7d-4c83-9a41-7d2e8b3f6a10",
        "5f0e6c1a-2b7d-4c83-9a41-7d2e8b3f6a10",
        "Bearer ",
    ],
)
async def test_a_malformed_key_is_the_authorization_hook_500(api: Api, header: str) -> None:
    """By default a key that is not UUID-shaped gets Leonardo's 500 from its auth hook."""
    reply = await api.call("GET", "/me", auth=False, headers={"authorization": header})
    assert reply.status == 500
    assert reply.json == {
        "error": "Invalid response from authorization hook",
        "path": "$",
        "code": "unexpected",
    }


@pytest.mark.parametrize("headers", [{}, {"authorization": f"Bearer {uuid.UUID(int=7)}"}])
async def test_a_well_formed_unknown_key_is_access_denied(
    api: Api, headers: dict[str, str]
) -> None:
    """A UUID-shaped key the server does not know, or no key at all, is ``access-denied``."""
    reply = await api.call("GET", "/me", auth=False, headers=headers)
    assert reply.status == 401
    assert reply.json["code"] == "access-denied"


async def test_header_and_scheme_case_do_not_matter(api: Api) -> None:
    """Header names and the Bearer scheme are case-insensitive, as HTTP says."""
    headers = {"AUTHORIZATION": f"bearer {api.sim.api_key}"}
    assert (await api.call("GET", "/me", auth=False, headers=headers)).status == 200


@pytest.mark.leonardo_simulator(SimulatorConfig(extra_api_keys=("second-key",)))
async def test_extra_keys_are_accepted(sim: Simulator, session: aiohttp.ClientSession) -> None:
    """``extra_api_keys`` are accepted too."""
    api = Api(sim, session)
    headers = {"authorization": "Bearer second-key"}
    assert (await api.call("GET", "/me", auth=False, headers=headers)).status == 200


async def test_unknown_routes_and_methods(api: Api) -> None:
    """Unknown paths are 404 and wrong methods 405, both with Hasura-style bodies."""
    missing = await api.call("GET", "/generations-image-to-video/extra")
    assert missing.status == 404
    assert missing.json["code"] == "not-found"
    wrong = await api.call("PUT", "/generations/abc")
    assert wrong.status == 405
    assert "GET" in wrong.headers["Allow"]
    assert api.sim.statistics().requests["(unmatched)"] == 2


@pytest.mark.parametrize("query", ["offset=-1", "limit=abc", "limit=1.5", "offset=%C2%B2"])
async def test_listing_query_must_be_non_negative_ints(api: Api, query: str) -> None:
    """``offset`` and ``limit`` must be non-negative integers."""
    reply = await api.call("GET", f"/generations/user/{api.sim.user_id}?{query}")
    assert reply.status == 400
