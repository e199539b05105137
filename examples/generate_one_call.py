"""One await from frames to an MP4: client.generate uploads, submits, waits and downloads.

Reads your key from LEONARDO_API_KEY (export LEONARDO_API_KEY=...). Without it, the example
runs against the local simulator instead: no network, no credits, same code path.

    python examples/generate_one_call.py        # writes ./videos/harbour.mp4
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio

from leonardo_async import LeonardoClient, PollSchedule, Resolution
from leonardo_async.simulator import JobDurations, Simulator, SimulatorConfig

FRAMES = Path(__file__).parent


async def main(**client_options: Any) -> None:
    """The whole job; ``client_options`` is empty for the real API (key from the env)."""
    async with LeonardoClient(**client_options) as client:
        video = await client.generate(
            prompt="Fishing boats drift into a misty harbour at dawn",
            image=FRAMES / "start-frame.png",
            end_image=FRAMES / "end-frame.png",
            resolution=Resolution.RESOLUTION_720,  # 1280x720, the frames' own size
            out="videos/harbour.mp4",  # videos/ is git-ignored
            timeout=600,
        )
        cost = f"{video.cost.amount} {video.cost.unit}" if video.cost else "not stated"
        print(f"saved {video.path} (generation {video.id}, cost: {cost})")


async def main_on_simulator() -> None:
    """No key: the same code against a simulator on loopback (no network, no credits)."""
    config = SimulatorConfig(durations=JobDurations(kind="uniform", median=1.0))
    async with Simulator(config) as sim:
        quick = PollSchedule(initial=0.5, max_interval=0.5)  # simulated jobs take a second
        await main(api_key=sim.api_key, base_url=sim.base_url, poll_schedule=quick)


if __name__ == "__main__":
    anyio.run(main if os.environ.get("LEONARDO_API_KEY") else main_on_simulator)
