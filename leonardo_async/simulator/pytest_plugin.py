"""Pytest plugin: running :class:`Simulator` servers for tests, configured per test.

Registered as the ``leonardo_async_simulator`` pytest11 entry point. Importing it starts
nothing; the fixtures are async, so they run under anyio's pytest plugin (``anyio_mode =
"auto"``, or tests marked ``anyio``).

* ``leonardo_simulator``: a running simulator. For the duration of the test
  ``LEONARDO_API_KEY`` and ``LEONARDO_BASE_URL`` point at it; they are restored after.
* ``leonardo_simulator_config``: the config it starts from, the documented defaults.
  Override this fixture in a ``conftest.py`` or a test module to change a whole directory
  or module (it may take other fixtures, a parametrized argument among them).
* the ``leonardo_simulator`` marker: one test's knobs, merged into that config the way
  :meth:`Simulator.configure` takes them (``faults`` and ``durations`` key by key). A
  positional :class:`SimulatorConfig` replaces the config instead. As ``pytestmark`` it
  sets a module or a class; markers nearer the test apply last::

      @pytest.mark.leonardo_simulator(durations=JobDurations.fixed(0.1), failure_rate=1.0)
      async def test_failures(leonardo_simulator: Simulator) -> None: ...

* ``leonardo_simulator_factory``: for a test that needs a second server, or one that is
  stopped or started mid-test. Each call returns a simulator, not yet started, with the
  test's config (markers applied) and any further knobs; ``async with`` runs it. These
  leave the environment alone: with two running, neither is *the* simulator::

      async def test_two_keys(leonardo_simulator_factory: SimulatorFactory) -> None:
          async with leonardo_simulator_factory(api_key="other") as other: ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from ._config import SimulatorConfig, config_from_mapping
from ._server import Simulator

__all__ = [
    "MARKER",
    "SimulatorFactory",
    "leonardo_simulator",
    "leonardo_simulator_config",
    "leonardo_simulator_factory",
]

#: The marker's name: ``@pytest.mark.leonardo_simulator(config=None, /, **knobs)``.
MARKER = "leonardo_simulator"


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker, so ``--strict-markers`` accepts it."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(config=None, /, **knobs): start this test's simulator with this "
        "SimulatorConfig (replacing leonardo_simulator_config) and these knobs merged in",
    )


class SimulatorFactory:
    """Makes simulators from one test's config: ``async with factory(**knobs) as sim``."""

    def __init__(self, config: SimulatorConfig) -> None:
        #: The config a call without arguments starts with (fixture and markers applied).
        self.config = config

    def __call__(self, config: SimulatorConfig | None = None, /, **knobs: Any) -> Simulator:
        """A simulator (not started) with ``config`` (else the test's) and ``knobs`` merged."""
        return Simulator(config_from_mapping(knobs, base=config or self.config))


def _marked_config(base: SimulatorConfig, item: pytest.Item) -> SimulatorConfig:
    """``base`` with the item's ``leonardo_simulator`` markers applied, farthest first."""
    config = base
    for mark in reversed(list(item.iter_markers(MARKER))):
        if len(mark.args) > 1 or not all(isinstance(a, SimulatorConfig) for a in mark.args):
            raise TypeError(
                f"@pytest.mark.{MARKER} takes at most one positional SimulatorConfig, "
                f"then knobs by name; got {mark.args!r}"
            )
        config = config_from_mapping(mark.kwargs, base=mark.args[0] if mark.args else config)
    return config


@pytest.fixture
def leonardo_simulator_config() -> SimulatorConfig:
    """The config the simulators start from: the documented defaults."""
    return SimulatorConfig()


@pytest.fixture
def leonardo_simulator_factory(
    leonardo_simulator_config: SimulatorConfig, request: pytest.FixtureRequest
) -> SimulatorFactory:
    """Make simulators with this test's config (its markers applied) and further knobs."""
    return SimulatorFactory(_marked_config(leonardo_simulator_config, request.node))


@pytest.fixture
async def leonardo_simulator(
    leonardo_simulator_factory: SimulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Simulator]:
    """Yield a running simulator (``sim.configure()`` changes its knobs while it runs)."""
    async with leonardo_simulator_factory() as sim:
        monkeypatch.setenv("LEONARDO_API_KEY", sim.api_key)
        monkeypatch.setenv("LEONARDO_BASE_URL", sim.base_url)
        yield sim
