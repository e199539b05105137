"""The shapes of Leonardo's response bodies, as private attrs classes the converter reads.

Each envelope is one whole answer (``{"sdGenerationJob": {...}}``, ``{"generations_by_pk":
{...}}``) in Python names; :mod:`._convert` owns the renames and the lenient reading, so
this module is only the nouns: what a body holds, and which of its fields a caller needs
(those without a default).
"""

from __future__ import annotations

import attrs

from .._errors import BadJSONError, ResponseShapeError
from ..models import Account, Generation, GenerationJob
from ._json import loads

__all__ = [
    "CallbackEvent",
    "DeletedEnvelope",
    "DeletedImageEnvelope",
    "GenerationCallback",
    "GenerationEnvelope",
    "GenerationListEnvelope",
    "MeEnvelope",
    "SubmitEnvelope",
    "UploadEnvelope",
    "UploadTarget",
    "account_from",
]


@attrs.frozen
class UploadTarget:
    """Step one of an upload: where to POST the file, and the presigned form fields."""

    id: str
    url: str
    fields: str
    key: str | None = None

    def form_fields(self) -> dict[str, str]:
        """Decode ``fields``, which Leonardo sends as a JSON-encoded string."""
        try:
            decoded = loads(self.fields)
        except BadJSONError:
            decoded = None
        if not isinstance(decoded, dict):
            raise ResponseShapeError(
                self.url, ["expected a JSON object @ $.uploadInitImage.fields"]
            )
        return {str(k): str(v) for k, v in decoded.items()}


@attrs.frozen
class UploadEnvelope:
    upload_init_image: UploadTarget | None


@attrs.frozen
class SubmitEnvelope:
    motion_video_generation_job: GenerationJob | None


@attrs.frozen
class GenerationEnvelope:
    generations_by_pk: Generation | None


@attrs.frozen
class GenerationListEnvelope:
    generations: tuple[Generation, ...]


@attrs.frozen
class DeletedId:
    id: str


@attrs.frozen
class DeletedEnvelope:
    delete_generations_by_pk: DeletedId | None


@attrs.frozen
class DeletedImageEnvelope:
    delete_init_images_by_pk: DeletedId | None


@attrs.frozen
class _User:
    id: str
    username: str | None = None


@attrs.frozen
class _UserDetails:
    user: _User
    api_concurrency_slots: int | None = None
    api_subscription_tokens: int | None = None
    api_paid_tokens: int | None = None


@attrs.frozen
class MeEnvelope:
    user_details: tuple[_UserDetails, ...]


@attrs.frozen
class CallbackEvent:
    """What every webhook callback is read for first: its event ``type``."""

    type: str


@attrs.frozen
class _CallbackGeneration(Generation):
    """A generation as a callback sends it: ``images`` where the API says ``generated_images``."""


@attrs.frozen
class _CallbackData:
    object: _CallbackGeneration


@attrs.frozen
class GenerationCallback:
    """A generation callback (``{"type", "data": {"object": {...}}}``).

    ``object``, ``timestamp`` and ``api_version`` are not read: nothing depends on them and
    their types are not pinned down well enough to reject a callback over.
    """

    type: str
    data: _CallbackData

    def generation(self) -> Generation:
        """The reported generation, as a plain :class:`Generation`."""
        return Generation(**attrs.asdict(self.data.object, recurse=False))


def account_from(me: MeEnvelope, url: str) -> Account:
    """The key owner's account, from the first ``user_details`` entry."""
    if not me.user_details:
        raise ResponseShapeError(url, ["expected at least one entry @ $.user_details"])
    details = me.user_details[0]
    return Account(
        user_id=details.user.id,
        username=details.user.username,
        concurrency_slots=details.api_concurrency_slots,
        subscription_tokens=details.api_subscription_tokens,
        paid_tokens=details.api_paid_tokens,
    )
