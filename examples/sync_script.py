"""A script with no async code at all: the blocking client, for scripts and notebooks.

leonardo_async.sync.LeonardoClient has the async client's methods with the same
arguments; each call blocks until it is done (the async client runs underneath, on an
event loop in a thread of its own that ends with the ``with`` block).

Reads your key from LEONARDO_API_KEY (export LEONARDO_API_KEY=...). Without it, the example
runs against the local simulator instead: no network, no credits, same code path.

    python examples/sync_script.py        # writes ./videos/tide.mp4
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from anyio.from_thread import start_blocking_portal

from leonardo_async import PollSchedule
from leonardo_async.simulator import JobDurations, Simulator, SimulatorConfig
from leonardo_async.sync import LeonardoClient

FRAMES = Path(__file__).parent


def main(**client_options: Any) -> None:
    """The whole job; ``client_options`` is empty for the real API (key from the env)."""
    with LeonardoClient(**client_options) as client:
        print(f"account: {client.me().user_id}")
        video = client.generate(
            prompt="The tide comes in over black sand, seen from above",
            image=FRAMES / "start-frame.png",
            out="videos/tide.mp4",  # videos/ is git-ignored
            duration=4,
            timeout=600,
        )
        print(f"saved {video.path} (generation {video.id})")


def main_on_simulator() -> None:
    """No key: the same code against a simulator on loopback (no network, no credits),
    served from a thread of its own, as the client runs."""
    config = SimulatorConfig(durations=JobDurations(kind="uniform", median=1.0))
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(Simulator(config)) as sim,
    ):
        quick = PollSchedule(initial=0.5, max_interval=0.5)  # simulated jobs take a second
        main(api_key=sim.api_key, base_url=sim.base_url, poll_schedule=quick)


if __name__ == "__main__":
    if os.environ.get("LEONARDO_API_KEY"):
        main()
    else:
        main_on_simulator()
