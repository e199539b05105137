"""Value types in Python names: what users build, and what the API answers.

Nothing here knows the wire format (that is :mod:`leonardo_async._wire`) or does I/O.
The one piece of behaviour is :class:`ImageToVideoRequest`'s validation of the Veo 3.1
rules from Leonardo's guide, because a request that cannot succeed should fail on the
caller's line, before it costs a round trip or credits.

Enumerations are ``str`` enums so they compare equal to the raw strings; a value the API
invents later (a new ``status``, a new model) is kept as a plain ``str`` rather than being
a crash, which is the failure users of the official SDK hit most. The ones a caller writes
(:class:`Model`, :class:`Resolution`, :class:`Orientation`, :class:`ImageType`) read every
unambiguous spelling, in Python as on the command line and in a batch file: the one parser
is the enum itself (``Resolution("1080p") is Resolution.RESOLUTION_1080``).
"""

from __future__ import annotations

import enum
import re
import warnings
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import attrs

from ._errors import ValidationError
from ._validate import is_text

__all__ = [
    "Account",
    "Cost",
    "FrameRef",
    "GeneratedImage",
    "GeneratedVideo",
    "Generation",
    "GenerationJob",
    "GenerationStatus",
    "ImageToVideoRequest",
    "ImageType",
    "Model",
    "Orientation",
    "Resolution",
    "UploadedImage",
    "VideoSpec",
]


def _spelling(value: str) -> str:
    """``value`` without case, spaces, dots, dashes or underscores: ``Veo3.1-Fast`` and
    ``VEO3_1FAST`` are one spelling."""
    return re.sub(r"[\s._-]+", "", value).casefold()


class _Spelled(str, enum.Enum):
    """A ``str`` enum that also reads its members' names and values in any case, spacing
    or punctuation, and the aliases :data:`_ALIASES` gives it."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, str):
            return None
        table = _SPELLINGS.get(cls)
        if table is None:
            table = {_spelling(m.value): m for m in cls} | {_spelling(m.name): m for m in cls}
            table |= {_spelling(alias): cls(v) for alias, v in _ALIASES.get(cls, {}).items()}
            _SPELLINGS[cls] = table
        return table.get(_spelling(value))


class Model(_Spelled):
    """The image-to-video models this client knows the rules of (``veo3_1fast``,
    ``Veo3.1-Fast`` read as :attr:`VEO3_1FAST`)."""

    VEO3_1 = "VEO3_1"
    VEO3_1FAST = "VEO3_1FAST"


class Resolution(_Spelled):
    """Output resolution presets accepted by Veo 3.1 (``720``, ``1080p`` and
    ``resolution_1080`` read as the presets)."""

    RESOLUTION_720 = "RESOLUTION_720"
    RESOLUTION_1080 = "RESOLUTION_1080"


class Orientation(_Spelled):
    """Aspect of the output: 16:9 landscape or 9:16 portrait (``16:9``, ``9:16`` and
    ``Landscape`` read as these)."""

    LANDSCAPE = "landscape"
    PORTRAIT = "portrait"


class ImageType(_Spelled):
    """Where a frame comes from: an init-image upload, or an image Leonardo generated."""

    UPLOADED = "UPLOADED"
    GENERATED = "GENERATED"


#: Spellings beyond each member's own name and value, for :class:`_Spelled` enums.
_ALIASES: Final[Mapping[type[_Spelled], Mapping[str, str]]] = {
    Resolution: {
        f"{p}{suffix}": f"RESOLUTION_{p}" for p in ("720", "1080") for suffix in ("", "p")
    },
    Orientation: {"16:9": "landscape", "9:16": "portrait"},
}
_SPELLINGS: dict[type[_Spelled], dict[str, Any]] = {}


class GenerationStatus(str, enum.Enum):
    """Documented generation states. Unknown states arrive as plain ``str``."""

    PENDING = "PENDING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"


#: The only (width, height) pairs Veo 3.1 accepts, per resolution and orientation.
VEO_SIZES: Final[Mapping[tuple[Resolution, Orientation], tuple[int, int]]] = {
    (Resolution.RESOLUTION_720, Orientation.LANDSCAPE): (1280, 720),
    (Resolution.RESOLUTION_720, Orientation.PORTRAIT): (720, 1280),
    (Resolution.RESOLUTION_1080, Orientation.LANDSCAPE): (1920, 1080),
    (Resolution.RESOLUTION_1080, Orientation.PORTRAIT): (1080, 1920),
}
VEO_DURATIONS: Final = (4, 6, 8)
#: Leonardo's spec documents 8 s as the Veo default duration.
DEFAULT_DURATION: Final = 8
DEFAULT_RESOLUTION: Final = Resolution.RESOLUTION_720
MAX_SEED: Final = 2_147_483_637


def _one_of(values: Any) -> str:
    text = "one of " + ", ".join(repr(getattr(v, "value", v)) for v in values)
    aliases = _ALIASES.get(values, {}) if isinstance(values, type) else {}
    return text + (f" (also {', '.join(aliases)})" if aliases else "")


def _coerce_enum(kind: type[enum.Enum], field: str, value: object) -> Any:
    """Turn any spelling of a member into ``kind``'s member, or raise a ValidationError
    naming ``field`` and the allowed values."""
    if isinstance(value, kind):
        return value
    try:
        return kind(value)
    except ValueError:
        raise ValidationError(field, value, _one_of(kind)) from None


@attrs.frozen
class FrameRef:
    """A frame the API already has: an init-image id or a generated image's id."""

    id: str
    type: ImageType = ImageType.UPLOADED

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValidationError("image id", self.id, "a non-empty string")
        object.__setattr__(self, "type", _coerce_enum(ImageType, "image type", self.type))


def _private_unless_asked(value: bool | None) -> bool:
    """Read "not said" as private: a public video lands in the community feed."""
    return False if value is None else value


@attrs.frozen
class VideoSpec:
    """What to make, apart from which frames: validated against the Veo 3.1 rules.

    A spec is checked on the caller's line, before any frame is uploaded; a batch item
    holds one until its frames are on the server, and :meth:`ImageToVideoRequest.of`
    joins the two for the submit.

    Width and height may be given directly, or derived from ``resolution`` plus
    ``orientation`` (the default is landscape). For a model whose rules we do not know,
    pass ``allow_any_model=True``: nothing is checked beyond the prompt and frames, no
    defaults are filled in, and the fields are sent exactly as given.

    :param prompt: text guiding content, style and motion; must not be empty
    :param model: ``VEO3_1`` or ``VEO3_1FAST``
    :param duration: seconds of video: 4, 6 or 8 (default 8)
    :param resolution: ``RESOLUTION_720`` or ``RESOLUTION_1080``; by default the one of
        ``width`` x ``height`` when given, else 720p
    :param orientation: ``landscape`` or ``portrait``; fills in width and height
    :param width: output width in pixels; with ``height``, one of the four Veo sizes
    :param height: output height in pixels
    :param seed: fixed seed, for reproducibility and for matching a submit whose answer
        was lost
    :param is_public: show the video in Leonardo's community feed; private (``False``) unless
        asked, and always sent, because the API's own default is not documented
    :param extra: further body fields passed through unchanged (camelCase wire names)
    """

    prompt: str
    model: Model | str = Model.VEO3_1
    duration: int | None = None
    resolution: Resolution | str | None = None
    orientation: Orientation | str | None = None
    width: int | None = None
    height: int | None = None
    seed: int | None = None
    is_public: bool = attrs.field(default=False, converter=_private_unless_asked)
    negative_prompt: str | None = None
    prompt_enhance: bool | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict)
    allow_any_model: bool = False

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise ValidationError("prompt", self.prompt, "a non-empty string")
        for name in ("prompt", "negative_prompt"):
            text = getattr(self, name)
            if isinstance(text, str) and not is_text(text):
                raise ValidationError(name, ascii(text)[:60], "UTF-8 text (no lone surrogates)")
        if self.seed is not None and (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, int)
            or not 0 <= self.seed <= MAX_SEED
        ):
            raise ValidationError("seed", self.seed, f"an integer from 0 to {MAX_SEED}")
        if not isinstance(self.is_public, bool):
            raise ValidationError("is_public", self.is_public, "true or false")
        if self.allow_any_model:
            if not isinstance(self.model, str) or not self.model:
                raise ValidationError("model", self.model, "a non-empty model name")
            return
        self._check_veo()

    def _check_veo(self) -> None:
        """Validate and complete the fields under the Veo 3.1 rules of Leonardo's guide."""
        set_ = object.__setattr__
        try:
            model = Model(self.model)  # any spelling: the one parser of model names
        except ValueError:
            raise ValidationError(
                "model",
                self.model,
                _one_of(Model) + " (a model whose rules this version does not know: "
                "allow_any_model=True, in Python only)",
            ) from None
        set_(self, "model", model)
        duration = DEFAULT_DURATION if self.duration is None else self.duration
        if type(duration) is not int or duration not in VEO_DURATIONS:
            raise ValidationError("duration", self.duration, _one_of(VEO_DURATIONS) + " seconds")
        set_(self, "duration", duration)
        resolution_given = self.resolution is not None
        resolution = _coerce_enum(
            Resolution,
            "resolution",
            DEFAULT_RESOLUTION if self.resolution is None else self.resolution,
        )
        set_(self, "resolution", resolution)
        if self.orientation is not None:
            set_(self, "orientation", _coerce_enum(Orientation, "orientation", self.orientation))
        if self.width is None and self.height is None:
            orientation = self.orientation or Orientation.LANDSCAPE
            width, height = VEO_SIZES[resolution, Orientation(orientation)]
            set_(self, "width", width)
            set_(self, "height", height)
            return
        if self.width is None or self.height is None:
            given, missing = ("width", "height") if self.height is None else ("height", "width")
            raise ValidationError(
                "width x height",
                f"{given} {getattr(self, given)} without a {missing}",
                "both together: one of " + ", ".join(f"{w}x{h}" for w, h in VEO_SIZES.values()),
            )
        size = (self.width, self.height)
        allowed: dict[tuple[int | None, int | None], tuple[Resolution, Orientation]] = {
            v: k for k, v in VEO_SIZES.items()
        }
        if type(self.width) is not int or type(self.height) is not int or size not in allowed:
            raise ValidationError(
                "width x height",
                f"{self.width}x{self.height}",
                "one of " + ", ".join(f"{w}x{h}" for w, h in VEO_SIZES.values()),
            )
        size_resolution, size_orientation = allowed[size]
        if not resolution_given:  # the size says which resolution it is
            resolution = size_resolution
            set_(self, "resolution", resolution)
        if size_resolution is not resolution:
            matching = [f"{w}x{h}" for (r, _), (w, h) in VEO_SIZES.items() if r is resolution]
            raise ValidationError(
                "width x height",
                f"{self.width}x{self.height}",
                f"with resolution {resolution.value}: one of " + ", ".join(matching),
            )
        if self.orientation is not None and self.orientation is not size_orientation:
            raise ValidationError(
                "orientation",
                self.orientation.value
                if isinstance(self.orientation, Orientation)
                else self.orientation,
                f"{size_orientation.value}, to match {self.width}x{self.height}",
            )


@attrs.frozen
class ImageToVideoRequest(VideoSpec):
    """One submit: a :class:`VideoSpec` and the frames on the server it starts from.

    :param image: the start frame
    :param end_image: optional end frame (needs a start frame, which ``image`` always is)
    """

    image: FrameRef = attrs.field(kw_only=True)
    end_image: FrameRef | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if not isinstance(self.image, FrameRef):
            raise ValidationError("image", self.image, "a FrameRef (the start frame)")
        if self.end_image is not None and not isinstance(self.end_image, FrameRef):
            raise ValidationError("end_image", self.end_image, "a FrameRef or None")

    @classmethod
    def of(
        cls, spec: VideoSpec, image: FrameRef, end_image: FrameRef | None = None
    ) -> ImageToVideoRequest:
        """``spec`` with its frames (a valid spec passes its checks again unchanged)."""
        fields = {a.name: getattr(spec, a.name) for a in attrs.fields(VideoSpec)}
        return cls(**fields, image=image, end_image=end_image)

    @property
    def spec(self) -> VideoSpec:
        """What this request makes, without its frames."""
        return VideoSpec(**{a.name: getattr(self, a.name) for a in attrs.fields(VideoSpec)})


@attrs.frozen
class Cost:
    """The authoritative price of a submitted job, as the submit response states it."""

    amount: Decimal
    unit: str


@attrs.frozen
class GenerationJob:
    """A submitted generation: its id, and what it cost."""

    id: str
    cost: Cost | None = None
    api_credit_cost: int | None = None


@attrs.frozen
class UploadedImage:
    """An init image on Leonardo's side, usable as a start or end frame."""

    id: str

    def as_frame(self) -> FrameRef:
        """Reference this image as an uploaded frame."""
        return FrameRef(self.id, ImageType.UPLOADED)


@attrs.frozen
class GeneratedImage:
    """One output of a generation; for a video job the MP4 is ``motion_mp4_url``.

    The ``id`` (needed only to use the output as a ``GENERATED`` frame) is optional: an
    entry that lacks it still carries the video.
    """

    id: str | None = None
    url: str | None = None
    motion_mp4_url: str | None = None
    nsfw: bool | None = None


@attrs.frozen
class Generation:
    """A generation as the API reports it.

    ``status`` is a :class:`GenerationStatus`, or the raw string for a state this
    version does not know (treated as not finished). ``width`` and ``height`` are the
    video's, named as a request, the command line's JSON and a batch's lines name them
    (the wire's ``imageWidth`` and ``imageHeight``).
    """

    id: str
    status: GenerationStatus | str
    prompt: str | None = None
    created_at: datetime | None = None
    seed: int | None = None
    width: int | None = None
    height: int | None = None
    generated_images: tuple[GeneratedImage, ...] = ()

    @property
    def image_width(self) -> int | None:
        """Deprecated: :attr:`width`, under the wire's name."""
        warnings.warn(
            "Generation.image_width is Generation.width", DeprecationWarning, stacklevel=2
        )
        return self.width

    @property
    def image_height(self) -> int | None:
        """Deprecated: :attr:`height`, under the wire's name."""
        warnings.warn(
            "Generation.image_height is Generation.height", DeprecationWarning, stacklevel=2
        )
        return self.height

    @property
    def video_url(self) -> str | None:
        """The MP4 URL of a finished video generation, else ``None``."""
        for image in self.generated_images:
            if image.motion_mp4_url:
                return image.motion_mp4_url
        return None

    @property
    def is_finished(self) -> bool:
        """``True`` once the status is ``COMPLETE`` or ``FAILED``."""
        return self.status in (GenerationStatus.COMPLETE, GenerationStatus.FAILED)


@attrs.frozen
class Account:
    """What ``/me`` says about the key's owner and limits."""

    user_id: str
    username: str | None = None
    concurrency_slots: int | None = None
    subscription_tokens: int | None = None
    paid_tokens: int | None = None

    @property
    def token_balance(self) -> int:
        """API tokens available: subscription plus paid."""
        return (self.subscription_tokens or 0) + (self.paid_tokens or 0)


@attrs.frozen
class GeneratedVideo:
    """A finished video on disk, with the job that made it: what
    :meth:`LeonardoClient.generate <leonardo_async.LeonardoClient.generate>` returns.

    :param path: where the MP4 was written (whole)
    :param generation: the generation as it finished (``COMPLETE``)
    :param job: the submitted job, with what the submit answer said it cost
    """

    path: Path
    generation: Generation
    job: GenerationJob

    @property
    def id(self) -> str:
        """The generation id (for ``wait``, ``get`` or the listing)."""
        return self.job.id

    @property
    def cost(self) -> Cost | None:
        """What the submit answer said the job cost, if it said."""
        return self.job.cost
