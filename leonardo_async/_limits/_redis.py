"""One key's limits shared through Redis by every process that uses the key.

Each process's :class:`~._key.KeyLimiter` keeps its own gates and slots; a
:class:`SharedKey` adds what the fleet must agree on, kept in Redis and decided there in
Lua, on the Redis server's clock (``TIME``), so workers with skewed clocks agree:

* **rates**: a GCRA token bucket per limit (requests, submits). A turn is booked in one
  round trip; a sender that had to wait looks once more for a pause before it leaves, and
  books again if it woke too late for its turn or the turn fell inside a pause (the
  server counts arrivals: turns sent late or all at a pause's end bunch together);
* **slots**: a sorted set of leases, each scored by when it expires. A lease is taken
  before a submit and held until the job ends; the holder renews it every third of its
  lifetime, so a worker that dies (``kill -9``) frees its slots within one lease time.
  The fleet's bound is the key's slots plus one probe until someone learns whether the
  server queues past them, then the slots plus the queue allowance, or the slots alone.
  The server queues if it accepted more of the fleet's submits at once than it has slots:
  the leases whose submits were accepted are kept apart (a lease taken is not yet a job:
  its submit may still wait for its turn), so a probe that overtook earlier leases' submits
  and found a slot free proves nothing;
  While every slot is taken, one of a worker's waiters at a time looks for a free one
  (every :attr:`RedisLimits.poll` seconds, and at once when the worker gives one back);
* **the pause after a 429**: one worker refused, every worker waits;
* **what was learnt**: the key's slots from ``/me``, whether it queues, a rate or an
  in-flight bound lowered by refusals (each expiring as the local one is forgotten). A
  rate is learnt from the fleet's turns, which each bucket keeps for
  :attr:`Tuning.window`: the rate the fleet sent at when refused, not the refused
  worker's, which is only its part of what the server counts.

What cannot wait for Redis (a pause decided inside a 429's handling, a slot given back
when a job ends) is queued and sent by the keeper task, which also renews the leases and
says the worker is alive. Redis keys are named from a hash of the API key, never the key.

**Redis slow or gone.** Every call has a short timeout. Until a call succeeds again the
worker paces at its fair share: each rate divided by the workers last seen alive (never
fewer than :attr:`RedisLimits.workers`), and the in-flight bound split among them by
rank (``bound // W``, one more for the first ``bound % W``), so the fleet together stays
within the key's limits. With more workers than slots, some have a share of none and
submit nothing until Redis is back (their polls go on). The outage is said once at
WARNING; sharing resumes by itself, and the leases held meanwhile are renewed then.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import anyio
import attrs

from .._errors import ClientStateError, ValidationError
from .._validate import in_range
from ._config import AnyioClock, Clock, Limits, Tuning
from ._gate import RateGate

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["Lease", "RedisLimits", "SharedKey", "key_prefix", "redis_failures"]

logger = logging.getLogger("leonardo_async")

#: The two shared buckets; a concurrency refusal pauses submits only.
REQUESTS: Final = "requests"
SUBMITS: Final = "submits"

#: Seconds a learnt fact about the key (its slots, whether it queues) is kept.
FACTS_TTL: Final = 3600

#: A turn is the fleet's moment to send, and the server counts when requests arrive: a
#: sender woken later than this share of an interval past its turn would land among the
#: next turns' requests (a window that holds its limit then holds one more), so it books
#: again, up to :data:`REBOOKS` times for one request. A turn left unused only slows the
#: fleet by one.
LATE_TURN: Final = 0.5
REBOOKS: Final = 3

_SECONDS = in_range(0.01, 3600)

# KEYS: tat, pause, learnt rate, turns. ARGV: interval (s), tolerance (s), window (s).
# Returns {booked, wait}: booked 0 means a pause is in force (nothing booked). Each turn
# booked is kept for the window (scored by when it leaves), to measure the fleet's rate
# at a refusal.
_BUCKET: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if now < paused then return {0, tostring(paused - now)} end
local interval = tonumber(ARGV[1])
local learnt = tonumber(redis.call('GET', KEYS[3]) or '0')
if learnt > 0 and 1 / learnt > interval then interval = 1 / learnt end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local allowed = tat - tonumber(ARGV[2])
redis.call('SET', KEYS[1], tostring(tat + interval), 'PX',
  math.ceil((tat + interval - now) * 1000) + 1000)
local window = tonumber(ARGV[3])
redis.call('ZADD', KEYS[4], tat, string.format('%.6f', tat))
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - window)
redis.call('PEXPIRE', KEYS[4], math.ceil((tat - now + window) * 1000) + 1000)
if allowed > now then return {1, tostring(allowed - now)} end
return {1, '0'}
"""

# KEYS: pause. Returns the seconds of pause left.
_PAUSE_LEFT: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local paused = tonumber(redis.call('GET', KEYS[1]) or '0')
if now < paused then return tostring(paused - now) end
return '0'
"""

# KEYS: pause, tat. ARGV: seconds. Pauses every sender; turns booked past it still look.
_PAUSE: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local untl = now + tonumber(ARGV[1])
local paused = tonumber(redis.call('GET', KEYS[1]) or '0')
if untl > paused then
  redis.call('SET', KEYS[1], tostring(untl), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
  local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
  if tat < untl then redis.call('SET', KEYS[2], tostring(untl), 'PX',
    math.ceil(tonumber(ARGV[1]) * 1000) + 1000) end
end
return 1
"""

# The fleet's in-flight bound from the key's slots (ARGV[3]) and queue allowance
# (ARGV[4]), the queues fact (KEYS[2]) and a lowered bound (KEYS[3]).
_BOUND: Final = """
local slots = tonumber(ARGV[3])
local allowance = tonumber(ARGV[4])
local q = redis.call('GET', KEYS[2])
local bound
if q == '1' then bound = slots + allowance
elseif q == '0' or allowance == 0 then bound = slots
else bound = slots + 1 end
local lowered = tonumber(redis.call('GET', KEYS[3]) or '')
if lowered and lowered < bound then bound = lowered end
if bound < 1 then bound = 1 end
"""

_NOW_AND_EXPIRE: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
"""

# KEYS: leases, queues, lowered. ARGV: lease id, lease seconds, slots, allowance.
# Returns {granted, bound}.
_LEASE: Final = (
    _NOW_AND_EXPIRE
    + _BOUND
    + """
if redis.call('ZCARD', KEYS[1]) >= bound then return {0, bound} end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000) + 1000)
return {1, bound}
"""
)

# KEYS: accepted, queues. ARGV: lease seconds, slots, lease ids...
# The leases' submits were accepted. While the queues fact is unknown, more accepted
# leases at once than slots show the server queues. Returns the queues fact.
_ACCEPTED: Final = (
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local lease = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
for i = 3, #ARGV do redis.call('ZADD', KEYS[1], now + lease, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 1000) + 1000)
local q = redis.call('GET', KEYS[2])
if q == false and redis.call('ZCARD', KEYS[1]) > tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], '1', 'EX', """
    + str(FACTS_TTL)
    + """)
  q = '1'
end
return q or ''
"""
)

# KEYS: leases, accepted. ARGV: lease ids. The slots are given back.
_RELEASE: Final = """
redis.call('ZREM', KEYS[1], unpack(ARGV))
redis.call('ZREM', KEYS[2], unpack(ARGV))
return 1
"""

# KEYS: leases, round. ARGV: fewest jobs, worker, milliseconds.
# Returns -1 (too few of the fleet's jobs in flight for a round), 1 (the round is this
# worker's), 0 (another worker claimed the round within the milliseconds).
_ROUND: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if redis.call('ZCOUNT', KEYS[1], now, '+inf') < tonumber(ARGV[1]) then return -1 end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then return 1 end
return 0
"""

# KEYS: leases, queues, lowered. ARGV: -, -, slots, allowance, forget seconds.
# A concurrency refusal: the fleet's bound comes down to what it holds less the refused
# submit's own lease; past the slots with no queue known, the server does not queue.
_REFUSED: Final = (
    _NOW_AND_EXPIRE
    + _BOUND
    + """
local held = redis.call('ZCARD', KEYS[1])
local lowered = math.max(1, math.min(bound - 1, held - 1))
if redis.call('GET', KEYS[2]) == false and held > slots then
  redis.call('SET', KEYS[2], '0', 'EX', """
    + str(FACTS_TTL)
    + """)
end
redis.call('SET', KEYS[3], tostring(lowered), 'PX', math.ceil(tonumber(ARGV[5]) * 1000))
return lowered
"""
)

# KEYS: leases, workers, queues, accepted. ARGV: lease seconds, worker seconds, worker id,
# the count A of accepted leases, then the leases (the first A of them accepted).
# Renews this worker's leases (re-adding any that expired while Redis was away) and says
# it is alive; returns the workers alive, oldest id order, and the queues fact.
_KEEP: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local lease = tonumber(ARGV[1])
local accepted = tonumber(ARGV[4])
for i = 5, #ARGV do
  redis.call('ZADD', KEYS[1], now + lease, ARGV[i])
  if i < 5 + accepted then redis.call('ZADD', KEYS[4], now + lease, ARGV[i]) end
end
if #ARGV >= 5 then redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 1000) + 1000) end
if accepted > 0 then redis.call('PEXPIRE', KEYS[4], math.ceil(lease * 1000) + 1000) end
redis.call('ZADD', KEYS[2], now, ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[2], math.ceil(tonumber(ARGV[2]) * 1000) + 1000)
return {redis.call('ZRANGE', KEYS[2], 0, -1), redis.call('GET', KEYS[3]) or ''}
"""

# KEYS: turns, pause, learnt rate. ARGV: window (s), interval (s), settle, forget (s).
# A refusal charged to this rate: the fleet's rate when refused is its turns since the
# last pause ended (over at most the window, and at least a second, less the refused
# one), never above the pace; the bucket learns the lower of it (times settle) and what
# it knew, for forget seconds. No turn recorded: nothing to learn from.
_RATE_REFUSED: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local start = now - tonumber(ARGV[1])
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > start and paused <= now then start = paused end
local turns = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. start, now, 'WITHSCORES', 'LIMIT', 0, 1)
if #turns == 0 then return '' end
local count = redis.call('ZCOUNT', KEYS[1], '(' .. start, now)
local rate = math.max(1, count - 1) / math.max(1, now - tonumber(turns[2]))
local pace = 1 / tonumber(ARGV[2])
if rate > pace then rate = pace end
rate = rate * tonumber(ARGV[3])
local old = tonumber(redis.call('GET', KEYS[3]) or '')
if old ~= nil and old < rate then rate = old end
redis.call('SET', KEYS[3], tostring(rate), 'PX', math.ceil(tonumber(ARGV[4]) * 1000))
return tostring(rate)
"""


def key_prefix(namespace: str, api_key: str) -> str:
    """The prefix of every Redis key of ``api_key``: a hash, never the key itself."""
    digest = hashlib.sha256(b"leonardo-async key:" + api_key.encode()).hexdigest()[:32]
    return f"{namespace}:{digest}"


def _redacted(url: str) -> str:
    """``url`` without its password, for a log line."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    return f"{scheme}://…@{rest.rpartition('@')[2]}"


@attrs.frozen
class RedisLimits:
    """Share one key's limits through a Redis server (``LeonardoClient(redis=...)``).

    :param url: the server, as ``redis://host:port/db`` (``rediss://`` for TLS)
    :param namespace: prefix of every Redis key (the API key's hash follows it)
    :param lease: seconds an in-flight slot stays taken without its holder renewing it:
        how long a dead worker's slots stay lost (renewed every third of it)
    :param timeout: seconds any one Redis call may take before Redis counts as away
    :param workers: the fewest workers to divide the limits among while Redis is away
        (the workers last seen alive count when there were more)
    :param poll: seconds between two looks for a free slot when every slot is taken
    """

    url: str = attrs.field(validator=attrs.validators.instance_of(str))
    namespace: str = attrs.field(default="leonardo-async", validator=attrs.validators.min_len(1))
    lease: float = attrs.field(default=15.0, validator=_SECONDS)
    timeout: float = attrs.field(default=0.5, validator=_SECONDS)
    workers: int = attrs.field(default=1, validator=in_range(1, 100_000, integer=True))
    poll: float = attrs.field(default=0.1, validator=_SECONDS)

    def __attrs_post_init__(self) -> None:
        if not self.url.startswith(("redis://", "rediss://", "unix://")):
            raise ValidationError(
                "redis", _redacted(self.url), "a redis://, rediss:// or unix:// URL"
            )

    def __repr__(self) -> str:
        return f"RedisLimits(url={self.shown_url!r}, namespace={self.namespace!r})"

    @property
    def shown_url(self) -> str:
        """The URL without its password, for a log line."""
        return _redacted(self.url)


@attrs.define(eq=False)
class Lease:
    """One in-flight slot taken in Redis (or from the local share while Redis was away).

    :param id: its member name in the leases set
    :param accepted: its submit was accepted (a job holds it)
    """

    id: str
    accepted: bool = False


#: What a Redis call that failed or timed out raises here (Redis counts as away until
#: one succeeds); it never leaves this module.
_Unreachable = ConnectionError


class SharedKey:
    """The part of one key's limits that every worker on the same Redis shares.

    Use it with ``async with``: that connects and starts the keeper task.

    :param config: where and how to share
    :param api_key: the key whose limits these are (only its hash reaches Redis)
    :param limits: the key's limits (its two rates are the shared buckets', paced at
        :attr:`Tuning.fleet_pace` of them)

    :attr:`on_queues` is told when the fleet learns whether the server queues past the
    slots (the key limiter sets it).
    """

    def __init__(
        self,
        config: RedisLimits,
        api_key: str,
        limits: Limits,
        *,
        tuning: Tuning | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self._tuning = tuning if tuning is not None else Tuning()
        self._clock = clock if clock is not None else AnyioClock()
        self._rates = {
            REQUESTS: limits.requests_per_minute,
            SUBMITS: limits.submits_per_minute,
        }
        self.on_queues: Callable[[bool], None] | None = None
        #: The start of every Redis name of this key (a hash of it, never the key).
        self.prefix = prefix = key_prefix(config.namespace, api_key)
        self._keys = {
            name: f"{prefix}:{name}"
            for name in (
                "leases",
                "accepted",
                "workers",
                "queues",
                "bound",
                "slots",
                "round",
                *(f"{kind}:{part}" for kind in (REQUESTS, SUBMITS) for part in ("tat", "pause")),
                *(f"{kind}:{part}" for kind in (REQUESTS, SUBMITS) for part in ("learnt", "turns")),
            )
        }
        self.worker = uuid.uuid4().hex
        self._redis: Redis | None = None
        self._scripts: dict[str, Any] = {}
        self.available = True
        self._warned = False
        self._workers: list[str] = []
        self._held: dict[str, Lease] = {}
        self._releases: list[str] = []
        self._accepts: list[str] = []  # accepted, to tell Redis now (the queue unknown)
        self._pauses: dict[str, float] = {}  # bucket -> until, on our clock
        self._rate_refused: set[str] = set()  # buckets whose rate was refused
        self._refused = False
        self._queues_seen: bool | None = None
        self._bound = 1  # the fleet's bound as last seen
        self._lease_args: tuple[int, int] | None = None  # slots, allowance
        self._fallback: dict[str, RateGate] = {}
        self._fallback_workers = 0
        self._wake = anyio.Event()
        self._polling: anyio.Lock | None = None  # held by the one waiter asking Redis
        self._sleepers: set[anyio.CancelScope] = set()
        # Counts slots freed here: a waiter whose ask crossed a release sees it changed.
        self._freed = 0
        self._group: anyio.abc.TaskGroup | None = None

    # -- life ---------------------------------------------------------------------------

    async def __aenter__(self) -> SharedKey:
        try:
            import redis.asyncio as aioredis
        except ImportError as exc:  # pragma: no cover - the [redis] extra is missing
            raise ClientStateError(
                "sharing limits through Redis needs the redis extra: "
                "pip install 'leonardo-async[redis]'"
            ) from exc
        timeout = self.config.timeout
        self._redis = aioredis.Redis.from_url(
            self.config.url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry_on_timeout=False,
        )
        for name, text in (
            ("bucket", _BUCKET),
            ("pause_left", _PAUSE_LEFT),
            ("pause", _PAUSE),
            ("lease", _LEASE),
            ("refused", _REFUSED),
            ("keep", _KEEP),
            ("accepted", _ACCEPTED),
            ("release", _RELEASE),
            ("rate_refused", _RATE_REFUSED),
            ("round", _ROUND),
        ):
            self._scripts[name] = self._redis.register_script(text)
        with contextlib.suppress(_Unreachable):  # away from the start: our share until back
            await self._keep()
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        self._group.start_soon(self._keeper)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        group, self._group = self._group, None
        if group is not None:
            group.cancel_scope.cancel()
            await group.__aexit__(None, None, None)
        redis = self._redis
        if redis is None:
            return
        with anyio.CancelScope(shield=True):
            # Leases still held are of jobs that may still run on the server (or end on
            # another replica): they are left to expire, never freed early.
            try:
                await self._flush()
                await self._call(redis.zrem(self._keys["workers"], self.worker))
            except _Unreachable:
                pass
            await redis.aclose()
        self._redis = None

    async def _call(self, call: Awaitable[Any]) -> Any:
        """One Redis call within the timeout; a failure marks Redis away."""
        try:
            with anyio.fail_after(self.config.timeout):
                result = await call
        except redis_failures() as exc:
            self._away(exc)
            raise _Unreachable from exc
        if not self.available:
            self.available = True
            self._warned = False
            logger.info("Redis is back: the key's limits are shared again")
        return result

    def _away(self, exc: BaseException) -> None:
        self._rate_refused.clear()  # measured only at once: later, the turns are others'
        if self.available:
            self.available = False
            self._fallback = {}
        if not self._warned:
            self._warned = True
            logger.warning(
                "Redis at %s unreachable (%s): pacing at this worker's share "
                "(1/%d of each rate, %d of %d in-flight slots) until it is back",
                _redacted(self.config.url),
                type(exc).__name__,
                self.workers,
                self._share(self._bound),
                self._bound,
            )

    @property
    def workers(self) -> int:
        """The workers to divide the limits among: those last seen alive, at least
        :attr:`RedisLimits.workers`."""
        return max(self.config.workers, len(self._workers))

    def _share(self, bound: int) -> int:
        """This worker's part of ``bound`` slots while Redis is away (shares add up to
        ``bound``; with more workers than slots the later ranks get none)."""
        workers = self.workers
        rank = self._workers.index(self.worker) if self.worker in self._workers else 0
        return bound // workers + (1 if rank < bound % workers else 0)

    # -- the keeper -----------------------------------------------------------------------

    async def _keeper(self) -> None:
        interval = self.config.lease / 3
        while True:
            with anyio.move_on_after(interval):
                await self._wake.wait()
            self._wake = anyio.Event()
            try:
                await self._flush()
                await self._keep()
            except _Unreachable:
                pass

    def _nudge(self) -> None:
        self._wake.set()

    async def _keep(self) -> None:
        """Renew our leases, say we are alive, read whether the server queues."""
        keys = self._keys
        held = sorted(self._held.values(), key=lambda lease: not lease.accepted)
        workers, queues = await self._call(
            self._scripts["keep"](
                keys=[keys["leases"], keys["workers"], keys["queues"], keys["accepted"]],
                args=[
                    self.config.lease,
                    self.config.lease,
                    self.worker,
                    sum(lease.accepted for lease in held),
                    *(lease.id for lease in held),
                ],
            )
        )
        self._workers = sorted(w.decode() if isinstance(w, bytes) else str(w) for w in workers)
        self._saw_queues(queues)

    def _saw_queues(self, raw: object) -> None:
        value = raw.decode() if isinstance(raw, bytes) else str(raw)
        queues = {"1": True, "0": False}.get(value)
        if queues is not None and queues != self._queues_seen:
            self._queues_seen = queues
            if self.on_queues is not None:
                self.on_queues(queues)

    async def _flush(self) -> None:
        """Send what was decided where nothing could wait for Redis."""
        keys, scripts = self._keys, self._scripts
        # Before the pauses: a rate is measured since the previous pause ended.
        for bucket in sorted(self._rate_refused):
            await self._call(
                scripts["rate_refused"](
                    keys=[
                        keys[f"{bucket}:turns"],
                        keys[f"{bucket}:pause"],
                        keys[f"{bucket}:learnt"],
                    ],
                    args=[
                        self._tuning.window,
                        self._interval(bucket),
                        self._tuning.settle,
                        self._tuning.forget,
                    ],
                )
            )
            self._rate_refused.discard(bucket)
        # Before the releases: the refused submit's own lease still counts as held.
        if self._refused and self._lease_args is not None:
            slots, allowance = self._lease_args
            await self._call(
                scripts["refused"](
                    keys=[keys["leases"], keys["queues"], keys["bound"]],
                    args=["", "", slots, allowance, self._tuning.slots_forget],
                )
            )
            self._refused = False
        # Only the leases still held: counting one given back since would count a job
        # that ended as running (and could show a queue that is not there).
        self._accepts = [lease for lease in self._accepts if lease in self._held]
        if self._accepts and self._lease_args is not None:
            queues = await self._call(
                scripts["accepted"](
                    keys=[keys["accepted"], keys["queues"]],
                    args=[self.config.lease, self._lease_args[0], *self._accepts],
                )
            )
            self._accepts = []
            self._saw_queues(queues)
        if self._releases:
            await self._call(
                scripts["release"](keys=[keys["leases"], keys["accepted"]], args=self._releases)
            )
            self._releases = []
            self._slot_freed()
        now = self._clock.now()
        for bucket, until in list(self._pauses.items()):
            if until > now:
                await self._call(
                    scripts["pause"](
                        keys=[keys[f"{bucket}:pause"], keys[f"{bucket}:tat"]], args=[until - now]
                    )
                )
            del self._pauses[bucket]

    def _redis_client(self) -> Redis:
        if self._redis is None:
            raise _Unreachable("not connected")
        return self._redis

    @property
    def redis(self) -> Redis:
        """The connected Redis client (its pool serves others on the same Redis, such as
        the webhook fan-in), with the short timeouts of :class:`RedisLimits`.

        :raises ConnectionError: not connected (outside ``async with``)
        """
        return self._redis_client()

    # -- rates ----------------------------------------------------------------------------

    async def pace(self, bucket: str) -> None:
        """Wait for this bucket's turn, shared by the fleet (or our share of it)."""
        per_minute = self._rates.get(bucket)
        if per_minute is None:
            return
        interval = self._interval(bucket)
        keys = self._keys
        rebooked = 0
        while True:
            if not self.available:
                await self._fallback_gate(bucket, per_minute).acquire()
                return
            try:
                booked, wait = await self._call(
                    self._scripts["bucket"](
                        keys=[
                            keys[f"{bucket}:tat"],
                            keys[f"{bucket}:pause"],
                            keys[f"{bucket}:learnt"],
                            keys[f"{bucket}:turns"],
                        ],
                        args=[interval, 0, self._tuning.window],
                    )
                )
            except _Unreachable:
                continue
            seconds = float(wait)
            overslept = 0.0
            if seconds > 0:
                replied = self._clock.now()
                await self._clock.sleep(seconds)
                overslept = self._clock.now() - replied - seconds
            if not booked:
                continue  # a pause: book after it
            if seconds <= 0:
                return
            if overslept > LATE_TURN * interval and rebooked < REBOOKS:
                rebooked += 1  # woken too late (a busy loop, a starved process): not ours
                continue
            try:  # a pause may have begun while we waited for our turn
                left = float(
                    await self._call(self._scripts["pause_left"](keys=[keys[f"{bucket}:pause"]]))
                )
            except _Unreachable:
                return
            if left <= 0:
                return
            await self._clock.sleep(left)  # then a turn after the pause, not at its end

    def _interval(self, bucket: str) -> float:
        """Seconds between two of the fleet's turns at the configured pace."""
        per_minute = self._rates[bucket]
        assert per_minute is not None
        return 60.0 / (per_minute * self._tuning.fleet_pace)

    def _fallback_gate(self, bucket: str, per_minute: float) -> RateGate:
        if self._fallback_workers != self.workers:
            self._fallback, self._fallback_workers = {}, self.workers
        gate = self._fallback.get(bucket)
        if gate is None:
            gate = RateGate(
                per_minute / self.workers, burst=1, tuning=self._tuning, clock=self._clock
            )
            self._fallback[bucket] = gate
        return gate

    def pause(self, seconds: float, *, buckets: tuple[str, ...]) -> None:
        """Pause every worker's senders in ``buckets`` for ``seconds`` (sent at once)."""
        until = self._clock.now() + seconds
        for bucket in buckets:
            self._pauses[bucket] = max(until, self._pauses.get(bucket, 0.0))
            gate = self._fallback.get(bucket)
            if gate is not None:
                gate.pause(seconds)
        self._nudge()

    def refused_rate(self, bucket: str) -> None:
        """A 429 charged to this bucket's rate: the fleet learns the rate the fleet was
        sending at (its turns in Redis), not this worker's part of it, which is all this
        worker's own gate saw; kept for :attr:`Tuning.forget`. While Redis is away the
        worker's share comes down instead."""
        if self._rates.get(bucket) is None:
            return
        if not self.available:
            gate = self._fallback.get(bucket)
            if gate is not None:
                gate.lower()
            return
        self._rate_refused.add(bucket)
        self._nudge()

    # -- slots ----------------------------------------------------------------------------

    async def lease(self, slots: int, allowance: int) -> Lease:
        """Wait for an in-flight slot in the fleet's bound (``slots`` running plus the
        queue allowance or a probe; see the module docstring)."""
        self._lease_args = (slots, allowance)
        self._bound = max(self._bound, slots)
        if self._polling is None:
            self._polling = anyio.Lock()
        # One of this worker's waiters asks Redis at a time, the others queue here in
        # turn: the fleet's slots are polled once per worker, not once per waiter.
        async with self._polling:
            return await self._poll_for(Lease(uuid.uuid4().hex), slots, allowance)

    async def _poll_for(self, lease: Lease, slots: int, allowance: int) -> Lease:
        keys = self._keys
        while True:
            freed = self._freed
            if self.available:
                try:
                    granted, bound = await self._call(
                        self._scripts["lease"](
                            keys=[keys["leases"], keys["queues"], keys["bound"]],
                            args=[lease.id, self.config.lease, slots, allowance],
                        )
                    )
                except _Unreachable:
                    continue
                self._bound = int(bound)
                if granted:
                    self._held[lease.id] = lease
                    return lease
            elif len(self._held) < self._share(self._bound):
                self._held[lease.id] = lease
                return lease
            await self._until_freed(freed)

    async def _until_freed(self, freed: int) -> None:
        """Wait :attr:`RedisLimits.poll` seconds, or less if one of this worker's own
        slots comes free meanwhile (given back to Redis, or to its share). ``freed`` is
        the count when the waiter last asked: a slot freed while its ask was on the wire
        is not waited for."""
        if self._freed != freed:
            return
        with anyio.CancelScope() as scope:
            self._sleepers.add(scope)
            try:
                await self._clock.sleep(self.config.poll)
            finally:
                self._sleepers.discard(scope)

    def _slot_freed(self) -> None:
        self._freed += 1
        for scope in self._sleepers:
            scope.cancel()

    def release(self, lease: Lease) -> None:
        """The slot's job ended, or none came of its submit: free it for the fleet."""
        if self._held.pop(lease.id, None) is not None:
            self._releases.append(lease.id)
            self._nudge()
            if not self.available:
                self._slot_freed()  # its share has room now; Redis is told when back

    def accepted(self, lease: Lease) -> None:
        """The lease's submit was accepted: a job holds it now. While the fleet does not
        know whether the server queues, Redis is told at once (more accepted at once than
        slots shows it does); after that, the renewals carry it."""
        if self._held.get(lease.id) is lease and not lease.accepted:
            lease.accepted = True
            if self._queues_seen is None:
                self._accepts.append(lease.id)
                self._nudge()

    def refused(self) -> None:
        """A submit was refused for concurrency: the fleet's bound comes down."""
        self._refused = True
        self._nudge()

    def held(self) -> int:
        """Leases this worker holds."""
        return len(self._held)

    async def claim_round(self, fewest: int, seconds: float) -> bool | None:
        """Claim the fleet's next listing round for ``seconds``: ``True`` if it is this
        worker's, ``False`` if another worker's round is due within them, ``None`` if the
        fleet has fewer than ``fewest`` jobs in flight or Redis is away (each worker then
        looks at its own jobs as a lone process does)."""
        if not self.available:
            return None
        try:
            verdict = await self._call(
                self._scripts["round"](
                    keys=[self._keys["leases"], self._keys["round"]],
                    args=[fewest, self.worker, max(1, int(seconds * 1000))],
                )
            )
        except _Unreachable:
            return None
        return None if int(verdict) < 0 else bool(int(verdict))

    async def fact_slots(self) -> int | None:
        """The key's slots as some worker learnt them from ``/me`` (``None``: not yet)."""
        if not self.available:
            return None
        try:
            raw = await self._call(self._redis_client().get(self._keys["slots"]))
        except _Unreachable:
            return None
        return int(raw) if raw is not None and int(raw) > 0 else None

    async def learnt_slots(self, slots: int) -> None:
        """Keep the key's slots from ``/me`` for the fleet."""
        if self.available:
            with contextlib.suppress(_Unreachable):
                await self._call(
                    self._redis_client().set(self._keys["slots"], str(slots), ex=FACTS_TTL)
                )

    def redis_keys(self) -> list[str]:
        """Every Redis key this worker may write (for tests and cleanup)."""
        return list(self._keys.values())


def redis_failures() -> tuple[type[Exception], ...]:
    """What a Redis call that failed or timed out raises: a socket's error, a timeout,
    redis-py's root error (without importing redis where it is not installed)."""
    try:
        from redis.exceptions import RedisError
    except ImportError:  # pragma: no cover
        return (OSError, TimeoutError)
    return (OSError, TimeoutError, RedisError)
