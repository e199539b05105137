"""Turn a start frame and an end frame into one video: upload, submit, wait, download.

Reads your key from LEONARDO_API_KEY (export LEONARDO_API_KEY=...). Without it, the example
runs against the local simulator instead: no network, no credits, same code path.

    python examples/generate_one.py        # writes ./videos/sunset.mp4
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import anyio
from _connect import connect

from leonardo_async import Model, Resolution

FRAMES = Path(__file__).parent
OUT = Path("videos/sunset.mp4")  # videos/ is git-ignored


async def main() -> None:
    async with AsyncExitStack() as stack:
        client = await connect(stack)  # your key, or a local simulator without one

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
