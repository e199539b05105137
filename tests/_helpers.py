"""What the client and tracker tests share: the canary key, fast settings, traffic watching.

:class:`Traffic` observes the client's real HTTP through aiohttp's tracing hooks (no
mocking): it records what was sent where and with which headers, and can change the
simulator's knobs after a given response, so that a fault hits exactly once.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from types import SimpleNamespace
from typing import Any

import aiohttp
import anyio
import attrs
import pytest

from leonardo_async import LeonardoClient, Limits, MockTransport, PollSchedule, RetryPolicy
from leonardo_async.simulator import JobDurations, Simulator, SimulatorConfig, config_from_mapping

#: A distinctive API key: it must never show up in a log, a repr or an exception.
KEY = "sk-CANARY-7e1f0b9c4d2a-do-not-leak"

#: Scaled-down poll schedule for jobs that take a fraction of a second.
FAST = PollSchedule(initial=0.05, max_interval=0.2)
#: Quick retries, so tests that exhaust them stay fast.
QUICK_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)
#: The listing-lag window of test clients: the simulator lists new jobs at once.
QUICK_LAG = 0.05
#: No client-side pacing: the tests are about behaviour, not about the documented limits.
NO_LIMITS = Limits.off()
#: Generous bound on any wait in a test (slow machines), never a timing assertion.
DEADLINE = 30.0


def sim_config(**changes: Any) -> SimulatorConfig:
    """A simulator config with the canary key, short jobs and no running limit.

    ``changes`` are knobs as :meth:`Simulator.configure` takes them (nested ones merge).
    """
    base = SimulatorConfig(api_key=KEY, durations=JobDurations.fixed(0.1), max_running=None, seed=7)
    return config_from_mapping(changes, base=base)


def assert_no_key(value: object) -> None:
    """Fail if the canary key appears in ``value``'s str, repr, or exception chain."""
    seen: set[int] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        for text in (str(item), repr(item)):
            assert KEY not in text, f"API key leaked in {type(item).__name__}: {text}"
        if isinstance(item, BaseException):
            formatted = "".join(traceback.format_exception_only(type(item), item))
            assert KEY not in formatted
            stack.extend(x for x in (item.__cause__, item.__context__) if x is not None)
            stack.extend(vars(item).values())
            stack.extend(getattr(item, "exceptions", ()))  # exception groups


@contextmanager
def raises_clean(kind: type[BaseException], match: str | None = None) -> Iterator[Any]:
    """Like :func:`pytest.raises`, and also check the error does not carry the key."""
    with pytest.raises(kind, match=match) as info:
        yield info
    assert_no_key(info.value)


async def eventually(probe: Callable[[], Any | Awaitable[Any]], deadline: float = DEADLINE) -> Any:
    """Call ``probe`` until it returns something truthy; fail after ``deadline`` seconds."""
    with anyio.fail_after(deadline):
        while True:
            result = probe()
            if isinstance(result, Awaitable):
                result = await result
            if result:
                return result
            await anyio.sleep(0.01)


@attrs.define
class Exchange:
    """One request the client sent, and what came back (if anything did)."""

    method: str
    url: str
    headers: dict[str, str]
    sent_at: float
    status: int | None = None
    answered_at: float | None = None


Action = Callable[[Exchange], None]


class Traffic:
    """Records the client's HTTP exchanges and runs actions after chosen responses."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        self._rules: list[tuple[Callable[[Exchange], bool], Action, list[int]]] = []

    def after(self, match: Callable[[Exchange], bool], action: Action, times: int = 1) -> None:
        """Run ``action`` after each of the next ``times`` responses that ``match``."""
        self._rules.append((match, action, [times]))

    def trace_config(self) -> aiohttp.TraceConfig:
        """The aiohttp tracing hooks that feed this recorder."""
        config = aiohttp.TraceConfig()
        config.on_request_start.append(self._on_start)
        config.on_request_end.append(self._on_end)
        return config

    async def _on_start(self, _: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any) -> None:
        exchange = Exchange(
            params.method,
            str(params.url),
            {k.lower(): v for k, v in params.headers.items()},
            anyio.current_time(),
        )
        ctx.exchange = exchange
        self.exchanges.append(exchange)

    async def _on_end(self, _: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any) -> None:
        exchange: Exchange = ctx.exchange
        exchange.status = params.response.status
        exchange.answered_at = anyio.current_time()
        for match, action, left in self._rules:
            if left[0] > 0 and match(exchange):
                left[0] -= 1
                action(exchange)

    def to(self, fragment: str, method: str | None = None) -> list[Exchange]:
        """The exchanges whose URL contains ``fragment`` (and of ``method``, if given)."""
        return [
            e
            for e in self.exchanges
            if fragment in e.url and (method is None or e.method == method)
        ]


def route(
    fragment: str, method: str = "GET", status: int | None = None
) -> Callable[[Exchange], bool]:
    """A matcher for :meth:`Traffic.after`: URL fragment, method, and optionally status."""

    def match(exchange: Exchange) -> bool:
        return (
            fragment in exchange.url
            and exchange.method == method
            and (status is None or exchange.status == status)
        )

    return match


def reconfigure(sim: Simulator, **changes: Any) -> Action:
    """An action for :meth:`Traffic.after` that changes the simulator's knobs."""

    def action(_: Exchange) -> None:
        sim.configure(**changes)

    return action


def requests_to(sim: Simulator, route_name: str) -> int:
    """How many requests the simulator saw on an API route (``"GET /generations/{id}"``)."""
    return sim.statistics().requests.get(route_name, 0)


def total_requests(sim: Simulator) -> int:
    """Every request the simulator saw, API and storage."""
    stats = sim.statistics()
    return sum(stats.requests.values()) + sum(stats.storage_requests.values())


class KeyCatcher(logging.Handler):
    """Collects every log record, to check that none of them carries the key."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def leaks(self) -> list[str]:
        """Messages (with their arguments) that contain the key."""
        found = []
        for record in self.records:
            text = record.getMessage() + repr(record.args) + str(record.exc_info or "")
            if record.exc_info and record.exc_info[1] is not None:
                text += "".join(traceback.format_exception(*record.exc_info))
            if KEY in text:
                found.append(text)
        return found


def quick_settings(**options: Any) -> dict[str, Any]:
    """A test client's settings: fast polls and retries, a short listing-lag window and
    no client-side pacing, unless ``options`` say otherwise."""
    return {
        "limits": NO_LIMITS,
        "poll_schedule": FAST,
        "retry": QUICK_RETRY,
        "listing_lag": QUICK_LAG,
        **options,
    }


#: The API root of a client over :class:`MockTransport` (nothing listens there).
MOCK_BASE = "https://api.test/v1"


def mock_client(handler: Callable[..., Any], **options: Any) -> LeonardoClient:
    """A client whose every request goes to ``handler`` over :class:`MockTransport`,
    with :func:`quick_settings` unless ``options`` say otherwise."""
    settings = quick_settings(**{"base_url": MOCK_BASE, **options})
    return LeonardoClient(KEY, transport=MockTransport(handler), **settings)


@asynccontextmanager
async def make_client(
    sim: Simulator, traffic: Traffic | None = None, **options: Any
) -> AsyncIterator[LeonardoClient]:
    """A client on ``sim`` (with a traced session when ``traffic`` is given)."""
    api_key = options.pop("api_key", KEY)
    settings = quick_settings(**{"base_url": sim.base_url, **options})
    if traffic is None:
        async with LeonardoClient(api_key, **settings) as client:
            yield client
        return
    async with (
        aiohttp.ClientSession(trace_configs=[traffic.trace_config()]) as session,
        LeonardoClient(api_key, session=session, **settings) as client,
    ):
        yield client
