"""BatchSubmitter: many image-to-video jobs, as fast as the key allows, never paid twice.

Each item goes upload -> submit -> track -> download, on its own task, and every step is
written to the :class:`~leonardo_async._batch._journal.Journal` before it is taken. What bounds
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

import logging
import math
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Final

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._client import LeonardoClient
from .._errors import (
    ClientStateError,
    FrameCropWarning,
    JournalMismatchError,
    JournalWriteError,
    LeonardoError,
    ValidationError,
    warn,
)
from .._files import frame_misfit, image_file_size
from .._limits import Limits
from .._schedule import PollSchedule
from .._validate import MAX_SECONDS, number, positive_amount
from ..models import Cost
from ._budget import Budget
from ._frames import FrameUploads
from ._items import BatchItem, BatchPlan, BatchResult, BatchStatistics, BatchSummary, plan
from ._journal import BatchJournal, Journal
from ._ledger import Ledger
from ._pg_journal import PostgresJournal, is_postgres_url
from ._pipeline import ItemPipeline
from ._pricing import CostEstimator
from ._slots import BatchSlots
from ._sweep import Sweep
from ._tally import BatchTally

__all__ = ["BatchSubmitter"]

logger = logging.getLogger("leonardo_async")

#: Items being worked on beyond the running bound: uploads for the next ones overlap
#: the current ones' renders.
PREFETCH: Final = 16
#: The same for a worker of a shared journal, which leaves the rest to other workers.
SHARED_PREFETCH: Final = 2
#: Without a running bound, at most this many items are in flight at once.
UNBOUNDED_ROOM: Final = 1000
ProgressHook = Callable[[BatchStatistics], None]


class BatchSubmitter:
    """Fans out image-to-video requests under the key's limits; resumable through a journal.

    :param client: an entered :class:`LeonardoClient`
    :param journal: where the batch's state is kept: a :class:`BatchJournal` (such as
        :class:`Journal`), a path to a SQLite one, a ``postgresql://`` URL of a
        :class:`PostgresJournal` (which many processes drain together), or ``None`` for
        an in-memory journal (no resume across processes)
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
        journal: BatchJournal | str | Path | None = None,
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
        self._journal_path = None if isinstance(journal, BatchJournal) else journal or ":memory:"
        self._journal: BatchJournal | None = journal if isinstance(journal, BatchJournal) else None
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
        #: Every generation the batch made and its cost: what its summaries count.
        self.ledger = Ledger()
        if self._journal is not None:
            self.ledger = Ledger.of(self._journal.entries(), self._journal.extras())
        self._budget = Budget(budget, self.estimator, self.ledger)
        self._upload_concurrency = upload_concurrency
        self._downloads = anyio.CapacityLimiter(download_concurrency)
        self._frames: FrameUploads | None = None
        self._pipeline: ItemPipeline | None = None
        #: Failed generations of items resubmitted by ``retry_failed`` in this run.
        self._retired: set[str] = set()
        self._tally = BatchTally(client, self.ledger)
        self._failures: list[LeonardoError] = []
        self._work = anyio.CancelScope()
        self._in_flight_bound: float | None = None
        self._began: datetime | None = None
        #: Frames already warned of as cropped, with the video size.
        self._crops: set[tuple[str, tuple[int, int]]] = set()
        #: The size of each local frame, read from its header once per batch.
        self._sizes: dict[str, tuple[int, int] | None] = {}

    async def __aenter__(self) -> BatchSubmitter:
        """Open the batch's own journal (when given a path); a batch runs only inside."""
        if self._entered:
            raise ClientStateError("this BatchSubmitter is already open")
        if isinstance(self._journal_path, str) and is_postgres_url(self._journal_path):
            self._journal = PostgresJournal(self._journal_path)
        elif self._journal_path is not None:
            self._journal = Journal(self._journal_path)
        if self._journal_path is not None:
            self.ledger.load(self.journal.entries(), self.journal.extras())
            self.ledger.start_run()
        self._frames = FrameUploads(self.client, self.journal, self._upload_concurrency)
        self._entered = True
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._entered = False
        if self._journal_path is not None and self._journal is not None:
            self._journal.close()
            self._journal = None

    @property
    def journal(self) -> BatchJournal:
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
        keyed = [(_key(item, index), index, item) for index, item in enumerate(items)]
        seen: set[str] = set()
        for key, _, _ in keyed:
            if key in seen:
                raise ValidationError("key", key, "unique within the batch")
            seen.add(key)
        for key, index, item in keyed:
            self.journal.begin(key, _number(item, index), item.fingerprint(), force=self.force)

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
        self._tally.total = None
        if isinstance(items, (list, tuple)):
            self._tally.total = len(items)
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
        return self._tally.statistics()

    def summary(self) -> BatchSummary:
        """Counts, credits and time so far."""
        return self._tally.summary()

    async def _prepare(self) -> None:
        self._tally.start()
        # The batch's own bounds nest inside the key's (never replace them): two batches
        # on one client share the key's slots, and what the key learned stays learned.
        slots = BatchSlots(self.client, self.limits)
        self._tally.running_limit = slots.running_limit
        self._in_flight_bound = await slots.in_flight_bound()
        # The journal is this account's at this server from now on (or refused as another's).
        account = await self.client.account()
        self.journal.claim(account.user_id, self.client.base_url, force=self.force)
        # When the batch began, for the end's sweep: bound once, by its first run (a
        # journal of an earlier release: by its earliest submit).
        began = self.journal.meta("began")
        if began is None:  # the first run (or an earlier release's journal): read its rows
            now = datetime.now(timezone.utc)
            earliest = min(
                (e.submit_started for e in self.journal.entries() if e.submit_started),
                default=now,
            )
            began = self.journal.bind("began", min(earliest, now).isoformat())
        self._began = datetime.fromisoformat(began)
        self._tally.restart_results()
        assert self._frames is not None  # made on entry, as the journal
        self._pipeline = ItemPipeline(
            client=self.client,
            journal=self.journal,
            frames=self._frames,
            budget=self._budget,
            ledger=self.ledger,
            downloads=self._downloads,
            slots=slots,
            tally=self._tally,
            retired=self._retired,
            on_change=self._progress,
            stop=self._stop,
            out_dir=self.out_dir,
            schedule=self.schedule,
            wait_timeout=self.wait_timeout,
            retry_failed=self.retry_failed,
        )
        self.ledger.load(self.journal.entries(), self.journal.extras())

    async def _feed(
        self,
        items: Iterable[BatchItem] | AsyncIterable[BatchItem],
        send: MemoryObjectSendStream[BatchResult],
        failures: list[LeonardoError],
    ) -> None:
        """Start a task per item, as many as the in-flight bound (and a prefetch) has
        room for; end the stream after.

        A journal that cannot be written stops the whole batch (nothing can be done
        safely without its write-ahead record): the work in flight is cancelled, its
        last journaled step kept for a resume, and the error raised from :meth:`stream`.
        """
        pipeline = self._pipeline
        assert pipeline is not None  # made by _prepare, before the feed starts
        # A worker of a shared journal takes items only as it can start them: one it
        # holds waiting for a slot is one that an idle worker could have run.
        prefetch = SHARED_PREFETCH if self.journal.shared else PREFETCH
        room = anyio.Semaphore(int(self._in_flight_bound or UNBOUNDED_ROOM) + prefetch)
        seen: dict[str, BatchItem] = {}
        #: Items another worker holds (a shared journal's), looked at again until each
        #: has ended or is this worker's: a worker that dies leaves its items to the rest.
        held: dict[str, BatchItem] = {}
        async with send:
            await self._items(items, send, failures, seen, held, room)
            if not failures:
                await self._sweep(seen, send, room)
            for entry, item in pipeline.undecided.values():
                await send.send(pipeline.finish(entry, item, None))
            pipeline.undecided.clear()

    async def _items(
        self,
        items: Iterable[BatchItem] | AsyncIterable[BatchItem],
        send: MemoryObjectSendStream[BatchResult],
        failures: list[LeonardoError],
        seen: dict[str, BatchItem],
        held: dict[str, BatchItem],
        room: anyio.Semaphore,
    ) -> None:
        """Every item to its end, each on its task, as the room lets them start."""
        pipeline = self._pipeline
        assert pipeline is not None  # made by _prepare, before the feed starts
        async with anyio.create_task_group() as tg:
            self._work = tg.cancel_scope
            index = 0
            try:
                async for item in _aiter(items):
                    key = _key(item, index)
                    if key in seen:  # a second item on one journal row would be paid twice
                        await send.send(pipeline.duplicate(key, index, item))
                        index += 1
                        continue
                    seen[key] = item
                    try:
                        self.journal.begin(
                            key, _number(item, index), item.fingerprint(), force=self.force
                        )
                    except JournalMismatchError as exc:  # stop feeding; items in flight finish
                        failures.append(exc)
                        break
                    self._warn_crops(item)
                    index += 1
                    if not await self._start(tg, key, item, send, room):
                        held[key] = item
                if self._tally.total is None:
                    self._tally.total = index
                while held and not failures:
                    await anyio.sleep(self.journal.retry_after)
                    for key, item in list(held.items()):
                        if await self._start(tg, key, item, send, room):
                            del held[key]
            except JournalWriteError as exc:
                self._stop(exc)
            if self._tally.total is None:
                self._tally.total = index

    async def _sweep(
        self,
        items: dict[str, BatchItem],
        send: MemoryObjectSendStream[BatchResult],
        room: anyio.Semaphore,
    ) -> None:
        """Before the run ends: the batch's paid generations no row holds, found in the
        listing and kept (:mod:`._sweep`); an item that adopts one is tracked now."""
        pipeline = self._pipeline
        assert pipeline is not None  # made by _prepare, as the start
        assert self._began is not None
        try:
            adopted = await Sweep(pipeline, self._began).run(items)
            async with anyio.create_task_group() as tg:
                self._work = tg.cancel_scope
                for entry, item in adopted:
                    pipeline.undecided.pop(entry.key, None)
                    await room.acquire()
                    self._tally.steps["queued"] += 1
                    tg.start_soon(pipeline.run, item, entry, send, room)
        except JournalWriteError as exc:
            self._stop(exc)
        self._progress()

    async def _start(
        self,
        tg: anyio.abc.TaskGroup,
        key: str,
        item: BatchItem,
        send: MemoryObjectSendStream[BatchResult],
        room: anyio.Semaphore,
    ) -> bool:
        """Start the item's task if it is this worker's to work on.

        :return: ``False`` while another worker holds it (a shared journal's); ``True``
            once it is started, finished from its row, or ended by another worker
        """
        pipeline = self._pipeline
        assert pipeline is not None  # made by _prepare, before the feed starts
        await room.acquire()
        try:
            entry = self.journal.take(key)
            if entry is None:
                room.release()
                latest = self.journal.entry(key)
                return latest is not None and latest.state.terminal
            entry = pipeline.priced(entry, item)
        except BaseException:
            room.release()
            raise
        if not pipeline.should_work(entry):
            room.release()
            self.journal.release(key)
            await send.send(pipeline.finish(entry, item, None))
            return True
        self._tally.steps["queued"] += 1
        tg.start_soon(pipeline.run, item, entry, send, room)
        return True

    def _warn_crops(self, item: BatchItem) -> None:
        """Before the item is paid for: a :class:`FrameCropWarning` for a local frame its
        video would crop most of (the other orientation keeps more), once per frame and
        video size in the batch."""
        for name, source in (("image", item.image), ("end_image", item.end_image)):
            if not isinstance(source, os.PathLike):
                continue
            path = os.fspath(source)
            if path not in self._sizes:  # a frame many items share is read once
                self._sizes[path] = image_file_size(path)
            label = f"{name} {path}"
            misfit = frame_misfit(self._sizes[path], item.spec, label)
            if misfit is None or (label, misfit.video) in self._crops:
                continue
            self._crops.add((label, misfit.video))
            warn(FrameCropWarning(misfit.text(f"orientation=Orientation.{misfit.fits.name}")))

    def _stop(self, exc: JournalWriteError) -> None:
        """End the batch: the journal cannot record what would happen next."""
        if not self._failures:
            logger.error("%s; stopping the batch", exc)
            self._failures.append(exc)
        self._work.cancel()

    # --- bookkeeping --------------------------------------------------------------------

    def _progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.statistics())


def _number(item: BatchItem, index: int) -> int:
    return item.number if item.number is not None else index


def _key(item: BatchItem, index: int) -> str:
    """The item's key: its own, or its position (the one place an item without a key is
    named; a batch file's reader names each line's item itself)."""
    return item.key if item.key is not None else str(index)


async def _aiter(items: Iterable[BatchItem] | AsyncIterable[BatchItem]) -> AsyncIterator[BatchItem]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
