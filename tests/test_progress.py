"""The terminal status line fits the terminal as it is at each redraw, and never wraps."""

from __future__ import annotations

import io
import re
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from leonardo_async.cli._progress import Progress


class _Terminal:
    """A fake clock and a terminal width the test sets."""

    def __init__(self) -> None:
        self.now = 0.0
        self.columns = 80

    def clock(self) -> float:
        return self.now


def _rows(text: str) -> list[str]:
    """What each redraw or line leaves on a row: the text between ``\\r`` and ``\\n``."""
    return [row for row in re.split(r"[\r\n]", text) if row]


_FIELDS = st.dictionaries(
    st.sampled_from(["submitted", "running", "done", "failed", "errors", "credits"]),
    st.integers(0, 10**9) | st.decimals(0, 10**9, places=2, allow_nan=False),
    min_size=1,
)


@given(st.lists(st.tuples(st.integers(1, 300), _FIELDS), min_size=1, max_size=12))
def test_every_redraw_fits_the_terminal_as_it_is_then(
    steps: list[tuple[int, dict[str, int | Decimal]]],
) -> None:
    """Whatever the fields and however the terminal is resized between redraws, no row
    written reaches the last column (where a terminal wraps), padding included."""
    stream, terminal = io.StringIO(), _Terminal()
    progress = Progress(
        stream,
        total=100,
        label="batch",
        tty=True,
        interval=0,
        clock=terminal.clock,
        columns=lambda: terminal.columns,
    )
    for columns, fields in steps:
        terminal.columns = columns
        terminal.now += 1
        start = stream.tell()
        progress.update(**fields)
        written = stream.getvalue()[start:]
        assert all(len(row) <= max(1, columns - 1) for row in _rows(written)), written
    progress.close()


def test_a_narrow_terminal_drops_whole_fields_never_part_of_a_figure() -> None:
    """Fields that do not fit are left off whole, shown as ``...``: a number is never
    cut to look like another; the credits are kept longer than the counts of submits."""
    stream, terminal = io.StringIO(), _Terminal()
    terminal.columns = 40
    with Progress(
        stream, label="batch", tty=True, clock=terminal.clock, columns=lambda: terminal.columns
    ) as progress:
        progress.update(submitted=12, running=3, credits=Decimal(192600))
    [row] = set(_rows(stream.getvalue()))
    assert row == "batch  0s  credits 192600  ..."
    assert len(row) <= 39


def test_a_large_batch_shows_its_progress_credits_and_eta_at_80_columns() -> None:
    """What a default terminal shows of a thousand-line batch an hour in: the lines done,
    the failures, the credits and the ETA; the counts of submits and running jobs give
    way first."""
    stream, terminal = io.StringIO(), _Terminal()
    progress = Progress(
        stream, total=1000, label="batch", tty=True, interval=0, clock=terminal.clock,
        columns=lambda: terminal.columns,
    )  # fmt: skip
    terminal.now = 3725
    progress.update(
        submitted=1000, running=8, done=987, failed=12, errors=3, credits=Decimal(2114860)
    )
    [row] = _rows(stream.getvalue())
    assert row == "batch  1h02m  done 987/1000  failed 12  errors 3  credits 2114860  ETA 49s  ..."
    assert len(row) <= 79
    terminal.columns = 200
    progress.update(done=988)
    assert _rows(stream.getvalue())[-1].startswith("batch  1h02m  submitted 1000  running 8  done")
    progress.close()
