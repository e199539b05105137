"""One ledger for money: the CLI's summary, ``BatchSummary``, ``results.jsonl`` and the
review page all count every generation the batch made, and agree with what the
simulator charged, after a 504 or a null-cost answer, a kill between a submit and its
journal row, and Ctrl-C.

A kill between the submit and its row is made exactly, not by chance: the journal row
of a finished item is put back to what it held while the submit was in flight (the state
``kill -9`` leaves), and the resume has to find the generation in the listing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import anyio
import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_batch import client_for, frame, items_for, run_all
from test_cli_batch import (
    FAST_POLL,
    KEY,
    ON_BATCH_SIMULATOR,
    batch,
    jobs_of,
    results,
    write_jobs,
)

from leonardo_async import BatchSubmitter, Journal
from leonardo_async._batch import ItemState, Ledger
from leonardo_async._batch._journal import JournalEntry
from leonardo_async.simulator import JobDurations, Simulator

SUBMIT = "POST /generations-image-to-video"


def _row(key: str, generation: str | None, cost: str | None, **fields: object) -> JournalEntry:
    state = ItemState.SUBMITTED if generation else ItemState.PENDING
    return attrs.evolve(
        JournalEntry(key, 0, state, "f", generation_id=generation),
        cost_amount=cost,
        cost_unit=None if cost is None else "CREDITS",
        **fields,
    )


# --- the ledger itself --------------------------------------------------------------------


def test_a_generation_is_counted_once_at_its_last_known_price() -> None:
    """Rows rewritten (tracked, downloaded) count their generation once; a row written
    without its price keeps the price known; a FAILED item submitted again keeps its
    first generation counted; an estimate is counted and told apart."""
    ledger = Ledger()
    ledger.record(_row("a", "g1", "1070"))
    ledger.record(attrs.evolve(_row("a", "g1", "1070"), state=ItemState.COMPLETE))
    ledger.record(_row("b", "g2", None))
    ledger.record(_row("b", "g2", "2140", cost_estimated=True))
    ledger.record(_row("b", "g2", None))
    ledger.record(_row("a", None, None))  # retry_failed clears the row's generation
    ledger.record(_row("a", "g3", "1070"))
    assert ledger.spent() == {"CREDITS": Decimal(4280)}
    assert ledger.estimated() == {"CREDITS": Decimal(2140)}
    assert ledger.charge("g2") is not None
    assert ledger.charge(None) is None


def test_a_submit_not_seen_yet_is_maybe_paid_until_it_is_settled() -> None:
    """A submit in flight or lost is counted apart (its generation is not known), and
    stops being so once it is found or ruled out."""
    ledger = Ledger()
    ledger.record(attrs.evolve(_row("a", None, None), state=ItemState.SUBMITTING))
    ledger.record(attrs.evolve(_row("b", None, None), state=ItemState.ERROR, uncertain=True))
    assert ledger.maybe_paid == 2
    ledger.record(_row("a", "g1", "1070"))
    ledger.record(_row("b", None, None))
    assert (ledger.maybe_paid, ledger.spent()) == (0, {"CREDITS": Decimal(1070)})


def test_this_run_is_what_was_first_counted_after_the_run_began() -> None:
    """A resumed batch's run counts only the generations it made; its total counts all."""
    ledger = Ledger.of([_row("a", "g1", "1070")])
    ledger.record(attrs.evolve(_row("a", "g1", "1070"), state=ItemState.COMPLETE))
    ledger.record(_row("b", "g2", "2140"))
    assert ledger.this_run() == {"CREDITS": Decimal(2140)}
    assert ledger.spent() == {"CREDITS": Decimal(3210)}


@given(
    st.lists(
        st.tuples(
            st.sampled_from("abc"),
            st.one_of(st.none(), st.sampled_from(["g1", "g2", "g3", "g4"])),
            st.one_of(st.none(), st.integers(0, 5000)),
        ),
        max_size=30,
    )
)
def test_the_totals_are_the_sum_of_each_generation_last_priced(
    writes: list[tuple[str, str | None, int | None]],
) -> None:
    """Whatever order rows come in, the total is each generation's last known price, and
    a generation never priced is counted as unpriced, never left out."""
    ledger = Ledger()
    last: dict[str, int | None] = {}
    for key, generation, cost in writes:
        ledger.record(_row(key, generation, None if cost is None else str(cost)))
        if generation is not None and (cost is not None or generation not in last):
            last[generation] = cost
    assert ledger.spent().get("CREDITS", Decimal(0)) == sum(c or 0 for c in last.values())
    assert ledger.unpriced == sum(c is None for c in last.values())


# --- against the simulator ----------------------------------------------------------------


def _cut_before_the_answer(journal: Journal, key: str) -> None:
    """Put an item's row back to what it held while its submit was in flight."""
    entry = journal.entry(key)
    assert entry is not None
    assert entry.generation_id is not None
    journal.update(
        entry,
        state=ItemState.SUBMITTING,
        generation_id=None,
        cost_amount=None,
        cost_unit=None,
        video=None,
    )


def _total(text: str) -> int:
    found = re.search(r"batch total (\d+) CREDITS", text)
    assert found is not None, text
    return int(found.group(1))


def _page_spent(out: Path) -> int:
    found = re.search(r"spent <b>(\d+) CREDITS", (out / "index.html").read_text())
    assert found is not None
    return int(found.group(1))


@ON_BATCH_SIMULATOR
async def test_a_kill_between_submit_and_its_row_then_resume_counts_what_was_paid(
    sim: Simulator, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Killed after two submits reached the server but before their rows were written:
    the resume finds both jobs in the listing, buys nothing again, and the summary, the
    results and the page count them (estimated), as the server charged them."""
    jobs = jobs_of(folder, 4)
    out = folder / "out"
    assert await batch(jobs, out) == 0
    with Journal(out / "journal.sqlite") as journal:
        keys = [entry.key for entry in journal.entries()][:2]
        for key in keys:
            _cut_before_the_answer(journal, key)
    capsys.readouterr()
    assert await batch(jobs, out, "--resume", "--listing-lag", "0.2") == 0
    charged = sim.statistics().credits_spent
    assert sim.statistics().generations_created == 4
    assert sim.statistics().duplicate_submissions == 0
    text = capsys.readouterr().out
    assert _total(text) == charged
    assert "of it estimated" in text
    lines = results(out)
    assert sum(int(line["cost"]) for line in lines) == charged
    assert sum(line["cost_estimated"] for line in lines) == 2
    assert _page_spent(out) == charged


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(0.05))
async def test_the_batch_summary_counts_found_and_costless_jobs(
    sim: Simulator, tmp_path: Path
) -> None:
    """``BatchSummary.credits`` is what the server charged: jobs whose answer was a 504,
    and a job found on resume after a kill before its row, counted at the estimate."""
    sim.configure(faults={"gateway_error_after_submit_rate": 0.5, "routes": [SUBMIT]})
    items = items_for(frame(tmp_path), 4)
    path = tmp_path / "journal.sqlite"
    async with client_for(sim) as client, BatchSubmitter(client, journal=path) as first:
        await run_all(first, items)
    with Journal(path) as journal:
        _cut_before_the_answer(journal, "0")
    sim.configure(faults={})
    async with client_for(sim) as client, BatchSubmitter(client, journal=path) as second:
        await run_all(second, items)
        summary = second.summary()
    assert sim.statistics().generations_created == 4
    assert summary.credits == {"CREDITS": Decimal(sim.statistics().credits_spent)}
    assert summary.credits_estimated["CREDITS"] >= 2140


@ON_BATCH_SIMULATOR
async def test_ctrl_c_leaves_running_lines_with_their_cost_and_one_total(
    sim: Simulator, folder: Path
) -> None:
    """Ctrl-C while jobs run: every RUNNING line names its cost, and the summary's total,
    the results' costs and the page's "spent" are what the server charged."""
    sim.configure(durations=JobDurations.fixed(30.0))
    jobs = jobs_of(folder, 4)
    out = folder / "out"
    argv = [sys.executable, "-m", "leonardo_async", "batch", str(jobs), "--out", str(out),
            *FAST_POLL, "--concurrency", "4"]  # fmt: skip
    env = {"LEONARDO_API_KEY": KEY, "LEONARDO_BASE_URL": sim.base_url}
    log = folder / "run.log"
    with log.open("wb") as output, anyio.fail_after(20):
        process = await anyio.open_process(
            argv, stdout=output, stderr=subprocess.STDOUT, env={**_base_env(), **env}
        )
        async with process:
            while sim.statistics().generations_created < 4:  # noqa: ASYNC110
                await anyio.sleep(0.02)
            # Its answer is written down at once; a few looks at the listing later, the
            # fourth job is tracked too (the stop is meant to find four jobs running).
            looked = _looks(sim)
            while _looks(sim) < looked + 3:  # noqa: ASYNC110
                await anyio.sleep(0.02)
            process.send_signal(signal.SIGINT)
            code = await process.wait()
    text = log.read_text()
    assert code == 130, text
    lines = results(out)
    assert [line["status"] for line in lines] == ["RUNNING"] * 4
    assert all(line["cost"] == "2140" for line in lines)
    charged = sim.statistics().credits_spent
    assert _total(text) == charged
    assert _page_spent(out) == charged


def _looks(sim: Simulator) -> int:
    return sim.statistics().requests.get("GET /generations/user/{userId}", 0)


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LEONARDO_")}


@ON_BATCH_SIMULATOR
async def test_ctrl_c_during_a_submit_is_maybe_submitted_not_not_started(
    sim: Simulator, folder: Path
) -> None:
    """Ctrl-C while a submit waits for its answer: the line is 'maybe_submitted' (the
    server may make and charge it yet), the summary says so, and it is never 'not
    started'."""
    sim.configure(faults={"slow_rate": 1.0, "slow_seconds": 30.0, "routes": [SUBMIT]})
    jobs = jobs_of(folder, 1)
    out = folder / "out"
    argv = [sys.executable, "-m", "leonardo_async", "batch", str(jobs), "--out", str(out),
            *FAST_POLL]  # fmt: skip
    env = {"LEONARDO_API_KEY": KEY, "LEONARDO_BASE_URL": sim.base_url}
    log = folder / "run.log"
    with log.open("wb") as output, anyio.fail_after(20):
        process = await anyio.open_process(
            argv, stdout=output, stderr=subprocess.STDOUT, env={**_base_env(), **env}
        )
        async with process:
            while not sim.statistics().requests.get(SUBMIT):  # noqa: ASYNC110
                await anyio.sleep(0.02)
            process.send_signal(signal.SIGINT)
            code = await process.wait()
    text = log.read_text()
    assert code == 130, text
    [line] = results(out)
    assert (line["status"], line["category"]) == ("PENDING", "maybe_submitted")
    assert "1 maybe submitted" in text
    assert "1 submit(s) maybe paid" in text


@ON_BATCH_SIMULATOR
async def test_results_are_appended_as_items_end_and_a_kill_leaves_whole_lines(
    sim: Simulator, folder: Path
) -> None:
    """results.jsonl grows by one whole line per item as it ends: SIGKILLed with some
    lines ended, every line of the file is a result of a made generation (its own
    prompt's); the resume rewrites it, one line per input line, in order."""
    sim.configure(durations=JobDurations.fixed(0.3))
    jobs = write_jobs(
        folder / "jobs.jsonl",
        *[{"prompt": f"shot {i}", "image": "start.png"} for i in range(6)],
        "not json",
    )
    out = folder / "out"
    argv = [sys.executable, "-m", "leonardo_async", "batch", str(jobs), "--out", str(out),
            *FAST_POLL, "--concurrency", "1"]  # fmt: skip
    env = {"LEONARDO_API_KEY": KEY, "LEONARDO_BASE_URL": sim.base_url}
    file = out / "results.jsonl"
    with (folder / "run.log").open("wb") as output, anyio.fail_after(30):
        process = await anyio.open_process(
            argv, stdout=output, stderr=subprocess.STDOUT, env={**_base_env(), **env}
        )
        async with process:
            # The bad line is written at once; two items' lines then follow as they end.
            while not file.is_file() or file.read_text().count("\n") < 3:  # noqa: ASYNC110
                await anyio.sleep(0.02)
            process.send_signal(signal.SIGKILL)
            await process.wait()
    text = file.read_text(encoding="utf-8")
    assert text.endswith("\n")
    written = [json.loads(line) for line in text.splitlines()]
    assert written[0]["line"] == 7
    assert written[0]["category"] == "bad_line"
    prompts = {g.id: g.body["prompt"] for g in sim.generations}
    for line in written[1:]:
        assert line["status"] == "COMPLETE"
        assert prompts[line["generation_id"]] == line["prompt"]
    assert await batch(jobs, out, "--resume") == 2  # the bad line
    after = results(out)
    assert [line["line"] for line in after] == list(range(1, 8))
    assert [line["status"] for line in after] == ["COMPLETE"] * 6 + ["ERROR"]
    assert sim.statistics().duplicate_submissions == 0
