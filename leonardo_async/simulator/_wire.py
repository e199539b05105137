"""The JSON bodies the simulated API sends, built as plain dicts at the wire boundary.

One place for Leonardo's names (camelCase fields, Hasura-style ``*_by_pk`` wrappers, error
bodies) so the routes read as behaviour. Generations carry a few keys no client should need
(``__typename``, ``ultra``, ``transparency``...), because the real API keeps adding some.

``createdAt`` is UTC with no zone, the way Postgres prints a ``timestamp`` column through
Hasura: microseconds with the fraction's trailing zeros trimmed, so ``...:30.12``,
``...:30.1`` and ``...:30`` all occur (``timestamp_style="postgres"``, the default);
``"milliseconds"`` always prints three digits. ``created_at_suffix`` can append ``Z`` or
``+00:00``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ._config import SimulatorConfig
from ._state import GenerationRow, InitImage, Store

__all__ = [
    "cost_json",
    "error_body",
    "generation_json",
    "init_image_json",
    "job_json",
    "me_json",
    "stamp",
    "timestamp",
    "webhook_json",
]


def error_body(message: str, code: str) -> dict[str, str]:
    """Return a Hasura-style error body."""
    return {"error": message, "path": "$", "code": code}


def timestamp(moment: datetime, suffix: str = "", style: str = "milliseconds") -> str:
    """Format a UTC time in *style*: ``"postgres"`` (trimmed) or ``"milliseconds"``."""
    whole = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if style == "postgres":
        fraction = f"{moment.microsecond:06d}".rstrip("0")
        return whole + (f".{fraction}" if fraction else "") + suffix
    return f"{whole}.{moment.microsecond // 1000:03d}{suffix}"


def stamp(moment: datetime, config: SimulatorConfig) -> str:
    """Format a UTC time as the configured API shows it."""
    return timestamp(moment, config.created_at_suffix, config.timestamp_style)


def _image_json(row: GenerationRow, cdn_base: str) -> dict[str, Any]:
    return {
        "id": row.image_id,
        "url": f"{cdn_base}/{row.id}.jpg",
        "motionMP4URL": f"{cdn_base}/{row.id}.mp4",
        "nsfw": False,
        "likeCount": 0,
        "imageToVideo": row.endpoint == "image-to-video",
        "motion": True,
        "motionModel": row.model,
        "motionStrength": None,
        "fantasyAvatar": None,
        "generated_image_variation_generics": [],
    }


def generation_json(
    row: GenerationRow, now: float, cdn_base: str, config: SimulatorConfig
) -> dict[str, Any]:
    """Return a generation as ``generations_by_pk`` and the listing show it at *now*."""
    status = row.status(now)
    return {
        "id": row.id,
        "status": status,
        "prompt": row.prompt,
        "negativePrompt": row.negative_prompt,
        "createdAt": stamp(row.created_wall, config),
        "seed": row.seed,
        "imageWidth": row.width,
        "imageHeight": row.height,
        "public": row.public,
        "modelId": None,
        "motion": True,
        "guidanceScale": None,
        "inferenceSteps": None,
        "initStrength": None,
        "photoReal": False,
        "photoRealStrength": None,
        "presetStyle": None,
        "promptMagic": False,
        "promptMagicStrength": None,
        "promptMagicVersion": None,
        "scheduler": None,
        "sdVersion": None,
        "ultra": None,
        "transparency": "disabled",
        "__typename": "generations",
        "generated_images": [_image_json(row, cdn_base)] if status == "COMPLETE" else [],
        "generation_elements": [],
    }


def job_json(generation_id: str, cost: dict[str, str | None] | None) -> dict[str, Any]:
    """Return the answer to a successful submit (*cost* as :func:`cost_json` makes it)."""
    return {
        "motionVideoGenerationJob": {
            "generationId": generation_id,
            "apiCreditCost": None,
            "cost": cost,
        }
    }


def cost_json(credits: int, unit: str = "CREDITS") -> dict[str, str | None]:
    """Return a submit answer's ``cost``: the amount as a decimal string, in ``unit``
    (``DOLLARS`` prices a credit at $0.001, for pay-as-you-go accounts)."""
    amount = str(credits) if unit == "CREDITS" else f"{credits / 1000:.3f}"
    return {"amount": amount, "unit": unit}


def init_image_json(image: InitImage, object_url: str, config: SimulatorConfig) -> dict[str, Any]:
    """Return an init image as ``init_images_by_pk`` shows it."""
    return {
        "id": image.id,
        "url": object_url,
        "createdAt": stamp(image.created_wall, config),
    }


def me_json(config: SimulatorConfig, store: Store, renewal: datetime) -> dict[str, Any]:
    """Return the ``GET /me`` body."""
    renewal_text = stamp(renewal, config)
    return {
        "user_details": [
            {
                "user": {"id": config.user_id, "username": config.username},
                "apiConcurrencySlots": config.concurrency_slots,
                "apiSubscriptionTokens": store.subscription_tokens,
                "apiPaidTokens": store.paid_tokens,
                "apiPlanTokenRenewalDate": renewal_text,
                "subscriptionTokens": 0,
                "subscriptionGptTokens": 0,
                "subscriptionModelTokens": 0,
                "paidTokens": 0,
                "tokenRenewalDate": None,
            }
        ]
    }


def webhook_json(
    row: GenerationRow, now: float, cdn_base: str, config: SimulatorConfig, sent: datetime
) -> dict[str, Any]:
    """Return the callback body for a finished generation, typed as Leonardo's sample is."""
    body = generation_json(row, now, cdn_base, config)
    images = [
        {"id": i["id"], "url": i["url"], "motionMP4URL": i["motionMP4URL"], "nsfw": False}
        for i in body.pop("generated_images")
    ]
    body.pop("generation_elements")
    body.pop("__typename")
    body["images"] = images
    body["userId"] = config.user_id
    # The types of Leonardo's documented sample: the seed and the dollar cost as strings.
    body["seed"] = str(row.seed)
    body["apiDollarCost"] = "0"
    return {
        "type": config.webhook_event_type,
        "object": "generation",
        "timestamp": int(sent.timestamp() * 1000),
        "api_version": "v1",
        "data": {"object": body},
    }
