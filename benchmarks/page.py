"""What ``out/index.html`` costs: one render at N lines, and a whole run's rewrites.

A page render is O(lines), so rewriting it on every finished item would cost O(lines^2)
over a batch. :class:`BatchPage` throttles: at most one write every ``MIN_INTERVAL`` seconds
and never more often than ten times the last write took. This script measures one render
and write for N lines, then replays a batch whose N items finish evenly over S seconds
(the clock is simulated, the writes are real) and reports how many writes it made and their
total time, against what one uncached write per item would have cost ("naive").

    .venv/bin/python benchmarks/page.py --lines 100,1000,10000 --seconds 600
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from leonardo_async._batch import BatchResult, Ledger
from leonardo_async.cli._frames import START, frame_png
from leonardo_async.cli._jobs_file import JobLine, read_jobs
from leonardo_async.cli._report import BatchPage
from leonardo_async.models import Cost


def _jobs(folder: Path, count: int) -> list[JobLine]:
    (folder / "start.png").write_bytes(frame_png(START))
    lines = (
        json.dumps({"prompt": f"shot {i}: waves under a violet sky", "image": "start.png"})
        for i in range(count)
    )
    (folder / "jobs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return read_jobs(folder / "jobs.jsonl")


def _result(job: JobLine, folder: Path) -> BatchResult:
    video = folder / f"{job.line:05d}-shot.mp4"
    cost = Cost(Decimal(1070), "CREDITS")
    return BatchResult(str(job.line), job.line, "COMPLETE", "shot", video=video, cost=cost)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def measure(count: int, seconds: float) -> dict[str, float]:
    """One write of a full page, and a replayed run of *count* items over *seconds*."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        jobs = _jobs(folder, count)
        results = {str(job.line): _result(job, folder) for job in jobs}
        started = time.perf_counter()
        page = BatchPage(folder, "jobs.jsonl", jobs, results, ledger=Ledger())  # every card
        full = time.perf_counter() - started
        took = []
        for _ in range(3):
            started = time.perf_counter()
            page.write(finished=False)  # the cards are cached: mostly a join and a write
            took.append(time.perf_counter() - started)
        one = statistics.median(took)
        size = page.path.stat().st_size

        clock, growing = _Clock(), dict[str, BatchResult]()
        page = BatchPage(folder, "jobs.jsonl", jobs, growing, ledger=Ledger(), clock=clock)
        writes_before, spent = page.writes, 0.0
        for index, job in enumerate(jobs):
            clock.now = seconds * (index + 1) / count
            growing[str(job.line)] = results[str(job.line)]
            started = time.perf_counter()
            page.changed()
            spent += time.perf_counter() - started
        return {
            "lines": count,
            "page_bytes": size,
            "full_render_write_s": round(full, 4),
            "cached_write_s": round(one, 4),
            "run_writes": page.writes - writes_before,
            "run_write_s": round(spent, 2),
            # one uncached write per item, pages half full on average
            "every_item_uncached_s": round(full * count / 2, 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", default="100,1000,10000", help="comma-separated counts")
    parser.add_argument("--seconds", type=float, default=600.0, help="length of the run")
    args = parser.parse_args()
    rows = [measure(int(n), args.seconds) for n in args.lines.split(",")]
    print(f"a batch finishing evenly over {args.seconds:g} s (simulated clock, real writes)")
    print("lines  page KB  full write s  cached write s  writes in run  their s  naive s")
    for row in rows:
        print(
            f"{row['lines']:>5}  {row['page_bytes'] / 1024:>7.0f}"
            f"  {row['full_render_write_s']:>12.4f}  {row['cached_write_s']:>14.4f}"
            f"  {row['run_writes']:>13}  {row['run_write_s']:>7}"
            f"  {row['every_item_uncached_s']:>7}"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
