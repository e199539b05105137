"""An item's outcome is data: decided by the step that ends it, kept in its journal row,
carried by its result to its line of ``results.jsonl``, never read back from error text."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from _images import png_bytes
from _postgres import pg_url, sql
from hypothesis import given
from hypothesis import strategies as st
from test_batch import client_for

from leonardo_async import (
    BatchItem,
    BatchResult,
    BatchSubmitter,
    ItemState,
    Journal,
    JournalEntry,
    Outcome,
    PostgresJournal,
)
from leonardo_async._batch import journal_results
from leonardo_async.cli._jobs_file import result_line
from leonardo_async.simulator import JobDurations, Simulator

__all__ = ["pg_url"]  # the fixture, imported for the tests here

CATEGORIES = [
    "complete",
    "failed",
    "error_before_submit",
    "maybe_submitted",
    "error_after_submit",
    "skipped_budget",
    "bad_line",
    "running",
    "not_started",
]


def test_the_outcomes_are_the_results_files_categories_in_summary_order() -> None:
    """What ``results.jsonl`` and ``--json`` name: the same strings, the same order."""
    assert [outcome.value for outcome in Outcome] == CATEGORIES


@given(
    outcome=st.sampled_from(Outcome),
    status=st.sampled_from(["COMPLETE", "FAILED", "ERROR"]),
    error=st.one_of(st.none(), st.text(), st.just("not submitted: the budget of 5 CREDITS")),
    generation_id=st.one_of(st.none(), st.just("g1")),
    uncertain=st.booleans(),
)
def test_a_results_line_carries_the_results_outcome_whatever_its_text(
    outcome: Outcome, status: Any, error: str | None, generation_id: str | None, uncertain: bool
) -> None:
    """The category is the result's outcome, unchanged: no error text (a budget's words
    included), no status or job makes it another one."""
    result = BatchResult(
        "k",
        0,
        status,
        "p",
        generation_id=generation_id,
        error=error,
        uncertain=uncertain,
        outcome=outcome,
    )
    line = result_line(1, result)
    assert line.category is outcome


def test_a_result_made_without_an_outcome_has_the_one_its_end_says() -> None:
    """A result built by hand: its status, its job and ``uncertain`` say its outcome,
    never its error text."""
    budget_words = "not submitted: the budget of 5 CREDITS would be passed"
    assert BatchResult("k", 0, "COMPLETE", "p").outcome is Outcome.COMPLETE
    assert BatchResult("k", 0, "FAILED", "p", generation_id="g").outcome is Outcome.FAILED
    errors = {
        Outcome.ERROR_AFTER_SUBMIT: BatchResult("k", 0, "ERROR", "p", generation_id="g"),
        Outcome.MAYBE_SUBMITTED: BatchResult("k", 0, "ERROR", "p", uncertain=True),
        Outcome.ERROR_BEFORE_SUBMIT: BatchResult("k", 0, "ERROR", "p", error=budget_words),
    }
    for outcome, result in errors.items():
        assert result.outcome is outcome


def test_a_row_on_its_way_again_has_no_outcome() -> None:
    """A resume takes an ended row up again: until it ends anew, it has no outcome, and
    what it ends as is what its new end says."""
    with Journal() as journal:
        entry = journal.begin("a", 0, "fp")
        ended = journal.update(entry, state=ItemState.ERROR, outcome=Outcome.SKIPPED_BUDGET)
        assert journal.entry("a") == ended
        again = journal.update(ended, state=ItemState.UPLOADING)
        assert again.outcome is None
        stored = journal.entry("a")
        assert stored is not None
        assert stored.outcome is None
        journal.update(again, state=ItemState.ERROR, outcome=Outcome.ERROR_BEFORE_SUBMIT)
        stored = journal.entry("a")
        assert stored is not None
        assert stored.outcome is Outcome.ERROR_BEFORE_SUBMIT
        priced = journal.update(stored, cost_amount="1", cost_unit="CREDITS")
        assert priced.outcome is Outcome.ERROR_BEFORE_SUBMIT  # still ended: kept


def _item(image: Path, prompt: str) -> BatchItem:
    return BatchItem.create(prompt=prompt, image=image)


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(0.05))
async def test_a_budget_refusal_is_skipped_budget_from_its_end_to_a_report(
    sim: Simulator, tmp_path: Path
) -> None:
    """The budget decides ``skipped_budget``: the result says it, the row keeps it, and a
    report read from the journal alone says it again."""
    image = tmp_path / "start.png"
    image.write_bytes(png_bytes())
    items = [_item(image, "first"), _item(image, "second")]  # 2140 credits each
    path = tmp_path / "journal.sqlite"
    async with (
        client_for(sim) as client,
        BatchSubmitter(client, journal=path, max_credits=3000) as batch,
    ):
        results = {r.key: r async for r in _stream(batch, items)}
    assert {k: r.outcome for k, r in results.items()} == {
        "0": Outcome.COMPLETE,
        "1": Outcome.SKIPPED_BUDGET,
    }
    assert result_line(2, results["1"]).category is Outcome.SKIPPED_BUDGET
    with Journal(path) as journal:
        row = journal.entry("1")
        assert row is not None
        assert (row.state, row.outcome) == (ItemState.ERROR, Outcome.SKIPPED_BUDGET)
        reported = journal_results(journal, {"0": items[0], "1": items[1]}, None)
    assert reported["1"].outcome is Outcome.SKIPPED_BUDGET
    assert reported["0"].outcome is Outcome.COMPLETE


async def _stream(batch: BatchSubmitter, items: list[BatchItem]) -> Any:
    async with batch.stream(items) as stream:
        async for result in stream:
            yield result


#: The items table of a journal an earlier release made, and rows it ended.
_OLD_SQLITE = """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta VALUES ('schema', '1');
    CREATE TABLE items (
        key TEXT PRIMARY KEY, "index" INTEGER NOT NULL, state TEXT NOT NULL,
        fingerprint TEXT NOT NULL, seed INTEGER, generation_id TEXT,
        submit_started TEXT, cost_amount TEXT, cost_unit TEXT, video TEXT,
        error TEXT, uncertain INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        cost_estimated INTEGER NOT NULL DEFAULT 0);
    INSERT INTO items (key, "index", state, fingerprint, generation_id, uncertain, error)
    VALUES ('done', 0, 'complete', 'f', 'g0', 0, NULL),
           ('lost', 1, 'error', 'f', NULL, 1, 'no answer'),
           ('late', 2, 'error', 'f', 'g2', 0, 'download failed'),
           ('over', 3, 'error', 'f', NULL, 0, 'not submitted: the budget of 5 CREDITS');
"""


def test_a_journal_made_before_outcomes_opens_and_reads_its_ends(tmp_path: Path) -> None:
    """An items table without the outcome column gains it on open; its ended rows have
    none, and their results say what their state, job and ``uncertain`` say (a budget's
    words in the error make nothing ``skipped_budget``)."""
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(_OLD_SQLITE)
    db.commit()
    db.close()
    image = tmp_path / "start.png"
    image.write_bytes(png_bytes())
    items = {key: _item(image, key) for key in ("done", "lost", "late", "over")}
    with Journal(path) as journal:
        assert all(entry.outcome is None for entry in journal.entries())
        reported = journal_results(journal, items, None)
        done = journal.entry("done")
        assert done is not None
        journal.update(done, outcome=Outcome.COMPLETE)
    assert {key: result.outcome for key, result in reported.items()} == {
        "done": Outcome.COMPLETE,
        "lost": Outcome.MAYBE_SUBMITTED,
        "late": Outcome.ERROR_AFTER_SUBMIT,
        "over": Outcome.ERROR_BEFORE_SUBMIT,
    }
    with Journal(path) as journal:
        reread = journal.entry("done")
        assert reread is not None
        assert reread.outcome is Outcome.COMPLETE


def test_the_postgres_journal_keeps_outcomes_and_gains_the_column(pg_url: str) -> None:
    """The shared journal keeps an outcome as SQLite does, and a table an earlier
    release made gains the column when a worker opens it."""
    schema = pg_url.rsplit("schema=", 1)[1]
    sql(f'CREATE SCHEMA "{schema}"')
    sql(
        f'CREATE TABLE "{schema}".items (key TEXT PRIMARY KEY, "index" INTEGER NOT NULL, '
        "state TEXT NOT NULL, fingerprint TEXT NOT NULL, seed BIGINT, generation_id TEXT, "
        "submit_started TIMESTAMPTZ, cost_amount TEXT, cost_unit TEXT, video TEXT, "
        "error TEXT, uncertain BOOLEAN NOT NULL DEFAULT false, "
        "attempts INTEGER NOT NULL DEFAULT 0, cost_estimated BOOLEAN NOT NULL DEFAULT false, "
        "lease_owner TEXT, lease_until TIMESTAMPTZ, "
        "updated_at TIMESTAMPTZ NOT NULL DEFAULT now(), updated_by TEXT)"
    )
    sql(
        f'INSERT INTO "{schema}".items (key, "index", state, fingerprint) '
        "VALUES ('old', 0, 'error', 'f')"
    )
    with PostgresJournal(pg_url) as journal:
        old = journal.entry("old")
        assert old is not None
        assert old.outcome is None
        journal.begin("a", 1, "fp")
        taken = journal.take("a")
        assert taken is not None
        journal.update(taken, state=ItemState.ERROR, outcome=Outcome.SKIPPED_BUDGET)
        journal.release("a")
    with PostgresJournal(pg_url) as again, Journal() as lite:
        row = again.entry("a")
        assert row is not None
        assert row.outcome is Outcome.SKIPPED_BUDGET
        lite.begin("a", 1, "fp")
        same = lite.update(
            JournalEntry("a", 1, ItemState.PENDING, "fp"),
            state=ItemState.ERROR,
            outcome=Outcome.SKIPPED_BUDGET,
        )
        assert row == same
