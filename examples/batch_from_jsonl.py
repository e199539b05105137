"""Run a JSONL file of requests as one resumable batch, printing results as they finish.

Reads your key from LEONARDO_API_KEY (without it, a local simulator stands in). The same
job from the shell: ``leonardo-async batch examples/batch.jsonl --out videos``, which also
reports each bad line by number and goes on with the others, and writes results.jsonl.

    python examples/batch_from_jsonl.py     # writes ./videos/*.mp4 and videos/journal.sqlite
    python examples/batch_from_jsonl.py     # again: resumes, with nothing left to make
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import anyio

from leonardo_async import BatchItem, BatchSubmitter, LeonardoClient, Limits, PollSchedule
from leonardo_async.simulator import JobDurations, Simulator, SimulatorConfig

JOBS = Path(__file__).parent / "batch.jsonl"
OUT = Path("videos")


def read_items(path: Path) -> list[BatchItem]:
    """One item per line of ``path``, its frame paths read from the file's folder.

    ``BatchItem.create`` checks each request before anything is sent: a bad field is a
    ValidationError naming it and the values allowed.
    """
    items = []
    for text in path.read_text(encoding="utf-8").splitlines():
        if text.strip():
            fields = json.loads(text)
            for frame in ("image", "end_image"):
                if frame in fields:
                    fields[frame] = path.parent / fields[frame]
            items.append(BatchItem.create(**fields))
    return items


async def main(**client_options: Any) -> None:
    """Run the file; ``client_options`` is empty for the real API (key from the env)."""
    items = read_items(JOBS)
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
    """Without a key, a local simulator stands in for Leonardo: no network, no credits.

    A journal belongs to one server (its URL), as its jobs exist only there; so the
    simulator listens on a port named by the output folder, the same on every run, and a
    rerun resumes as it would against Leonardo, instead of ending in an error as another
    server's. The port is below the range the system hands out for any free port, so a
    port a run let go is not another program's by the next run.
    """
    folder = str(await anyio.Path(OUT).resolve()).encode()
    port = 20000 + int.from_bytes(hashlib.sha256(folder).digest()[:4], "big") % 10000
    jobs_of_a_second = JobDurations(kind="uniform", median=1.0)
    config = SimulatorConfig(durations=jobs_of_a_second, api_port=port)
    async with Simulator(config) as simulator:
        poll = PollSchedule(initial=0.5, max_interval=0.5)
        await main(api_key=simulator.api_key, base_url=simulator.base_url, poll_schedule=poll)


if __name__ == "__main__":
    anyio.run(main if os.environ.get("LEONARDO_API_KEY") else main_on_simulator)
