"""The :class:`Simulator`: two aiohttp sites on loopback around one shared :class:`Core`.

The API site speaks Leonardo's REST format under ``/api/rest/v1`` (plus the admin API); the
storage site, on another port and so another origin, takes presigned uploads and serves the
CDN. :meth:`Simulator.restart` closes both listening sockets and opens them again on the same
ports with the state kept, which is what a client sees when the real service restarts in the
middle of a batch.
"""

from __future__ import annotations

import asyncio
import logging
from email.utils import format_datetime
from types import TracebackType
from typing import Any, NoReturn

import anyio
import attrs
from aiohttp import web

from ._admin import add_admin_routes, generation_records
from ._api import add_api_routes
from ._config import SimulatorConfig, config_from_mapping
from ._core import Core
from ._pipeline import API_PREFIX, CORE
from ._state import GenerationRecord
from ._stats import SimulatorStats
from ._storage import add_storage_routes
from ._webhook import WebhookDispatcher

__all__ = ["Simulator", "serve"]

logger = logging.getLogger("leonardo_async.simulator")

#: Seconds in-flight handlers (a slow fault, say) get when the servers stop.
_SHUTDOWN_TIMEOUT = 0.5


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - a wildcard bind is reached via loopback
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


async def _server_date(request: web.Request, response: web.StreamResponse) -> None:
    """Send ``Date`` from the server's own clock when ``clock_offset`` moves it."""
    core = request.app[CORE]
    if core.config.clock_offset:
        response.headers["Date"] = format_datetime(core.wall(), usegmt=True)


class Simulator:
    """A local stand-in for Leonardo's API, its upload storage and its CDN.

    Use it as an async context manager; inside, :attr:`base_url` and :attr:`api_key` are what
    a client needs::

        async with Simulator(SimulatorConfig(failure_rate=0.1)) as sim:
            client = LeonardoClient(sim.api_key, base_url=sim.base_url)

    :param config: the knobs; the defaults if ``None``.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self._core = Core(config or SimulatorConfig())
        self._webhooks = WebhookDispatcher(self._core)
        self._core.on_created = self._webhooks.schedule
        self._runners: list[web.AppRunner] = []
        self._api_port = self._core.config.api_port
        self._storage_port = self._core.config.storage_port
        self._started = False

    # -- life cycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Bind both sites and start the webhook timer.

        :raises RuntimeError: if already started.
        """
        if self._started:
            raise RuntimeError("the simulator is already running")
        await self._webhooks.start()
        try:
            await self._open_sites()
        except BaseException:
            await self._webhooks.aclose()
            raise
        self._started = True
        logger.info("Leonardo simulator API at %s, storage at %s", self.base_url, self.storage_url)

    async def aclose(self) -> None:
        """Stop both sites and the webhook timer. The state is dropped with the object."""
        if not self._started:
            return
        self._started = False
        # Shielded: when a cancelled task leaves ``async with`` (anyio cancellation is
        # level-triggered), the sockets must still be closed.
        with anyio.CancelScope(shield=True):
            await self._close_sites()
            await self._webhooks.aclose()

    async def restart(self) -> None:
        """Close both sites and reopen them on the same ports, keeping all state.

        While they are down, connections are refused; open connections are closed.

        :raises RuntimeError: if the simulator is not running.
        """
        if not self._started:
            raise RuntimeError("the simulator is not running")
        await self._close_sites()
        await self._open_sites()
        logger.info("Leonardo simulator restarted at %s", self.base_url)

    async def _open_sites(self) -> None:
        host = self._core.config.host
        api = web.Application()
        api[CORE] = self._core
        api.on_response_prepare.append(_server_date)
        add_api_routes(api)
        add_admin_routes(api)
        storage = web.Application()
        storage[CORE] = self._core
        storage.on_response_prepare.append(_server_date)
        add_storage_routes(storage)
        self._api_port = await self._open(api, host, self._api_port)
        self._storage_port = await self._open(storage, host, self._storage_port)
        self._core.api_origin = f"http://{_url_host(host)}:{self._api_port}"
        self._core.storage_origin = f"http://{_url_host(host)}:{self._storage_port}"

    async def _open(self, app: web.Application, host: str, port: int) -> int:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await self._close_sites()
            raise
        bound: int = runner.addresses[0][1]
        return bound

    async def _close_sites(self) -> None:
        runners, self._runners = self._runners, []
        for runner in runners:
            handlers = [] if runner.server is None else runner.server.connections
            await runner.cleanup()
            # A connection whose handler outlived the shutdown timeout (a slow fault, a
            # keep-alive mid-request) is left open by the cleanup: drop it, as a server
            # going down does, rather than leave it to the garbage collector.
            for handler in handlers:
                transport = handler.transport
                if transport is not None and not transport.is_closing():
                    transport.abort()

    # -- what tests read -----------------------------------------------------------------

    @property
    def config(self) -> SimulatorConfig:
        """Return the knobs in force."""
        return self._core.config

    @property
    def base_url(self) -> str:
        """Return the API base URL, what ``LEONARDO_BASE_URL`` should be set to."""
        return f"{self._core.api_origin}{API_PREFIX}"

    @property
    def admin_url(self) -> str:
        """Return the admin API's base URL (``.../_sim``)."""
        return f"{self._core.api_origin}/_sim"

    @property
    def storage_url(self) -> str:
        """Return the storage host's origin (uploads and CDN)."""
        return self._core.storage_origin

    @property
    def api_port(self) -> int:
        """Return the API port (bound once started)."""
        return self._api_port

    @property
    def storage_port(self) -> int:
        """Return the storage port (bound once started)."""
        return self._storage_port

    @property
    def api_key(self) -> str:
        """Return the accepted API key."""
        return self._core.config.api_key

    @property
    def user_id(self) -> str:
        """Return the simulated user's id."""
        return self._core.config.user_id

    @property
    def generations(self) -> tuple[GenerationRecord, ...]:
        """Return every stored generation (deleted ones flagged), oldest first."""
        return generation_records(self._core)

    def generation(self, generation_id: str) -> GenerationRecord | None:
        """Return the stored generation *generation_id*, or ``None``."""
        row = self._core.store.generations.get(generation_id)
        return None if row is None else row.record(self._core.now(), self._core.cdn_base)

    def statistics(self) -> SimulatorStats:
        """Return a snapshot of the counters."""
        core = self._core
        return core.stats.snapshot(core.store.running_total(core.now()))

    def reset_stats(self) -> None:
        """Zero the counters (generations, balances and limits stay)."""
        self._core.stats.reset()

    def configure(self, **changes: Any) -> SimulatorConfig:
        """Change knobs at run time and return the new config.

        Nested knobs accept their attrs object or a mapping that merges into the current
        value: ``sim.configure(faults={"slow_rate": 0.5})`` keeps the other fault knobs.
        Ports and host only matter at start. Setting ``api_subscription_tokens`` or
        ``api_paid_tokens`` also sets the current balance.

        :raises ValueError: naming the bad knob.
        """
        config = config_from_mapping(changes, base=self._core.config)
        self._core.configure(config)
        return config

    def video_bytes(self, generation_id: str) -> bytes:
        """Return the exact MP4 bytes the CDN serves for *generation_id*.

        :raises KeyError: for an id the simulator never made.
        """
        return self._core.video_bytes(self._core.store.generations[generation_id])


async def serve(
    config: SimulatorConfig | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    storage_port: int | None = None,
) -> NoReturn:
    """Run a simulator until cancelled (what ``leonardo-async sim`` calls).

    Prints nothing; logs the URLs at INFO on ``leonardo_async.simulator``. Arguments left
    ``None`` come from *config*.

    :param config: the knobs; the defaults if ``None``.
    :param host: interface to bind.
    :param port: the API port (``0`` for any free one).
    :param storage_port: the storage port (``0`` for any free one).
    """
    config = config or SimulatorConfig()
    changes: dict[str, Any] = {}
    if host is not None:
        changes["host"] = host
    if port is not None:
        changes["api_port"] = port
    if storage_port is not None:
        changes["storage_port"] = storage_port
    async with Simulator(attrs.evolve(config, **changes)):
        await asyncio.Event().wait()
    raise AssertionError("unreachable")  # pragma: no cover
