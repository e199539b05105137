"""The one place that knows the wire format: JSON <-> attrs, through a private converter.

Models use Python names; Leonardo uses camelCase with a few Hasura snake_case envelopes
(``generations_by_pk``) and odd spellings (``motionMP4URL``, ``generationId``). The
renames live in :data:`_WIRE_NAMES` and a camelCase rule, applied by a hook factory, so
no model and no caller ever builds or picks apart a dict by hand. The shapes of whole
response bodies are in :mod:`._envelopes` (re-exported with this module's functions by
the package, so callers name one module for the wire); this module is the converter that
reads and writes them.

Reading is lenient wherever the job can go on and strict only where it cannot. The fields
a caller needs to proceed have no default (a generation's ``id`` and ``status``, a submit's
``generationId``, ``/me``'s ``user.id``); a response without them, or with them of the
wrong type, raises :class:`ResponseShapeError` with one line per problem and its JSON path.
Every other field (those with a default) is read through :func:`_lenient`: ``null``, a
missing key, or a value of an unexpected type (a float ``apiCreditCost``, a ``cost`` with
null members, a ``createdAt`` we cannot parse) becomes the default and is logged at DEBUG,
so one odd field never makes a whole generation unreadable or a paid submit uncertain. A
number sent as a decimal string (the ``seed`` of Leonardo's documented webhook sample) is
read as the number. Unknown keys are ignored and unknown enum values stay strings.

Timestamps are parsed by :func:`parse_timestamp` rather than ``datetime.fromisoformat``,
which on Python 3.10 refuses the trimmed fractions Postgres prints (``...08.03``).
"""

from __future__ import annotations

import enum
import logging
import re
import types
import typing
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Final, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from .._errors import ResponseShapeError
from ..models import (
    GeneratedImage,
    GenerationStatus,
    ImageToVideoRequest,
    VideoSpec,
)
from ..models import Generation as Generation

T = TypeVar("T")

logger = logging.getLogger("leonardo_async")

__all__ = [
    "dumps_generation",
    "dumps_request",
    "dumps_spec",
    "parse_timestamp",
    "structure",
]


# --- names ------------------------------------------------------------------------------

#: Wire names that the camelCase rule would get wrong.
_WIRE_NAMES: Final[dict[str, str]] = {
    "GenerationJob.id": "generationId",
    "GeneratedImage.motion_mp4_url": "motionMP4URL",
    "Generation.width": "imageWidth",
    "Generation.height": "imageHeight",
    "Generation.generated_images": "generated_images",
    "_CallbackGeneration.width": "imageWidth",
    "_CallbackGeneration.height": "imageHeight",
    "_CallbackGeneration.generated_images": "images",
    "UploadEnvelope.upload_init_image": "uploadInitImage",
    "SubmitEnvelope.motion_video_generation_job": "motionVideoGenerationJob",
    "GenerationEnvelope.generations_by_pk": "generations_by_pk",
    "DeletedEnvelope.delete_generations_by_pk": "delete_generations_by_pk",
    "DeletedImageEnvelope.delete_init_images_by_pk": "delete_init_images_by_pk",
    "MeEnvelope.user_details": "user_details",
}

#: Request attributes that are client-side only and never sent.
_NOT_SENT: Final = frozenset({"image", "orientation", "extra", "allow_any_model"})


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _wire_name(cls: type, field: str) -> str:
    return _WIRE_NAMES.get(f"{cls.__name__}.{field}", _camel(field))


# --- the converter ----------------------------------------------------------------------

_converter: Final = cattrs.Converter(detailed_validation=True, forbid_extra_keys=False)


def _structure_attrs(cls: type[Any]) -> Callable[[Any, Any], Any]:
    fields = attrs.fields(attrs.resolve_types(cls))
    overrides = {
        a.name: override(
            rename=_wire_name(cls, a.name),
            struct_hook=None if a.default is attrs.NOTHING else _lenient(cls, a),
        )
        for a in fields
    }
    structure = make_dict_structure_fn(cls, _converter, **overrides)  # type: ignore[arg-type]

    def structure_object(data: Any, type_: Any) -> Any:
        # cattrs reads attributes with ``in`` and ``[]``, which a string or a list would
        # answer too (all defaults): only a JSON object may become a model.
        if not isinstance(data, dict):
            raise TypeError(f"expected a JSON object, got {type(data).__name__}")
        return structure(data, type_)

    return structure_object


def _lenient(cls: type[Any], field: attrs.Attribute[Any]) -> Callable[[Any, Any], Any]:
    """A hook for an optional field: what cannot be read becomes the default, logged at DEBUG."""
    default = field.default
    factory = getattr(default, "factory", None)  # an attrs Factory (a tuple's default)
    fallback: Callable[[], Any] = factory if callable(factory) else lambda: default
    strict = _converter.get_structure_hook(field.type)
    loose = _LOOSE.get(_without_none(field.type))
    where = f"{cls.__name__.lstrip('_')}.{_wire_name(cls, field.name)}"

    def structure_leniently(value: Any, type_: Any) -> Any:
        if value is None:
            return fallback()
        try:
            return strict(value, type_)
        except Exception as exc:
            if loose is not None:
                read = loose(value)
                if read is not None:
                    return read
            logger.debug("ignoring unreadable %s = %.80r (%s)", where, value, exc)
            return fallback()

    return structure_leniently


def _without_none(kind: Any) -> Any:
    """``int`` for ``int | None``; any other type as it is."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        members = [m for m in typing.get_args(kind) if m is not type(None)]
        if len(members) == 1:
            return members[0]
    return kind


def _loose_int(value: Any) -> int | None:
    """An integer sent as a decimal string (``"905778432"``) or a whole float, else ``None``."""
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,19}\s*", value):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


#: Second readings for optional fields whose value came in another JSON type.
_LOOSE: Final[dict[Any, Callable[[Any], Any]]] = {int: _loose_int}


def _unstructure_attrs(cls: type[Any]) -> Callable[[Any], Any]:
    overrides = {
        a.name: (
            override(omit=True)
            if issubclass(cls, VideoSpec) and a.name in _NOT_SENT
            else override(rename=_wire_name(cls, a.name), omit_if_default=a.default is None)
        )
        for a in attrs.fields(cls)
    }
    return make_dict_unstructure_fn(cls, _converter, **overrides)  # type: ignore[arg-type]


def _structure_str(value: Any, _: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _structure_int(value: Any, _: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _structure_bool(value: Any, _: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, got {type(value).__name__}")
    return value


def _structure_status(value: Any, _: Any) -> GenerationStatus | str:
    """Known states become enum members; a new state is kept as its string."""
    status = _structure_str(value, None)
    try:
        return GenerationStatus(status)
    except ValueError:
        return status


def _structure_decimal(value: Any, _: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TypeError(f"expected a decimal string, got {type(value).__name__}")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not a decimal number: {value!r}") from None


_TIMESTAMP: Final = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<h>\d{2}):(?P<m>\d{2})"
    r"(?::(?P<s>\d{2})(?:[.,](?P<frac>\d+))?)?"
    r"\s*(?:(?P<utc>[Zz])|(?P<sign>[+-])(?P<oh>\d{2})(?::?(?P<om>\d{2})(?::?(?P<os>\d{2}))?)?)?"
)


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO 8601 / Postgres timestamp the same way on every Python; no zone is UTC.

    Takes 0 to 6 (or more, truncated) fraction digits, ``T`` or a space, and a zone of
    ``Z``, ``+HH``, ``+HH:MM``, ``+HHMM`` or none: every form Postgres and Hasura print.

    :raises ValueError: the text is not such a timestamp
    """
    found = _TIMESTAMP.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"not an ISO 8601 timestamp: {text!r}")
    year, month, day = (int(part) for part in found["date"].split("-"))
    micro = int((found["frac"] or "")[:6].ljust(6, "0"))
    zone = timezone.utc
    if found["sign"]:
        offset = timedelta(
            hours=int(found["oh"]), minutes=int(found["om"] or 0), seconds=int(found["os"] or 0)
        )
        zone = timezone(-offset if found["sign"] == "-" else offset)
    return datetime(
        year, month, day, int(found["h"]), int(found["m"]), int(found["s"] or 0), micro, zone
    )


def _structure_datetime(value: Any, _: Any) -> datetime:
    """Parse Hasura timestamps; a zone-less timestamp is UTC."""
    return parse_timestamp(_structure_str(value, None))


def _structure_images(value: Any, _: Any) -> tuple[GeneratedImage, ...]:
    """A generation's outputs; an entry that cannot be read is left out, not the video."""
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    images = []
    for index, entry in enumerate(value):
        try:
            images.append(_converter.structure(entry, GeneratedImage))
        except Exception as exc:
            logger.debug("ignoring unreadable generated image [%d]: %s", index, exc)
    return tuple(images)


def _unstructure_spec(spec: VideoSpec) -> dict[str, Any]:
    body: dict[str, Any] = _unstructure_spec_fields(spec)
    for name, value in spec.extra.items():
        body.setdefault(name, value)
    return body


def _unstructure_request(request: ImageToVideoRequest) -> dict[str, Any]:
    body = _unstructure_spec(request)
    body["imageId"] = request.image.id
    body["imageType"] = request.image.type.value
    if request.end_image is not None:
        body["endFrameImage"] = {"id": request.end_image.id, "type": request.end_image.type.value}
    return body


#: Hooks that refuse type coercion (``"8"`` is not a duration); shared by other readers.
STRICT_HOOKS: Final[dict[type, Callable[[Any, Any], Any]]] = {
    str: _structure_str,
    int: _structure_int,
    bool: _structure_bool,
}
for _kind, _hook in STRICT_HOOKS.items():
    _converter.register_structure_hook(_kind, _hook)
_converter.register_structure_hook(Decimal, _structure_decimal)
_converter.register_structure_hook(datetime, _structure_datetime)
_converter.register_structure_hook_func(
    lambda kind: kind == tuple[GeneratedImage, ...], _structure_images
)
_converter.register_structure_hook(GenerationStatus | str, _structure_status)
_converter.register_structure_hook_factory(attrs.has, _structure_attrs)
_converter.register_unstructure_hook(enum.Enum, lambda member: member.value)
_converter.register_unstructure_hook(datetime, datetime.isoformat)
_converter.register_unstructure_hook_factory(attrs.has, _unstructure_attrs)
_unstructure_spec_fields: Final = _unstructure_attrs(VideoSpec)
_converter.register_unstructure_hook(VideoSpec, _unstructure_spec)
_converter.register_unstructure_hook(ImageToVideoRequest, _unstructure_request)


def dumps_spec(spec: VideoSpec) -> dict[str, Any]:
    """The body fields ``spec`` sends, before its frames are known."""
    return _unstructure_spec(spec)


def dumps_request(request: ImageToVideoRequest) -> dict[str, Any]:
    """The JSON body of ``POST /generations-image-to-video`` for ``request``."""
    body: dict[str, Any] = _converter.unstructure(request)
    return body


def dumps_generation(generation: Generation) -> dict[str, Any]:
    """``generation`` in the API's JSON (``GET /generations/{id}``'s object): what
    :func:`structure` reads back as the same generation, for passing one on."""
    body: dict[str, Any] = _converter.unstructure(generation)
    return body


def structure(data: Any, cls: type[T], url: str) -> T:
    """Read ``data`` as ``cls``, or raise :class:`ResponseShapeError` naming JSON paths."""
    if not isinstance(data, dict):
        raise ResponseShapeError(url, [f"expected a JSON object, got {type(data).__name__} @ $"])
    try:
        return _converter.structure(data, cls)
    except Exception as exc:
        raise ResponseShapeError(url, _problems(exc, "$")) from None


def _problems(exc: BaseException, path: str) -> list[str]:
    """Describe a structuring failure line by line, with JSON paths in wire names.

    Like :func:`cattrs.transform_error`, but a path names ``motionMP4URL`` where the
    attribute is ``motion_mp4_url``, so the message matches the payload a user sees.
    """
    if isinstance(exc, cattrs.ClassValidationError):
        with_notes, others = exc.group_exceptions()
        lines = [
            line
            for inner, note in with_notes
            for line in _problems(inner, f"{path}.{_wire_name(exc.cl, note.name)}")
        ]
        return lines + [line for inner in others for line in _problems(inner, path)]
    if isinstance(exc, cattrs.IterableValidationError):
        with_index, others = exc.group_exceptions()
        lines = [
            line
            for inner, index_note in with_index
            for line in _problems(inner, f"{path}[{index_note.index!r}]")
        ]
        return lines + [line for inner in others for line in _problems(inner, path)]
    if isinstance(exc, KeyError):
        return [f"required field missing @ {path}"]
    return [f"{exc} @ {path}"]
