"""Pure decisions about retrying: may this failure be repeated, and after how long?

Kept free of I/O and clocks so that the rules that protect users' money can be read in
one place and tested with a table. The rule that matters most: a request that creates a
paid generation is repeated only when it provably did not reach the server (the
connection was never made) or was refused (429). Anything else (a reset, a timeout, a 5xx
after the body was sent) might have created the job, and is left to reconciliation.
"""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import attrs

from ._validate import MAX_SECONDS, in_range

__all__ = ["Failure", "RetryPolicy", "backoff_delay", "parse_retry_after", "retry_delay"]


class Failure(enum.Enum):
    """How an attempt failed, as far as the client can tell."""

    #: The connection could not be made: nothing reached the server.
    NOT_SENT = "not-sent"
    #: The connection broke or timed out after the request may have been sent.
    MAYBE_SENT = "maybe-sent"
    #: The server answered with an HTTP status (see the status code).
    STATUS = "status"
    #: A 2xx answer whose body was cut short or is not JSON.
    BAD_BODY = "bad-body"


@attrs.frozen
class RetryPolicy:
    """How hard to try a request that is safe to repeat. Times are in seconds.

    :param attempts: total attempts, the first included
    :param base_delay: backoff before the first retry
    :param multiplier: growth of the backoff per retry
    :param max_delay: cap on one backoff
    :param jitter: fraction of each backoff that is randomised, 0 to 1; spreads clients
        that failed together so they do not come back together
    :param max_retry_after: the longest server-requested wait we honour before giving up
    """

    attempts: int = attrs.field(default=5, validator=in_range(1, 1000, integer=True))
    base_delay: float = attrs.field(default=0.5, validator=in_range(0, MAX_SECONDS))
    multiplier: float = attrs.field(default=2.0, validator=in_range(1, 1e9))
    max_delay: float = attrs.field(default=20.0, validator=in_range(0, MAX_SECONDS))
    jitter: float = attrs.field(default=0.5, validator=in_range(0, 1))
    max_retry_after: float = attrs.field(default=300.0, validator=in_range(0, MAX_SECONDS))


def backoff_delay(policy: RetryPolicy, retry: int, rand: float) -> float:
    """The wait before retry number ``retry`` (0-based), ``rand`` drawn from [0, 1).

    The un-jittered delay is ``base_delay * multiplier**retry`` capped at ``max_delay``;
    the jitter takes up to ``jitter`` of it away, so the result lies in
    ``[(1 - jitter) * d, d]`` and never exceeds the cap.
    """
    try:
        grown = policy.base_delay * policy.multiplier ** min(retry, 64)
    except OverflowError:  # a huge multiplier: past any cap, unless there is no delay
        grown = policy.max_delay if policy.base_delay else 0.0
    ceiling = min(policy.max_delay, grown)
    return ceiling * (1.0 - policy.jitter * rand)


def retry_delay(
    policy: RetryPolicy,
    *,
    attempt: int,
    creates_generation: bool,
    failure: Failure,
    status: int | None = None,
    retry_after: float | None = None,
    rand: float = 0.0,
) -> float | None:
    """Decide whether to retry after attempt number ``attempt`` (1-based) failed.

    :param creates_generation: the request is a paid, non-idempotent submit
    :param failure: what went wrong
    :param status: the HTTP status, for :attr:`Failure.STATUS`
    :param retry_after: the server's ``Retry-After`` in seconds, when it sent one
    :param rand: a draw from [0, 1) for the jitter
    :return: seconds to wait before the next attempt, or ``None`` to give up
    """
    if attempt >= policy.attempts:
        return None
    backoff = backoff_delay(policy, attempt - 1, rand)
    if failure is Failure.NOT_SENT:
        return backoff
    if failure is Failure.STATUS and status == 429:
        if retry_after is None:
            return backoff
        return retry_after if retry_after <= policy.max_retry_after else None
    if creates_generation:
        return None
    if failure in (Failure.MAYBE_SENT, Failure.BAD_BODY):
        return backoff
    if status is not None and (status >= 500 or status == 408):
        if retry_after is None:
            return backoff
        return retry_after if retry_after <= policy.max_retry_after else None
    return None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Read a ``Retry-After`` header: delta-seconds or an HTTP date, never negative.

    :return: seconds to wait, or ``None`` when the header is absent or unreadable
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN, inf
        return None
    return max(0.0, seconds)
