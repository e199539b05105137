"""Small helpers shared by the benchmarks: CPU clock, memory, summaries, a worker pool."""

from __future__ import annotations

import itertools
import os
import platform
import resource
import statistics
import subprocess
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parent.parent


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def proc_status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``), or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0); return whether it worked."""
    try:
        Path(f"/proc/{os.getpid()}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, min, max and interquartile range of a few repetitions."""
    ordered = sorted(values)
    if len(ordered) >= 4:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1, q3 = ordered[0], ordered[-1]
    return {
        "median": statistics.median(ordered),
        "min": ordered[0],
        "max": ordered[-1],
        "q1": q1,
        "q3": q3,
    }


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = platform.processor() or "unknown"
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "commit": commit or "unknown",
    }


async def worker_pool(jobs: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> None:
    """Run ``one(i)`` for ``i`` in ``range(jobs)``, at most ``concurrency`` at once.

    ``concurrency`` worker tasks pull indices from one counter, so the harness costs the
    same small amount for every driver and spawns no task per job.
    """
    counter = itertools.count()

    async def worker() -> None:
        for i in counter:
            if i >= jobs:
                return
            await one(i)

    async with anyio.create_task_group() as tg:
        for _ in range(min(jobs, concurrency)):
            tg.start_soon(worker)
