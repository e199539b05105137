"""What a batch is made of and what it gives back: items, results, statistics, plans.

Kept apart from the machinery in :mod:`._submitter` so that the CLI, the journal and users
can build and read these without pulling in the scheduler.
"""

from __future__ import annotations

import enum
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
    "Outcome",
    "ResultStatus",
    "plan",
    "remote_frame",
    "video_name",
]

ResultStatus = Literal["COMPLETE", "FAILED", "ERROR"]


class Outcome(str, enum.Enum):
    """What became of an item (a batch file's line), in the order summaries list them.

    Decided where it happens (the step that ends the item says which), kept in the
    item's journal row, and carried unchanged by :class:`BatchResult` to the ``category``
    of its line in ``results.jsonl``.
    """

    #: The video was made (and downloaded, when the batch downloads).
    COMPLETE = "complete"
    #: The server's job ended ``FAILED``.
    FAILED = "failed"
    #: Nothing was submitted: a duplicate key, an upload that failed, a refused submit.
    ERROR_BEFORE_SUBMIT = "error_before_submit"
    #: The submit's answer was lost and the listing has not shown its job yet: perhaps
    #: made and paid; a resume looks for it before sending again.
    MAYBE_SUBMITTED = "maybe_submitted"
    #: The job exists (and is paid for); waiting for it or downloading it failed.
    ERROR_AFTER_SUBMIT = "error_after_submit"
    #: Not submitted: it would have passed the batch's budget.
    SKIPPED_BUDGET = "skipped_budget"
    #: A batch file's line that is not a valid request; nothing was sent for it.
    BAD_LINE = "bad_line"
    #: A stopped run left its job running on the server; a resume waits for it.
    RUNNING = "running"
    #: A stopped run never got to it.
    NOT_STARTED = "not_started"

    @classmethod
    def of_end(cls, status: ResultStatus, generation_id: str | None, uncertain: bool) -> Outcome:
        """How an item ended, by what its end holds: its status, whether it has a job,
        and whether its submit may have made one.

        What an item's end says when no step decided more (an unexpected error; a row an
        earlier release wrote): never ``SKIPPED_BUDGET``, which only the budget decides.
        """
        if status == "COMPLETE":
            return cls.COMPLETE
        if status == "FAILED":
            return cls.FAILED
        if generation_id is not None:
            return cls.ERROR_AFTER_SUBMIT
        if uncertain:
            return cls.MAYBE_SUBMITTED
        return cls.ERROR_BEFORE_SUBMIT


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
    :param outcome: what became of the item, as the step that ended it decided (a
        result made by hand without one: what its status, job and ``uncertain`` say)
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
    outcome: Outcome = attrs.field()

    @outcome.default
    def _ended(self) -> Outcome:
        return Outcome.of_end(self.status, self.generation_id, self.uncertain)


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
    """The end of a batch: counts, what it cost, how long it took.

    :param credits: what every generation of the batch (all its runs) cost, per unit: at
        the answered cost, or the estimate when the answer named none
    :param credits_estimated: the part of ``credits`` that is estimated
    :param maybe_paid: items whose submit may have made a generation the listing has not
        shown yet (not in ``credits``; a resume looks for it)
    :param extra_generations: paid generations beyond the one each item holds (a lost
        submit sent again while the listing had not shown its first job, a failed job
        submitted again), counted in ``credits``; ``results.jsonl`` names them
    """

    total: int
    complete: int
    failed: int
    errors: int
    credits: Mapping[str, Decimal]
    elapsed: float
    requests: int
    credits_estimated: Mapping[str, Decimal] = attrs.field(factory=dict)
    maybe_paid: int = 0
    extra_generations: int = 0


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
    """What a batch of ``items`` would upload and cost, without a client or a request.

    Estimates of a plan, not money: nothing is charged, so nothing here is the ledger's.
    """
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
