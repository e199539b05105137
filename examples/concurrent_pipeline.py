"""Producers submit while a consumer handles each video the moment it is ready.

Three producer tasks feed requests into a stream; the batch submitter fans them out
under the key's limits and yields results as jobs finish, in finish order, not input
order. Reads your key from LEONARDO_API_KEY (without it, a local simulator stands in).

    python examples/concurrent_pipeline.py
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import anyio
from _connect import connect
from anyio.streams.memory import MemoryObjectSendStream

from leonardo_async import BatchItem, BatchSubmitter, Limits

FRAME = Path(__file__).parent / "start-frame.png"
SUBJECTS = {"waves": ["crash", "retreat"], "gulls": ["circle", "land"], "sky": ["darkens"]}


async def produce(subject: str, moves: list[str], send: MemoryObjectSendStream[BatchItem]) -> None:
    async with send:  # each producer closes its own copy; the stream ends when all have
        for move in moves:
            prompt = f"The {subject} {move} at dusk, slow cinematic camera"
            await send.send(BatchItem.create(prompt=prompt, image=FRAME, duration=4))


async def main() -> None:
    send, receive = anyio.create_memory_object_stream[BatchItem]()
    async with AsyncExitStack() as stack:
        client = await connect(stack)
        batch = BatchSubmitter(client, limits=Limits(submits_per_minute=600))
        async with anyio.create_task_group() as producers:
            for subject, moves in SUBJECTS.items():
                producers.start_soon(produce, subject, moves, send.clone())
            send.close()
            async with batch.stream(receive) as results:
                async for result in results:  # in the order the videos finish
                    print(f"{result.status}: {result.prompt!r} -> {result.generation_id}")
        print(f"{batch.summary().complete} videos ready")


if __name__ == "__main__":
    anyio.run(main)
