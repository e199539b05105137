"""The wire format: reading responses forgivingly, naming bad paths, writing request bodies."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs
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
from leonardo_async import _wire as wire

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
    """A timestamp in any form Postgres/Hasura/ISO 8601 print, and the aware datetime it means.

    0 to 6 fraction digits (Postgres trims trailing zeros), ``T`` or a space, and no zone
    (UTC), ``Z``, ``+HH``, ``+HH:MM`` or ``+HHMM``.
    """
    moment = draw(timestamps)
    digits = draw(st.integers(0, 6))
    micro = moment.microsecond // 10 ** (6 - digits) * 10 ** (6 - digits)
    moment = moment.replace(microsecond=micro)
    fraction = f"{micro:06d}"[:digits]
    if draw(st.booleans()):  # Postgres trims, ISO writers may not
        fraction = fraction.rstrip("0")
    text = moment.strftime("%Y-%m-%d") + draw(st.sampled_from(["T", " "]))
    text += moment.strftime("%H:%M:%S") + (f".{fraction}" if fraction else "")
    zone_form = draw(st.sampled_from(["", "Z", "+HH", "+HH:MM", "+HHMM"]))
    if zone_form in ("", "Z"):
        return text + zone_form, moment.replace(tzinfo=timezone.utc)
    minutes = draw(st.integers(-14 * 60, 14 * 60))
    if zone_form == "+HH":
        minutes -= minutes % 60 if minutes >= 0 else -(-minutes % 60)
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    zone = {"+HH": f"{sign}{hours:02d}", "+HH:MM": f"{sign}{hours:02d}:{rest:02d}"}.get(
        zone_form, f"{sign}{hours:02d}{rest:02d}"
    )
    return text + zone, moment.replace(tzinfo=timezone(timedelta(minutes=minutes)))


@given(created_at())
def test_every_timestamp_form_parses_the_same_on_every_python(case: tuple[str, datetime]) -> None:
    """Trimmed fractions, a space or ``T``, and every zone form parse (3.10's fromisoformat
    refuses ``...08.03``); the result is aware and exact."""
    text, expected = case
    parsed = wire.parse_timestamp(text)
    assert parsed == expected
    assert parsed.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    "text", ["yesterday", "2023-11-25", "2023-13-01T00:00:00", "2023-11-25T20:49:08+25:00", ""]
)
def test_what_is_not_a_timestamp_is_refused(text: str) -> None:
    """Text that is not a full date and time (or is out of range) is a ValueError."""
    with pytest.raises(ValueError, match=r".*"):
        wire.parse_timestamp(text)


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
    assert (got.width, got.height) == (expected["imageWidth"], expected["imageHeight"])
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


def _generation(**fields: Any) -> dict[str, Any]:
    return {"generations_by_pk": {"id": "g", "status": "COMPLETE", **fields}}


def _job(**fields: Any) -> dict[str, Any]:
    return {"motionVideoGenerationJob": {"generationId": "j", **fields}}


def _read(raw: dict[str, Any], envelope: type[Any]) -> Any:
    envelope_value = wire.structure(raw, envelope, "/endpoint")
    return getattr(envelope_value, attrs.fields(envelope)[0].name)


@pytest.mark.parametrize(
    ("raw", "envelope", "read", "expected", "logged"),
    [
        (
            _generation(generated_images=[{"id": "i", "motionMP4URL": 5}]),
            wire.GenerationEnvelope,
            lambda g: g.generated_images[0].motion_mp4_url,
            None,
            "motionMP4URL",
        ),
        (
            _generation(generated_images=[GOOD_IMAGE, {"url": 5}, "junk"]),
            wire.GenerationEnvelope,
            lambda g: [i.motion_mp4_url for i in g.generated_images],
            ["v.mp4", None],
            "url",
        ),
        (
            _generation(imageWidth="1280", imageHeight=720.0, seed="905778432"),
            wire.GenerationEnvelope,
            lambda g: (g.width, g.height, g.seed),
            (1280, 720, 905778432),
            None,
        ),
        (_generation(seed=1.5), wire.GenerationEnvelope, lambda g: g.seed, None, "seed"),
        (
            _generation(createdAt="yesterday"),
            wire.GenerationEnvelope,
            lambda g: g.created_at,
            None,
            "createdAt",
        ),
        (
            _generation(generated_images=7, prompt=["p"]),
            wire.GenerationEnvelope,
            lambda g: (g.generated_images, g.prompt),
            ((), None),
            "generated_images",
        ),
        (
            _job(cost={"amount": "lots", "unit": "CREDITS"}),
            wire.SubmitEnvelope,
            lambda j: (j.id, j.cost),
            ("j", None),
            "cost",
        ),
        (
            _job(cost={"amount": None, "unit": None}, apiCreditCost=None),
            wire.SubmitEnvelope,
            lambda j: (j.id, j.cost, j.api_credit_cost),
            ("j", None, None),
            None,
        ),
        (
            _job(cost={"amount": None, "unit": "CREDITS"}, apiCreditCost=12.5),
            wire.SubmitEnvelope,
            lambda j: (j.id, j.cost, j.api_credit_cost),
            ("j", None, None),
            "apiCreditCost",
        ),
        (
            _job(cost={"amount": 2140.5, "unit": "CREDITS"}, apiCreditCost="2140"),
            wire.SubmitEnvelope,
            lambda j: (j.cost.amount, j.api_credit_cost),
            (Decimal("2140.5"), 2140),
            None,
        ),
        (
            {"user_details": [{"user": {"id": "u", "username": 7}, "apiConcurrencySlots": True}]},
            wire.MeEnvelope,
            lambda m: (m[0].user.id, m[0].user.username, m[0].api_concurrency_slots),
            ("u", None, None),
            "apiConcurrencySlots",
        ),
    ],
)
def test_optional_fields_that_cannot_be_read_are_left_out(
    raw: dict[str, Any],
    envelope: type[Any],
    read: Any,
    expected: Any,
    logged: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Null, missing or oddly typed optional fields read as None (logged at DEBUG), never a
    ResponseShapeError: only ``id``/``status``, ``generationId`` and ``user.id`` are needed."""
    with caplog.at_level(logging.DEBUG, logger="leonardo_async"):
        value = _read(raw, envelope)
    assert read(value) == expected
    if logged is not None:
        assert any(logged in r.getMessage() and r.levelno == logging.DEBUG for r in caplog.records)


@pytest.mark.parametrize(
    ("raw", "envelope", "path"),
    [
        (
            {"generations_by_pk": {"id": 5, "status": "PENDING"}},
            wire.GenerationEnvelope,
            "$.generations_by_pk.id",
        ),
        ({"generations_by_pk": {"id": "g"}}, wire.GenerationEnvelope, "$.generations_by_pk.status"),
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
            {"motionVideoGenerationJob": {"cost": {"amount": "1", "unit": "CREDITS"}}},
            wire.SubmitEnvelope,
            "$.motionVideoGenerationJob.generationId",
        ),
        (
            {"user_details": [{"user": {"username": "u"}, "apiConcurrencySlots": 10}]},
            wire.MeEnvelope,
            "$.user_details[0].user.id",
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
    assert wire.structure(raw, Generation, "/g").width == 3
    with pytest.raises(Exception):  # noqa: B017, PT011 - the global converter knows no renames
        cattrs.structure({"id": "g"}, Generation)


def test_a_generations_size_is_width_and_height_as_everywhere_else() -> None:
    """The wire's imageWidth/imageHeight read as ``width``/``height``, the names of a
    request, the CLI's JSON and a batch line; the old names still read, deprecated."""
    raw = {"id": "g", "status": "COMPLETE", "imageWidth": 720, "imageHeight": 1280}
    generation = wire.structure(raw, Generation, "/g")
    assert (generation.width, generation.height) == (720, 1280)
    with pytest.deprecated_call(match=r"Generation\.width"):
        assert generation.image_width == 720
    with pytest.deprecated_call(match=r"Generation\.height"):
        assert generation.image_height == 1280
    assert "image_width" not in {a.name for a in attrs.fields(Generation)}
