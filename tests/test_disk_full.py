"""A full disk, for real: a small tmpfs filled to its last byte (``ENOSPC`` from the kernel).

Mounting needs root (or CAP_SYS_ADMIN); where it is refused, these tests are skipped and
say so. Each item still ends in one recorded state, a partial file never survives, a
journal that cannot be written ends the run cleanly (exit 3), and once space is freed a
resume finishes the batch without buying anything twice.
"""

from __future__ import annotations

import errno
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from _cli import cli_config
from _helpers import sim_config
from test_batch import client_for, frame, items_for, run_all
from test_cli_batch import FAST_POLL, KEY, jobs_of, results

from leonardo_async import BatchSubmitter, Journal, JournalWriteError
from leonardo_async._batch import ItemState
from leonardo_async._files import AtomicFile
from leonardo_async.cli import main
from leonardo_async.cli._batch import _stopped_by_signal
from leonardo_async.simulator import JobDurations, Simulator, SimulatorConfig


@pytest.fixture
def leonardo_simulator_config() -> SimulatorConfig:
    """Short jobs and this module's key, for the shipped ``leonardo_simulator`` fixture."""
    return cli_config(KEY, job_seconds=0.05)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs mounted for the test (skipped, saying why, where mounting is refused)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"a tmpfs cannot be mounted here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Write a ballast file until the disk is full; delete it to free the space."""
    ballast = disk / "ballast"
    with (  # noqa: PT012
        ballast.open("wb", buffering=0) as stream,
        pytest.raises(OSError, match="No space left") as full,
    ):
        while True:
            stream.write(b"\0" * 4096)
    assert full.value.errno == errno.ENOSPC
    return ballast


def leftovers(disk: Path) -> list[str]:
    """What is on the disk besides the ballast."""
    return sorted(p.name for p in disk.iterdir() if p.name != "ballast")


@pytest.mark.parametrize("chunk", [1024, 100_000], ids=["buffered", "direct"])
def test_an_atomic_file_on_a_full_disk_leaves_nothing(small_disk: Path, chunk: int) -> None:
    """ENOSPC at write, flush or close: the OSError is raised, no .part stays behind."""
    fill(small_disk)
    with (  # noqa: PT012
        pytest.raises(OSError, match="No space left") as caught,
        AtomicFile(small_disk / "video.mp4") as out,
    ):
        for _ in range(3):
            out.write(b"v" * chunk)
        out.commit()
    assert caught.value.errno == errno.ENOSPC
    assert leftovers(small_disk) == []


def test_a_failing_close_does_not_hide_the_callers_error(small_disk: Path) -> None:
    """Leaving the block on another error with bytes buffered: that error, and no .part."""
    fill(small_disk)
    with (  # noqa: PT012
        pytest.raises(KeyError, match="the caller's"),
        AtomicFile(small_disk / "video.mp4") as out,
    ):
        out.write(b"v" * 1024)  # buffered; the close will fail to flush it
        raise KeyError("the caller's")
    assert leftovers(small_disk) == []


@pytest.mark.leonardo_simulator(sim_config())  # the client tests' canary key, not this module's
async def test_downloads_to_a_full_disk_end_recorded_and_resume(
    sim: Simulator, tmp_path: Path, small_disk: Path
) -> None:
    """Every download fails with ENOSPC: each item ERROR with its job kept; freed, resumed,
    the videos arrive and nothing is submitted again."""
    ballast = fill(small_disk)
    items = items_for(frame(tmp_path), 3)
    path = tmp_path / "journal.sqlite"
    async with client_for(sim) as client:
        with Journal(path) as journal:
            async with BatchSubmitter(client, journal=journal, out_dir=small_disk) as batch:
                first = await run_all(batch, items)
            assert {r.status for r in first} == {"ERROR"}
            assert all("No space left on device" in (r.error or "") for r in first)
            assert all(e.state is ItemState.ERROR and e.generation_id for e in journal.entries())
        assert leftovers(small_disk) == []
        ballast.unlink()
        async with BatchSubmitter(client, journal=path, out_dir=small_disk) as batch:
            second = await run_all(batch, items)
    assert {r.status for r in second} == {"COMPLETE"}
    assert {r.generation_id for r in second} == {r.generation_id for r in first}
    assert sim.statistics().generations_created == 3
    assert len([name for name in leftovers(small_disk) if name.endswith(".mp4")]) == 3


async def test_a_journal_that_cannot_be_written_ends_the_run_with_exit_3(
    sim: Simulator,
    folder: Path,
    small_disk: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The disk fills while jobs run: 'journal cannot be written', exit 3, no traceback;
    freed and resumed, every line completes once."""
    sim.configure(durations=JobDurations.fixed(1.0))
    jobs = jobs_of(folder, 3)
    out = small_disk / "out"
    argv = ["batch", str(jobs), "--out", str(out), *FAST_POLL, "--no-download"]
    ballast: list[Path] = []

    async def fill_after_the_first_submit() -> None:
        while sim.statistics().generations_created == 0:  # noqa: ASYNC110
            await anyio.sleep(0.01)
        ballast.append(fill(small_disk))

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(fill_after_the_first_submit)
            code = await anyio.to_thread.run_sync(main, argv)
    err = capsys.readouterr().err
    assert code == 3, err
    assert "journal cannot be written" in err
    assert "Traceback" not in err
    assert (out / "results.jsonl").exists() or "results.jsonl cannot be written" in err
    ballast[0].unlink()
    with anyio.fail_after(60):
        code = await anyio.to_thread.run_sync(main, [*argv, "--resume"])
    assert code == 0, capsys.readouterr().err
    assert [line["status"] for line in results(out)] == ["COMPLETE"] * 3
    stats = sim.statistics()
    assert stats.duplicate_submissions == 0
    assert stats.generations_created == 3


async def test_the_signal_watch_passes_the_batchs_own_error_through_unwrapped() -> None:
    """On the main thread the batch runs inside the signal watch's task group; a journal
    that cannot be written still reaches the CLI's handler as itself (exit 3, no
    traceback), not wrapped in an exception group."""
    assert threading.current_thread() is threading.main_thread()
    with pytest.raises(JournalWriteError, match="cannot be written"):
        async with _stopped_by_signal([]):
            raise JournalWriteError("journal cannot be written: disk full")
