"""Turn a start frame and an end frame into one video: upload, submit, wait, download.

Reads your key from LEONARDO_API_KEY (export LEONARDO_API_KEY=...). Without it, the example
runs against the local simulator instead: no network, no credits, same code path.

    python examples/generate_one.py        # writes ./videos/sunset.mp4
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio

from leonardo_async import LeonardoClient, Model, PollSchedule, Resolution
from leonardo_async.simulator import JobDurations, Simulator, SimulatorConfig

FRAMES = Path(__file__).parent
OUT = Path("videos/sunset.mp4")  # videos/ is git-ignored


async def main(**client_options: Any) -> None:
    """The whole job; ``client_options`` is empty for the real API (key from the env)."""
    async with LeonardoClient(**client_options) as client:
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


async def main_on_simulator() -> None:
    """No key: the same code against a simulator on loopback (no network, no credits)."""
    config = SimulatorConfig(durations=JobDurations(kind="uniform", median=1.0))
    async with Simulator(config) as sim:
        quick = PollSchedule(initial=0.5, max_interval=0.5)  # simulated jobs take a second
        await main(api_key=sim.api_key, base_url=sim.base_url, poll_schedule=quick)


if __name__ == "__main__":
    anyio.run(main if os.environ.get("LEONARDO_API_KEY") else main_on_simulator)
