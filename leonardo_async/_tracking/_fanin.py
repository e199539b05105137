"""Webhook fan-in: a callback accepted on any replica reaches the tracker that waits on it.

Leonardo calls one webhook URL per key, so behind a load balancer the replica that
receives a job's callback is seldom the one waiting on the job. Every client that shares
its key's limits through Redis (``LeonardoClient(redis=...)``) also subscribes to the
key's callback channel there, named from the API key's hash as its other Redis names are.
What a client is told of a generation (``LeonardoClient.notify``, which a
``WebhookReceiver`` calls for each callback it accepts) is published on that channel,
and every other client hands what it hears to its own tracker: the path a callback that
landed on it would take. A generation a replica does not track is ignored there (a
finished one is kept as early news, as a local callback's is, in case its ``track()`` is
a moment behind).

Polling stays the backstop, so Redis slow or gone costs a callback its speed and nothing
else: publishing never waits (a bounded outbox, each publish within
``RedisLimits.timeout``, dropped while Redis is away); the subscription is
confirmed before the client is open, pinged when idle, and made again, with a growing
delay, until Redis is back; the outage is said once at WARNING, the return at INFO. What
was published while a replica was not subscribed is not replayed: its polls end those
jobs.

The same channel carries the fleet's listing rounds (:mod:`._lookout`): the worker whose
round it is publishes each page's generations, and every other worker takes those as
looks at its own jobs. :class:`CallbackFanIn` claims those rounds in Redis too, so it is
the tracker's :class:`~._lookout.Fleet`. What it hears goes to the tracker through
:attr:`CallbackFanIn.news` (a bounded stream: past it, news is dropped and polls serve).

Whoever can publish on that Redis can end jobs on every replica, as whoever holds the
callback key can through a receiver: the Redis is trusted as far as the callback key.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from typing import TYPE_CHECKING, Any, Final

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .. import _wire as wire
from .._errors import BadJSONError, ClientStateError, ResponseShapeError
from .._limits import SharedKey, redis_failures
from ..models import Generation

if TYPE_CHECKING:
    from redis.asyncio.client import PubSub

__all__ = ["CallbackFanIn"]

logger = logging.getLogger("leonardo_async")

#: Callbacks waiting to be published; past it they are dropped (polls end those jobs).
OUTBOX: Final = 1024
#: Seconds before the first attempt to subscribe again, doubled up to the second.
RESUBSCRIBE: Final = (0.1, 5.0)
_SOURCE: Final = "a webhook callback passed on through Redis"
_ROUND: Final = "a listing round passed on through Redis"
#: What the tracker hears: ``(True, generation)`` a sighting, ``(False, ...)`` a callback.
News = tuple[bool, Generation]


class CallbackFanIn:
    """One client's part of the webhook fan-in: its subscription and its outbox.

    Use it with ``async with`` inside the :class:`SharedKey`'s, whose Redis it uses.

    :param shared: the key's shared limits (their Redis, timeouts and key hash)
    """

    def __init__(self, shared: SharedKey) -> None:
        self._shared = shared
        self._news: tuple[MemoryObjectSendStream[News], MemoryObjectReceiveStream[News]] | None
        self._news = None  # while open
        #: The Redis channel of the key's callbacks (named from its hash).
        self.channel = f"{shared.prefix}:callbacks"
        self._sender = uuid.uuid4().hex  # our own messages come back: not heard twice
        self._outbox: MemoryObjectSendStream[bytes] | None = None  # while open
        self._pubsub: PubSub | None = None
        self._group: TaskGroup | None = None
        self.available = True
        self._warned = False

    @property
    def news(self) -> MemoryObjectReceiveStream[News]:
        """What other workers said, for the tracker, while open: ``(True, generation)``
        a sighting from a listing round, ``(False, generation)`` a webhook callback."""
        if self._news is None:
            raise ClientStateError("the fan-in is not open")
        return self._news[1]

    async def __aenter__(self) -> CallbackFanIn:
        self._news = anyio.create_memory_object_stream[News](OUTBOX)
        try:
            await self._subscribe()
        except redis_failures() as exc:  # away from the start: the listener retries
            self._away(exc)
            await self._unsubscribe()
        self._outbox, outbox = anyio.create_memory_object_stream[bytes](OUTBOX)
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        self._group.start_soon(self._listen)
        self._group.start_soon(self._send_all, outbox)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        group, self._group = self._group, None
        if group is not None:
            group.cancel_scope.cancel()
            await group.__aexit__(None, None, None)
        outbox, self._outbox = self._outbox, None
        if outbox is not None:
            outbox.close()
        news, self._news = self._news, None
        if news is not None:
            for stream in news:
                stream.close()
        with anyio.CancelScope(shield=True):
            await self._unsubscribe()

    # -- publishing -----------------------------------------------------------------------

    def publish(self, generation: Generation) -> None:
        """Pass ``generation`` on to every other client of the key (never waits)."""
        if self._outbox is None:
            logger.debug("callback for %s not passed on: the client is not open", generation.id)
            return
        message = {"from": self._sender, "generation": wire.dumps_generation(generation)}
        try:
            self._outbox.send_nowait(json.dumps(message).encode())
        except anyio.WouldBlock:
            logger.debug("callback for %s not passed on: %d are waiting", generation.id, OUTBOX)

    def publish_page(self, generations: list[Generation]) -> None:
        """Pass a listing round's page to every other worker of the key (never waits)."""
        if self._outbox is None or not generations:
            return
        seen = [wire.dumps_generation(generation) for generation in generations]
        message = {"from": self._sender, "seen": seen}
        try:
            self._outbox.send_nowait(json.dumps(message).encode())
        except anyio.WouldBlock:
            logger.debug("a listing page not passed on: %d messages are waiting", OUTBOX)

    async def claim_round(self, fewest: int, seconds: float) -> bool | None:
        """Claim the fleet's listing round (see :meth:`SharedKey.claim_round`)."""
        return await self._shared.claim_round(fewest, seconds)

    async def _send_all(self, outbox: MemoryObjectReceiveStream[bytes]) -> None:
        async with outbox:
            async for message in outbox:
                try:
                    with anyio.fail_after(self._shared.config.timeout):
                        await self._shared.redis.publish(self.channel, message)
                except Exception as exc:  # as for the subscription
                    self._away(exc)  # dropped: the waiting replica's polls end that job
                else:
                    self._back()

    # -- listening ------------------------------------------------------------------------

    async def _subscribe(self) -> None:
        """Subscribe, and wait for Redis to confirm it (a callback published after this
        returns is heard)."""
        timeout = self._shared.config.timeout
        self._pubsub = pubsub = self._shared.redis.pubsub()
        with anyio.fail_after(timeout):
            await pubsub.subscribe(self.channel)
            while True:
                message = await pubsub.get_message(timeout=timeout)
                if message is not None and message["type"] == "subscribe":
                    break
        self._back()

    async def _unsubscribe(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception), anyio.move_on_after(1.0):
                await pubsub.aclose()

    async def _listen(self) -> None:
        delay, longest = RESUBSCRIBE
        while True:
            try:
                if self._pubsub is None:
                    await self._subscribe()
                    delay = RESUBSCRIBE[0]
                await self._hear_all(self._pubsub)
            except Exception as exc:  # whatever fails here costs a callback its speed, no more
                self._away(exc)
                with anyio.CancelScope(shield=True):
                    await self._unsubscribe()
                await anyio.sleep(delay)
                delay = min(2 * delay, longest)

    async def _hear_all(self, pubsub: Any) -> None:
        """Hand each message to the tracker until the subscription fails; a ping goes out
        when it has been idle a third of the lease time, and no answer by the next third
        counts as a failure (a connection Redis no longer knows says nothing)."""
        config = self._shared.config
        idle = config.lease / 3
        pinged = False
        while True:
            with anyio.fail_after(idle + config.timeout):
                message = await pubsub.get_message(timeout=idle)
            if message is None:
                if pinged:
                    raise TimeoutError("no answer to a ping")
                with anyio.fail_after(config.timeout):
                    await pubsub.ping()
                pinged = True
                continue
            pinged = False
            if message["type"] == "message":
                self._hear(message["data"])
            elif message["type"] == "pong":
                self._back()

    def _hear(self, raw: bytes) -> None:
        try:
            data = wire.loads(raw)
            if not isinstance(data, dict):
                raise BadJSONError("not a JSON object")
            if data.get("from") == self._sender:
                return
            if "seen" in data:
                seen = data["seen"]
                if not isinstance(seen, list):
                    raise BadJSONError("'seen' is not a list")
                news = [(True, wire.structure(item, Generation, _ROUND)) for item in seen]
            else:
                news = [(False, wire.structure(data.get("generation"), Generation, _SOURCE))]
        except (BadJSONError, ResponseShapeError) as exc:
            logger.debug("ignoring an unreadable message on the callback channel: %s", exc)
            return
        for item in news:
            if self._news is None:
                return
            try:
                self._news[0].send_nowait(item)
            except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
                logger.debug("news of %s dropped: the tracker is behind", item[1].id)
                return

    # -- Redis away and back ----------------------------------------------------------------

    def _away(self, exc: BaseException) -> None:
        self.available = False
        if not self._warned:
            self._warned = True
            logger.warning(
                "Redis at %s unreachable (%s): webhook callbacks are not passed between "
                "replicas until it is back; polling ends their jobs meanwhile",
                self._shared.config.shown_url,
                type(exc).__name__,
            )

    def _back(self) -> None:
        if not self.available:
            self.available = True
            self._warned = False
            logger.info("Redis is back: webhook callbacks are passed between replicas again")
