"""The shipped pytest plugin, run as a user's suite would run it (``pytester``): the marker
configures one test's simulator over the module's, the factory makes more with the same
config, and the environment points at the simulator only while its test runs."""

from __future__ import annotations

import pytest

#: A user's test module: a module-wide marker, one test's marker over it, the factory.
USER_TESTS = """
import os

import pytest

from leonardo_async.simulator import FaultConfig, JobDurations, SimulatorConfig

pytestmark = [pytest.mark.anyio, pytest.mark.leonardo_simulator(api_key="sk-module", seed=3)]


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(0.5), faults={"slow_rate": 0.5})
async def test_marker_merges_over_the_module(leonardo_simulator):
    config = leonardo_simulator.config
    assert (config.api_key, config.seed) == ("sk-module", 3)
    assert config.durations == JobDurations.fixed(0.5)
    assert config.faults == FaultConfig(slow_rate=0.5)
    assert os.environ["LEONARDO_API_KEY"] == "sk-module"
    assert os.environ["LEONARDO_BASE_URL"] == leonardo_simulator.base_url


@pytest.mark.leonardo_simulator(SimulatorConfig(api_key="sk-own"), failure_rate=1.0)
async def test_a_config_replaces_the_modules(leonardo_simulator):
    assert leonardo_simulator.api_key == "sk-own"
    assert leonardo_simulator.config.seed == SimulatorConfig().seed  # not the module's 3
    assert leonardo_simulator.config.failure_rate == 1.0


def test_the_environment_is_restored_after():
    assert os.environ["LEONARDO_API_KEY"] == "sk-outside"
    assert "LEONARDO_BASE_URL" not in os.environ


@pytest.mark.leonardo_simulator(seed=9)
async def test_the_factory_starts_more_with_the_tests_config(leonardo_simulator_factory):
    async with leonardo_simulator_factory() as one, leonardo_simulator_factory(seed=4) as two:
        assert one.base_url != two.base_url
        assert (one.api_key, one.config.seed) == ("sk-module", 9)
        assert (two.api_key, two.config.seed) == ("sk-module", 4)
        assert os.environ["LEONARDO_API_KEY"] == "sk-outside"  # neither is *the* one


@pytest.mark.leonardo_simulator("not a config")
async def test_a_bad_marker_is_an_error(leonardo_simulator):
    pass
"""


def test_marker_fixture_and_factory_in_a_users_suite(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each user test passes (the bad marker errors, naming what it takes), in order, and
    the environment the suite started with is the one it ends with."""
    monkeypatch.setenv("LEONARDO_API_KEY", "sk-outside")
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(["*takes at most one positional SimulatorConfig*"])
