"""What the command-line tests share: running ``main`` in-process against a simulator."""

from __future__ import annotations

from pathlib import Path

import anyio

from leonardo_async.cli import main
from leonardo_async.simulator import JobDurations, SimulatorConfig

ROOT = Path(__file__).resolve().parents[1]
START_FRAME = ROOT / "examples" / "start-frame.png"
END_FRAME = ROOT / "examples" / "end-frame.png"
FAST_POLL = ("--poll-initial", "0.05", "--poll-max", "0.2")


def cli_config(key: str, job_seconds: float = 0.1) -> SimulatorConfig:
    """A simulator config with short jobs and ``key``, for the shipped fixture
    ``leonardo_simulator`` (which points LEONARDO_API_KEY and LEONARDO_BASE_URL at it)."""
    return SimulatorConfig(api_key=key, durations=JobDurations.fixed(job_seconds))


async def cli(*argv: str | Path) -> int:
    """Run ``main`` in a worker thread (it runs its own event loop)."""
    return await anyio.to_thread.run_sync(main, [str(a) for a in argv])


def generate_args(out: Path, *extra: str | Path) -> list[str | Path]:
    """A valid ``generate`` command line writing to ``out``, plus ``extra``."""
    return ["generate", "--image", START_FRAME, "--prompt", "waves", "--out", out,
            *FAST_POLL, *extra]  # fmt: skip
