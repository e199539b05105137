"""ServerClock: bounds on the server's clock offset, computed from stamps and send times."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

from hypothesis import given
from hypothesis import strategies as st

from leonardo_async._transport import ServerClock
from leonardo_async._transport._clock import SLACK, UNKNOWN_SKEW

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)
offsets = st.floats(-3600.0, 3600.0, allow_nan=False)
# (seconds after T0 the request left, seconds it took, where in between the server stamped)
exchanges = st.tuples(st.floats(0.0, 600.0), st.floats(0.0, 5.0), st.floats(0.0, 1.0))


@given(offset=offsets, seen=st.lists(exchanges, min_size=1, max_size=20))
def test_the_bounds_always_hold_the_true_offset(
    offset: float, seen: list[tuple[float, float, float]]
) -> None:
    """However the stamps fall inside their requests, the true offset stays in the bounds,
    and a job created at or after our moment is never older than ``earliest``."""
    clock = ServerClock()
    for start, took, where in seen:
        sent = T0 + timedelta(seconds=start)
        received = sent + timedelta(seconds=took)
        stamp = sent + timedelta(seconds=took * where + offset)
        clock.observe(stamp, sent=sent, received=received)
    assert clock.low is not None
    assert clock.high is not None
    assert clock.low - 1e-6 <= offset <= clock.high + 1e-6
    assert clock.earliest(T0) <= T0 + timedelta(seconds=offset)


@given(offset=st.integers(-3600, 3600), took=st.floats(0.0, 3.0), where=st.floats(0.0, 1.0))
def test_a_date_header_counts_its_whole_second(offset: int, took: float, where: float) -> None:
    """A Date header drops the fraction: the bounds still hold the true offset."""
    sent = T0 + timedelta(seconds=0.25)
    received = sent + timedelta(seconds=took)
    true = sent + timedelta(seconds=took * where + offset)
    header = format_datetime(true.replace(microsecond=0), usegmt=True)
    clock = ServerClock()
    clock.observe_date(header, sent=sent, received=received)
    assert clock.low is not None
    assert clock.high is not None
    assert clock.low - 1e-6 <= offset <= clock.high + 1e-6


def test_before_any_evidence_the_margin_is_a_minute() -> None:
    clock = ServerClock()
    clock.observe_date("not a date", sent=T0, received=T0)
    clock.observe_date(None, sent=T0, received=T0)
    assert clock.offset is None
    assert clock.earliest(T0) == T0 - UNKNOWN_SKEW


def test_samples_that_disagree_widen_the_bounds_to_hold_both() -> None:
    """A Date from a gateway 90 s ahead of the database's createdAt (or a stepped clock):
    the bounds hold both samples, so a job stamped by the slower clock still matches."""
    clock = ServerClock()
    clock.observe(T0 - timedelta(seconds=90), sent=T0, received=T0 + timedelta(seconds=1))
    clock.observe(T0 + timedelta(seconds=10), sent=T0, received=T0 + timedelta(seconds=1))
    assert clock.low == -91.0
    assert clock.high == 10.0
    assert clock.earliest(T0) == T0 - timedelta(seconds=91) - SLACK


def test_a_learnt_offset_never_narrows_the_margin_assumed_without_one() -> None:
    """A server clock in step with ours (or ahead) keeps the 60 s margin: a Date header
    from a gateway says nothing of the database clock that stamps createdAt."""
    clock = ServerClock()
    clock.observe(T0 + timedelta(seconds=100), sent=T0, received=T0 + timedelta(seconds=1))
    assert clock.earliest(T0) == T0 - UNKNOWN_SKEW
