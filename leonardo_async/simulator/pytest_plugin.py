"""Pytest plugin: a ``leonardo_simulator`` fixture with a running :class:`Simulator`.

Registered as the ``leonardo_async_simulator`` pytest11 entry point. Importing it starts
nothing; the fixture is async, so it runs under anyio's pytest plugin (``anyio_mode =
"auto"``, or tests marked ``anyio``). For the duration of a test, ``LEONARDO_API_KEY`` and
``LEONARDO_BASE_URL`` point at the simulator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ._config import SimulatorConfig
from ._server import Simulator

__all__ = ["leonardo_simulator"]


@pytest.fixture
async def leonardo_simulator(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Simulator]:
    """Yield a running simulator with the default config; ``sim.configure()`` changes it."""
    async with Simulator(SimulatorConfig()) as sim:
        monkeypatch.setenv("LEONARDO_API_KEY", sim.api_key)
        monkeypatch.setenv("LEONARDO_BASE_URL", sim.base_url)
        yield sim
