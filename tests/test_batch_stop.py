"""Stopping and moving a batch: SIGTERM is Ctrl-C (results, summary, exit 143), a resume
from another working directory finds the videos, and ``generate`` checks ``--out`` can
be written before it pays.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from _cli import cli, cli_config, generate_args
from test_cli_batch import FAST_POLL, KEY, batch, jobs_of, requests_seen, results

from leonardo_async.simulator import JobDurations, Simulator, SimulatorConfig


@pytest.fixture
def leonardo_simulator_config() -> SimulatorConfig:
    """Short jobs and this module's key, for the shipped ``leonardo_simulator`` fixture."""
    return cli_config(KEY, job_seconds=0.05)


async def test_sigterm_writes_results_prints_the_summary_and_exits_143(
    sim: Simulator, folder: Path
) -> None:
    """SIGTERM mid-batch (docker stop, systemd): results.jsonl, the summary, exit 143;
    --resume then finishes every line once."""
    sim.configure(durations=JobDurations.fixed(2.0))
    jobs = jobs_of(folder, 6)
    out = folder / "out"
    argv = [sys.executable, "-m", "leonardo_async", "batch", str(jobs), "--out", str(out),
            *FAST_POLL, "--concurrency", "2"]  # fmt: skip
    log = folder / "run.log"
    with log.open("wb") as output:
        process = await anyio.open_process(argv, stdout=output, stderr=subprocess.STDOUT)
        async with process:
            with anyio.fail_after(60):
                while sim.statistics().generations_created == 0:  # noqa: ASYNC110
                    await anyio.sleep(0.02)
                process.send_signal(signal.SIGTERM)
                code = await process.wait()
    text = log.read_text()
    assert code == 143, text
    assert "interrupted by SIGTERM" in text
    assert "complete, " in text  # the summary line
    assert "Traceback" not in text
    lines = results(out)
    assert len(lines) == 6
    assert any(line["status"] != "COMPLETE" for line in lines)
    sim.configure(durations=JobDurations.fixed(0.05))
    assert await batch(jobs, out, "--resume") == 0
    assert [line["status"] for line in results(out)] == ["COMPLETE"] * 6
    stats = sim.statistics()
    assert stats.duplicate_submissions == 0
    assert stats.generations_created == 6


async def test_a_resume_from_another_directory_downloads_nothing_again(
    sim: Simulator, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--out given relative to one directory, resumed as an absolute path from another:
    the journal keeps names within --out, so no video is fetched again."""
    jobs = jobs_of(folder, 3)
    monkeypatch.chdir(folder)
    assert await batch(Path("jobs.jsonl"), Path("out")) == 0
    fetched = sim.statistics().storage_requests
    elsewhere = folder / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert await batch(jobs, folder / "out", "--resume") == 0
    assert sim.statistics().storage_requests == fetched
    assert {Path(line["video"]).parent for line in results(folder / "out")} == {folder / "out"}


async def test_generate_refuses_an_out_it_cannot_write_before_paying(
    sim: Simulator, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out under a file (its folder cannot exist): exit 2, nothing sent."""
    blocker = folder / "not-a-folder"
    blocker.write_text("a file")
    code = await cli(*generate_args(blocker / "video.mp4"))
    assert code == 2
    assert f"a file in an existing folder: {blocker} is not a folder" in capsys.readouterr().err
    assert requests_seen(sim) == 0
