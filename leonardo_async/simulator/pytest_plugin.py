"""Pytest plugin: a ``leonardo_simulator`` fixture with a running :class:`Simulator`.

Registered as the ``leonardo_async_simulator`` pytest11 entry point. Importing it starts
nothing; the fixture is async, so it runs under anyio's pytest plugin (``anyio_mode =
"auto"``, or tests marked ``anyio``). For the duration of a test, ``LEONARDO_API_KEY`` and
``LEONARDO_BASE_URL`` point at the simulator.

Its knobs come from the ``leonardo_simulator_config`` fixture (the documented defaults);
override that fixture in a ``conftest.py`` or a test module to start it otherwise::

    @pytest.fixture
    def leonardo_simulator_config() -> SimulatorConfig:
        return SimulatorConfig(durations=JobDurations.fixed(0.1))
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ._config import SimulatorConfig
from ._server import Simulator

__all__ = ["leonardo_simulator", "leonardo_simulator_config"]


@pytest.fixture
def leonardo_simulator_config() -> SimulatorConfig:
    """The config ``leonardo_simulator`` starts with: the documented defaults."""
    return SimulatorConfig()


@pytest.fixture
async def leonardo_simulator(
    leonardo_simulator_config: SimulatorConfig, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Simulator]:
    """Yield a running simulator (``sim.configure()`` changes its knobs while it runs)."""
    async with Simulator(leonardo_simulator_config) as sim:
        monkeypatch.setenv("LEONARDO_API_KEY", sim.api_key)
        monkeypatch.setenv("LEONARDO_BASE_URL", sim.base_url)
        yield sim
