"""Shared by the examples: a client for the real API, or for a local simulator.

With LEONARDO_API_KEY set (export LEONARDO_API_KEY=...), the client talks to Leonardo.
Without it, a simulator starts on loopback and the client talks to it instead: same code
path, no network, no credits.
"""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from typing import Any

from leonardo_async import LeonardoClient, PollSchedule
from leonardo_async.simulator import JobDurations, Simulator, SimulatorConfig


async def connect(stack: AsyncExitStack, **options: Any) -> LeonardoClient:
    """An entered client, closed with ``stack``; ``options`` go to :class:`LeonardoClient`."""
    if not os.environ.get("LEONARDO_API_KEY"):
        sim = await stack.enter_async_context(
            Simulator(SimulatorConfig(durations=JobDurations(kind="uniform", median=1.0)))
        )
        options = {
            "api_key": sim.api_key,
            "base_url": sim.base_url,
            "poll_schedule": PollSchedule(initial=0.5, max_interval=0.5),
            **options,
        }
    return await stack.enter_async_context(LeonardoClient(**options))
