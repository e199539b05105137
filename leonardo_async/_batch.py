"""BatchSubmitter: many image-to-video jobs, as fast as the key allows, never paid twice.

Each item goes upload -> submit -> track -> download, on its own task, and every step is
written to the :class:`~leonardo_async._journal.Journal` before it is taken. What bounds
the fan-out is what Leonardo counts: generations running at once (a slot is held from
just before the submit until the tracker sees the job end, not while an HTTP request is
in flight), submits per minute and requests per minute (the client's key limiter, which
the tracker's polls share). Items never cancel each other: one item's failure is its
own result.

Results come out as they happen::

    async with BatchSubmitter(client, out_dir="videos") as batch:
        async with batch.stream(items) as results:
            async for result in results:
                print(result.index, result.status)
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Final

import anyio
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._budget import Budget
from ._client import LeonardoClient
from ._errors import (
    APIError,
    ClientStateError,
    DownloadError,
    GenerationFailedError,
    JournalMismatchError,
    JournalWriteError,
    LeonardoError,
    OverBudgetError,
    RateLimitError,
    SubmitUncertainError,
    TransportError,
    UploadError,
    ValidationError,
)
from ._items import (
    BatchItem,
    BatchPlan,
    BatchResult,
    BatchStatistics,
    BatchSummary,
    FrameSource,
    ResultStatus,
    remote_frame,
    video_name,
)
from ._journal import ItemState, Journal, JournalEntry
from ._limits import Limits, RateGate, SubmitSlot
from ._pricing import CostEstimator
from ._schedule import PollSchedule
from ._uploads import read_image
from ._validate import MAX_SECONDS, number, positive_amount
from .models import Cost, FrameRef, Generation, GenerationJob, ImageToVideoRequest

__all__ = ["BatchSubmitter", "plan"]

logger = logging.getLogger("leonardo_async")

#: Items being worked on beyond the running bound: uploads for the next ones overlap
#: the current ones' renders.
PREFETCH: Final = 16
#: Without a running bound, at most this many items are in flight at once.
UNBOUNDED_WINDOW: Final = 1000
#: 429s on one submit before its item gives up (each waits out the key's shared pause).
SUBMIT_REFUSALS: Final = 20

ProgressHook = Callable[[BatchStatistics], None]
_STATUS: Final[dict[ItemState, ResultStatus]] = {
    ItemState.COMPLETE: "COMPLETE",
    ItemState.FAILED: "FAILED",
}


@attrs.define(eq=False)
class _Held:
    """The slots one item holds: the batch's own, and the key's for its submit."""

    key: SubmitSlot | None = None


#: What a submit refused for a stale cached upload returns instead of the slots it held.
_STALE_FRAMES: Final = _Held()


class BatchSubmitter:
    """Fans out image-to-video requests under the key's limits; resumable through a journal.

    :param client: an entered :class:`LeonardoClient`
    :param journal: where the batch's state is kept: a :class:`Journal`, a path to one,
        or ``None`` for an in-memory journal (no resume across processes)
    :param out_dir: download videos here; ``None`` leaves them on the CDN
    :param limits: this batch's own bounds, inside the client's: its ``max_running``
        (plus ``max_queued``) bounds the batch's jobs in flight and its
        ``submits_per_minute`` its submits, while the key's limits (rates learned, pauses,
        in-flight slots) keep holding for everything the client sends
    :param schedule: poll schedule for this batch's jobs instead of the client's
    :param max_credits: stop submitting before spent plus estimated credits pass this
        (shorthand for ``budget=Cost(max_credits, "CREDITS")``)
    :param budget: stop submitting before spent plus estimated cost passes this amount,
        in its unit (``CREDITS`` or ``DOLLARS``: the account's); a charge in another unit
        stops further submits, since amounts in two units are never added
    :param retry_failed: on resume, submit again items whose job ended ``FAILED``
        (this pays again)
    :param force: accept a journal whose items differ from the input
    :param wait_timeout: seconds one job may run before its item is given up (resumable)
    :param upload_concurrency: uploads in flight at once
    :param download_concurrency: downloads in flight at once
    :param on_progress: called with a :class:`BatchStatistics` after each change
    """

    def __init__(
        self,
        client: LeonardoClient,
        *,
        journal: Journal | str | Path | None = None,
        out_dir: str | Path | None = None,
        limits: Limits | None = None,
        schedule: PollSchedule | None = None,
        max_credits: Decimal | float | int | None = None,
        budget: Cost | None = None,
        retry_failed: bool = False,
        force: bool = False,
        wait_timeout: float | None = None,
        upload_concurrency: int = 4,
        download_concurrency: int = 4,
        on_progress: ProgressHook | None = None,
    ) -> None:
        self.client = client
        #: A journal given as a path (or none) is the submitter's own: it is opened when the
        #: ``async with`` block starts and closed when it ends.
        self._journal_path = None if isinstance(journal, Journal) else journal or ":memory:"
        self._journal = journal if isinstance(journal, Journal) else None
        self._entered = False
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.limits = limits
        self.schedule = schedule
        if max_credits is not None and budget is None:
            budget = Cost(positive_amount("max_credits", max_credits), "CREDITS")
        elif budget is not None:
            budget = Cost(positive_amount("budget", budget.amount), budget.unit)
        number("wait_timeout", wait_timeout, 0.001, MAX_SECONDS, allow_none=True)
        number("upload_concurrency", upload_concurrency, 1, 1000, integer=True)
        number("download_concurrency", download_concurrency, 1, 1000, integer=True)
        self.budget = budget
        self.retry_failed = retry_failed
        self.force = force
        self.wait_timeout = wait_timeout
        self.on_progress = on_progress
        self.estimator = CostEstimator()
        self._budget = Budget(budget, self.estimator)
        self._uploads = anyio.CapacityLimiter(upload_concurrency)
        self._downloads = anyio.CapacityLimiter(download_concurrency)
        self._digests: dict[str, str] = {}
        self._inflight_uploads: dict[str, anyio.Event] = {}
        #: Frames whose upload failed in this run, by content hash: their other items fail
        #: at once instead of each retrying it in turn (a resume tries again).
        self._failed_uploads: dict[str, str] = {}
        #: Image ids this run took from the journal's upload cache, by content hash.
        self._cached: dict[str, str] = {}
        #: Cached image ids the server refused (items that sent one upload again).
        self._stale: set[str] = set()
        #: Failed generations of items resubmitted by ``retry_failed`` in this run.
        self._retired: set[str] = set()
        self._counts = dict.fromkeys(
            ("queued", "uploading", "submitting", "running", "downloading"), 0
        )
        self._ended = dict.fromkeys(("COMPLETE", "FAILED", "ERROR"), 0)
        self._total: int | None = None
        self._started = time.monotonic()
        self._requests_at_start = 0
        self._failures: list[LeonardoError] = []
        self._work = anyio.CancelScope()
        self._own_bound: int | None = None
        self._own_slots: anyio.CapacityLimiter | None = None
        self._own_submits: RateGate | None = None
        self._window: float | None = None

    async def __aenter__(self) -> BatchSubmitter:
        """Open the batch's own journal (when given a path); a batch runs only inside."""
        if self._entered:
            raise ClientStateError("this BatchSubmitter is already open")
        if self._journal_path is not None:
            self._journal = Journal(self._journal_path)
        self._entered = True
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._entered = False
        if self._journal_path is not None and self._journal is not None:
            self._journal.close()
            self._journal = None

    @property
    def journal(self) -> Journal:
        """The batch's journal; one opened from a path exists inside ``async with`` only."""
        if self._journal is None:
            raise ClientStateError(
                "a BatchSubmitter's journal is open only inside `async with BatchSubmitter(...)`"
            )
        return self._journal

    # --- planning -----------------------------------------------------------------------

    def plan(self, items: Iterable[BatchItem]) -> BatchPlan:
        """What running ``items`` would upload and cost; sends nothing."""
        return plan(items, self.estimator)

    def check(self, items: Iterable[BatchItem]) -> None:
        """Refuse (before anything is sent) items that differ from the journal's.

        :raises ValidationError: two items have the same key (they would share one
            journal row, and both be submitted)
        :raises JournalMismatchError: an item's content changed since it was journaled
        """
        items = list(items)
        seen: set[str] = set()
        for index, item in enumerate(items):
            key = _key(item, index)
            if key in seen:
                raise ValidationError("key", key, "unique within the batch")
            seen.add(key)
        for index, item in enumerate(items):
            self.journal.begin(
                _key(item, index), _number(item, index), item.fingerprint(), force=self.force
            )

    # --- running ------------------------------------------------------------------------

    async def run(
        self,
        items: Iterable[BatchItem] | AsyncIterable[BatchItem],
        on_result: Callable[[BatchResult], None] | None = None,
    ) -> BatchSummary:
        """Run the whole batch; ``on_result`` sees each result as it happens."""
        async with self.stream(items) as results:
            async for result in results:
                if on_result is not None:
                    on_result(result)
        return self.summary()

    @asynccontextmanager
    async def stream(
        self, items: Iterable[BatchItem] | AsyncIterable[BatchItem]
    ) -> AsyncIterator[MemoryObjectReceiveStream[BatchResult]]:
        """Start the batch; yields a stream of results in the order they happen.

        Leaving the block early cancels the work in flight; the journal keeps it, and a
        later run with the same journal resumes it.
        """
        if not self._entered:
            raise ClientStateError(
                "use the batch inside `async with BatchSubmitter(...) as batch:`, which "
                "opens its journal and closes it however the batch ends"
            )
        self._total = None
        if isinstance(items, (list, tuple)):
            self._total = len(items)
            self.check(items)
        await self._prepare()
        send, receive = anyio.create_memory_object_stream[BatchResult](math.inf)
        # The caller's code runs at the yield; it is kept out of the task group so that
        # its exceptions propagate as themselves, not wrapped in an exception group.
        failures: list[LeonardoError] = []
        self._failures = failures
        tg = anyio.create_task_group()
        await tg.__aenter__()
        try:
            tg.start_soon(self._feed, items, send, failures)
            yield receive
        finally:
            tg.cancel_scope.cancel()
            receive.close()
            await tg.__aexit__(None, None, None)
        if failures:
            raise failures[0]

    def statistics(self) -> BatchStatistics:
        """A snapshot of the batch now."""
        return BatchStatistics(
            total=self._total,
            queued=self._counts["queued"],
            uploading=self._counts["uploading"],
            submitting=self._counts["submitting"],
            running=self._counts["running"],
            downloading=self._counts["downloading"],
            complete=self._ended["COMPLETE"],
            failed=self._ended["FAILED"],
            errors=self._ended["ERROR"],
            credits=dict(self._budget.spent),
            elapsed=time.monotonic() - self._started,
            running_limit=self._own_bound or self.client.statistics().running_limit,
        )

    def summary(self) -> BatchSummary:
        """Counts, credits and time so far."""
        stats = self.statistics()
        return BatchSummary(
            total=stats.done,
            complete=stats.complete,
            failed=stats.failed,
            errors=stats.errors,
            credits=stats.credits,
            elapsed=stats.elapsed,
            requests=self.client.requests_sent - self._requests_at_start,
        )

    async def _prepare(self) -> None:
        self._started = time.monotonic()
        self._requests_at_start = self.client.requests_sent
        # The batch's own bounds nest inside the key's (never replace them): two batches
        # on one client share the key's slots, and what the key learned stays learned.
        own = self.limits
        self._own_bound = self._own_slots = self._own_submits = None
        if own is not None and isinstance(own.max_running, int):
            self._own_bound = own.max_running
            self._own_slots = anyio.CapacityLimiter(own.max_running + own.queue_allowance)
        if own is not None and own.submits_per_minute is not None:
            self._own_submits = RateGate(own.submits_per_minute, burst=1)
        self._window = (
            self._own_slots.total_tokens
            if self._own_slots is not None
            else await self.client.in_flight_bound()
        )
        await self._check_owner()
        # Each run counts from the journal afresh (a second run must not count twice).
        self._ended = dict.fromkeys(self._ended, 0)
        self._budget.spent = {}
        for entry in self.journal.entries():
            if entry.cost_amount is not None and entry.cost_unit is not None:
                self._budget.add(Cost(Decimal(entry.cost_amount), entry.cost_unit))

    async def _check_owner(self) -> None:
        """Refuse a journal written for another account or server; record this one's.

        Its generations and cached uploads exist only there: resuming under another key
        would not find the jobs it paid for (and buy them again) and would send image ids
        that account cannot use. With ``force`` the cached uploads are dropped instead.
        """
        account = await self.client.account()
        here = {"user_id": account.user_id, "base_url": self.client.base_url}
        there = {name: self.journal.meta(name) for name in here}
        differs = [n for n in here if there[n] is not None and there[n] != here[n]]
        if differs and not self.journal.is_empty():
            if not self.force:
                raise JournalMismatchError(
                    f"the journal {self.journal.path} belongs to account {there['user_id']} at "
                    f"{there['base_url']}, not to this key's account {account.user_id} at "
                    f"{self.client.base_url}; its jobs are not visible here, so resuming would "
                    "buy them again. Use the key and LEONARDO_BASE_URL it was written with"
                )
            logger.warning("journal of another account resumed (forced): cached uploads dropped")
            self.journal.forget_uploads()
        for name, value in here.items():
            self.journal.set_meta(name, value)

    async def _feed(
        self,
        items: Iterable[BatchItem] | AsyncIterable[BatchItem],
        send: MemoryObjectSendStream[BatchResult],
        failures: list[LeonardoError],
    ) -> None:
        """Start a task per item, no more than the window allows; end the stream after.

        A journal that cannot be written stops the whole batch (nothing can be done
        safely without its write-ahead record): the work in flight is cancelled, its
        last journaled step kept for a resume, and the error raised from :meth:`stream`.
        """
        window = anyio.Semaphore(int(self._window or UNBOUNDED_WINDOW) + PREFETCH)
        seen: set[str] = set()
        async with send, anyio.create_task_group() as tg:
            self._work = tg.cancel_scope
            index = 0
            try:
                async for item in _aiter(items):
                    key = _key(item, index)
                    if key in seen:  # a second item on one journal row would be paid twice
                        await send.send(self._duplicate(key, index, item))
                        index += 1
                        continue
                    seen.add(key)
                    try:
                        entry = self.journal.begin(
                            key, _number(item, index), item.fingerprint(), force=self.force
                        )
                    except JournalMismatchError as exc:  # stop feeding; items in flight finish
                        failures.append(exc)
                        break
                    index += 1
                    if not self._should_work(entry):
                        await send.send(self._finish(entry, item, None))
                        continue
                    await window.acquire()
                    self._counts["queued"] += 1
                    tg.start_soon(self._item, item, entry, send, window)
            except JournalWriteError as exc:
                self._stop(exc)
            if self._total is None:
                self._total = index

    def _stop(self, exc: JournalWriteError) -> None:
        """End the batch: the journal cannot record what would happen next."""
        if not self._failures:
            logger.error("%s; stopping the batch", exc)
            self._failures.append(exc)
        self._work.cancel()

    def _should_work(self, entry: JournalEntry) -> bool:
        """Whether a journaled item needs work in this run (see the journal's table)."""
        if entry.state is ItemState.COMPLETE:
            video = self._video(entry)
            return self.out_dir is not None and (video is None or not video.is_file())
        if entry.state is ItemState.FAILED:
            return self.retry_failed
        return True  # unfinished, or an error: resuming it cannot pay twice

    async def _item(
        self,
        item: BatchItem,
        entry: JournalEntry,
        send: MemoryObjectSendStream[BatchResult],
        window: anyio.Semaphore,
    ) -> None:
        self._counts["queued"] -= 1
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
            self._stop(exc)
            return
        finally:
            window.release()
        await send.send(self._finish(entry, item, generation))

    def _failed_step(self, entry: JournalEntry, error: str) -> JournalEntry:
        """End an item in ``error`` from its latest journaled row.

        The row may have moved on since ``entry`` was read (a generation id recorded, a
        submit begun): keep all of it, so that a resume tracks that generation, or looks
        for it, rather than paying for another.
        """
        latest = self.journal.entry(entry.key) or entry
        uncertain = latest.uncertain or (
            latest.state is ItemState.SUBMITTING and latest.generation_id is None
        )
        return self.journal.update(latest, state=ItemState.ERROR, error=error, uncertain=uncertain)

    async def _process(
        self, item: BatchItem, entry: JournalEntry
    ) -> tuple[JournalEntry, Generation | None]:
        """Take one item from wherever the journal left it to an end."""
        if entry.state is ItemState.FAILED:  # only here when retry_failed asked for it
            # A fresh seed, and the failed job held aside, so that a lost answer to the
            # new submit is never matched to the old job in the listing.
            if entry.generation_id is not None:
                self._retired.add(entry.generation_id)
            entry = self.journal.update(
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
            token = await self._take_slot(key=False)
            await self.client.adopt(entry.generation_id)
        try:
            outcome = await self._track(entry)
        finally:
            self._give_slot(token)
        if isinstance(outcome, GenerationFailedError):
            entry = self.journal.update(entry, state=ItemState.FAILED, error=str(outcome))
            return entry, outcome.generation
        return await self._download(entry, outcome), outcome

    async def _reconcile(self, item: BatchItem, entry: JournalEntry) -> JournalEntry:
        """The last run may have created this item's job: look before submitting again."""
        since = entry.submit_started or datetime.now(timezone.utc)
        request = attrs.evolve(item.spec, seed=entry.seed)
        # The listing is watched until its lag has passed since the submit began (one
        # look, for a submit long past).
        found = await self.client.find_submitted(
            request, since=since, claimed=self._claimed(), failed_at=since
        )
        if found is None:
            logger.info("item %s: no job from the last run; submitting", entry.key)
            return self.journal.update(entry, state=ItemState.PENDING, uncertain=False)
        logger.info("item %s: found its job %s from the last run", entry.key, found.id)
        return self.journal.update(
            entry, state=ItemState.SUBMITTED, generation_id=found.id, uncertain=False, error=None
        )

    async def _with_frames(self, item: BatchItem, entry: JournalEntry) -> ImageToVideoRequest:
        """The item's request, its local frames uploaded first (each distinct file once)."""
        uploading = bool(item.local_frames)
        if uploading:
            self.journal.update(entry, state=ItemState.UPLOADING)
            self._counts["uploading"] += 1
        try:
            start = await self._frame(item.image, "image")
            end = None if item.end_image is None else await self._frame(item.end_image, "end_image")
        finally:
            self._counts["uploading"] -= int(uploading)
        return ImageToVideoRequest.of(item.spec, start, end)

    async def _frame(self, source: FrameSource, name: str) -> FrameRef:
        remote = remote_frame(source)
        if remote is not None:
            return remote
        path = os.fspath(source)  # type: ignore[arg-type]
        digest = self._digests.get(path)
        if digest is None:
            image = read_image(path, name=name)
            digest = hashlib.sha256(image.data).hexdigest()
            self._digests[path] = digest
        while True:
            failed = self._failed_uploads.get(digest)
            if failed is not None:
                raise UploadError(f"{name} {path}: its upload failed in this run ({failed})")
            known = self.journal.uploaded(digest)
            if known is not None:
                self._cached[digest] = known
                return FrameRef(known)
            pending = self._inflight_uploads.get(digest)
            if pending is None:
                break
            await pending.wait()
        done = self._inflight_uploads[digest] = anyio.Event()
        try:
            async with self._uploads:
                uploaded = await self.client.upload_image(path, name=name)
        except (UploadError, TransportError, APIError) as exc:
            self._failed_uploads[digest] = str(exc)
            raise
        finally:
            del self._inflight_uploads[digest]
            done.set()
        self.journal.record_upload(digest, uploaded.id)
        return uploaded.as_frame()

    def _forget_stale(self, request: ImageToVideoRequest, refusal: APIError) -> bool:
        """After a 400: drop the cached uploads it may be about; whether there were any.

        The cache outlives the images (deleted, or gone with the server's state), and a
        400 created nothing, so uploading again and resubmitting cannot pay twice.
        """
        sent = {frame.id for frame in (request.image, request.end_image) if frame is not None}
        text = (refusal.error or str(refusal)).lower()
        cached = set(self._cached.values())
        stale = {
            image_id
            for image_id in sent
            if image_id in self._stale
            or (image_id in cached and (image_id.lower() in text or "image" in text))
        }
        for digest, image_id in list(self._cached.items()):
            if image_id in stale:
                logger.info("init image %s from the journal is refused; uploading again", image_id)
                self.journal.forget_upload(image_id)
                del self._cached[digest]
        self._stale |= stale
        return bool(stale)

    async def _submit(
        self, request: ImageToVideoRequest, entry: JournalEntry, *, stale_frames: bool = False
    ) -> tuple[JournalEntry, _Held | None]:
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
        request = self.client.with_seed(attrs.evolve(request, seed=seed))
        for attempt in range(1, SUBMIT_REFUSALS + 1):
            token = await self._take_slot()
            try:
                reservation = await self._budget.reserve(request)
            except BaseException as exc:
                self._give_slot(token)
                if isinstance(exc, OverBudgetError):
                    return self.journal.update(entry, state=ItemState.ERROR, error=str(exc)), None
                raise
            entry = self.journal.update(
                entry,
                state=ItemState.SUBMITTING,
                seed=request.seed,
                submit_started=datetime.now(timezone.utc),
                attempts=entry.attempts + 1,
                error=None,
            )
            self._counts["submitting"] += 1

            def resending() -> None:  # the journal counts every send, the client's too
                nonlocal entry
                entry = self.journal.update(entry, attempts=entry.attempts + 1)

            try:
                job = await self.client.submit(
                    request,
                    claimed=self._claimed(),
                    retry_refused=False,
                    slot=token.key,
                    on_resend=resending,
                )
            except BaseException as exc:
                self._give_slot(token)
                if isinstance(exc, RateLimitError) and attempt < SUBMIT_REFUSALS:
                    continue  # the key's shared pause holds everyone; queue again
                if isinstance(exc, SubmitUncertainError):
                    return self.journal.update(
                        entry, state=ItemState.ERROR, uncertain=True, error=str(exc)
                    ), None
                if (
                    stale_frames
                    and isinstance(exc, APIError)
                    and exc.status == 400
                    and self._forget_stale(request, exc)
                ):
                    return entry, _STALE_FRAMES
                if isinstance(exc, LeonardoError):
                    return self.journal.update(entry, state=ItemState.ERROR, error=str(exc)), None
                raise
            finally:
                self._budget.release(reservation)
                self._counts["submitting"] -= 1
            return self._submitted(request, entry, job), token
        raise AssertionError("unreachable: the last refusal returns")

    async def _take_slot(self, *, key: bool = True) -> _Held:
        """A slot of the batch's own bound, then one of the key's (nested inside it)."""
        held = _Held()
        if self._own_slots is not None:
            await self._own_slots.acquire_on_behalf_of(held)
        try:
            if self._own_submits is not None and key:
                await self._own_submits.acquire()
            if key:
                held.key = await self.client.in_flight_slot()
        except BaseException:
            self._give_slot(held)
            raise
        return held

    def _give_slot(self, held: _Held) -> None:
        """Give back the batch's slot, and the key's unless its job holds it."""
        if held.key is not None:
            held.key.release()
        if self._own_slots is not None:
            self._own_slots.release_on_behalf_of(held)

    def _submitted(
        self, request: ImageToVideoRequest, entry: JournalEntry, job: GenerationJob
    ) -> JournalEntry:
        self._budget.charged(request, job.cost)
        return self.journal.update(
            entry,
            state=ItemState.SUBMITTED,
            generation_id=job.id,
            # A refused seed was dropped and the submit sent again without it.
            seed=None if self.client.seeds_refused else request.seed,
            cost_amount=None if job.cost is None else str(job.cost.amount),
            cost_unit=None if job.cost is None else job.cost.unit,
        )

    def _claimed(self) -> set[str]:
        """Generation ids a lost submit must never be matched to: all the batch holds."""
        return self.journal.generation_ids() | self._retired

    async def _track(self, entry: JournalEntry) -> Generation | GenerationFailedError:
        """Wait for the job; a failed job is returned, not raised (it is a result)."""
        assert entry.generation_id is not None
        self._counts["running"] += 1
        self._progress()
        try:
            handle = self.client.track(
                entry.generation_id, deadline=self.wait_timeout, schedule=self.schedule
            )
            return await handle
        except GenerationFailedError as exc:
            return exc
        finally:
            self._counts["running"] -= 1

    async def _download(self, entry: JournalEntry, generation: Generation) -> JournalEntry:
        if self.out_dir is None:  # the video stays on the CDN: keep its URL for the results
            return self.journal.update(
                entry, state=ItemState.COMPLETE, video=generation.video_url, error=None
            )
        target = self.out_dir / video_name(entry.index, generation.prompt or "", generation.id)
        self._counts["downloading"] += 1
        try:
            async with self._downloads:
                await self.client.download(generation, target)
        except DownloadError as exc:
            return self.journal.update(entry, state=ItemState.ERROR, error=str(exc))
        except OSError as exc:  # the disk, not the CDN: a resume downloads it again
            error = f"download to {target} failed: {exc.strerror or exc}"
            return self.journal.update(entry, state=ItemState.ERROR, error=error)
        finally:
            self._counts["downloading"] -= 1
        return self.journal.update(entry, state=ItemState.COMPLETE, video=target.name, error=None)

    # --- bookkeeping --------------------------------------------------------------------

    def _finish(
        self, entry: JournalEntry, item: BatchItem, generation: Generation | None
    ) -> BatchResult:
        status = _STATUS.get(entry.state, "ERROR")
        self._ended[status] += 1
        self._progress()
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
            video=self._video(entry),
            video_url=(
                generation.video_url
                if generation is not None
                else (entry.video if self.out_dir is None else None)
            ),
            cost=cost,
            error=entry.error,
            retryable=status == "ERROR",
            generation=generation,
        )

    def _video(self, entry: JournalEntry) -> Path | None:
        """Where the item's video is: the journal keeps its name within ``out_dir``, so a
        resume from another working directory (or of a moved folder) still finds it."""
        if entry.video is None or self.out_dir is None:  # without out_dir: the CDN URL
            return None
        return self.out_dir / Path(entry.video).name

    def _duplicate(self, key: str, index: int, item: BatchItem) -> BatchResult:
        """The result of an item whose key an earlier item of this batch already has."""
        self._ended["ERROR"] += 1
        self._progress()
        return BatchResult(
            key=key,
            index=index,
            status="ERROR",
            prompt=item.spec.prompt,
            error=f"not submitted: duplicate key {key!r} (keys must be unique in a batch)",
        )

    def _progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.statistics())


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


def _number(item: BatchItem, index: int) -> int:
    return item.number if item.number is not None else index


def _key(item: BatchItem, index: int) -> str:
    return item.key if item.key is not None else str(index)


async def _aiter(items: Iterable[BatchItem] | AsyncIterable[BatchItem]) -> AsyncIterator[BatchItem]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
