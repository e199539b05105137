"""Fixtures for the simulator tests: the shipped simulator with short jobs, and a client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from leonardo_async.simulator import JobDurations, Simulator, SimulatorConfig

from ._support import Api


@pytest.fixture
def leonardo_simulator_config() -> SimulatorConfig:
    """The simulator the tests here get as ``sim``: documented behaviour, and jobs that
    finish after a twentieth of a second."""
    return SimulatorConfig(durations=JobDurations.fixed(0.05))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """Yield a plain aiohttp session, as any client would use."""
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def api(sim: Simulator, session: aiohttp.ClientSession) -> Api:
    """Return helpers that talk to *sim* over loopback HTTP."""
    return Api(sim, session)
