"""What a batch is made of and what it gives back: items, results, statistics, plans.

Kept apart from the machinery in :mod:`._submitter` so that the CLI, the journal and users
can build and read these without pulling in the scheduler.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal

import attrs

from .. import _wire as wire
from .._files import FrameSource, remote_frame
from ..models import Cost, FrameRef, Generation, UploadedImage, VideoSpec
from ._pricing import CostEstimator

__all__ = [
    "BatchItem",
    "BatchPlan",
    "BatchResult",
    "BatchStatistics",
    "BatchSummary",
    "FrameSource",
    "ResultStatus",
    "plan",
    "remote_frame",
    "video_name",
]

ResultStatus = Literal["COMPLETE", "FAILED", "ERROR"]


def _describe(source: FrameSource | None) -> str | None:
    if source is None:
        return None
    if isinstance(source, FrameRef):
        return f"{source.type.value}:{source.id}"
    if isinstance(source, UploadedImage):
        return f"UPLOADED:{source.id}"
    return os.fspath(source)


@attrs.frozen
class BatchItem:
    """One generation of a batch: a validated spec, and its frames as given.

    Build it with :meth:`create`, which validates everything at once, so a bad item is
    refused before the batch sends anything.

    :param spec: what to make; the submit joins it to the frames once they are on the
        server (:meth:`ImageToVideoRequest.of`)
    :param image: the start frame: a local path, an image id, or an uploaded image
    :param end_image: the optional end frame, likewise
    :param key: the item's identity in the journal; defaults to its position
    :param number: the number its video's file name starts with (``00007-...``) and its
        place in ordered output; defaults to its position. A batch file's reader sets the
        line number, so names do not shift when a line before it is bad or removed.
    """

    spec: VideoSpec
    image: FrameSource
    end_image: FrameSource | None = None
    key: str | None = None
    number: int | None = None

    @classmethod
    def create(
        cls,
        *,
        prompt: str,
        image: FrameSource,
        end_image: FrameSource | None = None,
        key: str | None = None,
        number: int | None = None,
        **params: Any,
    ) -> BatchItem:
        """Validate and build an item; ``params`` are :class:`VideoSpec` fields.

        :raises ValidationError: the spec breaks the rules
        """
        spec = VideoSpec(prompt=prompt, **params)
        for name, source in (("image", image), ("end_image", end_image)):
            if source is not None:
                remote_frame(source, name)  # an id is checked here, a file when it is read
        return cls(spec, image, end_image, key, number)

    @property
    def local_frames(self) -> list[str]:
        """The frames that are local files, to be uploaded."""
        return [
            os.fspath(source)  # type: ignore[arg-type]
            for source in (self.image, self.end_image)
            if source is not None and remote_frame(source) is None
        ]

    def fingerprint(self) -> str:
        """A hash of what this item asks for (a resume with other content is refused)."""
        described = {
            "body": wire.dumps_spec(self.spec),
            "image": _describe(self.image),
            "end_image": _describe(self.end_image),
        }
        text = json.dumps(described, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


@attrs.frozen
class BatchResult:
    """How one item ended. Exactly one per item.

    :param status: ``COMPLETE`` (video made, and downloaded if asked), ``FAILED`` (the
        server's job failed), or ``ERROR`` (it could not be done: see ``error``)
    :param video_url: the video's CDN URL, when known (always without an ``out_dir``)
    :param retryable: resuming the batch would try this item again without risk of paying
        twice (nothing was created, or the job exists and only waiting or downloading
        is left)
    :param cost_estimated: ``cost`` is an estimate: the answer named none
    :param uncertain: the submit may have reached the server and made a job the listing
        has not shown yet (paid, perhaps): a resume looks for it before sending again
    """

    key: str
    index: int
    status: ResultStatus
    prompt: str
    generation_id: str | None = None
    video: Path | None = None
    cost: Cost | None = None
    # Not part of how the item ended: a resume of a downloaded item does not know it.
    video_url: str | None = attrs.field(default=None, eq=False)
    error: str | None = None
    retryable: bool = False
    uncertain: bool = False
    cost_estimated: bool = False
    generation: Generation | None = attrs.field(default=None, repr=False, eq=False)


@attrs.frozen
class BatchStatistics:
    """A snapshot of a running batch, for progress bars and logs."""

    total: int | None
    queued: int
    uploading: int
    submitting: int
    running: int
    downloading: int
    complete: int
    failed: int
    errors: int
    credits: Mapping[str, Decimal]
    elapsed: float
    running_limit: int | None

    @property
    def done(self) -> int:
        """Items that reached an end."""
        return self.complete + self.failed + self.errors

    @property
    def submitted(self) -> int:
        """Items whose generation exists (running or finished)."""
        return self.running + self.downloading + self.complete + self.failed


@attrs.frozen
class BatchSummary:
    """The end of a batch: counts, what it cost, how long it took."""

    total: int
    complete: int
    failed: int
    errors: int
    credits: Mapping[str, Decimal]
    elapsed: float
    requests: int


@attrs.frozen
class BatchPlan:
    """What a batch would do (``--dry-run``): nothing is sent to make it."""

    items: int
    frames_to_upload: int
    estimated: Mapping[str, Decimal]
    unpriced: int
    sources: tuple[str, ...]


_SLUG: Final = re.compile(r"[^a-z0-9]+")


def video_name(index: int, prompt: str, generation_id: str) -> str:
    """A file name for an item's video that no prompt can steer out of its folder.

    Only ``[a-z0-9-]`` from the prompt survive, and the item's index and generation id
    make two items never collide.
    """
    slug = _SLUG.sub("-", prompt.lower()).strip("-")[:40].strip("-") or "video"
    safe_id = _SLUG.sub("", generation_id.lower())[:12] or "gen"
    return f"{index:05d}-{slug}-{safe_id}.mp4"


def plan(items: Iterable[BatchItem], estimator: CostEstimator | None = None) -> BatchPlan:
    """What a batch of ``items`` would upload and cost, without a client or a request."""
    estimator = estimator or CostEstimator()
    count, unpriced, frames = 0, 0, set()
    estimated: dict[str, Decimal] = {}
    sources: set[str] = set()
    for item in items:
        count += 1
        frames.update(item.local_frames)
        estimate = estimator.estimate(item.spec)
        sources.add(estimate.source)
        if estimate.cost is None:
            unpriced += 1
        else:
            unit = estimate.cost.unit
            estimated[unit] = estimated.get(unit, Decimal(0)) + estimate.cost.amount
    return BatchPlan(count, len(frames), estimated, unpriced, tuple(sorted(sources)))
