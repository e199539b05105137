"""PollSchedule: a pure, jittered, capped schedule of looks at a generation."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leonardo_async import Generation, JobTracker, PollSchedule
from leonardo_async._listing import Listing

schedules = st.builds(
    PollSchedule,
    initial=st.floats(0.001, 1000),
    max_interval=st.floats(0.001, 1000),
    first_interval=st.none() | st.floats(0.001, 1000),
    multiplier=st.floats(1, 1000),
    jitter=st.floats(0, 0.5),
)
checks = st.integers(0, 100_000)
draws = st.floats(0, 1, exclude_max=True)


@given(schedules)
def test_first_look_is_initial(schedule: PollSchedule) -> None:
    """Before any check the nominal wait is ``initial``."""
    assert schedule.nominal(0) == schedule.initial


@given(schedules, st.integers(1, 100_000))
def test_nominal_is_non_decreasing_and_capped(schedule: PollSchedule, n: int) -> None:
    """From the first check on, intervals never shrink and never exceed max_interval."""
    assert schedule.nominal(n) <= schedule.nominal(n + 1) <= schedule.max_interval
    assert schedule.nominal(1) == schedule.start


@given(schedules, checks, draws)
def test_delay_within_jitter(schedule: PollSchedule, n: int, rand: float) -> None:
    """A delay is its nominal value jittered by at most ``jitter``, and capped after a check."""
    base = schedule.nominal(n)
    delay = schedule.delay(n, rand)
    eps = 1e-9 * base
    assert base * (1 - schedule.jitter) - eps <= delay <= base * (1 + schedule.jitter) + eps
    if n >= 1:
        assert delay <= schedule.max_interval
    assert delay > 0


def test_first_interval_defaults_to_a_quarter_of_initial() -> None:
    """Without first_interval the second look comes a quarter of ``initial`` after the first."""
    assert PollSchedule(initial=20, max_interval=10).start == 5
    assert PollSchedule(initial=100, max_interval=10).start == 10
    assert PollSchedule(initial=1, max_interval=10, first_interval=3).start == 3


def test_first_delays_are_spread() -> None:
    """A thousand jobs started together get different first looks, across the jitter range."""
    schedule = PollSchedule(initial=20, jitter=0.1)
    rng = random.Random(1234)
    delays = [schedule.delay(0, rng.random()) for _ in range(1000)]
    assert len(set(delays)) > 990
    assert max(delays) - min(delays) > schedule.initial * schedule.jitter


class _Silent:
    """A status source for a tracker that is never asked anything in this test."""

    async def get_generation(self, generation_id: str) -> Generation | None:
        raise AssertionError("no look is due")

    @property
    def listing(self) -> Listing:
        raise AssertionError("no look is due")


async def test_tracker_spreads_first_looks() -> None:
    """A thousand jobs just submitted and tracked at once are not all due at the same
    moment (a job not vouched for as fresh is looked at once instead)."""
    async with JobTracker(_Silent(), schedule=PollSchedule(initial=600, jitter=0.1)) as tracker:
        for i in range(1000):
            tracker.vouch(f"job-{i}", fresh=True)
        jobs = [tracker.track(f"job-{i}") for i in range(1000)]
        dues = [job.next_look for job in jobs]
        assert len(set(dues)) > 990
        assert max(dues) - min(dues) > 600 * 0.1


@pytest.mark.parametrize(
    "changes",
    [
        {"initial": 0},
        {"initial": -1},
        {"initial": True},
        {"initial": "20"},
        {"max_interval": 0},
        {"first_interval": 0},
        {"first_interval": -2.0},
        {"multiplier": 0.9},
        {"jitter": 0.6},
        {"jitter": -0.1},
    ],
)
def test_schedule_validation(changes: dict[str, Any]) -> None:
    """Non-positive times, shrinking multipliers and jitter outside [0, 0.5] are refused."""
    with pytest.raises(ValueError):  # noqa: PT011 - the message names the field
        PollSchedule(**changes)
