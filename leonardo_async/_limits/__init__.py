"""The limits one API key lives under, enforced on the client's side.

Leonardo counts three things per key: requests per minute over all endpoints (2000 by
default), generation submits per minute (100), and generations in flight (the key's
``apiConcurrencySlots`` running, and a queue behind them). Going over costs a 429, and a
429 storm slows everyone down, so the client paces itself instead of finding the limits
by collision. One module per part, each reading the next only from above:

* :mod:`._config`: :class:`Limits` (what the user sets), :class:`Tuning` (how the
  limiter learns, every constant in one place) and the :class:`Clock` it reads;
* :mod:`._gate`: :class:`RateGate`, pacing one rate, with a shared pause and a learned
  lower limit;
* :mod:`._slots`: :class:`InFlightSlots`, the running slots plus a learned queue
  allowance, probed one submit at a time;
* :mod:`._policy`: :class:`RefusalPolicy`, which limit a 429 is charged to;
* :mod:`._redis`: :class:`SharedKey`, the part of the above every process on one
  Redis shares (:class:`RedisLimits` says where; :func:`redis_failures`, what a Redis
  call that fails raises);
* :mod:`._key`: :class:`KeyLimiter`, all of the above for one key, and
  :class:`ClientStatistics`, what ``client.statistics()`` reports.
"""

from __future__ import annotations

from ._config import AnyioClock, Clock, Limits, Tuning
from ._gate import RateGate
from ._key import AccountSlots, ClientStatistics, KeyLimiter, RequestKind, SubmitSlot
from ._policy import RefusalPolicy, about_concurrency
from ._redis import RedisLimits, SharedKey, redis_failures
from ._slots import InFlightSlots

__all__ = [
    "AccountSlots",
    "AnyioClock",
    "ClientStatistics",
    "Clock",
    "InFlightSlots",
    "KeyLimiter",
    "Limits",
    "RateGate",
    "RedisLimits",
    "RefusalPolicy",
    "RequestKind",
    "SharedKey",
    "SubmitSlot",
    "Tuning",
    "about_concurrency",
    "redis_failures",
]
