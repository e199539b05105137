"""The pure retry rules: what may be repeated, after how long; Retry-After; backoff bounds."""

from __future__ import annotations

import itertools
import math
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leonardo_async import RetryPolicy
from leonardo_async._retry import Failure, backoff_delay, parse_retry_after, retry_delay

POLICY = RetryPolicy(attempts=4, base_delay=0.5, multiplier=2.0, max_delay=20.0, jitter=0.5)
SHORT_WAIT = 2.0
TOO_LONG = POLICY.max_retry_after + 1
STATUSES = (400, 401, 404, 408, 429, 500, 502, 503)


def expected(
    failure: Failure, status: int | None, submit: bool, retry_after: float | None, attempt: int
) -> float | None:
    """The rules, written out independently of the code under test (rand = 0)."""
    if attempt >= POLICY.attempts:
        return None
    backoff = POLICY.base_delay * POLICY.multiplier ** (attempt - 1)

    def honour() -> float | None:
        if retry_after is None:
            return backoff
        return retry_after if retry_after <= POLICY.max_retry_after else None

    if failure is Failure.NOT_SENT:  # nothing reached the server: always safe
        return backoff
    if status == 429:  # refused, so nothing was done: safe, but wait as told
        return honour()
    if submit:  # it may have created a paid generation: reconcile, never repeat
        return None
    if failure in (Failure.MAYBE_SENT, Failure.BAD_BODY):
        return backoff
    if status is not None and (status >= 500 or status == 408):
        return honour()
    return None  # other 4xx: repeating cannot help


def cases() -> list[tuple[Failure, int | None, bool, float | None, int]]:
    rows = []
    for submit, retry_after, attempt in itertools.product(
        (False, True), (None, SHORT_WAIT, TOO_LONG), (1, 2, POLICY.attempts)
    ):
        for failure in (Failure.NOT_SENT, Failure.MAYBE_SENT, Failure.BAD_BODY):
            rows.append((failure, None, submit, retry_after, attempt))
        for status in STATUSES:
            rows.append((Failure.STATUS, status, submit, retry_after, attempt))
    return rows


@pytest.mark.parametrize(("failure", "status", "submit", "retry_after", "attempt"), cases())
def test_retry_table(
    failure: Failure, status: int | None, submit: bool, retry_after: float | None, attempt: int
) -> None:
    """Every failure kind x submit or not x status x Retry-After x attempt follows the rules."""
    got = retry_delay(
        POLICY,
        attempt=attempt,
        creates_generation=submit,
        failure=failure,
        status=status,
        retry_after=retry_after,
        rand=0.0,
    )
    want = expected(failure, status, submit, retry_after, attempt)
    assert got == (pytest.approx(want) if want is not None else None)


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (Failure.MAYBE_SENT, None),
        (Failure.BAD_BODY, None),
        (Failure.STATUS, 500),
        (Failure.STATUS, 502),
        (Failure.STATUS, 503),
        (Failure.STATUS, 408),
        (Failure.STATUS, 400),
    ],
)
@pytest.mark.parametrize("retry_after", [None, 1.0])
def test_submit_never_repeated_when_it_may_have_arrived(
    failure: Failure, status: int | None, retry_after: float | None
) -> None:
    """A generation submit that may have reached the server is never retried blindly."""
    for attempt in range(1, POLICY.attempts + 1):
        delay = retry_delay(
            POLICY,
            attempt=attempt,
            creates_generation=True,
            failure=failure,
            status=status,
            retry_after=retry_after,
            rand=0.3,
        )
        assert delay is None


def test_submit_repeated_when_not_sent_or_refused() -> None:
    """A submit is retried after NOT_SENT, and after 429 (honouring Retry-After)."""
    not_sent = retry_delay(POLICY, attempt=1, creates_generation=True, failure=Failure.NOT_SENT)
    assert not_sent is not None
    assert not_sent > 0
    refused = retry_delay(
        POLICY, attempt=1, creates_generation=True, failure=Failure.STATUS, status=429
    )
    assert refused is not None
    told = retry_delay(
        POLICY,
        attempt=1,
        creates_generation=True,
        failure=Failure.STATUS,
        status=429,
        retry_after=7.0,
    )
    assert told == 7.0


NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-5", 0.0),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        (format_datetime(NOW - timedelta(hours=1), usegmt=True), 0.0),
        ("Sun, 01 Mar 2026 12:00:10 GMT", 10.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("Mon, 99 Foo 2026 25:61:00 GMT", None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    """Retry-After is read as delta-seconds or an HTTP date (past means now); junk is None."""
    got = parse_retry_after(header, now=NOW)
    assert got == (pytest.approx(seconds) if seconds is not None else None)


policies = st.builds(
    RetryPolicy,
    attempts=st.integers(1, 20),
    base_delay=st.floats(0, 100),
    multiplier=st.floats(1, 1e9),
    max_delay=st.floats(0, 1000),
    jitter=st.floats(0, 1),
)


@given(policies, st.integers(0, 10_000), st.floats(0, 1, exclude_max=True))
def test_backoff_bounds(policy: RetryPolicy, retry: int, rand: float) -> None:
    """A backoff lies in [(1-jitter)*d, d] for the capped exponential d, never above max_delay."""
    try:
        raw = policy.base_delay * policy.multiplier ** min(retry, 64) if policy.base_delay else 0.0
    except OverflowError:
        raw = math.inf
    ceiling = min(policy.max_delay, raw)
    delay = backoff_delay(policy, retry, rand)
    assert 0.0 <= delay <= policy.max_delay
    assert delay <= ceiling * (1 + 1e-9)
    assert delay >= (1 - policy.jitter) * ceiling * (1 - 1e-9)


@given(st.integers(1, 30), st.floats(0, 1, exclude_max=True))
def test_retry_delay_grows_then_caps(attempt: int, rand: float) -> None:
    """Successive backoffs never shrink before jitter, and never exceed the cap after it."""
    policy = RetryPolicy(attempts=100, jitter=0.0)
    first = retry_delay(policy, attempt=attempt, creates_generation=False, failure=Failure.BAD_BODY)
    second = retry_delay(
        policy, attempt=attempt + 1, creates_generation=False, failure=Failure.BAD_BODY
    )
    assert first is not None
    assert second is not None
    assert first <= second <= policy.max_delay


@pytest.mark.parametrize(
    "changes",
    [
        {"attempts": 0},
        {"base_delay": -1},
        {"multiplier": 0.5},
        {"max_delay": -1},
        {"jitter": 1.5},
        {"jitter": -0.1},
        {"max_retry_after": -1},
    ],
)
def test_policy_validation(changes: dict[str, float]) -> None:
    """A RetryPolicy refuses values that make no sense."""
    with pytest.raises(ValueError):  # noqa: PT011 - attrs' own message names the field
        RetryPolicy(**changes)  # type: ignore[arg-type]
