"""A batch item's result, made from its journal row.

The journal is the record of what happened to an item; a :class:`~._items.BatchResult`
is what a caller is handed. Both the items a run works on and those the journal already
finished (a resume that skips them) get their result here, so the two never differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Final

from ..models import Cost, Generation
from ._items import BatchItem, BatchResult, Outcome, ResultStatus
from ._journal import BatchJournal, ItemState, JournalEntry

__all__ = ["duplicate_result", "journal_results", "result_of", "video_path"]

_STATUS: Final[dict[ItemState, ResultStatus]] = {
    ItemState.COMPLETE: "COMPLETE",
    ItemState.FAILED: "FAILED",
}


def video_path(entry: JournalEntry, out_dir: Path | None) -> Path | None:
    """Where the item's video is: the journal keeps its name within ``out_dir``, so a
    resume from another working directory (or of a moved folder) still finds it; a
    shared journal keeps the whole path the worker that downloaded it wrote it to."""
    if entry.video is None or out_dir is None:  # without out_dir: the CDN URL
        return None
    video = Path(entry.video)
    return video if video.is_absolute() else out_dir / video.name


def result_of(
    entry: JournalEntry, item: BatchItem, generation: Generation | None, out_dir: Path | None
) -> BatchResult:
    """The result an item's last journal row says, with the generation if one was seen.

    Its outcome is the row's, as the step that ended the item wrote it; a row an earlier
    release ended has none, and its status, job and ``uncertain`` say it.
    """
    status = _STATUS.get(entry.state, "ERROR")
    uncertain = entry.maybe_made
    cost = (
        None
        if entry.cost_amount is None or entry.cost_unit is None
        else Cost(Decimal(entry.cost_amount), entry.cost_unit)
    )
    return BatchResult(
        key=entry.key,
        index=entry.index,
        status=status,
        prompt=item.spec.prompt,
        generation_id=entry.generation_id,
        video=video_path(entry, out_dir),
        video_url=(
            generation.video_url
            if generation is not None
            else (entry.video if out_dir is None else None)
        ),
        cost=cost,
        error=entry.error,
        retryable=status == "ERROR",
        uncertain=uncertain,
        cost_estimated=entry.cost_estimated,
        generation=generation,
        outcome=entry.outcome or Outcome.of_end(status, entry.generation_id, uncertain),
    )


def duplicate_result(key: str, index: int, item: BatchItem) -> BatchResult:
    """The result of an item whose key an earlier item of this batch already has."""
    return BatchResult(
        key=key,
        index=index,
        status="ERROR",
        prompt=item.spec.prompt,
        error=f"not submitted: duplicate key {key!r} (keys must be unique in a batch)",
        outcome=Outcome.ERROR_BEFORE_SUBMIT,
    )


def journal_results(
    journal: BatchJournal, items: Mapping[str, BatchItem], out_dir: Path | None
) -> dict[str, BatchResult]:
    """The result of each of ``items`` (by key) whose journal row has reached an end.

    What a shared journal's workers did between them, whichever worker did it: the
    report of a whole batch from any machine, sending nothing.
    """
    found = {}
    for entry in journal.entries():
        item = items.get(entry.key)
        if item is not None and entry.state.terminal:
            found[entry.key] = result_of(entry, item, None, out_dir)
    return found
