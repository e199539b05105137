"""The write-ahead journal, alone and as BatchSubmitter resumes from it.

The resume scenarios build the journal a crash would have left (an item caught in
``submitting``, ``submitted``, ``complete`` without its video ...) and check, against the
simulator, that the resume does exactly what the journal's table promises: look before
resubmitting, track what exists, download what is missing, and pay for nothing twice.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
from _helpers import FAST, KEY, NO_LIMITS, QUICK_LAG, QUICK_RETRY
from _images import png_bytes
from hypothesis import given
from hypothesis import strategies as st

from leonardo_async import (
    BatchItem,
    BatchResult,
    BatchSubmitter,
    ImageToVideoRequest,
    Journal,
    JournalDamagedError,
    JournalMismatchError,
    LeonardoClient,
    UploadedImage,
)
from leonardo_async._batch._journal import ItemState, JournalEntry
from leonardo_async.simulator import FaultConfig, JobDurations, Simulator

#: The resume tests' simulator: twentieth-of-a-second jobs.
pytestmark = pytest.mark.leonardo_simulator(durations=JobDurations.fixed(0.05))

SUBMIT = "POST /generations-image-to-video"
LISTING = "GET /generations/user/{userId}"
DEADLINE = 60.0
SEED = 424242


def client_for(sim: Simulator, **options: Any) -> LeonardoClient:
    """A client on ``sim`` with fast polls and retries and no client-side pacing."""
    return LeonardoClient(
        KEY,
        base_url=sim.base_url,
        limits=NO_LIMITS,
        poll_schedule=FAST,
        retry=QUICK_RETRY,
        listing_lag=QUICK_LAG,
        **options,
    )


async def run_all(batch: BatchSubmitter, items: list[BatchItem]) -> dict[str, BatchResult]:
    """Run a batch to its end; the results by key (checking there is one per item)."""
    results: list[BatchResult] = []
    with anyio.fail_after(DEADLINE):
        async with batch.stream(items) as stream:
            async for result in stream:
                results.append(result)
    assert sorted(r.key for r in results) == sorted(i.key or str(n) for n, i in enumerate(items))
    return {r.key: r for r in results}


async def collect(batch: BatchSubmitter, items: Any, into: list[BatchResult]) -> None:
    """Run a batch, appending its results to ``into`` as they come."""
    with anyio.fail_after(DEADLINE):
        async with batch.stream(items) as stream:
            async for result in stream:
                into.append(result)


def submits(sim: Simulator) -> int:
    """Submit requests the simulator saw."""
    return sim.statistics().requests.get(SUBMIT, 0)


def entry_for(journal: Journal, item: BatchItem, index: int = 0, **changes: Any) -> JournalEntry:
    """Journal ``item`` as a crash would have left it, with ``changes`` applied."""
    entry = journal.begin(item.key or str(index), index, item.fingerprint())
    return journal.update(entry, **changes) if changes else entry


@pytest.fixture
def journal() -> Iterator[Journal]:
    """An in-memory journal."""
    with Journal() as j:
        yield j


# --- the journal on its own -------------------------------------------------------------


def test_a_new_item_starts_pending() -> None:
    """begin() creates a pending row and returns the same row when asked again."""
    with Journal() as journal:
        assert journal.is_empty()
        entry = journal.begin("a", 0, "fp")
        assert (entry.state, entry.generation_id, entry.attempts) == (ItemState.PENDING, None, 0)
        assert journal.begin("a", 0, "fp") == entry
        assert not journal.is_empty()


def test_updates_are_committed_before_they_return(tmp_path: Path) -> None:
    """A second connection sees each update at once, without a close (write-ahead)."""
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)
    entry = journal.begin("a", 0, "fp")
    started = datetime.now(timezone.utc)
    journal.update(entry, state=ItemState.SUBMITTING, seed=SEED, submit_started=started)
    other = sqlite3.connect(path)
    try:
        seen = other.execute("SELECT state, seed, submit_started FROM items").fetchone()
    finally:
        other.close()
    assert seen == ("submitting", SEED, started.isoformat())
    journal.close()


def test_a_killed_writer_loses_nothing_committed(tmp_path: Path) -> None:
    """A journal whose process never closed it (no checkpoint) still holds every row."""
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)
    for index in range(50):
        entry = journal.begin(str(index), index, "fp")
        journal.update(entry, state=ItemState.SUBMITTED, generation_id=f"gen-{index}")
    # No close: the database file and its write-ahead log are copied as a crash leaves them.
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("journal.sqlite", "journal.sqlite-wal"):
        shutil.copyfile(tmp_path / name, copy / name)
    with Journal(copy / "journal.sqlite") as reopened:
        assert reopened.counts() == {ItemState.SUBMITTED: 50}
        assert reopened.generation_ids() == {f"gen-{i}" for i in range(50)}
    journal.close()


def test_entries_come_in_input_order() -> None:
    """entries() follows the items' input positions, not their keys or write order."""
    with Journal() as journal:
        for key, index in (("c", 2), ("a", 0), ("b", 1)):
            journal.begin(key, index, "fp")
        assert [e.key for e in journal.entries()] == ["a", "b", "c"]


def test_a_changed_item_is_refused_unless_forced() -> None:
    """The same key with another fingerprint raises JournalMismatchError, unless forced."""
    with Journal() as journal:
        journal.begin("a", 0, "one")
        with pytest.raises(JournalMismatchError, match="item a differs"):
            journal.begin("a", 0, "two")
        assert journal.begin("a", 0, "two", force=True).fingerprint == "one"


def test_counts_ids_uploads_and_meta() -> None:
    """The journal's batch-level queries: counts, held ids, known uploads and facts."""
    with Journal() as journal:
        first = journal.begin("a", 0, "fp")
        journal.begin("b", 1, "fp")
        journal.update(first, state=ItemState.COMPLETE, generation_id="g1")
        assert journal.counts() == {ItemState.COMPLETE: 1, ItemState.PENDING: 1}
        assert journal.generation_ids() == {"g1"}
        assert journal.uploaded("digest") is None
        journal.record_upload("digest", "img-1")
        assert journal.uploaded("digest") == "img-1"
        assert journal.meta("input") is None
        journal.set_meta("input", "abc")
        assert journal.meta("input") == "abc"


def test_terminal_states() -> None:
    """Only complete, failed and error are ends."""
    ends = {state for state in ItemState if state.terminal}
    assert ends == {ItemState.COMPLETE, ItemState.FAILED, ItemState.ERROR}


def test_the_journal_refuses_other_files(tmp_path: Path) -> None:
    """A file that is not a database is an error, not silently replaced."""
    path = tmp_path / "journal.sqlite"
    path.write_bytes(b"this is not a database, but someone's notes" * 100)
    with pytest.raises(JournalDamagedError, match="is damaged"):
        Journal(path)


_text = st.text(st.characters(codec="utf-8"), max_size=40)
_moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)
)


@given(
    key=_text,
    index=st.integers(0, 2**31),
    state=st.sampled_from(ItemState),
    seed=st.none() | st.integers(0, 2_147_483_637),
    generation_id=st.none() | _text,
    submit_started=st.none() | _moments,
    cost=st.none() | st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
    video=st.none() | _text,
    error=st.none() | st.text(max_size=300),
    uncertain=st.booleans(),
    attempts=st.integers(0, 1000),
)
def test_every_entry_reads_back_as_written(**fields: Any) -> None:
    """Any row written is read back equal, whatever text and numbers it holds."""
    cost = fields.pop("cost")
    entry = JournalEntry(
        fingerprint="fp", cost_amount=cost, cost_unit=None if cost is None else "CREDITS", **fields
    )
    with Journal() as journal:
        written = journal.update(journal.begin(entry.key, entry.index, "fp"), **_changes(entry))
        assert written == entry
        assert journal.entry(entry.key) == entry
        assert list(journal.entries()) == [entry]


def _changes(entry: JournalEntry) -> dict[str, Any]:
    return {a.name: getattr(entry, a.name) for a in attrs.fields(JournalEntry) if a.name != "key"}


# --- resuming against the simulator ------------------------------------------------------


async def uploaded_item(client: LeonardoClient, tmp_path: Path, prompt: str) -> BatchItem:
    """An item whose start frame is already uploaded (so a resume needs no upload)."""
    path = tmp_path / "frame.png"
    path.write_bytes(png_bytes())
    return BatchItem.create(prompt=prompt, image=await client.upload_image(path))


def request_of(item: BatchItem) -> ImageToVideoRequest:
    """The submit of an item whose start frame is on the server."""
    assert isinstance(item.image, UploadedImage)
    return ImageToVideoRequest.of(item.spec, item.image.as_frame())


async def test_states_are_written_before_each_step(sim: Simulator, tmp_path: Path) -> None:
    """Every step is journaled before it is taken: the seed and 'submitting' precede the POST."""
    seen: list[tuple[ItemState, int, int | None]] = []

    class Watched(Journal):
        def update(self, entry: JournalEntry, **changes: Any) -> JournalEntry:
            updated = super().update(entry, **changes)
            seen.append((updated.state, submits(sim), updated.seed))
            return updated

    path = tmp_path / "frame.png"
    path.write_bytes(png_bytes())
    item = BatchItem.create(prompt="one", image=path)
    with Watched() as journal:
        async with client_for(sim) as client, BatchSubmitter(client, journal=journal) as batch:
            results = await run_all(batch, [item])
    states = [state for state, _, _ in seen]
    assert states == [
        ItemState.UPLOADING,
        ItemState.SUBMITTING,
        ItemState.SUBMITTED,
        ItemState.COMPLETE,
    ]
    _, submits_before, seed = seen[1]
    assert submits_before == 0  # written before the POST left
    assert seen[2][1] == 1
    generation = sim.generation(results["0"].generation_id or "")
    assert generation is not None
    assert generation.body["seed"] == seed  # the journaled seed is the one sent


async def test_resume_adopts_a_job_the_crash_left_in_submitting(
    sim: Simulator, tmp_path: Path, journal: Journal
) -> None:
    """A 'submitting' item whose job exists is adopted from the listing, not resubmitted."""
    async with client_for(sim) as client:
        item = await uploaded_item(client, tmp_path, "adopt me")
        started = datetime.now(timezone.utc)
        job = await client.submit(attrs.evolve(request_of(item), seed=SEED))
        entry_for(journal, item, state=ItemState.SUBMITTING, seed=SEED, submit_started=started)
        async with BatchSubmitter(client, journal=journal) as batch:
            results = await run_all(batch, [item])
    assert results["0"].status == "COMPLETE"
    assert results["0"].generation_id == job.id
    assert submits(sim) == 1  # ours, before the "crash"
    assert sim.statistics().duplicate_submissions == 0
    entry = journal.entry("0")
    assert entry is not None
    assert (entry.state, entry.generation_id, entry.seed) == (ItemState.COMPLETE, job.id, SEED)


async def test_resume_submits_once_when_the_job_does_not_exist(
    sim: Simulator, tmp_path: Path, journal: Journal
) -> None:
    """A 'submitting' item whose job never arrived is submitted once, with its journaled seed
    (by a client that knows the listing shows video jobs; see the next test otherwise)."""
    async with client_for(sim, listing_shows_videos=True) as client:
        item = await uploaded_item(client, tmp_path, "never arrived")
        started = datetime.now(timezone.utc) - timedelta(minutes=5)
        entry_for(journal, item, state=ItemState.SUBMITTING, seed=SEED, submit_started=started)
        async with BatchSubmitter(client, journal=journal) as batch:
            results = await run_all(batch, [item])
    assert results["0"].status == "COMPLETE"
    assert submits(sim) == 1
    (generation,) = sim.generations
    assert generation.id == results["0"].generation_id
    assert generation.body["seed"] == SEED


async def test_resume_leaves_the_item_uncertain_while_the_listing_proves_nothing(
    sim: Simulator, tmp_path: Path, journal: Journal
) -> None:
    """The same, on an account whose listing has shown no video job: nothing is sent, the
    item stays uncertain for a later resume (its silence could be a listing without
    videos, and resending would then pay twice)."""
    async with client_for(sim) as client:
        item = await uploaded_item(client, tmp_path, "never arrived")
        started = datetime.now(timezone.utc) - timedelta(minutes=5)
        entry_for(journal, item, state=ItemState.SUBMITTING, seed=SEED, submit_started=started)
        async with BatchSubmitter(client, journal=journal) as batch:
            results = await run_all(batch, [item])
    assert results["0"].status == "ERROR"
    assert results["0"].retryable
    assert submits(sim) == 0
    entry = journal.entry("0")
    assert entry is not None
    assert entry.uncertain


async def test_resume_does_not_take_another_items_job(
    sim: Simulator, tmp_path: Path, journal: Journal
) -> None:
    """A listed job already held by another journaled item is never adopted twice."""
    async with client_for(sim) as client:
        item = await uploaded_item(client, tmp_path, "same prompt")
        twin = attrs.evolve(item, key="twin")
        started = datetime.now(timezone.utc)
        job = await client.submit(attrs.evolve(request_of(item), seed=SEED))
        entry_for(journal, twin, 1, state=ItemState.SUBMITTED, seed=SEED, generation_id=job.id)
        entry_for(journal, item, state=ItemState.SUBMITTING, seed=SEED, submit_started=started)
        async with BatchSubmitter(client, journal=journal) as batch:
            results = await run_all(batch, [item, twin])
    assert results["twin"].generation_id == job.id
    assert results["0"].generation_id not in (None, job.id)
    assert submits(sim) == 2


async def test_submitted_items_are_tracked_never_resubmitted(
    sim: Simulator, tmp_path: Path, journal: Journal
) -> None:
    """A 'submitted' item is tracked to its end and downloaded, with no new submit."""
    out = tmp_path / "videos"
    async with client_for(sim) as client:
        item = await uploaded_item(client, tmp_path, "already sent")
        job = await client.submit(request_of(item))
        entry_for(journal, item, state=ItemState.SUBMITTED, generation_id=job.id)
        async with BatchSubmitter(client, journal=journal, out_dir=out) as batch:
            results = await run_all(batch, [item])
    result = results["0"]
    assert (result.status, result.generation_id) == ("COMPLETE", job.id)
    assert result.video is not None
    assert result.video.read_bytes() == sim.video_bytes(job.id)
    assert submits(sim) == 1


async def test_complete_items_with_a_missing_video_are_only_downloaded(
    sim: Simulator, tmp_path: Path, journal: Journal
) -> None:
    """A 'complete' item whose MP4 is gone is downloaded again; nothing is submitted."""
    out = tmp_path / "videos"
    async with client_for(sim) as client:
        item = await uploaded_item(client, tmp_path, "lost my file")
        job = await client.submit(request_of(item))
        await client.wait(job.id)
        gone = str(out / "deleted.mp4")
        entry_for(journal, item, state=ItemState.COMPLETE, generation_id=job.id, video=gone)
        sim.reset_stats()
        async with BatchSubmitter(client, journal=journal, out_dir=out) as batch:
            results = await run_all(batch, [item])
    result = results["0"]
    assert result.status == "COMPLETE"
    assert result.video is not None
    assert result.video.read_bytes() == sim.video_bytes(job.id)
    stats = sim.statistics()
    assert stats.requests.get(SUBMIT, 0) == 0
    assert stats.downloads == 1


async def test_complete_items_with_their_video_send_nothing(
    sim: Simulator, tmp_path: Path, journal: Journal
) -> None:
    """A resume of a finished batch sends no request at all and reports the same results."""
    out = tmp_path / "videos"
    async with client_for(sim) as client:
        item = await uploaded_item(client, tmp_path, "all done")
        async with BatchSubmitter(client, journal=journal, out_dir=out) as batch:
            first = await run_all(batch, [item])
        sim.reset_stats()
        async with BatchSubmitter(client, journal=journal, out_dir=out) as batch:
            again = await run_all(batch, [item])
    assert again == first
    stats = sim.statistics()
    assert sum(stats.requests.values()) + sum(stats.storage_requests.values()) == 0


async def test_failed_items_are_resubmitted_only_when_asked(
    sim: Simulator, tmp_path: Path, journal: Journal
) -> None:
    """A FAILED item stays FAILED on resume; retry_failed submits it once more."""
    async with client_for(sim) as client:
        item = await uploaded_item(client, tmp_path, "unlucky")
        sim.configure(failure_rate=1.0)
        async with BatchSubmitter(client, journal=journal) as batch:
            failed = await run_all(batch, [item])
        assert failed["0"].status == "FAILED"
        sim.configure(failure_rate=0.0)
        async with BatchSubmitter(client, journal=journal) as batch:
            still = await run_all(batch, [item])
        assert still["0"].status == "FAILED"
        assert submits(sim) == 1
        async with BatchSubmitter(client, journal=journal, retry_failed=True) as batch:
            retried = await run_all(batch, [item])
    assert retried["0"].status == "COMPLETE"
    assert retried["0"].generation_id != failed["0"].generation_id
    assert submits(sim) == 2


async def test_a_retried_failure_is_not_mistaken_for_its_old_job(
    sim: Simulator, tmp_path: Path, journal: Journal
) -> None:
    """retry_failed with a lost answer finds the new job, not the old FAILED one."""
    async with client_for(sim) as client:
        item = await uploaded_item(client, tmp_path, "try again")
        sim.configure(failure_rate=1.0)
        async with BatchSubmitter(client, journal=journal) as batch:
            failed = await run_all(batch, [item])
        sim.configure(
            failure_rate=0.0, faults=FaultConfig(reset_after_submit_rate=1.0, routes={SUBMIT})
        )
        async with BatchSubmitter(client, journal=journal, retry_failed=True) as batch:
            retried = await run_all(batch, [item])
    assert failed["0"].status == "FAILED"
    assert retried["0"].status == "COMPLETE"
    assert retried["0"].generation_id not in (None, failed["0"].generation_id)
    assert submits(sim) == 2


async def test_an_undecided_resume_stays_undecided(
    sim: Simulator, tmp_path: Path, journal: Journal
) -> None:
    """If the listing cannot be read on resume, the item stays uncertain: no blind resubmit."""
    async with client_for(sim) as client:
        item = await uploaded_item(client, tmp_path, "maybe sent")
        started = datetime.now(timezone.utc)
        job = await client.submit(attrs.evolve(request_of(item), seed=SEED))
        entry_for(journal, item, state=ItemState.SUBMITTING, seed=SEED, submit_started=started)
        sim.configure(faults=FaultConfig(server_error_rate=1.0, routes={LISTING}))
        async with BatchSubmitter(client, journal=journal) as batch:
            blocked = await run_all(batch, [item])
        assert blocked["0"].status == "ERROR"
        entry = journal.entry("0")
        assert entry is not None
        assert entry.uncertain
        sim.configure(faults=FaultConfig())
        async with BatchSubmitter(client, journal=journal) as batch:
            resumed = await run_all(batch, [item])
    assert resumed["0"].generation_id == job.id
    assert submits(sim) == 1
    assert sim.statistics().duplicate_submissions == 0


async def test_a_batch_refuses_a_journal_of_other_items(
    sim: Simulator, tmp_path: Path, journal: Journal
) -> None:
    """Same keys, other content: JournalMismatchError before anything is sent, unless forced."""
    async with client_for(sim) as client:
        item = await uploaded_item(client, tmp_path, "original")
        entry_for(journal, item)
        changed = BatchItem.create(prompt="edited", image=item.image)
        sim.reset_stats()
        async with BatchSubmitter(client, journal=journal) as batch:
            with pytest.raises(JournalMismatchError):
                await run_all(batch, [changed])
        assert sum(sim.statistics().requests.values()) == 0
        async with BatchSubmitter(client, journal=journal, force=True) as batch:
            forced = await run_all(batch, [changed])
    assert forced["0"].status == "COMPLETE"


async def test_a_mismatch_in_an_async_stream_stops_feeding(
    sim: Simulator, tmp_path: Path, journal: Journal
) -> None:
    """From an async iterable, a changed item raises JournalMismatchError after the others end."""
    async with client_for(sim) as client:
        item = await uploaded_item(client, tmp_path, "original")
        journal.begin("1", 1, item.fingerprint())
        other = BatchItem.create(prompt="first", image=item.image)
        changed = BatchItem.create(prompt="edited", image=item.image)

        async def feed() -> Any:
            yield other
            yield changed

        seen: list[BatchResult] = []
        async with BatchSubmitter(client, journal=journal) as batch:
            with pytest.raises(JournalMismatchError):
                await collect(batch, feed(), seen)
    assert [r.key for r in seen] == ["0"]
    assert submits(sim) == 1


async def test_a_job_given_up_by_wait_timeout_is_tracked_on_resume(
    sim: Simulator, tmp_path: Path, journal: Journal
) -> None:
    """An item past wait_timeout keeps its generation id; the resume tracks it, no resubmit."""
    async with client_for(sim) as client:
        item = await uploaded_item(client, tmp_path, "takes a while")
        sim.configure(durations=JobDurations.fixed(1.5))
        async with BatchSubmitter(client, journal=journal, wait_timeout=0.1) as batch:
            gave_up = await run_all(batch, [item])
        result = gave_up["0"]
        assert (result.status, result.retryable) == ("ERROR", True)
        assert result.generation_id is not None
        async with BatchSubmitter(client, journal=journal) as batch:
            resumed = await run_all(batch, [item])
    assert resumed["0"].status == "COMPLETE"
    assert resumed["0"].generation_id == result.generation_id
    assert submits(sim) == 1


def test_a_journal_made_before_cost_estimated_opens_and_keeps_its_rows(tmp_path: Path) -> None:
    """An items table without the cost_estimated column (an earlier release's journal)
    gains it on open; its rows read back with costs as answered."""
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema', '1');
        CREATE TABLE items (
            key TEXT PRIMARY KEY, "index" INTEGER NOT NULL, state TEXT NOT NULL,
            fingerprint TEXT NOT NULL, seed INTEGER, generation_id TEXT,
            submit_started TEXT, cost_amount TEXT, cost_unit TEXT, video TEXT,
            error TEXT, uncertain INTEGER NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 0);
        INSERT INTO items (key, "index", state, fingerprint, generation_id, cost_amount,
            cost_unit) VALUES ('1', 0, 'submitted', 'f', 'g1', '2140', 'CREDITS');
        """
    )
    db.commit()
    db.close()
    with Journal(path) as journal:
        entry = journal.entry("1")
    assert entry is not None
    assert (entry.generation_id, entry.cost_amount, entry.cost_estimated) == ("g1", "2140", False)
