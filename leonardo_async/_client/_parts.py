"""The parts one API key needs, each made with what it depends on: the composition root.

:func:`build` says which part gets what, and why in that order:

1. the **limiter** first, since the connection applies it before every request; its
   ``"account"`` running bound asks ``/me`` through the endpoints, made last;
2. the **connection** (the key's HTTP) paced by that limiter; every other part talks
   through it;
3. the **transfers** (uploads, downloads) and the **listing**, which need only the
   connection (the listing asks ``/me`` for the user id through the endpoints too);
4. the **reconciler**, which searches the listing for lost submits; the listing tells it
   of each generation it reads (``on_generation``), which is how seeds are learnt;
5. the **endpoints**, which read through the connection and the listing and teach the
   reconciler too;
6. the **tracker**, which looks at jobs through the endpoints; each job's end frees its
   in-flight slot (``on_end``);
7. the **submitter** last, since a submit meets all of them: the connection sends it, the
   limiter holds its slot, the reconciler finds it when its answer is lost, and the
   tracker watches the job until its end frees that slot.

The limiter and the listing need ``/me`` from endpoints that need the connection the
limiter paces: the cycle is broken by giving them functions that reach the endpoints
when first called, after :func:`build` has returned. :class:`~._client.LeonardoClient`
calls :func:`build` and keeps the parts; nothing else makes them. Two hold resources
for as long as the client is open: the connection (its session) and the tracker (its
task group); :meth:`Parts.open` opens them in that order and :meth:`Parts.close` closes
them in reverse.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import attrs

from .._errors import ClientStateError
from .._limits import KeyLimiter, Limits
from .._listing import Listing, Reconciler
from .._retry import RetryPolicy
from .._schedule import PollSchedule
from .._tracking import JobTracker
from .._transport import Connection, ServerClock, Timeouts, Transfers, Transport
from ._endpoints import Endpoints
from ._submitter import SUBMIT_PATH, Submitter

__all__ = ["Parts", "build"]


@attrs.define(on_setattr=attrs.setters.frozen)
class Parts:
    """The parts of one API key's client (see the module docstring for who gets what).

    The parts are fixed once made; only whether they are open changes.
    """

    limiter: KeyLimiter
    connection: Connection
    transfers: Transfers
    listing: Listing
    reconciler: Reconciler
    endpoints: Endpoints
    tracker: JobTracker
    submitter: Submitter
    _opened: AsyncExitStack | None = attrs.field(
        default=None, init=False, on_setattr=attrs.setters.NO_OP
    )

    async def open(self) -> None:
        """Open the connection's session, then the tracker's task group, which polls
        through it (the client's ``__aenter__``)."""
        if self._opened is not None:
            # Refused before anything changes: a second tracker task group would be
            # opened inside the caller's scopes and break them when either block ends.
            raise ClientStateError("the client is already open: enter it once")
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(self.connection)
            await stack.enter_async_context(self.tracker)
            self._opened = stack.pop_all()

    async def close(self, *exc_info: Any) -> None:
        """Stop tracking, then close the session; closing a closed client does nothing."""
        stack, self._opened = self._opened, None
        if stack is not None:
            await stack.__aexit__(*exc_info)


def build(
    key: str,
    base_url: str,
    *,
    limits: Limits,
    poll_schedule: PollSchedule,
    retry: RetryPolicy,
    timeouts: Timeouts,
    batched_status: bool,
    auto_seed: bool,
    listing_lag: float,
    listing_shows_videos: bool | None,
    polls_in_flight: int,
    transport: Transport | None,
    session: aiohttp.ClientSession | None,
    max_connections: int,
) -> Parts:
    """Make the parts of one key's client, each with what it depends on, in that order."""

    async def account_slots() -> int | None:  # asked on the first submit, not here
        return await endpoints.account_slots()

    async def user_id() -> str:  # asked on the first listing page, not here
        return await endpoints.user_id()

    limiter = KeyLimiter(limits, account_slots=account_slots)
    clock = ServerClock()
    connection = Connection(
        key,
        base_url,
        limiter=limiter,
        retry=retry,
        timeouts=timeouts,
        transport=transport,
        session=session,
        max_connections=max_connections,
        clock=clock,
    )
    transfers = Transfers(connection)
    listing = Listing(connection, user_id)
    reconciler = Reconciler(
        listing,
        submit_url=connection.base_url + SUBMIT_PATH,
        auto_seed=auto_seed,
        listing_lag=listing_lag,
        listing_shows_videos=listing_shows_videos,
        clock=clock,
    )
    listing.on_generation = reconciler.listed
    endpoints = Endpoints(connection, listing, reconciler)
    tracker = JobTracker(
        endpoints, schedule=poll_schedule, batched=batched_status, polls_in_flight=polls_in_flight
    )
    tracker.on_end = limiter.ended
    submitter = Submitter(connection, limiter, reconciler, tracker)
    return Parts(limiter, connection, transfers, listing, reconciler, endpoints, tracker, submitter)
