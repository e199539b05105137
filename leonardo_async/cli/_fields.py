"""The fields a request may name, in one table that the batch file and the CLI both read.

:class:`JobSpec` is the table: each attribute is a field a batch line may hold, and its
metadata says whether ``generate`` offers it as an option, with what help. Leonardo's API
answers ``400 Unexpected variable`` to a body key its endpoint does not declare, and a
misspelt optional field (``"durration": 4``) would otherwise be either sent (and refused)
or, worse, dropped while the job runs at the default and costs twice as much. So a name
outside the table is an error with a "did you mean" suggestion; a field the table does
not know yet goes under an explicit ``"extra": {...}`` object, sent as written.

Enum values are read forgivingly where that cannot be ambiguous, by the enums of
:mod:`leonardo_async.models` themselves (the Python API reads the same spellings):
``1080``, ``1080p`` and ``resolution_1080`` are ``RESOLUTION_1080``; ``veo3_1fast`` is
``VEO3_1FAST``; ``16:9`` is ``landscape``. Anything else is left as written for the
request's own validation, which names the allowed values.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any, Final

import attrs
import cattrs

from .._errors import ValidationError
from ..models import Model, Orientation, Resolution, VideoSpec

__all__ = [
    "FIELDS",
    "JobSpec",
    "OptionHelp",
    "check_names",
    "model_name",
    "orientation_name",
    "readable_errors",
    "resolution_name",
]


def _canonical(kind: type[Model | Resolution | Orientation], value: Any) -> Any:
    """The member's value for any spelling the enum reads (:mod:`..models` holds the one
    parser); anything else unchanged, for the request's own validation to name."""
    if not isinstance(value, str):  # a JSON number or list: the request names the field
        return value
    try:
        return kind(value).value
    except ValueError:
        return value


def model_name(value: str) -> str:
    """``veo3_1fast``, ``Veo3.1-Fast`` -> ``VEO3_1FAST``; an unknown name unchanged."""
    canonical: str = _canonical(Model, value)
    return canonical


def resolution_name(value: str | None) -> str | None:
    """``720``, ``1080p``, ``resolution_1080`` -> ``RESOLUTION_...``; others unchanged."""
    canonical: str | None = _canonical(Resolution, value)
    return canonical


def orientation_name(value: str | None) -> str | None:
    """``Landscape``, ``16:9`` -> ``landscape``; ``9:16`` -> ``portrait``; others unchanged."""
    canonical: str | None = _canonical(Orientation, value)
    return canonical


@attrs.frozen
class OptionHelp:
    """How ``generate`` offers a field: its help text and metavar (no option if absent)."""

    help: str
    metavar: str


def _option(help: str, metavar: str) -> dict[str, OptionHelp]:
    return {"option": OptionHelp(help, metavar)}


@attrs.frozen
class JobSpec:
    """One request in the user's (snake_case) names: a batch line, or ``generate``'s options.

    ``model``, ``resolution`` and ``orientation`` accept the lenient spellings of the
    module docstring. Everything else is checked by the request itself.
    """

    prompt: str
    image: str
    end_image: str | None = None
    model: str = attrs.field(
        default=Model.VEO3_1.value,
        converter=model_name,
        metadata=_option(f"one of {', '.join(m.value for m in Model)} (default: VEO3_1)", "MODEL"),
    )
    resolution: str | None = attrs.field(
        default=None,
        converter=resolution_name,
        metadata=_option(
            "RESOLUTION_720 or RESOLUTION_1080, also 720p, 1080p "
            "(default: from --width/--height, else RESOLUTION_720)",
            "RESOLUTION",
        ),
    )
    orientation: str | None = attrs.field(
        default=None,
        converter=orientation_name,
        metadata=_option("landscape or portrait, also 16:9, 9:16 (default: landscape)", "ORIENT"),
    )
    width: int | None = attrs.field(default=None, metadata=_option("output width in pixels", "W"))
    height: int | None = attrs.field(default=None, metadata=_option("output height in pixels", "H"))
    duration: int | None = attrs.field(
        default=None, metadata=_option("seconds of video: 4, 6 or 8 (default: 8)", "SECONDS")
    )
    seed: int | None = attrs.field(
        default=None, metadata=_option("fixed seed, for reproducibility", "N")
    )
    negative_prompt: str | None = attrs.field(
        default=None, metadata=_option("what the video should not show", "TEXT")
    )
    is_public: bool | None = None
    key: str | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict)

    def request_options(self) -> dict[str, Any]:
        """The request's fields besides its frames, as :class:`VideoSpec` takes them."""
        skipped = {"prompt", "image", "end_image", "key", "extra"}
        options = {name: value for name, value in attrs.asdict(self).items() if name not in skipped}
        options["prompt"] = self.prompt
        options["extra"] = dict(self.extra)
        return options

    def video_spec(self) -> VideoSpec:
        """What this job makes, validated (its frames are checked where they are read).

        :raises ValidationError: naming the field at fault
        """
        return VideoSpec(**self.request_options())


#: Every field name a batch line may use.
FIELDS: Final = tuple(a.name for a in attrs.fields(JobSpec))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


#: The API's own names for our fields (``negativePrompt``), to point a wire name at ours.
_WIRE_ALIASES: Final = {_camel(name): name for name in FIELDS if "_" in name}


def suggestion(name: str) -> str | None:
    """The field ``name`` was probably meant to be, if one is close enough."""
    if name in _WIRE_ALIASES:
        return _WIRE_ALIASES[name]
    close = difflib.get_close_matches(name.casefold(), FIELDS, n=1, cutoff=0.7)
    return close[0] if close else None


def check_names(data: Mapping[str, Any]) -> None:
    """Refuse a field outside the table, or an ``extra`` that is not an object of new fields.

    :raises ValidationError: naming the field, with a "did you mean" when one is close
    """
    for name in data:
        if name in FIELDS:
            continue
        guess = suggestion(name)
        hint = f'did you mean "{guess}"?' if guess else f"the fields are {', '.join(FIELDS)}"
        raise ValidationError(
            name,
            data[name],
            f"not a field: {hint} (a field the API declares that this list lacks goes "
            'under "extra": {...} and is sent as written)',
        )
    extra = data.get("extra", {})
    if not isinstance(extra, dict):
        raise ValidationError("extra", extra, "a JSON object of API fields, sent as written")
    for name in extra:
        known = name if name in FIELDS else _WIRE_ALIASES.get(name)
        if known is None and _camel(name) in ("imageId", "imageType", "endFrameImage"):
            known = "end_image" if _camel(name) == "endFrameImage" else "image"
        if known is not None:
            raise ValidationError(
                f"extra.{name}",
                extra[name],
                f'a field this file sets itself: use "{known}" outside "extra"',
            )


_JSON_TYPES: Final = {
    "str": "a string",
    "int": "a number",
    "float": "a number",
    "bool": "true or false",
    "NoneType": "null",
    "list": "a list",
    "dict": "an object",
}


def _json_type(match: re.Match[str]) -> str:
    return "got " + _JSON_TYPES.get(match.group(1), match.group(1))


def _one_error(exc: BaseException, _: Any) -> str:
    if isinstance(exc, KeyError):
        return "required"
    if not isinstance(exc, TypeError):  # a validator's own words name the field and value
        return str(exc) or "invalid value"
    return re.sub(r"got (\w+)$", _json_type, str(exc))


def readable_errors(exc: cattrs.BaseValidationError) -> str:
    """cattrs' errors as ``field: problem`` phrases, without its ``@ $.path`` notation."""
    phrases = []
    for message in cattrs.transform_error(exc, path="", format_exception=_one_error):
        problem, _, where = message.rpartition(" @ ")
        problem = problem.replace("Extra fields in constructor for", "unknown field(s) of")
        phrases.append(f"{where.lstrip('.')}: {problem}" if where.strip(".") else problem)
    return "; ".join(phrases)
