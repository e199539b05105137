"""The shipped pytest plugin, run as a user's suite would run it (``pytester``): the marker
configures one test's simulator over the module's, the factory makes more with the same
config, and the environment points at the simulator only while its test runs."""

from __future__ import annotations

import ast
from pathlib import Path

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


#: Tests that make a Simulator by hand, and why: what they test is the class itself.
MADE_BY_HAND = {
    ("test_server.py", "test_fixed_ports"): "the class's own port handling and double start",
}


def simulators_made(tree: ast.AST, where: str = "<module>") -> set[str]:
    """The functions (by name) in ``tree`` that call ``Simulator(...)``."""
    found = set()
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found |= simulators_made(node, node.name)
            continue
        if isinstance(node, ast.Call):
            called = node.func
            name = called.id if isinstance(called, ast.Name) else getattr(called, "attr", "")
            if name == "Simulator":
                found.add(where)
        found |= simulators_made(node, where)
    return found


def test_the_projects_tests_get_their_simulators_from_the_plugin() -> None:
    """Apart from MADE_BY_HAND, no test constructs ``Simulator(...)``: one way, the plugin's."""
    tests = Path(__file__).resolve().parents[1]
    found = {
        (path.name, function)
        for path in tests.rglob("*.py")
        for function in simulators_made(ast.parse(path.read_text(encoding="utf-8")))
    }
    assert found == set(MADE_BY_HAND)
