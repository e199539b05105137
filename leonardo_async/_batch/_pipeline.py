"""One batch item's way from its journal row to its result: upload, submit, track, download.

:class:`ItemPipeline` is what each of a :class:`~._submitter.BatchSubmitter`'s item tasks
runs. Every step is written to the journal before it is taken, so a run killed at any
point resumes from the last row: an item whose submit may have reached the server is
looked up in the listing (with its journaled seed) before it is sent again. A running
slot is held from just before the submit until the tracker sees the job end; the
batch's own bound (when it has one) nests inside the key's (:mod:`._slots`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final

import anyio
import attrs
from anyio.streams.memory import MemoryObjectSendStream

from .._client import LeonardoClient
from .._errors import (
    APIError,
    DownloadError,
    GenerationFailedError,
    JournalWriteError,
    LeonardoError,
    OverBudgetError,
    RateLimitError,
    SubmitUncertainError,
)
from .._schedule import PollSchedule
from ..models import Cost, Generation, GenerationJob, ImageToVideoRequest, VideoSpec
from ._budget import Budget
from ._frames import FrameUploads
from ._items import BatchItem, BatchResult, Outcome, video_name
from ._journal import BatchJournal, ExtraGeneration, ItemState, JournalEntry
from ._ledger import Ledger
from ._results import duplicate_result, result_of, video_path
from ._slots import BatchSlots, Held
from ._tally import BatchTally

__all__ = ["ItemPipeline"]

logger = logging.getLogger("leonardo_async")

#: 429s on one submit before its item gives up (each waits out the key's shared pause).
SUBMIT_REFUSALS: Final = 20

#: What a submit refused for a stale cached upload returns instead of the slots it held.
_STALE_FRAMES: Final = Held()


@attrs.define(eq=False)
class ItemPipeline:
    """The steps of one item, with what a batch run shares between its items.

    :param client: the entered client
    :param journal: the batch's journal
    :param frames: the run's uploads, each distinct file once
    :param budget: the batch's limit, and the prices of answers without one
    :param ledger: the batch's money, told of every row written
    :param downloads: downloads in flight at once
    :param slots: the batch's own bounds, inside the key's
    :param tally: items per step now and per result status in this run, which the
        submitter's statistics read
    :param retired: failed generations of items resubmitted by ``retry_failed``
    :param on_change: called after each change of the tally
    :param stop: ends the whole batch (the journal cannot be written)
    """

    client: LeonardoClient
    journal: BatchJournal
    frames: FrameUploads
    budget: Budget
    ledger: Ledger
    downloads: anyio.CapacityLimiter
    slots: BatchSlots
    tally: BatchTally
    retired: set[str]
    on_change: Callable[[], None]
    stop: Callable[[JournalWriteError], None]
    out_dir: Path | None = None
    schedule: PollSchedule | None = None
    wait_timeout: float | None = None
    retry_failed: bool = False
    #: Items whose submit ended uncertain in this run, their results held back until the
    #: end-of-batch sweep has looked for their jobs once more (:mod:`._sweep`).
    undecided: dict[str, tuple[JournalEntry, BatchItem]] = attrs.field(factory=dict)

    def should_work(self, entry: JournalEntry) -> bool:
        """Whether a journaled item needs work in this run (see the journal's table)."""
        if entry.state is ItemState.COMPLETE:
            video = video_path(entry, self.out_dir)
            return self.out_dir is not None and (video is None or not video.is_file())
        if entry.state is ItemState.FAILED:
            return self.retry_failed
        return True  # unfinished, or an error: resuming it cannot pay twice

    async def run(
        self,
        item: BatchItem,
        entry: JournalEntry,
        send: MemoryObjectSendStream[BatchResult],
        room: anyio.Semaphore,
    ) -> None:
        self.tally.steps["queued"] -= 1
        generation: Generation | None = None
        try:
            try:
                entry, generation = await self._process(item, entry)
            except JournalWriteError:
                raise
            except LeonardoError as exc:
                entry = self._failed_step(entry, str(exc))
            except Exception as exc:  # a bug must not take the other items down
                logger.exception("item %s failed unexpectedly", entry.key)
                entry = self._failed_step(entry, repr(exc))
        except JournalWriteError as exc:
            self.stop(exc)
            return
        finally:
            room.release()
            self._let_go(entry.key)
        if entry.undecided:
            self.undecided[entry.key] = (entry, item)
            return
        await send.send(self.finish(entry, item, generation))

    def _let_go(self, key: str) -> None:
        """Give the item back to the journal (a shared one's other workers may take it)."""
        try:
            self.journal.release(key)
        except JournalWriteError as exc:  # its lease runs out by itself
            logger.warning("item %s not given back: %s", key, exc)

    def _write(self, entry: JournalEntry, **changes: Any) -> JournalEntry:
        """Write the item's next row; the ledger counts what it says of money.

        Counted before it is written: a paid generation stays counted when the journal
        cannot record it (a full disk ends the batch, never its money).
        """
        self.ledger.record(attrs.evolve(entry, **changes))
        return self.journal.update(entry, **changes)

    def price(self, request: VideoSpec, cost: Cost | None) -> tuple[str | None, str | None, bool]:
        """What a job of ``request`` is counted at, as a row keeps it (amount, unit,
        estimated): the answered ``cost``, or, when the answer named none (lost, a 504,
        a null cost, a job found in the listing), the estimate, marked as one."""
        counted = self.budget.charged(request, cost)
        if counted is None:
            return None, None, False
        return str(counted.amount), counted.unit, cost is None

    def priced(self, entry: JournalEntry, item: BatchItem) -> JournalEntry:
        """The row, with a cost if it has a generation and none (a job an earlier run or
        release found in the listing): the estimate, marked as such, never nothing."""
        if entry.generation_id is None or entry.cost_amount is not None:
            return entry
        amount, unit, estimated = self.price(attrs.evolve(item.spec, seed=entry.seed), None)
        if amount is None:
            return entry
        return self._write(entry, cost_amount=amount, cost_unit=unit, cost_estimated=estimated)

    def found(self, entry: JournalEntry, request: VideoSpec, generation_id: str) -> JournalEntry:
        """The item's row holds a job its lost submit made, found in the listing: counted
        at the estimate (the listing names no price), tracked from here."""
        amount, unit, estimated = self.price(request, None)
        return self._write(
            entry,
            state=ItemState.SUBMITTED,
            generation_id=generation_id,
            uncertain=False,
            error=None,
            cost_amount=amount,
            cost_unit=unit,
            cost_estimated=estimated,
        )

    def keep_extra(self, extra: ExtraGeneration) -> bool:
        """Write down a paid generation of the item that its row does not hold; counted
        before it is written, as every charge. ``False`` if it was written already."""
        self.ledger.record_extra(extra)
        return self.journal.record_extra(extra)

    def _failed_step(self, entry: JournalEntry, error: str) -> JournalEntry:
        """End an item in ``error`` from its latest journaled row.

        The row may have moved on since ``entry`` was read (a generation id recorded, a
        submit begun): keep all of it, so that a resume tracks that generation, or looks
        for it, rather than paying for another. How far it got is its outcome (an upload
        that failed: before its submit).
        """
        latest = self.journal.entry(entry.key) or entry
        uncertain = latest.uncertain or (
            latest.state is ItemState.SUBMITTING and latest.generation_id is None
        )
        outcome = Outcome.of_end("ERROR", latest.generation_id, uncertain)
        return self._write(
            latest, state=ItemState.ERROR, error=error, uncertain=uncertain, outcome=outcome
        )

    async def _process(
        self, item: BatchItem, entry: JournalEntry
    ) -> tuple[JournalEntry, Generation | None]:
        """Take one item from wherever the journal left it to an end."""
        if entry.state is ItemState.FAILED:  # only here when retry_failed asked for it
            # A fresh seed, and the failed job held aside, so that a lost answer to the
            # new submit is never matched to the old job in the listing.
            if entry.generation_id is not None:
                self.retired.add(entry.generation_id)
                # Still paid: written down as the item's extra, before its row lets go.
                self.keep_extra(
                    ExtraGeneration(
                        entry.generation_id,
                        entry.key,
                        entry.cost_amount,
                        entry.cost_unit,
                        entry.cost_estimated,
                    )
                )
            entry = self._write(
                entry,
                state=ItemState.PENDING,
                generation_id=None,
                seed=None,
                uncertain=False,
                error=None,
            )
        if entry.generation_id is None and (entry.uncertain or entry.state is ItemState.SUBMITTING):
            entry = await self._reconcile(item, entry)
        if entry.generation_id is None:
            request = await self._with_frames(item, entry)
            entry, token = await self._submit(request, entry, stale_frames=True)
            if token is _STALE_FRAMES:  # refused for a cached upload: upload, submit again
                request = await self._with_frames(item, entry)
                entry, token = await self._submit(request, entry)
            if token is None:
                return entry, None
        else:  # a job from an earlier run: it runs, so it holds a slot
            token = await self.slots.take(slot=False)
            await self.client.submitter.adopt(entry.generation_id)
        try:
            tracked = await self._track(entry)
        finally:
            self.slots.give(token)
        if isinstance(tracked, GenerationFailedError):
            entry = self._write(
                entry, state=ItemState.FAILED, error=str(tracked), outcome=Outcome.FAILED
            )
            return entry, tracked.generation
        return await self._download(entry, tracked), tracked

    async def _reconcile(self, item: BatchItem, entry: JournalEntry) -> JournalEntry:
        """The last run may have created this item's job: look before submitting again."""
        since = entry.submit_started or datetime.now(timezone.utc)
        request = attrs.evolve(item.spec, seed=entry.seed)
        # The listing is watched until its lag has passed since the submit began (one
        # look, for a submit long past).
        found = await self.client.submitter.find_submitted(
            request, since=since, claimed=self._claimed(), failed_at=since
        )
        if found is None:
            logger.info("item %s: no job from the last run; submitting", entry.key)
            return self._write(entry, state=ItemState.PENDING, uncertain=False)
        logger.info("item %s: found its job %s from the last run", entry.key, found.id)
        return self.found(entry, request, found.id)

    async def _with_frames(self, item: BatchItem, entry: JournalEntry) -> ImageToVideoRequest:
        """The item's request, its local frames uploaded first (each distinct file once)."""
        uploading = bool(item.local_frames)
        if uploading:
            self._write(entry, state=ItemState.UPLOADING)
            self.tally.steps["uploading"] += 1
        try:
            start = await self.frames.frame(item.image, "image")
            end = (
                None
                if item.end_image is None
                else await self.frames.frame(item.end_image, "end_image")
            )
        finally:
            self.tally.steps["uploading"] -= int(uploading)
        return ImageToVideoRequest.of(item.spec, start, end)

    async def _submit(
        self, request: ImageToVideoRequest, entry: JournalEntry, *, stale_frames: bool = False
    ) -> tuple[JournalEntry, Held | None]:
        """Submit with the journaled seed; record the job before anything else happens.

        Refusals (429: nothing was created) are waited out a bounded number of times.
        The running slot is taken for each attempt and given back on a refusal, so a
        bound lowered by refusals holds back the submits already waiting too. The
        budget is checked with the slot in hand, when the costs of the jobs before this
        one are known.

        :param stale_frames: a 400 about a frame from the journal's upload cache drops
            those entries and returns :data:`_STALE_FRAMES` for the caller to upload again
        :return: the item's row, and the running slot its job holds (``None`` when no
            job was created)
        """
        seed = entry.seed if entry.seed is not None else request.seed
        request = self.client.submitter.with_seed(attrs.evolve(request, seed=seed))
        for attempt in range(1, SUBMIT_REFUSALS + 1):
            token = await self.slots.take()
            try:
                reservation = await self.budget.reserve(request)
            except BaseException as exc:
                self.slots.give(token)
                if isinstance(exc, OverBudgetError):
                    return self._write(
                        entry,
                        state=ItemState.ERROR,
                        error=str(exc),
                        outcome=Outcome.SKIPPED_BUDGET,
                    ), None
                raise
            entry = self._write(
                entry,
                state=ItemState.SUBMITTING,
                seed=request.seed,
                submit_started=datetime.now(timezone.utc),
                attempts=entry.attempts + 1,
                error=None,
            )
            self.tally.steps["submitting"] += 1

            def resending() -> None:  # the journal counts every send, the client's too
                nonlocal entry
                entry = self._write(entry, attempts=entry.attempts + 1)

            try:
                job = await self.client.submitter.submit(
                    request,
                    claimed=self._claimed(),
                    retry_refused=False,
                    slot=token.slot,
                    on_resend=resending,
                    journaled=True,
                )
            except BaseException as exc:
                self.slots.give(token)
                if isinstance(exc, RateLimitError) and attempt < SUBMIT_REFUSALS:
                    continue  # the key's shared pause holds everyone; queue again
                if isinstance(exc, SubmitUncertainError):
                    return self._write(
                        entry,
                        state=ItemState.ERROR,
                        uncertain=True,
                        error=str(exc),
                        outcome=Outcome.MAYBE_SUBMITTED,
                    ), None
                if (
                    stale_frames
                    and isinstance(exc, APIError)
                    and exc.status == 400
                    and self.frames.forget_stale(request, exc)
                ):
                    return entry, _STALE_FRAMES
                if isinstance(exc, LeonardoError):  # refused: nothing was created
                    return self._write(
                        entry,
                        state=ItemState.ERROR,
                        error=str(exc),
                        outcome=Outcome.ERROR_BEFORE_SUBMIT,
                    ), None
                raise
            finally:
                self.budget.release(reservation)
                self.tally.steps["submitting"] -= 1
            return self._submitted(request, entry, job), token
        raise AssertionError("unreachable: the last refusal returns")

    def _submitted(
        self, request: ImageToVideoRequest, entry: JournalEntry, job: GenerationJob
    ) -> JournalEntry:
        # An answer without a cost (found after a lost answer or a 504, a null cost) is
        # still a paid job: the estimate is counted, and written down as one.
        amount, unit, estimated = self.price(request, job.cost)
        return self._write(
            entry,
            state=ItemState.SUBMITTED,
            generation_id=job.id,
            # A refused seed was dropped and the submit sent again without it.
            seed=None if self.client.seeds_refused else request.seed,
            cost_amount=amount,
            cost_unit=unit,
            cost_estimated=estimated,
        )

    def _claimed(self) -> set[str]:
        """Generation ids a lost submit must never be matched to: all the batch holds."""
        return self.journal.generation_ids() | self.retired

    async def _track(self, entry: JournalEntry) -> Generation | GenerationFailedError:
        """Wait for the job; a failed job is returned, not raised (it is a result)."""
        assert entry.generation_id is not None
        self.tally.steps["running"] += 1
        self.on_change()
        try:
            handle = self.client.track(
                entry.generation_id, deadline=self.wait_timeout, schedule=self.schedule
            )
            return await handle
        except GenerationFailedError as exc:
            return exc
        finally:
            self.tally.steps["running"] -= 1

    async def _download(self, entry: JournalEntry, generation: Generation) -> JournalEntry:
        if self.out_dir is None:  # the video stays on the CDN: keep its URL for the results
            return self._write(
                entry,
                state=ItemState.COMPLETE,
                video=generation.video_url,
                error=None,
                outcome=Outcome.COMPLETE,
            )
        target = self.out_dir / video_name(entry.index, generation.prompt or "", generation.id)
        self.tally.steps["downloading"] += 1
        try:
            async with self.downloads:
                await self.client.download(generation, target)
        except DownloadError as exc:
            return self._write(
                entry, state=ItemState.ERROR, error=str(exc), outcome=Outcome.ERROR_AFTER_SUBMIT
            )
        except OSError as exc:  # the disk, not the CDN: a resume downloads it again
            error = f"download to {target} failed: {exc.strerror or exc}"
            return self._write(
                entry, state=ItemState.ERROR, error=error, outcome=Outcome.ERROR_AFTER_SUBMIT
            )
        finally:
            self.tally.steps["downloading"] -= 1
        # A shared journal's workers each have their own --out, perhaps on other machines:
        # the row says where this one put it. A journal of one process keeps the name, so
        # that its folder can move whole.
        video = str(target.resolve()) if self.journal.shared else target.name
        return self._write(
            entry, state=ItemState.COMPLETE, video=video, error=None, outcome=Outcome.COMPLETE
        )

    def finish(
        self, entry: JournalEntry, item: BatchItem, generation: Generation | None
    ) -> BatchResult:
        """The item's result from its last journal row, counted."""
        return self._counted(result_of(entry, item, generation, self.out_dir))

    def duplicate(self, key: str, index: int, item: BatchItem) -> BatchResult:
        """The result of an item whose key an earlier item of this batch already has."""
        return self._counted(duplicate_result(key, index, item))

    def _counted(self, result: BatchResult) -> BatchResult:
        self.tally.ended[result.status] += 1
        self.on_change()
        return result
