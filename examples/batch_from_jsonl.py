"""Run a JSONL file of requests as one resumable batch, printing results as they finish.

Reads your key from LEONARDO_API_KEY (without it, a local simulator stands in). The same
job from the shell: ``leonardo-async batch examples/batch.jsonl --out videos``.

    python examples/batch_from_jsonl.py     # writes ./videos/*.mp4 and videos/journal.sqlite
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import anyio
from _connect import connect

from leonardo_async import BatchSubmitter, Journal, Limits, read_jobs

JOBS = Path(__file__).parent / "batch.jsonl"
OUT = Path("videos")


async def main() -> None:
    lines = read_jobs(JOBS)
    for line in lines:
        if line.item is None:
            print(f"skipped {line.error}")
    items = [line.item for line in lines if line.item is not None]
    async with AsyncExitStack() as stack:
        client = await connect(stack)
        # The journal makes the batch resumable: run this file again after a crash and
        # nothing already submitted is submitted (or paid for) again.
        journal = stack.enter_context(Journal(OUT / "journal.sqlite"))
        batch = BatchSubmitter(
            client, journal=journal, out_dir=OUT, limits=Limits(submits_per_minute=600)
        )
        summary = await batch.run(
            items, on_result=lambda r: print(f"{r.key}: {r.status} {r.video or r.error}")
        )
        print(f"{summary.complete} complete, {summary.failed} failed, credits {summary.credits}")


if __name__ == "__main__":
    anyio.run(main)
