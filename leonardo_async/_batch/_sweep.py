"""The sweep: paid generations of a batch that none of its items holds, found and kept.

A submit whose answer is lost is looked up in the listing before it is sent again, but
the listing can show a job later than any window the client waits (and a look can fail):
the item is then either sent again, and the first job is a second paid generation of it,
or left "maybe submitted". Either way a paid job would be held by no journal row, and
counted nowhere. So before a run ends (a resume's run too) the batch reads the listing
back to the batch's start once more, and each generation it made that no row holds is:

* **adopted** by its item when the item has none (its submit ended uncertain): the row
  gets the generation, and the run tracks and downloads it as any other;
* otherwise written down as an **extra** of its item (:class:`~._journal.ExtraGeneration`,
  at the estimate: the listing names no price), which the ledger counts in every total
  and ``results.jsonl`` names on the item's line.

A generation is matched to an item as a lost submit is (the prompt, the size, the seed
where the server keeps the seeds it is sent, made after the batch began on the server's
clock). An item whose submit is in flight (its own or another worker's) is left alone:
its answer, or the resume's look, settles it. Only a run that has a reason sweeps: an
item sent more than once, or left uncertain. A batch whose every submit was answered
cannot have made a generation that no row holds, and pays no listing reads for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Final

import anyio
import attrs

from .._errors import SubmitUncertainError
from ..models import Generation, VideoSpec
from ._items import BatchItem
from ._journal import ExtraGeneration, ItemState, JournalEntry
from ._pipeline import ItemPipeline

__all__ = ["Sweep", "catch_up", "needs_sweep"]

logger = logging.getLogger("leonardo_async")

#: Listing entries one page adds to a walk (a page of 50 less the walk's overlap).
_PER_PAGE: Final = 45
#: Pages read beyond the batch's own generations (other jobs of the account's).
_SPARE_PAGES: Final = 20


def catch_up(
    undecided: Iterable[JournalEntry], window: Callable[[datetime], float], now: datetime
) -> float:
    """Seconds from ``now`` until the listing has had its lag ``window`` (as measured for
    a submit sent at a given time, capped by the client) to show the job of every submit
    in ``undecided``."""
    due = max(
        (
            (row.submit_started - now).total_seconds() + window(row.submit_started)
            for row in undecided
            if row.submit_started is not None
        ),
        default=0.0,
    )
    return max(0.0, due)


def needs_sweep(entries: Iterable[JournalEntry]) -> bool:
    """Whether any row may have paid for a generation no row holds: an item sent more
    than once (a lost answer sent again, a 429 sent again), or left uncertain."""
    return any(entry.attempts > 1 or entry.maybe_made for entry in entries)


@attrs.define(eq=False)
class Sweep:
    """One run's sweep of the listing; see the module docstring.

    :param pipeline: the run's item steps, which write what the sweep finds (a found job
        into its row, an extra beside it) as they write their own
    :param since: when the batch began (its first run), on this machine's clock
    """

    pipeline: ItemPipeline
    since: datetime

    async def run(self, items: Mapping[str, BatchItem]) -> list[tuple[JournalEntry, BatchItem]]:
        """Find the batch's generations no row holds, if any row may have paid for one;
        keep each one as the module docstring says. Returns the rows that adopted one
        (taken by this worker, to be tracked), with their items."""
        journal = self.pipeline.journal
        rows = {entry.key: entry for entry in journal.entries() if entry.key in items}
        if not needs_sweep(rows.values()):
            return []
        requests = {
            key: attrs.evolve(items[key].spec, seed=row.seed)
            for key, row in rows.items()
            if row.state is not ItemState.PENDING
        }
        await self._listing_caught_up(row for row in rows.values() if row.undecided)
        pages = _SPARE_PAGES + (2 * len(requests)) // _PER_PAGE + 1
        logger.debug("sweeping the listing back to %s for %d items", self.since, len(requests))
        try:
            found, whole = await self.pipeline.client.submitter.find_strays(
                requests, since=self.since, held=journal.generation_ids(), max_pages=pages
            )
        except SubmitUncertainError as exc:
            logger.warning("the end-of-batch sweep could not read the listing (%s)", exc)
            return []
        if not whole:
            logger.warning(
                "the end-of-batch sweep read %d listing pages without reaching the batch's "
                "start: an earlier generation no item holds may be missing (a resume sweeps "
                "again)",
                pages,
            )
        adopted = []
        for key, generations in found.items():
            row = self._adopter(key)
            for generation in generations:
                if row is not None:
                    adopted.append((self._adopt(row, requests[key], generation), items[key]))
                    row = None
                elif self._settled(key):
                    self._keep(key, requests[key], generation)
        return adopted

    async def _listing_caught_up(self, undecided: Iterable[JournalEntry]) -> None:
        """Wait until the listing has had the measured lag window to show the jobs of
        the submits that ended uncertain: the sweep can then settle them in this run,
        rather than leave them to a resume."""
        now = datetime.now(timezone.utc)
        wait = catch_up(undecided, self.pipeline.client.submitter.listing_window, now)
        if wait > 0:
            logger.info("waiting %.1f s for the listing to show the uncertain submits' jobs", wait)
            await anyio.sleep(wait)

    def _adopter(self, key: str) -> JournalEntry | None:
        """The item's row, taken, if its submit ended uncertain and it holds no job."""
        journal = self.pipeline.journal
        row = journal.entry(key)
        if row is None or not row.undecided:
            return None
        taken = journal.take(key)
        if taken is None or not taken.undecided:  # another worker has it now
            if taken is not None:
                journal.release(key)
            return None
        return taken

    def _settled(self, key: str) -> bool:
        """Whether the item's row is past its submit, so a job of its that the row does
        not hold is a second one (not the answer of a submit in flight)."""
        row = self.pipeline.journal.entry(key)
        return row is not None and row.state is not ItemState.SUBMITTING and not row.maybe_made

    def _adopt(self, row: JournalEntry, request: VideoSpec, found: Generation) -> JournalEntry:
        logger.warning(
            "item %s: its job %s, whose submit's answer was lost, found in the listing at "
            "the end of the run; tracking it",
            row.key,
            found.id,
        )
        return self.pipeline.found(row, request, found.id)

    def _keep(self, key: str, request: VideoSpec, found: Generation) -> None:
        extra = ExtraGeneration(found.id, key, *self.pipeline.price(request, None))
        if self.pipeline.keep_extra(extra):
            logger.warning(
                "item %s: a second paid generation %s (%s) found in the listing; recorded "
                "as an extra of the item",
                key,
                found.id,
                getattr(found.status, "value", found.status),
            )
