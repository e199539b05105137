"""One batch, one folder, one run at a time: ``--out`` is never worked by two runs, never
resumed without its journal, and never reused over paid work by accident.

The CLI runs in-process (``main`` in a worker thread) or, where two processes must race,
as subprocesses, against a simulator in this process over loopback HTTP.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from test_cli_batch import ON_BATCH_SIMULATOR, batch, jobs_of, requests_seen, results

from leonardo_async import Journal
from leonardo_async.simulator import JobDurations, Simulator

pytestmark = ON_BATCH_SIMULATOR


async def refused(
    sim: Simulator,
    capsys: pytest.CaptureFixture[str],
    jobs: Path,
    out: Path,
    *extra: str,
) -> str:
    """Run the batch, which must exit 2 having sent nothing; returns its stderr."""
    capsys.readouterr()
    before = requests_seen(sim)
    assert await batch(jobs, out, *extra) == 2
    assert requests_seen(sim) == before
    return capsys.readouterr().err


async def test_a_second_run_on_a_held_folder_exits_2_naming_the_holder(
    sim: Simulator,
    folder: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """While another run holds --out, --resume exits 2 with its pid and sends nothing."""
    jobs = jobs_of(folder, 3)
    out = folder / "out"
    assert await batch(jobs, out, "--max-credits", "2200") == 1  # one bought, two left
    with Journal(out / "journal.sqlite"):  # another run has the folder
        err = await refused(sim, capsys, jobs, out, "--resume")
    assert f"in use by another run (pid {os.getpid()})" in err
    assert await batch(jobs, out, "--resume") == 0  # the lock went with its holder


def _cli(jobs: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "leonardo_async", "batch", str(jobs), "--out", str(out),
        "--resume", "--concurrency", "4", "--spm", "6000", "--rpm", "60000",
        "--poll-initial", "0.05", "--poll-max", "0.2",
    ]  # fmt: skip


async def test_two_resume_runs_started_together_buy_nothing_twice(
    tmp_path: Path,
    folder: Path,
    sim: Simulator,
) -> None:
    """Two --resume processes at once: one works the batch, the other exits 2 at once."""
    jobs = jobs_of(folder, 12)
    out = tmp_path / "out"
    assert await batch(jobs, out, "--max-credits", "2200") == 1  # one bought, 11 left
    sim.configure(durations=JobDurations.fixed(0.3))
    env = dict(os.environ)  # the simulator's key and URL, set by the fixture
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    codes: dict[Path, int] = {}

    async def run(log: Path) -> None:
        with log.open("wb") as output:
            process = await anyio.open_process(
                _cli(jobs, out), env=env, stdout=output, stderr=subprocess.STDOUT
            )
            async with process:
                with anyio.fail_after(120):
                    codes[log] = await process.wait()

    async with anyio.create_task_group() as tg:
        for log in logs:
            tg.start_soon(run, log)
    stats = sim.statistics()
    assert stats.duplicate_submissions == 0
    assert stats.generations_created == 12
    assert all(line["status"] == "COMPLETE" for line in results(out))
    assert sorted(codes.values()) in ([0, 0], [0, 2])  # the second may start after the first
    for log, code in codes.items():
        if code == 2:
            assert "in use by another run (pid " in log.read_text()


def _delete(out: Path) -> None:
    (out / "journal.sqlite").unlink()


def _truncate(out: Path) -> None:
    (out / "journal.sqlite").write_bytes(b"")


def _without_wal(out: Path) -> None:
    """The journal as a copy made mid-run without its -wal file: no rows reached it yet."""
    _delete(out)
    live = out.parent / "live"
    live.mkdir()
    journal = Journal(live / "journal.sqlite")
    entry = journal.begin("1", 0, "fp")
    journal.update(entry, generation_id="g-1")
    shutil.copyfile(live / "journal.sqlite", out / "journal.sqlite")
    journal.close()


@pytest.mark.parametrize("lose", [_delete, _truncate, _without_wal])
async def test_resume_without_its_journal_refuses_and_buys_nothing(
    sim: Simulator,
    folder: Path,
    capsys: pytest.CaptureFixture[str],
    lose: Callable[[Path], None],
) -> None:
    """A finished folder whose journal is gone: --resume exits 2 and sends nothing."""
    jobs = jobs_of(folder, 3)
    out = folder / "out"
    assert await batch(jobs, out) == 0
    lose(out)
    assert "holds no batch" in await refused(sim, capsys, jobs, out, "--resume")
    assert sim.statistics().generations_created == 3


async def test_a_fresh_run_over_paid_work_refuses_without_force(
    sim: Simulator,
    folder: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Videos and results but no journal: a fresh run exits 2 unless --force."""
    jobs = jobs_of(folder, 2)
    out = folder / "out"
    assert await batch(jobs, out) == 0
    _delete(out)
    err = await refused(sim, capsys, jobs, out)
    assert "holds the work of an earlier batch (2 video(s))" in err
    assert await batch(jobs, out, "--force") == 0
    assert sim.statistics().generations_created == 4  # asked for, with --force


async def test_results_without_generations_are_not_paid_work(
    sim: Simulator,
    folder: Path,
) -> None:
    """A folder whose only run had nothing but bad lines can be used again."""
    bad = folder / "bad.jsonl"
    bad.write_text('{"prompt": "x"}\n', encoding="utf-8")
    out = folder / "out"
    assert await batch(bad, out) == 2
    (out / "journal.sqlite").unlink()
    assert await batch(jobs_of(folder, 1), out) == 0


async def test_a_clean_exit_leaves_the_whole_journal_in_its_file(
    sim: Simulator,
    folder: Path,
) -> None:
    """After a run, journal.sqlite alone (no -wal) holds every item: it can be copied."""
    jobs = jobs_of(folder, 3)
    out = folder / "out"
    assert await batch(jobs, out) == 0
    wal = out / "journal.sqlite-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    copy = folder / "copy.sqlite"
    shutil.copyfile(out / "journal.sqlite", copy)
    db = sqlite3.connect(copy)
    try:
        rows = db.execute("SELECT state, video FROM items ORDER BY key").fetchall()
    finally:
        db.close()
    assert [state for state, _ in rows] == ["complete"] * 3
    assert all(video and "/" not in video for _, video in rows)  # names within --out


def _garbage(path: Path) -> None:
    path.write_bytes(b"not a database at all, " * 400)


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 100])


def _bad_page(path: Path) -> None:
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) >= 3 * page
    data[page + 8 : 2 * page] = b"\xa5" * (page - 8)  # a table page's cells overwritten
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_garbage, _cut, _bad_page])
async def test_a_damaged_journal_exits_2_and_sends_nothing(
    sim: Simulator,
    folder: Path,
    capsys: pytest.CaptureFixture[str],
    damage: Callable[[Path], None],
) -> None:
    """Garbage, a cut file or a bad page: 'journal ... is damaged', exit 2, nothing sent."""
    jobs = jobs_of(folder, 40)
    out = folder / "out"
    assert await batch(jobs, out, "--no-download") == 0
    damage(out / "journal.sqlite")
    err = await refused(sim, capsys, jobs, out, "--resume", "--no-download")
    assert f"journal {out / 'journal.sqlite'} is damaged" in err
    assert "Traceback" not in err


async def test_results_that_cannot_be_written_are_an_error(
    sim: Simulator,
    folder: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """results.jsonl unwritable (here: a folder in its place): exit 3, said on stderr."""
    jobs = jobs_of(folder, 2)
    out = folder / "out"
    (out / "results.jsonl").mkdir(parents=True)
    assert await batch(jobs, out) == 3
    captured = capsys.readouterr()
    assert "results.jsonl cannot be written" in captured.err
    assert "results in" not in captured.out


async def test_stale_part_files_are_swept_at_start(
    sim: Simulator,
    folder: Path,
) -> None:
    """Hidden .part files a killed run left are removed; nothing else is."""
    jobs = jobs_of(folder, 1)
    out = folder / "out"
    assert await batch(jobs, out, "--max-credits", "1") == 1
    stale = [out / ".00000-shot-0-abc.mp4.1a2b3c4d.part", out / ".results.jsonl.0f0f0f0f.part"]
    for path in stale:
        path.write_bytes(b"partial")
    keep = out / "notes.part"
    keep.write_text("mine")
    assert await batch(jobs, out, "--resume") == 0
    assert not any(path.exists() for path in stale)
    assert keep.exists()
