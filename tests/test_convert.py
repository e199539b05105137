"""The wire format: reading responses forgivingly, naming bad paths, writing request bodies."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leonardo_async import (
    FrameRef,
    Generation,
    GenerationStatus,
    ImageToVideoRequest,
    ImageType,
    Model,
    Resolution,
    ResponseShapeError,
    ValidationError,
)
from leonardo_async import _convert as wire

GENERATION_KEYS = {
    "id",
    "status",
    "prompt",
    "createdAt",
    "seed",
    "imageWidth",
    "imageHeight",
    "generated_images",
}
IMAGE_KEYS = {"id", "url", "motionMP4URL", "nsfw"}

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def extras(known: set[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Keys the API may add later, with any JSON value."""
    return st.dictionaries(
        st.text(min_size=1, max_size=12).filter(lambda k: k not in known),
        json_values,
        max_size=4,
    )


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field that may be present, null, or absent (``...`` marks absent)."""
    return st.one_of(strategy, st.none(), st.just(...))


@st.composite
def image_json(draw: st.DrawFn) -> dict[str, Any]:
    fields = {
        "id": draw(st.text(min_size=1, max_size=10)),
        "url": draw(optional(st.text(max_size=20))),
        "motionMP4URL": draw(optional(st.text(max_size=20))),
        "nsfw": draw(optional(st.booleans())),
    }
    body = {k: v for k, v in fields.items() if v is not ...}
    return {**draw(extras(IMAGE_KEYS)), **body}


timestamps = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.none()
)


@st.composite
def created_at(draw: st.DrawFn) -> tuple[str, datetime]:
    """A Hasura-style timestamp string and the aware datetime it means."""
    moment = draw(timestamps)
    offset = draw(st.sampled_from([None, 0, 120, -330]))
    text = moment.isoformat(timespec=draw(st.sampled_from(["seconds", "milliseconds"])))
    if draw(st.sampled_from(["milliseconds", "auto"])) == "milliseconds":
        moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        text = moment.isoformat(timespec="milliseconds")
    else:
        moment = moment.replace(microsecond=0)
        text = moment.isoformat(timespec="seconds")
    if offset is None:
        suffix = draw(st.sampled_from(["", "Z"]))
        return text + suffix, moment.replace(tzinfo=timezone.utc)
    zone = timezone(timedelta(minutes=offset))
    sign = "+" if offset >= 0 else "-"
    hours, minutes = divmod(abs(offset), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}", moment.replace(tzinfo=zone)


@st.composite
def generation_json(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A generation as the API may send it, and the values it must be read as."""
    stamp = draw(optional(created_at()))
    images = draw(optional(st.lists(image_json(), max_size=3)))
    fields = {
        "id": draw(st.text(min_size=1, max_size=12)),
        "status": draw(
            st.one_of(st.sampled_from(["PENDING", "COMPLETE", "FAILED"]), st.text(max_size=10))
        ),
        "prompt": draw(optional(st.text(max_size=30))),
        "createdAt": stamp if stamp in (None, ...) else stamp[0],
        "seed": draw(optional(st.integers(0, 2**32))),
        "imageWidth": draw(optional(st.integers(1, 4000))),
        "imageHeight": draw(optional(st.integers(1, 4000))),
        "generated_images": images,
    }
    body = {k: v for k, v in fields.items() if v is not ...}
    expected = {k: (None if v is ... else v) for k, v in fields.items()}
    expected["createdAt"] = None if stamp in (None, ...) else stamp[1]
    expected["generated_images"] = images if isinstance(images, list) else []
    return {**draw(extras(GENERATION_KEYS)), **body}, expected


@given(generation_json())
def test_generation_round_trip(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """Any generation the API may send is read field by field; extra keys and nulls are fine."""
    raw, expected = case
    generation = wire.structure({"generations_by_pk": raw}, wire.GenerationEnvelope, "/g")
    got = generation.generations_by_pk
    assert got is not None
    assert got.id == expected["id"]
    assert got.status == expected["status"]
    if expected["status"] in ("PENDING", "COMPLETE", "FAILED"):
        assert isinstance(got.status, GenerationStatus)
    assert got.prompt == expected["prompt"]
    assert got.created_at == expected["createdAt"]
    assert got.created_at is None or got.created_at.tzinfo is not None
    assert got.seed == expected["seed"]
    assert (got.image_width, got.image_height) == (expected["imageWidth"], expected["imageHeight"])
    assert len(got.generated_images) == len(expected["generated_images"])
    for image, want in zip(got.generated_images, expected["generated_images"], strict=True):
        assert image.id == want["id"]
        assert image.url == want.get("url")
        assert image.motion_mp4_url == want.get("motionMP4URL")
        assert image.nsfw == want.get("nsfw")


@given(st.lists(generation_json(), max_size=4))
def test_listing_round_trip(cases: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    """A listing page is read as the generations it holds, in order."""
    page = wire.structure(
        {"generations": [raw for raw, _ in cases]}, wire.GenerationListEnvelope, "/list"
    )
    assert [g.id for g in page.generations] == [want["id"] for _, want in cases]


def test_unknown_status_is_kept_as_string() -> None:
    """A status this version does not know stays a plain string, not an error."""
    raw = {"generations_by_pk": {"id": "g1", "status": "QUEUED_FOR_UPSCALE"}}
    generation = wire.structure(raw, wire.GenerationEnvelope, "/g").generations_by_pk
    assert generation is not None
    assert generation.status == "QUEUED_FOR_UPSCALE"
    assert not isinstance(generation.status, GenerationStatus)
    assert not generation.is_finished


def test_missing_generation_is_none() -> None:
    """``generations_by_pk: null`` means the server does not know the id."""
    raw = {"generations_by_pk": None}
    assert wire.structure(raw, wire.GenerationEnvelope, "/g").generations_by_pk is None


def test_submit_answer() -> None:
    """The submit answer gives the job id and its cost as a Decimal amount."""
    raw = {
        "motionVideoGenerationJob": {
            "generationId": "job-1",
            "apiCreditCost": None,
            "cost": {"amount": "2140.5", "unit": "CREDITS"},
            "somethingNew": 1,
        }
    }
    job = wire.structure(raw, wire.SubmitEnvelope, "/s").motion_video_generation_job
    assert job is not None
    assert job.id == "job-1"
    assert job.cost is not None
    assert job.cost.amount == Decimal("2140.5")
    assert job.cost.unit == "CREDITS"
    assert job.api_credit_cost is None


def test_account_from_me() -> None:
    """``/me`` is read into an Account from its first user_details entry."""
    raw = {
        "user_details": [
            {
                "user": {"id": "u1", "username": "ann"},
                "apiConcurrencySlots": 10,
                "apiSubscriptionTokens": 500,
                "apiPaidTokens": None,
                "tokenRenewalDate": None,
            }
        ]
    }
    account = wire.account_from(wire.structure(raw, wire.MeEnvelope, "/me"), "/me")
    assert (account.user_id, account.username, account.concurrency_slots) == ("u1", "ann", 10)
    assert account.token_balance == 500
    with pytest.raises(ResponseShapeError, match=r"\$\.user_details"):
        wire.account_from(wire.structure({"user_details": []}, wire.MeEnvelope, "/me"), "/me")


def test_upload_target_fields_are_decoded() -> None:
    """The presigned form ``fields`` arrive as a JSON string; anything but an object is refused."""
    raw = {
        "uploadInitImage": {
            "id": "img",
            "url": "https://s3.example/bucket",
            "fields": json.dumps({"key": "k", "Policy": "p"}),
            "key": "k",
        }
    }
    target = wire.structure(raw, wire.UploadEnvelope, "/init-image").upload_init_image
    assert target is not None
    assert target.form_fields() == {"key": "k", "Policy": "p"}
    for fields in ("[1, 2]", "{not json", ""):
        broken = wire.UploadTarget("img", "https://s3.example/bucket", fields)
        with pytest.raises(ResponseShapeError, match=r"\$\.uploadInitImage\.fields"):
            broken.form_fields()


GOOD_IMAGE = {"id": "i", "url": "p.jpg", "motionMP4URL": "v.mp4"}


@pytest.mark.parametrize(
    ("raw", "envelope", "path"),
    [
        (
            {
                "generations_by_pk": {
                    "id": "g",
                    "status": "COMPLETE",
                    "generated_images": [{"id": "i", "motionMP4URL": 5}],
                }
            },
            wire.GenerationEnvelope,
            "$.generations_by_pk.generated_images[0].motionMP4URL",
        ),
        (
            {
                "generations_by_pk": {
                    "id": "g",
                    "status": "COMPLETE",
                    "generated_images": [GOOD_IMAGE, {"url": 5}],
                }
            },
            wire.GenerationEnvelope,
            "$.generations_by_pk.generated_images[1].url",
        ),
        (
            {"generations_by_pk": {"id": 5, "status": "PENDING"}},
            wire.GenerationEnvelope,
            "$.generations_by_pk.id",
        ),
        ({"generations_by_pk": {"id": "g"}}, wire.GenerationEnvelope, "$.generations_by_pk.status"),
        (
            {"generations_by_pk": {"id": "g", "status": "PENDING", "imageWidth": "1280"}},
            wire.GenerationEnvelope,
            "$.generations_by_pk.imageWidth",
        ),
        (
            {"generations_by_pk": {"id": "g", "status": "PENDING", "createdAt": "yesterday"}},
            wire.GenerationEnvelope,
            "$.generations_by_pk.createdAt",
        ),
        (
            {"generations_by_pk": {"id": "g", "status": "PENDING", "generated_images": 7}},
            wire.GenerationEnvelope,
            "$.generations_by_pk.generated_images",
        ),
        ({"data": None}, wire.GenerationEnvelope, "$.generations_by_pk"),
        (
            {"generations": [{"id": "a", "status": "PENDING"}, {"id": "b", "status": ["x"]}]},
            wire.GenerationListEnvelope,
            "$.generations[1].status",
        ),
        (
            {"motionVideoGenerationJob": {"generationId": None}},
            wire.SubmitEnvelope,
            "$.motionVideoGenerationJob.generationId",
        ),
        (
            {
                "motionVideoGenerationJob": {
                    "generationId": "j",
                    "cost": {"amount": "lots", "unit": "CREDITS"},
                }
            },
            wire.SubmitEnvelope,
            "$.motionVideoGenerationJob.cost.amount",
        ),
        (
            {"user_details": [{"user": {"id": "u"}, "apiConcurrencySlots": True}]},
            wire.MeEnvelope,
            "$.user_details[0].apiConcurrencySlots",
        ),
        (
            {"uploadInitImage": {"id": "i", "url": "u"}},
            wire.UploadEnvelope,
            "$.uploadInitImage.fields",
        ),
    ],
)
def test_shape_errors_name_the_wire_path(raw: Any, envelope: type[Any], path: str) -> None:
    """An unreadable response raises ResponseShapeError naming the JSON path in wire names."""
    with pytest.raises(ResponseShapeError) as info:
        wire.structure(raw, envelope, "/endpoint")
    assert any(problem.endswith(f"@ {path}") for problem in info.value.problems), (
        info.value.problems
    )
    assert path in str(info.value)
    assert info.value.url == "/endpoint"


@pytest.mark.parametrize("raw", [[1, 2], "text", None, 3])
def test_non_object_body_is_a_shape_error(raw: Any) -> None:
    """A body that is not a JSON object is reported at ``$``."""
    with pytest.raises(ResponseShapeError, match=r"@ \$$"):
        wire.structure(raw, wire.GenerationEnvelope, "/g")


def test_request_body_uses_documented_wire_names() -> None:
    """A full request is written with exactly the field names of the API reference."""
    request = ImageToVideoRequest(
        prompt="a lighthouse at dusk",
        image=FrameRef("start-id"),
        end_image=FrameRef("end-id", ImageType.GENERATED),
        model=Model.VEO3_1,
        duration=8,
        resolution=Resolution.RESOLUTION_1080,
        orientation="landscape",
        seed=42,
        is_public=False,
        negative_prompt="blur",
        prompt_enhance=True,
        extra={"styleIds": ["s1"], "prompt": "must not override"},
    )
    body = wire.dumps_request(request)
    assert json.loads(json.dumps(body)) == {
        "prompt": "a lighthouse at dusk",
        "imageId": "start-id",
        "imageType": "UPLOADED",
        "endFrameImage": {"id": "end-id", "type": "GENERATED"},
        "model": "VEO3_1",
        "duration": 8,
        "resolution": "RESOLUTION_1080",
        "width": 1920,
        "height": 1080,
        "seed": 42,
        "isPublic": False,
        "negativePrompt": "blur",
        "promptEnhance": True,
        "styleIds": ["s1"],
    }


def test_request_body_omits_unset_fields() -> None:
    """Fields left as None are not sent at all (not sent as null); privacy is always sent."""
    body = wire.dumps_request(ImageToVideoRequest(prompt="p", image=FrameRef("i")))
    assert json.loads(json.dumps(body)) == {
        "prompt": "p",
        "imageId": "i",
        "imageType": "UPLOADED",
        "model": "VEO3_1",
        "duration": 8,
        "resolution": "RESOLUTION_720",
        "width": 1280,
        "height": 720,
        "isPublic": False,
    }
    assert None not in body.values()


@pytest.mark.parametrize(("asked", "sent"), [(None, False), (False, False), (True, True)])
def test_every_request_says_whether_it_is_public(asked: bool | None, sent: bool) -> None:
    """``isPublic`` is false unless the caller asks, for Veo and for any other model."""
    for any_model in (False, True):
        request = ImageToVideoRequest(
            prompt="p", image=FrameRef("i"), is_public=asked, allow_any_model=any_model
        )
        assert wire.dumps_request(request)["isPublic"] is sent


def test_is_public_must_be_a_boolean() -> None:
    """A truthy string is not taken for a yes: the field must be true or false."""
    with pytest.raises(ValidationError, match="is_public"):
        ImageToVideoRequest(prompt="p", image=FrameRef("i"), is_public="yes")  # type: ignore[arg-type]


def test_converter_is_private() -> None:
    """Reading a Generation does not register anything on cattrs' global converter."""
    import cattrs

    raw = {"id": "g", "status": "PENDING", "imageWidth": 3}
    assert wire.structure(raw, Generation, "/g").image_width == 3
    with pytest.raises(Exception):  # noqa: B017, PT011 - the global converter knows no renames
        cattrs.structure({"id": "g"}, Generation)
