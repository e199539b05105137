"""Run a JSONL file of requests as one resumable batch, printing results as they finish.

Reads your key from LEONARDO_API_KEY (without it, a local simulator stands in). The same
job from the shell: ``leonardo-async batch examples/batch.jsonl --out videos``.

    python examples/batch_from_jsonl.py     # writes ./videos/*.mp4 and videos/journal.sqlite
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio

from leonardo_async import BatchSubmitter, LeonardoClient, Limits, PollSchedule, read_jobs
from leonardo_async.simulator import JobDurations, Simulator, SimulatorConfig

JOBS = Path(__file__).parent / "batch.jsonl"
OUT = Path("videos")


async def main(**client_options: Any) -> None:
    """Run the file; ``client_options`` is empty for the real API (key from the env)."""
    lines = read_jobs(JOBS)
    for line in lines:
        if line.item is None:
            print(f"skipped {line.error}")
    items = [line.item for line in lines if line.item is not None]
    # The journal makes the batch resumable: run this file again after a crash and nothing
    # already submitted is submitted (or paid for) again. The batch opens and closes it.
    async with (
        LeonardoClient(**client_options) as client,
        BatchSubmitter(
            client,
            journal=OUT / "journal.sqlite",
            out_dir=OUT,
            limits=Limits(submits_per_minute=600),
        ) as batch,
    ):
        summary = await batch.run(
            items, on_result=lambda r: print(f"{r.key}: {r.status} {r.video or r.error}")
        )
    print(f"{summary.complete} complete, {summary.failed} failed, credits {summary.credits}")


async def main_on_simulator() -> None:
    """Without a key, a local simulator stands in for Leonardo: no network, no credits."""
    jobs_of_a_second = JobDurations(kind="uniform", median=1.0)
    async with Simulator(SimulatorConfig(durations=jobs_of_a_second)) as simulator:
        poll = PollSchedule(initial=0.5, max_interval=0.5)
        await main(api_key=simulator.api_key, base_url=simulator.base_url, poll_schedule=poll)


if __name__ == "__main__":
    anyio.run(main if os.environ.get("LEONARDO_API_KEY") else main_on_simulator)
