"""The simulator's shape: its public door, its independence, and its cost at scale."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import pytest

import leonardo_async.simulator as simulator
from leonardo_async.simulator import FaultConfig, JobDurations, SimulatorConfig
from leonardo_async.simulator._core import Core

from ._support import text_request

PACKAGE = Path(simulator.__file__).parent


def test_all_is_sorted_and_complete() -> None:
    """``__all__`` is sorted and names the whole agreed API."""
    assert simulator.__all__ == sorted(simulator.__all__)
    expected = {
        "Simulator",
        "SimulatorConfig",
        "FaultConfig",
        "JobDurations",
        "SimulatorStats",
        "serve",
        "config_from_mapping",
    }
    assert expected <= set(simulator.__all__)
    for name in simulator.__all__:
        assert getattr(simulator, name).__doc__


def test_imports_nothing_else_from_the_package() -> None:
    """The simulator is an independent reading of the wire format: no client imports."""
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                assert not node.module.startswith("leonardo_async") or node.module.startswith(
                    "leonardo_async.simulator"
                ), (path.name, node.module)
            if isinstance(node, ast.ImportFrom) and node.level > 1:
                raise AssertionError(f"{path.name} reaches outside the simulator")
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("leonardo_async"), (path.name, alias.name)


def test_route_names_match_the_router() -> None:
    """The route names faults filter on are exactly the routes the API serves."""
    from aiohttp import web

    from leonardo_async.simulator._api import add_api_routes
    from leonardo_async.simulator._config import API_ROUTES
    from leonardo_async.simulator._pipeline import API_PREFIX

    app = web.Application()
    add_api_routes(app)
    served = {
        f"{r.method} {r.resource.canonical.removeprefix(API_PREFIX)}"
        for r in app.router.routes()
        if r.resource is not None
    }
    assert served == API_ROUTES
    with pytest.raises(ValueError, match="unknown routes"):
        FaultConfig(routes=["GET /generation/{id}"])


def test_modules_stay_small() -> None:
    """Each module keeps to one job and about 400 lines."""
    for path in PACKAGE.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 400, path.name


def test_ten_thousand_jobs() -> None:
    """Ten thousand generations are records, not tasks; running counts drain lazily."""
    durations = JobDurations(kind="uniform", median=3600, spread=0.5)
    core = Core(SimulatorConfig(durations=durations, max_running=None))
    request = text_request()
    rows = [core.create_generation(request, {}, "key", 1) for _ in range(10_000)]
    last = max(r.finish_at for r in rows)
    assert core.store.running("key", core.now()) == 10_000
    assert core.store.running("key", last) == 0
    assert core.stats.duplicate_submissions == 9_999
    assert core.stats.peak_running == 10_000
    statuses = {r.status(last) for r in rows}
    assert statuses == {"COMPLETE"}
    assert len(set(random.Random(0).sample([r.id for r in rows], 100))) == 100
