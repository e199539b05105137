"""Deciding whether a lost submit created a generation, from the generation listing.

There is no idempotency key on ``POST /generations-image-to-video``: when its answer is
lost, the only way to know whether the job exists (and is being billed) is to look for it
in ``GET /generations/user/{userId}``. A listed generation is ours when it has our prompt,
our size, was created no earlier than our submit (less a margin for clock skew), has our
seed when the server reports seeds it was given, and is not already claimed by another of
our items. The client sends a seed it chose when the user did not, which makes the match
exact on servers that honour seeds.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime, timedelta

from .models import Generation, ImageToVideoRequest

__all__ = ["is_candidate", "pick"]

#: How far a server's clock may run behind ours before a match is missed.
CLOCK_SKEW = timedelta(seconds=60)


def is_candidate(
    generation: Generation,
    request: ImageToVideoRequest,
    *,
    since: datetime,
    exclude: Collection[str] = (),
    trust_seed: bool = True,
) -> bool:
    """Whether ``generation`` may be the one ``request`` created, submitted at ``since``.

    :param since: when the submit started (an aware datetime)
    :param exclude: generation ids already known to belong to other submits
    :param trust_seed: the server keeps the seeds it is sent, so a different seed rules
        a generation out
    """
    if generation.id in exclude or generation.prompt != request.prompt:
        return False
    if request.width is not None and generation.image_width not in (None, request.width):
        return False
    if request.height is not None and generation.image_height not in (None, request.height):
        return False
    if generation.created_at is not None and generation.created_at < since - CLOCK_SKEW:
        return False
    return not (
        trust_seed
        and request.seed is not None
        and generation.seed is not None
        and generation.seed != request.seed
    )


def pick(candidates: Iterable[Generation], request: ImageToVideoRequest) -> Generation | None:
    """The best of the candidates: a seed match first, then the earliest created."""

    def rank(generation: Generation) -> tuple[bool, float]:
        created = generation.created_at
        return (
            request.seed is None or generation.seed != request.seed,
            created.timestamp() if created is not None else float("inf"),
        )

    return min(candidates, key=rank, default=None)
