"""Value types and the Veo 3.1 rules of :class:`ImageToVideoRequest`."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leonardo_async import (
    Account,
    FrameRef,
    GeneratedImage,
    Generation,
    GenerationStatus,
    ImageToVideoRequest,
    ImageType,
    Model,
    Orientation,
    Resolution,
    ValidationError,
    VideoSpec,
)
from leonardo_async._wire import dumps_request
from leonardo_async.models import MAX_SEED

START = FrameRef("start-frame")

#: The four sizes Veo 3.1 accepts, as (resolution, orientation) -> (width, height).
SIZES = {
    ("RESOLUTION_720", "landscape"): (1280, 720),
    ("RESOLUTION_720", "portrait"): (720, 1280),
    ("RESOLUTION_1080", "landscape"): (1920, 1080),
    ("RESOLUTION_1080", "portrait"): (1080, 1920),
}

prompts = st.one_of(
    st.text(min_size=1).filter(lambda s: s.strip()),
    st.sampled_from(["", " ", "\t\n", "a lighthouse at dusk"]),
)
models = st.sampled_from([*Model, "VEO3_1", "VEO3_1FAST", "veo3_1fast", "Veo 3.1", "VEO3", "SORA"])
durations = st.one_of(
    st.none(),
    st.sampled_from([4, 6, 8, 5, 10, 0, -4, 8.0, 4.0, True, "8"]),
    st.integers(-100, 100),
)
resolutions = st.sampled_from(
    [None, *Resolution, "RESOLUTION_720", "RESOLUTION_1080", "RESOLUTION_480", "1080p", "720",
     "resolution-1080", "480p"]
)  # fmt: skip
orientations = st.sampled_from(
    [None, *Orientation, "landscape", "portrait", "Portrait", "16:9", "9:16", "4:3", "square"]
)

#: The spellings the Python API reads as the canonical values, as the README lists them.
SPELLINGS = {
    "veo3_1fast": "VEO3_1FAST",
    "Veo 3.1": "VEO3_1",
    "1080p": "RESOLUTION_1080",
    "720": "RESOLUTION_720",
    "resolution-1080": "RESOLUTION_1080",
    "Portrait": "portrait",
    "16:9": "landscape",
    "9:16": "portrait",
}
sizes = st.one_of(
    st.just((None, None)),
    st.sampled_from(sorted(SIZES.values())),
    st.sampled_from([(1280, None), (None, 720), (1920.0, 1080), (1280, 720.0), (1024, 1024)]),
    st.tuples(st.integers(0, 4000), st.integers(0, 4000)),
)
seeds = st.one_of(
    st.none(),
    st.integers(-10, 10),
    st.integers(MAX_SEED - 10, MAX_SEED + 10),
    st.sampled_from([True, 1.5, "7"]),
)


def _value(value: Any) -> Any:
    value = getattr(value, "value", value)
    return SPELLINGS.get(value, value) if isinstance(value, str) else value


def expected_problems(
    prompt: Any, model: Any, duration: Any, resolution: Any, orientation: Any, size: Any, seed: Any
) -> set[str]:
    """An independent reading of the Veo 3.1 rules: the fields that make a request invalid."""
    problems = set()
    if not prompt.strip():
        problems.add("prompt")
    if seed is not None and (type(seed) is not int or not 0 <= seed <= MAX_SEED):
        problems.add("seed")
    if _value(model) not in ("VEO3_1", "VEO3_1FAST"):
        problems.add("model")
    if duration is not None and (type(duration) is not int or duration not in (4, 6, 8)):
        problems.add("duration")
    res = _value(resolution)
    if res is not None and res not in ("RESOLUTION_720", "RESOLUTION_1080"):
        problems.add("resolution")
    ori = _value(orientation)
    if ori is not None and ori not in ("landscape", "portrait"):
        problems.add("orientation")
    width, height = size
    if (width, height) != (None, None):
        fits = [
            key
            for key, wh in SIZES.items()
            if type(width) is int and type(height) is int and wh == (width, height)
        ]
        if not fits:
            problems.add("width x height")
        else:
            (size_res, size_ori) = fits[0]
            if res is not None and res != size_res:
                problems.add("width x height")
            if ori is not None and ori != size_ori:
                problems.add("orientation")
    return problems


@given(prompts, models, durations, resolutions, orientations, sizes, seeds)
def test_veo_rules(
    prompt: str,
    model: Any,
    duration: Any,
    resolution: Any,
    orientation: Any,
    size: tuple[Any, Any],
    seed: Any,
) -> None:
    """Valid Veo requests construct with a size filled in; invalid ones name field and rule."""
    problems = expected_problems(prompt, model, duration, resolution, orientation, size, seed)
    width, height = size
    kwargs: dict[str, Any] = {
        "prompt": prompt,
        "image": START,
        "model": model,
        "duration": duration,
        "resolution": resolution,
        "orientation": orientation,
        "width": width,
        "height": height,
        "seed": seed,
    }
    if problems:
        with pytest.raises(ValidationError) as info:
            ImageToVideoRequest(**kwargs)
        error = info.value
        assert error.field in problems
        message = str(error)
        assert error.field in message
        assert error.allowed
        assert error.allowed in message
        assert repr(error.value) in message
        return
    request = ImageToVideoRequest(**kwargs)
    assert isinstance(request.model, Model)
    assert request.model == _value(model)
    assert request.duration == (8 if duration is None else duration)
    assert isinstance(request.resolution, Resolution)
    assert (request.width, request.height) in SIZES.values()
    key = (request.resolution.value, _value(orientation) or "landscape")
    if width is None:
        assert (request.width, request.height) == SIZES[key]
        assert request.resolution.value == (_value(resolution) or "RESOLUTION_720")
    else:
        assert (request.width, request.height) == (width, height)
        assert SIZES[request.resolution.value, _pick_orientation(width, height)] == size


def _pick_orientation(width: int, height: int) -> str:
    return "landscape" if width > height else "portrait"


@pytest.mark.parametrize(
    ("changes", "field", "fragments"),
    [
        ({"duration": 5}, "duration", ["5", "4", "6", "8"]),
        ({"duration": 8.0}, "duration", ["8.0", "4", "6", "8"]),
        (
            {"width": 1920, "height": 1080, "resolution": "RESOLUTION_720"},
            "width x height",
            ["1920x1080", "RESOLUTION_720", "1280x720", "720x1280"],
        ),
        ({"prompt": ""}, "prompt", ["''", "non-empty"]),
        ({"prompt": "   "}, "prompt", ["'   '", "non-empty"]),
        ({"model": "SORA"}, "model", ["'SORA'", "VEO3_1", "VEO3_1FAST", "allow_any_model"]),
        ({"end_image": "end-frame-id"}, "end_image", ["'end-frame-id'", "FrameRef"]),
        ({"seed": -1}, "seed", ["-1", "0", str(MAX_SEED)]),
        ({"seed": MAX_SEED + 1}, "seed", [str(MAX_SEED + 1), str(MAX_SEED)]),
        ({"resolution": "RESOLUTION_480"}, "resolution", ["RESOLUTION_480", "RESOLUTION_1080"]),
        ({"orientation": "square"}, "orientation", ["square", "landscape", "portrait"]),
        (
            {"orientation": "portrait", "width": 1280, "height": 720},
            "orientation",
            ["portrait", "landscape", "1280x720"],
        ),
    ],
)
def test_named_validation_errors(changes: dict[str, Any], field: str, fragments: list[str]) -> None:
    """Each broken rule raises a ValidationError naming the field, the value and what is allowed."""
    with pytest.raises(ValidationError) as info:
        ImageToVideoRequest(**{"prompt": "a cat", "image": START, **changes})
    assert info.value.field == field
    assert isinstance(info.value, ValueError)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_given_size_implies_its_resolution() -> None:
    """A 1080p size without a resolution is taken as 1080p, not refused as a 720p mismatch."""
    request = ImageToVideoRequest(prompt="a cat", image=START, width=1080, height=1920)
    assert request.resolution is Resolution.RESOLUTION_1080
    assert (request.width, request.height) == (1080, 1920)


def test_orientation_fills_in_size() -> None:
    """Resolution plus orientation picks the one matching Veo size."""
    request = ImageToVideoRequest(
        prompt="a cat", image=START, resolution="RESOLUTION_1080", orientation="portrait"
    )
    assert (request.width, request.height) == (1080, 1920)
    assert request.orientation is Orientation.PORTRAIT


def test_allow_any_model_passes_body_as_given() -> None:
    """With allow_any_model nothing is completed or checked beyond prompt, frames and seed
    (and isPublic is still sent false)."""
    request = ImageToVideoRequest(
        prompt="a cat",
        image=START,
        model="KLING2_5",
        duration=10,
        resolution="RESOLUTION_480",
        width=1000,
        height=1000,
        allow_any_model=True,
    )
    assert request.model == "KLING2_5"
    assert dumps_request(request) == {
        "prompt": "a cat",
        "imageId": "start-frame",
        "imageType": "UPLOADED",
        "model": "KLING2_5",
        "duration": 10,
        "resolution": "RESOLUTION_480",
        "width": 1000,
        "height": 1000,
        "isPublic": False,  # private unless asked, whatever the model
    }
    bare = ImageToVideoRequest(prompt="a cat", image=START, model="NEWMODEL", allow_any_model=True)
    assert dumps_request(bare) == {
        "prompt": "a cat",
        "imageId": "start-frame",
        "imageType": "UPLOADED",
        "model": "NEWMODEL",
        "isPublic": False,
    }


def test_allow_any_model_still_checks_prompt_and_model_name() -> None:
    """An empty prompt or model name is refused even with allow_any_model."""
    with pytest.raises(ValidationError, match="prompt"):
        ImageToVideoRequest(prompt=" ", image=START, model="X", allow_any_model=True)
    with pytest.raises(ValidationError, match="model"):
        ImageToVideoRequest(prompt="p", image=START, model="", allow_any_model=True)


def test_frame_ref_validation() -> None:
    """A frame needs a non-empty id and a known image type; strings are coerced."""
    assert FrameRef("x", "GENERATED").type is ImageType.GENERATED
    with pytest.raises(ValidationError, match="image id"):
        FrameRef("")
    with pytest.raises(ValidationError, match="'LOCAL'"):
        FrameRef("x", "LOCAL")
    with pytest.raises(ValidationError, match="start frame"):
        ImageToVideoRequest(prompt="p", image="start-frame")  # type: ignore[arg-type]


def test_generation_helpers() -> None:
    """video_url finds the MP4 among the outputs; is_finished is true for COMPLETE and FAILED."""
    pending = Generation("g", GenerationStatus.PENDING)
    assert pending.video_url is None
    assert not pending.is_finished
    done = Generation(
        "g",
        GenerationStatus.COMPLETE,
        generated_images=(
            GeneratedImage("a", url="poster.jpg"),
            GeneratedImage("b", None, "v.mp4"),
        ),
    )
    assert done.video_url == "v.mp4"
    assert done.is_finished
    assert Generation("g", "FAILED").is_finished
    assert not Generation("g", "QUEUED").is_finished


def test_account_balance() -> None:
    """The token balance is subscription plus paid tokens, a missing one counting zero."""
    assert Account("u", subscription_tokens=10, paid_tokens=5).token_balance == 15
    assert Account("u", subscription_tokens=10).token_balance == 10
    assert Account("u").token_balance == 0


def test_a_spec_is_checked_without_frames_and_joined_to_them_unchanged() -> None:
    """A VideoSpec carries the Veo checks on its own; ``of`` adds frames and changes nothing."""
    with pytest.raises(ValidationError, match="duration"):
        VideoSpec(prompt="a cat", duration=5)
    spec = VideoSpec(prompt="a cat", width=1080, height=1920, seed=7)
    request = ImageToVideoRequest.of(spec, START, FrameRef("end"))
    assert request.spec == spec
    assert (request.image, request.end_image) == (START, FrameRef("end"))
    assert request == ImageToVideoRequest(
        prompt="a cat", image=START, end_image=FrameRef("end"), width=1080, height=1920, seed=7
    )
