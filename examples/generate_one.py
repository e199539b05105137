"""Turn a start frame and an end frame into one video: upload, submit, wait, download.

Reads your key from LEONARDO_API_KEY (export LEONARDO_API_KEY=...). Without it, the example
runs against the local simulator instead: no network, no credits, same code path.

    python examples/generate_one.py        # writes ./sunset.mp4
"""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from pathlib import Path

import anyio

from leonardo_async import LeonardoClient, Model, PollSchedule, Resolution
from leonardo_async.simulator import JobDurations, Simulator, SimulatorConfig

FRAMES = Path(__file__).parent
OUT = Path("sunset.mp4")


async def main() -> None:
    async with AsyncExitStack() as stack:
        if os.environ.get("LEONARDO_API_KEY"):  # the real API, with your key
            client = LeonardoClient()
        else:  # no key: a local simulator on loopback, with jobs of one second
            sim = await stack.enter_async_context(
                Simulator(SimulatorConfig(durations=JobDurations.fixed(1)))
            )
            fast = PollSchedule(initial=0.5, max_interval=0.5)
            client = LeonardoClient(sim.api_key, base_url=sim.base_url, poll_schedule=fast)
        await stack.enter_async_context(client)

        start = await client.upload_image(FRAMES / "start-frame.png")
        end = await client.upload_image(FRAMES / "end-frame.png")
        job = await client.image_to_video(
            prompt="The sun sinks into a calm violet sea, slow cinematic push-in",
            image=start,
            end_image=end,
            model=Model.VEO3_1,
            resolution=Resolution.RESOLUTION_720,  # 1280x720, the frames' own size
            duration=8,
        )
        cost = f"{job.cost.amount} {job.cost.unit}" if job.cost else "not stated"
        print(f"submitted {job.id} (cost: {cost})")
        video = await client.wait(job.id, timeout=600)
        path = await client.download(video, OUT)
        print(f"saved {path}")


if __name__ == "__main__":
    anyio.run(main)
