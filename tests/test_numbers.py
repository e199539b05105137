"""Every number a caller configures is finite and in range, or refused before anything is
sent: ``nan``, ``inf``, negative and absurdly small values for the config classes (a
``ValidationError`` naming the field) and for the batch's options (exit 2, no request).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_cli_batch import ON_BATCH_SIMULATOR, batch, jobs_of, requests_seen

from leonardo_async import Limits, PollSchedule, RetryPolicy, Timeouts, ValidationError
from leonardo_async.simulator import Simulator

pytestmark = ON_BATCH_SIMULATOR

#: Values no setting accepts.
HOSTILE = [math.nan, math.inf, -math.inf, -1.0, 0.0, 1e-300, -1e-300, 1e300]

#: (class, field) for every numeric field, with a value it accepts.
FIELDS: list[tuple[type[Any], str]] = [
    (Limits, "requests_per_minute"),
    (Limits, "submits_per_minute"),
    (Limits, "burst"),
    (Limits, "max_running"),
    (Limits, "max_queued"),
    (Timeouts, "connect"),
    (Timeouts, "api"),
    (Timeouts, "upload"),
    (Timeouts, "download_stall"),
    (PollSchedule, "initial"),
    (PollSchedule, "max_interval"),
    (PollSchedule, "first_interval"),
    (PollSchedule, "multiplier"),
    (RetryPolicy, "attempts"),
    (RetryPolicy, "base_delay"),
    (RetryPolicy, "multiplier"),
    (RetryPolicy, "max_delay"),
    (RetryPolicy, "max_retry_after"),
]
#: Fields where zero is a meaningful value (no delay).
ZERO_OK = {
    (Limits, "max_queued"),
    (RetryPolicy, "base_delay"),
    (RetryPolicy, "max_delay"),
    (RetryPolicy, "max_retry_after"),
}


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize(("kind", "field"), FIELDS, ids=lambda v: getattr(v, "__name__", v))
def test_non_finite_negative_and_absurd_values_are_refused(
    kind: type[Any], field: str, value: float
) -> None:
    """nan, inf, negatives, 1e-300 and 1e300: a ValidationError naming the field."""
    if (kind, field) in ZERO_OK and 0 <= value < 1:
        return  # a tiny or zero delay is a valid delay (unlike a tiny rate or timeout)
    with pytest.raises(ValidationError) as caught:
        kind(**{field: value})
    assert caught.value.field == field
    assert "from" in caught.value.allowed


@pytest.mark.parametrize(("kind", "field"), FIELDS, ids=lambda v: getattr(v, "__name__", v))
@given(value=st.floats() | st.integers(-(10**20), 10**20))
def test_a_field_holds_a_finite_number_or_refuses(
    kind: type[Any], field: str, value: float
) -> None:
    """Whatever number is given, the object holds a finite one or is never built."""
    try:
        made = kind(**{field: value})
    except ValidationError as exc:
        refused = exc
    else:
        assert math.isfinite(getattr(made, field))
        return
    assert refused.field == field


@given(
    delay=st.floats(0, 3600),
    attempts=st.integers(1, 50),
    rate=st.floats(1, 1e6),
    seconds=st.floats(0.001, 3600),
)
def test_sane_values_are_accepted(delay: float, attempts: int, rate: float, seconds: float) -> None:
    """Finite values inside the ranges build every config class."""
    RetryPolicy(attempts=attempts, base_delay=delay, max_delay=delay, max_retry_after=delay)
    Limits(
        requests_per_minute=rate,
        submits_per_minute=rate,
        burst=attempts,
        max_running=attempts,
        max_queued=attempts,
    )
    Timeouts(connect=seconds, api=seconds, upload=seconds, download_stall=seconds)
    PollSchedule(initial=seconds, max_interval=seconds, first_interval=seconds)


def test_every_numeric_field_is_covered() -> None:
    """A new numeric config field must be added to FIELDS (and get a range check)."""
    numeric = {
        (kind, a.name)
        for kind in (Limits, Timeouts, PollSchedule, RetryPolicy)
        for a in attrs.fields(kind)
        if a.name != "jitter"  # a fraction, checked as one
    }
    assert numeric == set(FIELDS)


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--max-credits", "nan"),
        ("--max-credits", "inf"),
        ("--max-credits", "-5"),
        ("--max-credits", "0"),
        ("--max-credits", "snan"),
        ("--rpm", "nan"),
        ("--rpm", "inf"),
        ("--rpm", "1e-300"),
        ("--spm", "nan"),
        ("--spm", "-1"),
        ("--spm", "1e-300"),
        ("--concurrency", "0"),
        ("--poll-initial", "nan"),
        ("--poll-max", "inf"),
        ("--timeout", "nan"),
        ("--timeout", "-3"),
    ],
)
async def test_bad_numeric_options_exit_2_before_anything_is_sent(
    sim: Simulator,
    folder: Path,
    capsys: pytest.CaptureFixture[str],
    flag: str,
    value: str,
) -> None:
    """`--max-credits nan` (which once leaked a running slot and hung) and the others."""
    jobs = jobs_of(folder, 2)
    assert await batch(jobs, folder / "out", flag, value) == 2
    assert flag in capsys.readouterr().err
    assert requests_seen(sim) == 0
