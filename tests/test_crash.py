"""``kill -9`` in the middle of a batch, again and again, then ``--resume`` until it is done.

The CLI runs in a subprocess against a simulator in this process; it is killed with
SIGKILL after seeded random delays (so at a different step each time: uploading,
submitting, between a submit and its journal entry, downloading ...), then resumed. In
the end every line is COMPLETE exactly once, the simulator made exactly one generation per
line, every MP4 is whole, and the last run's batch total is what the simulator charged.
No timing is asserted: the delays only choose where the kills land.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from _images import png_bytes

from leonardo_async.simulator import JobDurations, Simulator, SimulatorConfig

KEY = "sk-crash-CANARY-51d0e7a2-never-print"
LINES = 40
KILLS = 3
SEEDS = [7, 1234]


@pytest.fixture
def leonardo_simulator_config(seed: int) -> SimulatorConfig:
    """The shipped fixture's simulator: this module's key, the test's seed, jobs of 0.4 s."""
    return SimulatorConfig(api_key=KEY, seed=seed, durations=JobDurations.fixed(0.4))


def write_batch(folder: Path) -> Path:
    """A batch file of forty lines over three frames (prompts distinct)."""
    for n in range(3):
        (folder / f"f{n}.png").write_bytes(png_bytes(rgb=(n * 80, 40, 200 - n * 60)))
    lines = [
        json.dumps({"prompt": f"crash test {i}", "image": f"f{i % 3}.png", "duration": 4})
        for i in range(LINES)
    ]
    path = folder / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def command(jobs: Path, out: Path, *, resume: bool) -> list[str]:
    """The CLI command line: three running at once, fast polls."""
    argv = [sys.executable, "-m", "leonardo_async", "batch", str(jobs), "--out", str(out)]
    argv += ["--concurrency", "3", "--spm", "6000", "--rpm", "60000"]
    argv += ["--poll-initial", "0.05", "--poll-max", "0.2"]
    return [*argv, "--resume"] if resume else argv


def results(out: Path) -> list[dict[str, Any]]:
    """The lines of ``out/results.jsonl``."""
    text = (out / "results.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def listing(out: Path) -> tuple[set[str], list[str]]:
    """The MP4 names in ``out``, and its temporary (``.part``) files."""
    names = [p.name for p in out.iterdir()]
    return {n for n in names if n.endswith(".mp4")}, [n for n in names if n.endswith(".part")]


def has_output(log: Path) -> bool:
    """Whether the process has written anything (its first progress line) yet."""
    return log.stat().st_size > 0


async def run_cli(
    argv: list[str], env: dict[str, str], log: Path, kill_after: float | None
) -> int | None:
    """Run the CLI to its end, or SIGKILL it ``kill_after`` seconds into its batch.

    The delay counts from the process's first progress line, so that no kill is spent on
    the interpreter starting up. Returns the exit code, or ``None`` if it was killed.
    """
    # The deadline covers the process's whole life, so one that never ends (a hang, an
    # ignored signal) is killed as the test fails, rather than waited for forever.
    with log.open("wb") as output, anyio.fail_after(180):
        process = await anyio.open_process(argv, env=env, stdout=output, stderr=subprocess.STDOUT)
        async with process:
            if kill_after is None:
                return await process.wait()
            with anyio.move_on_after(60):
                # Another process's file: nothing to wait on but the file itself.
                while not has_output(log) and process.returncode is None:  # noqa: ASYNC110
                    await anyio.sleep(0.02)
            with anyio.move_on_after(kill_after):
                return await process.wait()
            process.send_signal(signal.SIGKILL)
            await process.wait()
            return None


@pytest.mark.parametrize("seed", SEEDS)
async def test_sigkill_at_random_points_then_resume_completes_each_line_once(
    sim: Simulator, tmp_path: Path, seed: int
) -> None:
    """Killed 3+ times, resumed until exit 0: each line COMPLETE once, nothing paid twice."""
    rng = random.Random(seed)
    jobs = write_batch(tmp_path)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEONARDO_")}
    env |= {"LEONARDO_API_KEY": KEY, "LEONARDO_BASE_URL": sim.base_url}
    kills, runs = 0, 0
    while kills < KILLS:
        runs += 1
        log = tmp_path / f"run-{runs}.log"
        code = await run_cli(
            command(jobs, out, resume=runs > 1), env, log, kill_after=rng.uniform(0.05, 1.5)
        )
        if code is None:
            kills += 1
        else:  # finished before the kill came: start another batch to kill
            assert code == 0, log.read_text()
            pytest.fail(f"the batch finished before kill {kills + 1}; make it longer")
    for _ in range(3):
        runs += 1
        log = tmp_path / f"run-{runs}.log"
        code = await run_cli(command(jobs, out, resume=True), env, log, kill_after=None)
        if code == 0:
            break
    assert code == 0, log.read_text()
    assert KEY not in log.read_text()
    # Jobs found after a kill between their submit and its row are counted all the same.
    total = re.search(r"batch total (\d+) CREDITS", log.read_text())
    assert total is not None
    assert int(total.group(1)) == sim.statistics().credits_spent

    lines = results(out)
    assert [line["line"] for line in lines] == list(range(1, LINES + 1))
    assert all(line["status"] == "COMPLETE" for line in lines), lines
    ids = [line["generation_id"] for line in lines]
    assert len(set(ids)) == LINES
    stats = sim.statistics()
    assert stats.duplicate_submissions == 0
    assert stats.generations_created == LINES
    assert {g.id for g in sim.generations} == set(ids)
    mp4s, parts = listing(out)
    videos = [Path(line["video"]) for line in lines]
    assert mp4s == {video.name for video in videos}
    for line, video in zip(lines, videos, strict=True):
        assert video.parent == out
        assert video.read_bytes() == sim.video_bytes(line["generation_id"])
    # A killed download leaves a hidden .part file, never a video under a real name.
    assert all(part.startswith(".") for part in parts)
