"""What a generation will probably cost, before the server says.

Leonardo's pricing calculator has no Veo 3.1 entry, and the submit response's ``cost`` is
the only authoritative price, known only after paying. A batch still needs a number
beforehand, for ``--dry-run`` and ``--max-credits``: it starts from published
third-party figures and switches to the price the server actually charged as soon as one
job of the same kind has been submitted.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Final

import attrs

from ..models import Cost, Model, VideoSpec

__all__ = ["CostEstimator", "Estimate"]

#: Third-party figures (credits) for Veo 3.1 by duration; VEO3_1FAST is about half.
PUBLISHED: Final[Mapping[tuple[str, int], Decimal]] = {
    (Model.VEO3_1.value, 4): Decimal(1070),
    (Model.VEO3_1.value, 6): Decimal(1605),
    (Model.VEO3_1.value, 8): Decimal(2140),
    (Model.VEO3_1FAST.value, 4): Decimal(535),
    (Model.VEO3_1FAST.value, 6): Decimal(803),
    (Model.VEO3_1FAST.value, 8): Decimal(1070),
}
PUBLISHED_SOURCE: Final = "published third-party Veo 3.1 figures (not authoritative)"
OBSERVED_SOURCE: Final = "the cost the server charged for the same kind of job"


@attrs.frozen
class Estimate:
    """An expected cost, and where the figure comes from."""

    cost: Cost | None
    source: str


def _kind(request: VideoSpec) -> tuple[str, int | None, str | None]:
    resolution = request.resolution
    return (
        str(getattr(request.model, "value", request.model)),
        request.duration,
        None if resolution is None else str(getattr(resolution, "value", resolution)),
    )


class CostEstimator:
    """Estimates per job kind (model, duration, resolution), learning from real charges."""

    def __init__(self) -> None:
        self._observed: dict[tuple[str, int | None, str | None], Cost] = {}

    def observe(self, request: VideoSpec, cost: Cost | None) -> None:
        """Remember what the server charged for a job like ``request``."""
        if cost is not None:
            self._observed[_kind(request)] = cost

    def estimate(self, request: VideoSpec) -> Estimate:
        """The expected cost of ``request``; ``cost`` is ``None`` for unknown models."""
        kind = _kind(request)
        if kind in self._observed:
            return Estimate(self._observed[kind], OBSERVED_SOURCE)
        model, duration, _ = kind
        published = PUBLISHED.get((model, duration or 8))
        if published is None:
            return Estimate(None, f"no published figure for {model}")
        return Estimate(Cost(published, "CREDITS"), PUBLISHED_SOURCE)
