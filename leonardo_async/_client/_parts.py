"""The parts one API key needs, each made with what it depends on: the composition root.

:func:`build` says which part gets what, and why in that order:

1. the **limiter** first, since the connection applies it before every request. With
   ``redis=`` it shares the key's limits with every client on that Redis, and is opened
   (connected) before the connection;
2. the **connection** (the key's HTTP) paced by that limiter; every other part talks
   through it;
3. the **owner** (the key's account from ``/me``, asked once), which needs only the
   connection;
4. the **transfers** (uploads, downloads), which need only the connection;
5. the **evidence** of what our own jobs have shown of the listing and the server (its
   lag, its clock, whether it keeps seeds), made before the listing that feeds it;
6. the **listing**, which reads through the connection the owner's generations (its user
   id) and tells the evidence of every page and generation it reads;
7. the **reconciler**, which searches the listing for lost submits, weighing the evidence;
8. the **endpoints**, which read through the connection and the listing and teach the
   evidence too;
9. with ``redis=``, the **fan-in**: it passes webhook callbacks and the fleet's listing
   rounds between this client's tracker and every other client's of the key, through the
   shared limits' Redis;
10. the **tracker**, which looks at jobs through the endpoints (and, with a fan-in, the
    fleet's rounds); each job's end frees its in-flight slot (``on_end``, the limiter's),
    and a job that vanished is no longer waited for in the listing (``on_vanished``, the
    evidence's);
11. the **submitter**, since a submit meets all of them: the connection sends it, the
    limiter holds its slot (an ``"account"`` running limit being the owner's slots, which
    the submitter hands the limiter with each slot it takes), the reconciler finds it
    when its answer is lost, and the tracker watches the job until its end frees that
    slot.

Every part is given what it needs when it is made, and nothing is wired afterwards.
:class:`~._client.LeonardoClient` calls :func:`build` and keeps the parts; nothing else
makes them. Those that hold resources for as long as the client is open (the limiter's
Redis, the connection's session, the fan-in's subscription, the tracker's task group) are
opened by :meth:`Parts.open` in that order and closed by :meth:`Parts.close` in reverse.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import attrs

from .._errors import ClientStateError
from .._limits import KeyLimiter, Limits, RedisLimits, SharedKey
from .._listing import Evidence, Listing, Reconciler
from .._retry import RetryPolicy
from .._schedule import PollSchedule
from .._tracking import CallbackFanIn, JobTracker
from .._transport import Connection, KeyOwner, ServerClock, Timeouts, Transfers, Transport
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
    owner: KeyOwner
    transfers: Transfers
    evidence: Evidence
    listing: Listing
    reconciler: Reconciler
    endpoints: Endpoints
    tracker: JobTracker
    submitter: Submitter
    fanin: CallbackFanIn | None
    _opened: AsyncExitStack | None = attrs.field(
        default=None, init=False, on_setattr=attrs.setters.NO_OP
    )

    async def open(self) -> None:
        """Open the limiter (its Redis), the connection's session, the fan-in, whose news
        the tracker hears, then the tracker's task group, which polls through the
        connection (the client's ``__aenter__``)."""
        if self._opened is not None:
            # Refused before anything changes: a second tracker task group would be
            # opened inside the caller's scopes and break them when either block ends.
            raise ClientStateError("the client is already open: enter it once")
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(self.limiter)  # connects to Redis, if shared
            await stack.enter_async_context(self.connection)
            if self.fanin is not None:  # before the tracker, which hears its news
                await stack.enter_async_context(self.fanin)
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
    redis: RedisLimits | None,
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

    shared = None if redis is None else SharedKey(redis, key, limits)
    limiter = KeyLimiter(limits, shared=shared)
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
    owner = KeyOwner(connection)
    transfers = Transfers(connection)
    evidence = Evidence(
        listing_lag=listing_lag, listing_shows_videos=listing_shows_videos, clock=clock
    )
    listing = Listing(
        connection, owner.user_id, on_generation=evidence.listed, on_page=evidence.paged
    )
    reconciler = Reconciler(
        listing,
        submit_url=connection.base_url + SUBMIT_PATH,
        auto_seed=auto_seed,
        evidence=evidence,
    )
    endpoints = Endpoints(connection, listing, evidence)
    fanin = None if shared is None else CallbackFanIn(shared)
    tracker = JobTracker(
        endpoints,
        schedule=poll_schedule,
        batched=batched_status,
        polls_in_flight=polls_in_flight,
        on_end=limiter.ended,
        on_vanished=evidence.vanished,
        fleet=fanin,
    )
    submitter = Submitter(connection, limiter, owner, reconciler, tracker)
    return Parts(
        limiter,
        connection,
        owner,
        transfers,
        evidence,
        listing,
        reconciler,
        endpoints,
        tracker,
        submitter,
        fanin,
    )
