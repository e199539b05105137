"""Producers submit while a consumer handles each video the moment it is ready.

Three producer tasks feed requests into a stream; the batch submitter fans them out
under the key's limits and yields results as jobs finish, in finish order, not input
order. Reads your key from LEONARDO_API_KEY (without it, a local simulator stands in).

    python examples/concurrent_pipeline.py
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from leonardo_async import BatchItem, BatchSubmitter, LeonardoClient, Limits, PollSchedule
from leonardo_async.simulator import JobDurations, Simulator, SimulatorConfig

FRAME = Path(__file__).parent / "start-frame.png"
SUBJECTS = {"waves": ["crash", "retreat"], "gulls": ["circle", "land"], "sky": ["darkens"]}


async def produce(subject: str, moves: list[str], send: MemoryObjectSendStream[BatchItem]) -> None:
    async with send:  # each producer closes its own copy; the stream ends when all have
        for move in moves:
            prompt = f"The {subject} {move} at dusk, slow cinematic camera"
            await send.send(BatchItem.create(prompt=prompt, image=FRAME, duration=4))


async def main(**client_options: Any) -> None:
    """Produce and consume; ``client_options`` is empty for the real API (key from the env)."""
    send, receive = anyio.create_memory_object_stream[BatchItem]()
    async with (
        LeonardoClient(**client_options) as client,
        BatchSubmitter(client, limits=Limits(submits_per_minute=600)) as batch,
        anyio.create_task_group() as producers,
    ):
        for subject, moves in SUBJECTS.items():
            producers.start_soon(produce, subject, moves, send.clone())
        send.close()
        async with batch.stream(receive) as results:
            async for result in results:  # in the order the videos finish
                print(f"{result.status}: {result.prompt!r} -> {result.generation_id}")
    print(f"{batch.summary().complete} videos ready")


async def main_on_simulator() -> None:
    """No LEONARDO_API_KEY: run on a simulator over loopback instead (no credits spent)."""
    async with Simulator(SimulatorConfig(durations=JobDurations("uniform", median=1.0))) as s:
        fast = PollSchedule(initial=0.5, max_interval=0.5)
        await main(api_key=s.api_key, base_url=s.base_url, poll_schedule=fast)


if __name__ == "__main__":
    anyio.run(main if os.environ.get("LEONARDO_API_KEY") else main_on_simulator)
