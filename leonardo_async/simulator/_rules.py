"""The rules a submit body must follow, the defaults it gets, and what it costs.

Kept apart from the routes so that the rules read as one list: what Leonardo documents for
Veo 3.1 (see ``shared/leonardo-api.md`` and the Veo 3.1 guide), plus the looser rules of the
older models the spec still lists. A broken rule raises :class:`RuleError` whose message names
the field and the allowed values, the way a 400 from the real API would.

Choices where Leonardo is silent: a Veo 3.1 body without ``resolution`` gets
``RESOLUTION_720``, without ``duration`` gets 8 (the spec's default for Veo 3), without
``width``/``height`` gets the landscape size of its resolution; ``seed`` must fit a signed
32-bit int. Prices: Veo 3.1 costs 1070/1605/2140 credits for 4/6/8 s, ``VEO3_1FAST`` half of
that (rounded up), 1080p multiplies by ``cost_1080p_multiplier``; older models cost 50 credits
per second of video.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import attrs

__all__ = [
    "DECLARED_BODY",
    "DECLARED_QUERY",
    "LEGACY_MODELS",
    "RETIRED_MODELS",
    "VEO_MODELS",
    "RuleError",
    "SubmitRequest",
    "cost_of",
    "parse_submit",
]

VEO_MODELS = ("VEO3_1", "VEO3_1FAST")
LEGACY_MODELS = ("MOTION2", "MOTION2FAST", "KLING2_1", "KLING2_5")
RETIRED_MODELS = ("VEO3", "VEO3FAST")
DEFAULT_MODEL = "MOTION2"
IMAGE_TYPES = ("UPLOADED", "GENERATED")
VEO_DURATIONS = (4, 6, 8)
VEO_SIZES: Mapping[str, tuple[tuple[int, int], ...]] = {
    "RESOLUTION_720": ((1280, 720), (720, 1280)),
    "RESOLUTION_1080": ((1920, 1080), (1080, 1920)),
}
LEGACY_SIZES: Mapping[str, tuple[int, int]] = {
    "RESOLUTION_480": (832, 480),
    "RESOLUTION_720": (1280, 720),
    "RESOLUTION_1080": (1920, 1080),
}
VEO_COSTS: Mapping[str, Mapping[int, int]] = {
    "VEO3_1": {4: 1070, 6: 1605, 8: 2140},
    "VEO3_1FAST": {4: 535, 6: 803, 8: 1070},
}
LEGACY_CREDITS_PER_SECOND = 50
MAX_SEED = 2_147_483_647

_TEXT_TO_VIDEO = frozenset(
    {
        "prompt", "negativePrompt", "model", "resolution", "width", "height", "duration",
        "isPublic", "seed", "promptEnhance", "promptEnhanceInstruction", "frameInterpolation",
        "styleIds", "elements",
    }
)  # fmt: skip
#: The body keys each endpoint declares (Leonardo's spec); Hasura refuses any other with a
#: 400 ``Unexpected variable <name>``.
DECLARED_BODY: Mapping[str, frozenset[str]] = {
    "POST /init-image": frozenset({"extension"}),
    "POST /generations-text-to-video": _TEXT_TO_VIDEO,
    "POST /generations-image-to-video": _TEXT_TO_VIDEO | {"imageId", "imageType", "endFrameImage"},
}
#: The query parameters each route declares; every other route declares none.
DECLARED_QUERY: Mapping[str, frozenset[str]] = {
    "GET /generations/user/{userId}": frozenset({"offset", "limit"}),
}

#: Checks that an image id of a given type exists; returns an error message or ``None``.
ImageCheck = Callable[[str, str], "str | None"]


class RuleError(Exception):
    """A submit body broke a rule; the message names the field."""


@attrs.frozen
class SubmitRequest:
    """A valid submit, with every default filled in."""

    endpoint: str
    prompt: str
    negative_prompt: str | None
    image_id: str | None
    image_type: str | None
    end_frame: tuple[str, str] | None
    model: str
    duration: int
    resolution: str
    width: int
    height: int
    public: bool
    seed: int | None

    def fingerprint(self) -> tuple[object, ...]:
        """Return what makes two submits the same video, the seed left out."""
        return (
            self.endpoint,
            self.prompt,
            self.image_id,
            self.image_type,
            self.end_frame,
            self.model,
            self.duration,
            self.resolution,
            self.width,
            self.height,
        )


def cost_of(request: SubmitRequest, multiplier_1080p: float) -> int:
    """Return the credits *request* costs."""
    if request.model in VEO_COSTS:
        base = VEO_COSTS[request.model][request.duration]
    else:
        base = LEGACY_CREDITS_PER_SECOND * request.duration
    if request.resolution == "RESOLUTION_1080":
        return math.ceil(base * multiplier_1080p)
    return base


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _choices(values: tuple[object, ...]) -> str:
    return ", ".join(str(x) for x in values)


def _optional(body: Mapping[str, Any], name: str, kind: type, label: str) -> Any:
    value = body.get(name)
    if value is None:
        return None
    if kind is int:
        ok = _is_int(value)
    elif kind is bool:
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise RuleError(f'"{name}" must be {label}, got {value!r}')
    return value


def _image(name: str, image_id: object, image_type: object, check: ImageCheck) -> None:
    if image_type not in IMAGE_TYPES:
        raise RuleError(f'"{name}" type must be one of {_choices(IMAGE_TYPES)}, got {image_type!r}')
    if not isinstance(image_id, str) or not image_id:
        raise RuleError(f'"{name}" id is required and must be a non-empty string')
    problem = check(str(image_type), image_id)
    if problem is not None:
        raise RuleError(f'"{name}": {problem}')


def _model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        return DEFAULT_MODEL
    if model in RETIRED_MODELS:
        raise RuleError(f'"model" {model} is retired; use one of {_choices(VEO_MODELS)}')
    allowed = VEO_MODELS + LEGACY_MODELS
    if model not in allowed:
        raise RuleError(f'"model" must be one of {_choices(allowed)}, got {model!r}')
    return str(model)


def _veo_shape(body: Mapping[str, Any], model: str) -> tuple[int, str, int, int]:
    duration = body.get("duration")
    if duration is None:
        duration = 8
    elif not _is_int(duration) or duration not in VEO_DURATIONS:
        raise RuleError(
            f'"duration" must be one of {_choices(VEO_DURATIONS)} (an integer) '
            f"for model {model}, got {duration!r}"
        )
    resolution = body.get("resolution")
    if resolution is None:
        resolution = "RESOLUTION_720"
    elif resolution not in VEO_SIZES:
        raise RuleError(
            f'"resolution" must be one of {_choices(tuple(VEO_SIZES))} '
            f"for model {model}, got {resolution!r}"
        )
    allowed = VEO_SIZES[resolution]
    width: Any = body.get("width")
    height: Any = body.get("height")
    if width is None and height is None:
        width, height = allowed[0]
    elif not (_is_int(width) and _is_int(height)) or (width, height) not in allowed:
        sizes = " or ".join(f"{w}x{h}" for w, h in allowed)
        raise RuleError(
            f'"width" and "height" must be {sizes} for {resolution} on {model}, '
            f"got {width!r}x{height!r}"
        )
    return duration, resolution, width, height


def _legacy_shape(body: Mapping[str, Any], model: str) -> tuple[int, str, int, int]:
    duration = body.get("duration")
    if duration is None:
        duration = 5
    elif not _is_int(duration) or duration < 1:
        raise RuleError(
            f'"duration" must be a positive integer for model {model}, got {duration!r}'
        )
    resolution = body.get("resolution")
    if resolution is None:
        resolution = "RESOLUTION_720"
    elif resolution not in LEGACY_SIZES:
        raise RuleError(
            f'"resolution" must be one of {_choices(tuple(LEGACY_SIZES))}, got {resolution!r}'
        )
    width: Any = body.get("width")
    height: Any = body.get("height")
    if width is None and height is None:
        width, height = LEGACY_SIZES[resolution]
    elif not (_is_int(width) and _is_int(height)) or width < 1 or height < 1:
        raise RuleError(
            f'"width" and "height" must both be positive integers, got {width!r}x{height!r}'
        )
    return duration, resolution, width, height


def _extras(body: Mapping[str, Any]) -> tuple[bool, int | None, str | None]:
    public = _optional(body, "isPublic", bool, "a boolean")
    seed = _optional(body, "seed", int, "an integer")
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise RuleError(f'"seed" must be between 0 and {MAX_SEED}, got {seed!r}')
    negative = _optional(body, "negativePrompt", str, "a string")
    _optional(body, "promptEnhance", bool, "a boolean")
    _optional(body, "promptEnhanceInstruction", str, "a string")
    _optional(body, "frameInterpolation", bool, "a boolean")
    style_ids = _optional(body, "styleIds", list, "a list of strings")
    if style_ids is not None and not all(isinstance(x, str) for x in style_ids):
        raise RuleError(f'"styleIds" must be a list of strings, got {style_ids!r}')
    _optional(body, "elements", list, "a list")
    return bool(public), seed, negative


def parse_submit(body: object, *, endpoint: str, check: ImageCheck) -> SubmitRequest:
    """Validate a submit body and fill in its defaults.

    :param body: the parsed JSON body.
    :param endpoint: ``"image-to-video"`` or ``"text-to-video"`` (no image fields).
    :param check: looks an image up; see :data:`ImageCheck`.
    :raises RuleError: naming the first field that breaks a rule.
    """
    if not isinstance(body, dict):
        raise RuleError("the request body must be a JSON object")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise RuleError('"prompt" is required and must be a non-empty string')
    image_id = image_type = None
    end_frame = None
    if endpoint == "image-to-video":
        image_type = body.get("imageType")
        if image_type not in IMAGE_TYPES:
            raise RuleError(
                f'"imageType" is required and must be one of '
                f"{_choices(IMAGE_TYPES)}, got {image_type!r}"
            )
        image_id = body.get("imageId")
        if not isinstance(image_id, str) or not image_id:
            raise RuleError('"imageId" is required and must be a non-empty string')
        problem = check(image_type, image_id)
        if problem is not None:
            raise RuleError(f'"imageId": {problem}')
        end = body.get("endFrameImage")
        if end is not None:
            if not isinstance(end, dict):
                raise RuleError('"endFrameImage" must be an object with "id" and "type"')
            _image("endFrameImage", end.get("id"), end.get("type"), check)
            end_frame = (str(end["id"]), str(end["type"]))
    model = _model(body)
    if model in VEO_MODELS:
        duration, resolution, width, height = _veo_shape(body, model)
    else:
        duration, resolution, width, height = _legacy_shape(body, model)
    public, seed, negative = _extras(body)
    return SubmitRequest(
        endpoint=endpoint,
        prompt=prompt,
        negative_prompt=negative,
        image_id=image_id,
        image_type=image_type,
        end_frame=end_frame,
        model=model,
        duration=duration,
        resolution=resolution,
        width=width,
        height=height,
        public=public,
        seed=seed,
    )
