"""The end-of-batch sweep: every generation a batch paid for is held by a row or kept as
an item's extra, and counted.

The loopback tests make the server create jobs whose answers are lost while its listing
shows new jobs later than the client's floor, so that a lost submit is sent again before
the listing shows the first job: the second paid generation must be found at the end of
the run, written down, and counted in the summary at what the server charged. The
journal and ledger tests compute, on both backends.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import anyio
import pytest
from _cli import FAST_POLL, cli
from _helpers import FAST, KEY, NO_LIMITS, QUICK_RETRY, eventually
from _images import png_bytes
from _postgres import pg_url  # noqa: F401 (a fixture)
from hypothesis import given
from hypothesis import strategies as st

from leonardo_async import (
    BatchItem,
    BatchResult,
    BatchSubmitter,
    FrameRef,
    Journal,
    LeonardoClient,
)
from leonardo_async._batch import (
    BatchJournal,
    ExtraGeneration,
    ItemState,
    Ledger,
    PostgresJournal,
)
from leonardo_async._batch._sweep import catch_up, needs_sweep
from leonardo_async.cli._findings import HELD, findings_path, save_findings
from leonardo_async.simulator import JobDurations, Simulator

SUBMIT = "POST /generations-image-to-video"
DEADLINE = 120.0
#: The server lists a new job this late; the client's floor is far below it.
LATE = 1.0
#: The first submit's answer lost (a gateway's 504 after the job was made), the rest kept.
FIRST_LOST = {"gateway_error_after_submit_rate": 1.0, "routes": [SUBMIT], "limit": 1}
#: Every submit's answer lost.
ALL_LOST = {"gateway_error_after_submit_rate": 1.0, "routes": [SUBMIT]}


def hasty_client(sim: Simulator) -> LeonardoClient:
    """A client that takes the listing's silence after 0.2 s as proof: it sends a lost
    submit again before this server lists the first job."""
    return LeonardoClient(
        KEY,
        base_url=sim.base_url,
        limits=NO_LIMITS,
        poll_schedule=FAST,
        retry=QUICK_RETRY,
        listing_lag=0.2,
        listing_shows_videos=True,
    )


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(2.0), listing_lag=LATE)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_second_paid_generation_is_found_and_counted(
    sim: Simulator, caplog: pytest.LogCaptureFixture, backend: str, request: pytest.FixtureRequest
) -> None:
    """The first answer lost, the listing later than the client's window: the item is
    sent again and made twice. Before the run ends, the first job is found and kept as
    the item's extra, and the summary counts exactly what the server charged; the same
    on a journal many workers share."""
    caplog.set_level(logging.DEBUG, logger="leonardo_async")
    sim.configure(faults=FIRST_LOST)
    journal: BatchJournal = (
        Journal() if backend == "sqlite" else PostgresJournal(request.getfixturevalue("pg_url"))
    )
    request.addfinalizer(journal.close)
    async with hasty_client(sim) as client:
        image = FrameRef((await client.upload_image(png_bytes())).id)
        async with BatchSubmitter(client, journal=journal) as batch:
            with anyio.fail_after(DEADLINE):
                async with batch.stream([BatchItem.create(prompt="twice", image=image)]) as s:
                    results = [r async for r in s]
            summary = batch.summary()
    made = [g.id for g in sim.generations]
    assert len(made) == 2  # the window was too short: the point of the test
    [result] = results
    assert result.status == "COMPLETE"
    assert result.generation_id == made[1]
    assert journal.extras() == [
        ExtraGeneration(made[0], "0", "2140", "CREDITS", cost_estimated=True)
    ]
    assert summary.extra_generations == 1
    assert summary.credits == {"CREDITS": Decimal(sim.statistics().credits_spent)}
    assert [r for r in caplog.records if r.getMessage().startswith("sweeping")]


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(0.5), listing_lag=LATE)
async def test_a_resume_adopts_one_and_keeps_the_rest(sim: Simulator, tmp_path: Path) -> None:
    """Every answer lost: the run ends with the item uncertain (the listing showed none
    of its jobs in time). Once the listing shows them, the resume adopts the first for
    the item, tracks it to the end, and keeps the others as its extras."""
    sim.configure(faults=ALL_LOST)
    path = tmp_path / "journal.sqlite"
    item = BatchItem.create(prompt="lost", image=tmp_path / "start.png")
    (tmp_path / "start.png").write_bytes(png_bytes())
    async with hasty_client(sim) as client, BatchSubmitter(client, journal=path) as batch:
        with anyio.fail_after(DEADLINE):
            [first] = [r async for r in _results(batch, item)]
    assert first.uncertain
    made = [g.id for g in sim.generations]
    assert len(made) >= 2
    sim.configure(faults={})

    async with hasty_client(sim) as client:

        async def all_listed() -> bool:
            listed = {g.id for g in await client.list_generations(limit=50)}
            return listed >= set(made)

        await eventually(all_listed)
        async with BatchSubmitter(client, journal=path) as batch:
            with anyio.fail_after(DEADLINE):
                [second] = [r async for r in _results(batch, item)]
            summary = batch.summary()
    assert second.status == "COMPLETE"
    assert second.generation_id == made[0]
    assert [g.id for g in sim.generations] == made  # nothing made again
    with Journal(path) as journal:
        assert {e.generation_id for e in journal.extras()} == set(made[1:])
    assert summary.extra_generations == len(made) - 1
    assert summary.credits == {"CREDITS": Decimal(sim.statistics().credits_spent)}


async def _results(batch: BatchSubmitter, item: BatchItem) -> AsyncIterator[BatchResult]:
    async with batch.stream([item]) as stream:
        async for result in stream:
            yield result


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(0.05))
async def test_a_batch_answered_throughout_reads_no_listing_for_it(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """No item sent twice, none uncertain: the sweep has nothing to find, and the run
    reads no listing page for it."""
    caplog.set_level(logging.DEBUG, logger="leonardo_async")
    async with hasty_client(sim) as client:
        image = FrameRef((await client.upload_image(png_bytes())).id)
        with Journal() as journal:
            async with BatchSubmitter(client, journal=journal) as batch:
                items = [BatchItem.create(prompt=f"shot {i}", image=image) for i in range(3)]
                with anyio.fail_after(DEADLINE):
                    summary = await batch.run(items)
            assert journal.extras() == []
        assert summary.complete == 3
        assert summary.extra_generations == 0
        assert not [r for r in caplog.records if r.getMessage().startswith("sweeping")]


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(2.0), listing_lag=LATE)
async def test_the_results_file_names_every_paid_generation(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command line: the line's extra generations are in ``results.jsonl`` with
    their cost, the summary says how many, and its credits are what the server charged."""
    async with hasty_client(sim) as client:  # as doctor found: the listing shows videos
        save_findings(
            findings_path(), sim.base_url, await client.user_id(), {"listing.video": HELD}
        )
    (tmp_path / "start.png").write_bytes(png_bytes())
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"prompt": "twice", "image": "start.png"}) + "\n")
    sim.configure(faults=FIRST_LOST)
    out = tmp_path / "out"
    code = await cli(
        "batch",
        jobs,
        "--out",
        out,
        "--no-download",
        "--listing-lag",
        "0.2",
        *FAST_POLL,
        "--json",
    )
    made = {g.id for g in sim.generations}
    assert len(made) == 2
    [line] = [json.loads(text) for text in (out / "results.jsonl").read_text().splitlines()]
    named = {line["generation_id"]} | {e["generation_id"] for e in line["extra_generations"]}
    assert named == made
    assert all(e["cost"] == "2140" and e["cost_estimated"] for e in line["extra_generations"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["credits_total"] == {"CREDITS": str(sim.statistics().credits_spent)}
    assert summary["extra_generations"] == 1
    page = (out / "index.html").read_text(encoding="utf-8")
    [extra] = line["extra_generations"]
    assert f"{extra['generation_id']} (2140 CREDITS, estimated)" in page
    assert code == 0
    assert line["status"] == "COMPLETE"


# --- the journal and the ledger, computed ----------------------------------------------


def journals(tmp_path: Path, url: str) -> list[BatchJournal]:
    return [Journal(tmp_path / "journal.sqlite"), PostgresJournal(url)]


def test_extras_are_kept_once_and_held(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    """An extra is written once (a second worker's write of it changes nothing), is
    among the generations the batch holds, and comes back whole after reopening."""
    extra = ExtraGeneration("g-2", "item", "2140", "CREDITS", cost_estimated=True)
    for journal in journals(tmp_path, pg_url):
        with journal:
            journal.begin("item", 0, "fp")
            assert journal.record_extra(extra)
            assert not journal.record_extra(extra)
            assert journal.generation_ids() == {"g-2"}
            assert journal.extras() == [extra]
    with Journal(tmp_path / "journal.sqlite") as reopened:
        assert reopened.extras() == [extra]


def test_the_ledger_counts_extras_in_every_run(tmp_path: Path) -> None:
    """A ledger rebuilt from the journal counts the item's generation and its extras; the
    extras are the item's charges its row does not hold."""
    with Journal(tmp_path / "journal.sqlite") as journal:
        row = journal.begin("item", 0, "fp")
        journal.update(
            row,
            state=ItemState.COMPLETE,
            generation_id="g-1",
            cost_amount="2140",
            cost_unit="CREDITS",
        )
        journal.record_extra(ExtraGeneration("g-2", "item", "2140", "CREDITS", True))
        ledger = Ledger.of(journal.entries(), journal.extras())
    assert ledger.spent() == {"CREDITS": Decimal(4280)}
    assert ledger.estimated() == {"CREDITS": Decimal(2140)}
    assert [c.generation_id for c in ledger.extras("item")] == ["g-2"]
    assert ledger.extra_count == 1
    assert ledger.this_run() == {}  # both were counted before this run began


def test_only_a_run_that_may_have_paid_twice_sweeps() -> None:
    """A row sent more than once, or left uncertain, calls for the sweep; rows answered
    the first time do not."""
    from leonardo_async._batch._journal import JournalEntry

    answered = JournalEntry("a", 0, ItemState.COMPLETE, "fp", generation_id="g", attempts=1)
    resent = JournalEntry("b", 1, ItemState.COMPLETE, "fp", generation_id="h", attempts=2)
    maybe = JournalEntry("c", 2, ItemState.ERROR, "fp", uncertain=True, attempts=1)
    assert not needs_sweep([answered])
    assert needs_sweep([answered, resent])
    assert needs_sweep([maybe])


@given(
    sent=st.lists(st.floats(min_value=-600, max_value=0), max_size=5),
    lag=st.floats(min_value=0, max_value=1000),
)
def test_the_sweep_waits_out_the_window_of_the_latest_uncertain_submit(
    sent: list[float], lag: float
) -> None:
    """The wait ends when the window of every uncertain submit has passed (the latest
    decides), never below zero."""
    from leonardo_async._batch._journal import JournalEntry

    now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    rows = [
        JournalEntry(
            str(i),
            i,
            ItemState.ERROR,
            "fp",
            uncertain=True,
            submit_started=now + timedelta(seconds=s),
        )
        for i, s in enumerate(sent)
    ]
    wait = catch_up(rows, lambda since: lag, now)
    expected = max((s + lag for s in sent), default=0.0)
    assert wait == pytest.approx(max(0.0, expected), abs=1e-5)  # times are in µs
    assert wait >= 0.0
