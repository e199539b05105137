"""The PostgreSQL journal against a real server: rows, leases, takeovers, refusals.

Each test has a schema of its own (``pg_url``). The journal's rows must read back as the
SQLite journal's do, since the batch above them is the same; what sharing adds is tested
here with several journal objects (each a worker of its own) on one schema, and with a
worker process killed while it holds an item.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import anyio
import pytest
from _cli import START_FRAME, cli, cli_config
from _postgres import pg_url, sql

from leonardo_async import (
    BatchJournal,
    Journal,
    JournalMismatchError,
    JournalUnreachableError,
    JournalWriteError,
    PostgresJournal,
    ValidationError,
)
from leonardo_async._batch._journal import ItemState
from leonardo_async.simulator import Simulator, SimulatorConfig

__all__ = ["pg_url"]  # the fixture, imported for the tests here

KEY = "sk-pg-journal-CANARY-9f2c"


@pytest.fixture
def leonardo_simulator_config() -> SimulatorConfig:
    return cli_config(KEY)


@pytest.fixture
def workers(pg_url: str) -> Iterator[list[PostgresJournal]]:
    """Three workers' journals on one schema (lease 30 s: none runs out by itself)."""
    opened = [PostgresJournal(pg_url) for _ in range(3)]
    yield opened
    for journal in opened:
        journal.close()


def _schema(url: str) -> str:
    return url.rsplit("schema=", 1)[1]


def _steps(journal: BatchJournal) -> None:
    """The same writes, whichever backend: a row through every kind of column."""
    started = datetime(2026, 12, 4, 6, 30, 15, 123456, tzinfo=timezone.utc)
    journal.set_meta("input", "abc")
    journal.begin("b", 1, "fp-b")
    first = journal.begin("a", 0, "fp-a")
    mine = journal.take("a")
    assert mine == first
    entry = journal.update(
        mine, state=ItemState.SUBMITTING, seed=4_294_967_295, submit_started=started, attempts=2
    )
    journal.update(
        entry,
        state=ItemState.COMPLETE,
        generation_id="gen-1",
        cost_amount="1070",
        cost_unit="CREDITS",
        video="00001-a.mp4",
        uncertain=True,
        cost_estimated=True,
    )
    journal.release("a")
    journal.record_upload("digest-1", "image-1")
    journal.record_upload("digest-2", "image-2")
    journal.forget_upload("image-2")


def test_rows_read_back_as_the_sqlite_journal_gives_them(pg_url: str) -> None:
    """Every column, every kind of fact, in the same order and shape as SQLite's."""
    with Journal(":memory:") as lite, PostgresJournal(pg_url) as shared:
        for journal in (lite, shared):
            _steps(journal)
        assert list(shared.entries()) == list(lite.entries())
        assert shared.entry("a") == lite.entry("a")
        assert shared.counts() == lite.counts() == {ItemState.COMPLETE: 1, ItemState.PENDING: 1}
        assert shared.generation_ids() == lite.generation_ids() == {"gen-1"}
        assert shared.uploaded("digest-1") == lite.uploaded("digest-1") == "image-1"
        assert shared.uploaded("digest-2") is lite.uploaded("digest-2") is None
        assert shared.meta("input") == lite.meta("input") == "abc"
        assert not shared.is_empty()
        written = lite.entry("a")
    with PostgresJournal(pg_url) as again:  # committed: another connection reads it
        assert again.entry("a") == written


def test_a_new_row_never_overwrites_another_workers(workers: list[PostgresJournal]) -> None:
    """Two workers beginning one item: one row, the first's, whatever the second asks."""
    one, two, _ = workers
    first = one.begin("a", 0, "fp")
    taken = one.take("a")
    assert taken is not None
    one.update(taken, state=ItemState.SUBMITTING, seed=7)
    again = two.begin("a", 0, "fp")
    assert again.state is ItemState.SUBMITTING
    assert again.seed == 7
    assert first.state is ItemState.PENDING
    with pytest.raises(JournalMismatchError, match="item a differs"):
        two.begin("a", 0, "other content")


def test_an_item_held_by_one_worker_is_not_taken_by_another(
    workers: list[PostgresJournal],
) -> None:
    """Taken, it is one worker's until given back (or closed); then another takes it."""
    one, two, three = workers
    one.begin("a", 0, "fp")
    assert one.take("a") is not None
    assert two.take("a") is None
    assert three.take("a") is None
    one.release("a")
    assert two.take("a") is not None
    assert one.take("a") is None
    two.close()  # a worker that ends cleanly gives its items back at once
    assert three.take("a") is not None


def test_workers_racing_for_one_item_give_it_to_one(workers: list[PostgresJournal]) -> None:
    """Three workers taking the same item at the same instant: exactly one gets it."""
    workers[0].begin("a", 0, "fp")
    start = threading.Barrier(len(workers))
    got: list[bool] = []

    def take(journal: PostgresJournal) -> None:
        start.wait()
        got.append(journal.take("a") is not None)

    threads = [threading.Thread(target=take, args=(journal,)) for journal in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(got) == [False, False, True]


def test_a_worker_whose_lease_ran_out_can_record_nothing_more(
    workers: list[PostgresJournal], pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Its lease run out (cut off from the database, say), a worker's next write of the
    item is refused: it can never write the ``submitting`` row a paid submit needs."""
    slow, other, _ = workers
    slow.begin("a", 0, "fp")
    held = slow.take("a")
    assert held is not None
    # The database's clock moves past the lease, as it would while the worker is cut off.
    sql(f"UPDATE \"{_schema(pg_url)}\".items SET lease_until = now() - interval '1 second'")
    with caplog.at_level(logging.INFO, logger="leonardo_async"):
        taken = other.take("a")
    assert taken is not None
    assert "taken over from worker" in caplog.text
    with pytest.raises(JournalWriteError, match="no longer this worker's"):
        slow.update(held, state=ItemState.SUBMITTING)
    other.update(taken, state=ItemState.SUBMITTING)
    assert other.entry("a") is not None
    assert other.entry("a").state is ItemState.SUBMITTING  # type: ignore[union-attr]


def test_an_item_another_worker_ended_is_not_worked_again(pg_url: str) -> None:
    """Ended while a worker runs, an item is not that worker's to retry; a worker that
    starts later treats an error as a resume does (its to retry), a completion never."""
    with PostgresJournal(pg_url) as early, PostgresJournal(pg_url) as other:
        for key in ("err", "done"):
            row = other.begin(key, 0, "fp")
            assert other.take(key) is not None
            state = ItemState.ERROR if key == "err" else ItemState.COMPLETE
            other.update(row, state=state, error="refused" if key == "err" else None)
            other.release(key)
        assert early.take("err") is None
        assert early.take("done") is None
        with PostgresJournal(pg_url) as later:
            retried = later.take("err")
            assert retried is not None
            assert retried.state is ItemState.ERROR
            assert later.take("done") is None


def test_bind_keeps_the_first_value(workers: list[PostgresJournal]) -> None:
    """Two workers naming the batch's input: the first name stands for both."""
    one, two, _ = workers
    assert one.bind("input", "first") == "first"
    assert two.bind("input", "second") == "first"
    assert two.meta("input") == "first"


#: A worker in a process of its own: takes item ``a``, writes it ``submitting`` (as just
#: before a paid submit), says so, then waits to be killed.
_HOLDER = """
import sys, time
from leonardo_async import PostgresJournal
from leonardo_async._batch._journal import ItemState
journal = PostgresJournal(sys.argv[1], lease=1.0)
row = journal.begin("a", 0, "fp")
row = journal.take("a")
journal.update(row, state=ItemState.SUBMITTING, seed=99)
print("held", flush=True)
time.sleep(600)
"""


async def test_a_killed_workers_item_is_taken_over_after_its_lease(pg_url: str) -> None:
    """``kill -9`` while it holds an item mid-submit: the item stays its until the lease
    runs out (renewed while it lived), then another worker takes it, as it was left."""
    with PostgresJournal(pg_url) as survivor:
        with anyio.fail_after(60):
            process = await anyio.open_process([sys.executable, "-c", _HOLDER, pg_url])
            async with process:
                assert process.stdout is not None
                said = await process.stdout.receive()
                assert b"held" in said
                # Renewed while it lives: past a whole lease, still the holder's.
                await anyio.sleep(1.5)
                assert survivor.take("a") is None
                process.send_signal(signal.SIGKILL)
                await process.wait()
            # Another process's lease, on the database's clock: nothing to wait on but it.
            while (taken := survivor.take("a")) is None:  # noqa: ASYNC110
                await anyio.sleep(0.1)
    assert taken.state is ItemState.SUBMITTING  # the takeover reconciles before sending
    assert taken.seed == 99


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port held bound for the test's length, never listening: connections are refused."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


def test_an_unreachable_database_is_one_clear_error(refused_port: int) -> None:
    """Nothing there: ``JournalUnreachableError``, naming the server, not the password."""
    url = f"postgresql://worker:sekret-pw@127.0.0.1:{refused_port}/test?schema=batch_1"
    with pytest.raises(JournalUnreachableError) as caught:
        PostgresJournal(url, timeout=5)
    message = str(caught.value)
    assert f"127.0.0.1:{refused_port}/test (schema batch_1) cannot be reached" in message
    assert "sekret-pw" not in message
    assert "\n" not in message


@pytest.mark.parametrize("schema", ["Upper", "drop table x", "a-b", "x" * 64])
def test_a_schema_name_is_checked_before_connecting(schema: str) -> None:
    with pytest.raises(ValidationError, match="schema"):
        PostgresJournal(f"postgresql://127.0.0.1:1/test?schema={schema}")


# --- through the command line ---------------------------------------------------------


def _jobs(folder: Path, name: str, prompts: list[str]) -> Path:
    path = folder / name
    lines = [json.dumps({"prompt": p, "image": str(START_FRAME), "duration": 4}) for p in prompts]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _batch(jobs: Path, out: Path, url: str, *extra: str) -> list[str | Path]:
    return ["batch", jobs, "--out", out, "--journal", url, "--poll-initial", "0.05",
            "--poll-max", "0.2", *extra]  # fmt: skip


async def test_a_worker_of_another_jobs_file_is_refused_having_sent_nothing(
    sim: Simulator, pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A batch's journal knows its jobs file: a worker started with another exits 2."""
    first = _jobs(tmp_path, "jobs.jsonl", ["pg one", "pg two"])
    assert await cli(*_batch(first, tmp_path / "a", pg_url)) == 0
    made = sim.statistics().generations_created
    capsys.readouterr()
    other = _jobs(tmp_path, "other.jsonl", ["pg three"])
    assert await cli(*_batch(other, tmp_path / "b", pg_url)) == 2
    err = capsys.readouterr().err
    assert "belongs to another jobs file" in err
    assert str(first.resolve()) in err
    assert sim.statistics().generations_created == made == 2


async def test_an_unreachable_journal_exits_3_having_sent_nothing(
    sim: Simulator, refused_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No journal row, no submit: the worker stops before any request, one line, exit 3."""
    jobs = _jobs(tmp_path, "jobs.jsonl", ["pg one"])
    url = f"postgresql://postgres@127.0.0.1:{refused_port}/test"
    assert await cli(*_batch(jobs, tmp_path / "a", url)) == 3
    err = capsys.readouterr().err.strip()
    assert "cannot be reached" in err
    assert len(err.splitlines()) == 1
    assert sum(sim.statistics().requests.values()) == 0


async def test_the_report_is_the_whole_batch_from_any_folder(
    sim: Simulator, pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two workers' folders, one report: every line, where its video is, nothing sent."""
    jobs = _jobs(tmp_path, "jobs.jsonl", [f"pg report {n}" for n in range(4)])
    async with anyio.create_task_group() as tg:
        for name in ("w1", "w2"):
            tg.start_soon(cli, *_batch(jobs, tmp_path / name, pg_url, "--concurrency", "1"))
    sent = dict(sim.statistics().requests)
    capsys.readouterr()
    assert await cli(*_batch(jobs, tmp_path / "report", pg_url, "--report")) == 0
    assert "4 complete" in capsys.readouterr().out
    assert dict(sim.statistics().requests) == sent  # the report sends nothing
    text = (tmp_path / "report" / "results.jsonl").read_text(encoding="utf-8")
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["status"] for line in lines] == ["COMPLETE"] * 4
    assert {line["generation_id"] for line in lines} == {g.id for g in sim.generations}
    for line in lines:  # each where the worker that downloaded it put it
        video = anyio.Path(line["video"])
        assert video.parent.name in ("w1", "w2")
        assert await video.read_bytes() == sim.video_bytes(line["generation_id"])
    assert (tmp_path / "report" / "index.html").is_file()
