"""Shared pytest configuration: async tests run on asyncio (through anyio's plugin)."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from _helpers import FAST, KEY, NO_LIMITS, QUICK_LAG, QUICK_RETRY, KeyCatcher, Traffic, sim_config
from _images import png_bytes
from _redis import delete_namespace, redis_or_skip, unique_namespace
from hypothesis import settings

from leonardo_async import LeonardoClient, RedisLimits
from leonardo_async.simulator import Simulator, SimulatorConfig

pytest_plugins = ("pytester",)


def pytest_configure(config: pytest.Config) -> None:
    """Let the CLI processes the tests start hear Ctrl-C, however the suite was started.

    A shell starts a background job (``pytest &``, a parallel CI run, ``nohup``) with
    SIGINT ignored, and child processes inherit an ignored signal: the CLI the tests send
    SIGINT to would never see it. A handled signal is reset to the default in a child,
    so handling it here gives the children Python's usual Ctrl-C.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def anyio_backend() -> str:
    """Run every async test on asyncio: aiohttp, which the project uses, is asyncio-only."""
    return "asyncio"


# --- client, tracker and foundation tests --------------------------------------------------

# No per-example deadline: a slow, shared machine must not turn into flaky failures.
settings.register_profile("default", deadline=None)
settings.register_profile("thorough", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def _clean_environ(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Run each test without the user's LEONARDO_* settings or cache (doctor's findings)."""
    for name in list(os.environ):
        if name.startswith("LEONARDO_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def key_catcher() -> Iterator[KeyCatcher]:
    """Collect every DEBUG-and-up log record; fail the test if one carries the API key."""
    catcher = KeyCatcher()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(catcher)
    root.setLevel(logging.DEBUG)
    try:
        yield catcher
    finally:
        root.removeHandler(catcher)
        root.setLevel(previous)
    assert not catcher.leaks(), catcher.leaks()


@pytest.fixture
def leonardo_simulator_config() -> SimulatorConfig:
    """The shipped fixture's simulator, for every test unless its module or marker says
    otherwise: the canary key, jobs of a tenth of a second and no running limit."""
    return sim_config()


@pytest.fixture
def traffic() -> Traffic:
    """A recorder of the client's HTTP exchanges."""
    return Traffic()


@pytest.fixture
async def client(
    sim: Simulator, traffic: Traffic, key_catcher: KeyCatcher
) -> AsyncIterator[LeonardoClient]:
    """A client on the simulator with fast polls and retries, its traffic recorded."""
    async with (
        aiohttp.ClientSession(trace_configs=[traffic.trace_config()]) as session,
        LeonardoClient(
            KEY,
            base_url=sim.base_url,
            limits=NO_LIMITS,
            poll_schedule=FAST,
            retry=QUICK_RETRY,
            listing_lag=QUICK_LAG,
            session=session,
        ) as leo,
    ):
        yield leo


@pytest.fixture
def sim(leonardo_simulator: Simulator) -> Simulator:
    """The shipped fixture's simulator, by a shorter name; LEONARDO_API_KEY and
    LEONARDO_BASE_URL point at it.

    A module sets its simulator with a ``leonardo_simulator_config`` fixture of its own, a
    test with ``@pytest.mark.leonardo_simulator(...)``; a test that needs another simulator,
    or one started or stopped mid-test, takes ``leonardo_simulator_factory``.
    """
    return leonardo_simulator


@pytest.fixture
def shared() -> Iterator[RedisLimits]:
    """Where the clients share the key's limits: the test server, a namespace of its own."""
    url = redis_or_skip()
    namespace = unique_namespace()
    try:
        yield RedisLimits(url, namespace=namespace)
    finally:
        delete_namespace(url, namespace)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder with a start frame, start.png."""
    (tmp_path / "start.png").write_bytes(png_bytes())
    return tmp_path
