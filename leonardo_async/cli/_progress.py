"""A one-line terminal progress display, and a log handler that keeps out of its way.

:class:`Progress` shows counters the caller supplies (``status``, ``looks``, ``submitted``,
``running``, ``done``, ``failed``, ``credits`` ...) after the elapsed time it keeps itself:

* on a terminal, as one status line redrawn in place with ``\\r`` (no escape codes, no
  dependencies), at most every ``interval`` seconds, cut to the terminal's width as it
  is at each redraw (a line one column too long wraps, and every redraw then adds a
  line instead of replacing one);
* anywhere else (a pipe, a CI log), as plain lines, one per change of the fields, at most
  one every ``interval`` seconds, the last state always written on :meth:`Progress.close`.

Usage::

    with Progress(sys.stderr, total=len(items), label="batch") as progress:
        ...
        progress.update(submitted=12, running=3, done=9, failed=0, credits=Decimal(19260))
        progress.message("item 4 failed: ...")   # a permanent line above the status

With ``total`` set and a ``done`` field, the line shows ``done 9/20`` and an ETA estimated
from the rate so far (a caller-supplied ``eta`` field, in seconds, wins). :class:`LogHandler`
routes log records through the active display, so ``-v`` output does not tear the line.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Final, TextIO

__all__ = ["LogHandler", "Progress", "format_duration"]

#: Least seconds between two redraws on a terminal, and between two log lines elsewhere.
TTY_INTERVAL: Final = 0.1
LOG_INTERVAL: Final = 2.0

_active: list[Progress] = []


def format_duration(seconds: float) -> str:
    """Render seconds compactly: ``7s``, ``2m05s``, ``1h04m``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    return str(value)


class Progress:
    """A status line with caller-supplied counters; see the module docstring.

    :param stream: where to write; ``sys.stderr`` (looked up when made) if ``None``
    :param total: how many items make the whole job; with a ``done`` field it adds
        ``done/total`` and an ETA
    :param label: a word to start each line with
    :param interval: least seconds between writes; 0.1 s on a terminal, 2 s otherwise
    :param tty: force terminal (``True``) or log (``False``) mode; by default the
        stream's ``isatty()`` decides
    :param clock: a monotonic clock in seconds (tests pass a fake one)
    :param columns: the terminal's width now; by default ``COLUMNS`` if set, else the
        stream's own terminal, else :func:`shutil.get_terminal_size`
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        total: int | None = None,
        label: str = "",
        interval: float | None = None,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        columns: Callable[[], int] | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self._columns = columns if columns is not None else self._terminal_columns
        self.total = total
        self.label = label
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty and isatty())
        self.tty = tty
        self.interval = (
            interval if interval is not None else (TTY_INTERVAL if tty else LOG_INTERVAL)
        )
        self._clock = clock
        self._started = clock()
        self._fields: dict[str, object] = {}
        self._written: dict[str, object] | None = None
        self._last_write = -math.inf
        self._line_width = 0
        self._closed = False
        _active.append(self)

    # --- public API ---------------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        """Seconds since the display was made."""
        return self._clock() - self._started

    @property
    def fields(self) -> dict[str, object]:
        """A copy of the current fields."""
        return dict(self._fields)

    def update(self, **fields: object) -> None:
        """Merge ``fields`` into the line and write it if due; ``None`` removes a field.

        Call it often (from a ticker, say): on a terminal each call may redraw the elapsed
        time; in log mode only a change of the fields is written.
        """
        if self._closed:
            return
        for name, value in fields.items():
            if value is None:
                self._fields.pop(name, None)
            else:
                self._fields[name] = value
        self._flush(force=False)

    def message(self, text: str) -> None:
        """Write ``text`` as a line of its own, above the status line on a terminal."""
        if self.tty and self._line_width and not self._closed:
            blank = " " * min(self._line_width, max(1, self._columns() - 1))
            self.stream.write("\r" + blank + "\r" + text + "\n")
            self._line_width = 0
            self._flush(force=True)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Write the final state (ending the terminal line); later calls do nothing."""
        if self._closed:
            return
        if self.tty:
            self._flush(force=True)
            if self._line_width:
                self.stream.write("\n")
        elif self._fields != self._written:
            self._flush(force=True)
        self.stream.flush()
        self._closed = True
        if self in _active:
            _active.remove(self)

    def render(self) -> str:
        """The status line as it would be written now (whole, at any width)."""
        return "  ".join(text for _, text in self._parts())

    def _parts(self) -> list[tuple[str, str]]:
        """Each part of the line, with its field's name (``""`` for the label and the
        elapsed time, ``eta`` for the ETA)."""
        parts = [("", self.label)] if self.label else []
        parts.append(("", format_duration(self.elapsed)))
        done = self._fields.get("done")
        for name, value in self._fields.items():
            if name == "eta":
                continue
            text = _value(value)
            if name == "done" and self.total is not None:
                text = f"{text}/{self.total}"
            parts.append((name, f"{name.replace('_', ' ')} {text}"))
        eta = self._fields.get("eta")
        if eta is None and isinstance(done, int) and self.total and 0 < done < self.total:
            eta = self.elapsed / done * (self.total - done)
        if isinstance(eta, (int, float)):
            parts.append(("eta", f"ETA {format_duration(eta)}"))
        elif eta is not None:
            parts.append(("eta", f"ETA {eta}"))
        return parts

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- writing ------------------------------------------------------------------------

    def _flush(self, *, force: bool) -> None:
        now = self._clock()
        if not force and now - self._last_write < self.interval:
            return
        if self.tty:
            # The last column stays free: a line that fills it wraps on many terminals.
            width = max(1, self._columns() - 1)
            line = _fitted(self._parts(), width)
            # Blank what is left of a longer line before, within the width as it is now.
            pad = " " * max(0, min(self._line_width, width) - len(line))
            self.stream.write("\r" + line + pad)
            self._line_width = len(line)
        else:
            if not force and self._fields == self._written:
                return
            self.stream.write(self.render() + "\n")
        self.stream.flush()
        self._written = dict(self._fields)
        self._last_write = now

    def _terminal_columns(self) -> int:
        """The width of the terminal the line is drawn on (stderr's, not stdout's)."""
        if os.environ.get("COLUMNS", "").isdigit():
            return int(os.environ["COLUMNS"])
        try:
            return os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            return shutil.get_terminal_size().columns


#: The fields a narrow terminal keeps longest, first kept first: what a job or a batch
#: is doing, how far it is, what it has cost and how long is left; the rest go before
#: them, and the label and the elapsed time never.
KEPT_LONGEST: Final = ("status", "done", "credits", "eta", "failed", "errors", "running")


def _fitted(parts: list[tuple[str, str]], width: int) -> str:
    """The parts that fit in ``width`` columns, in their order, then ``...`` if any was
    left off: whole parts only (``credits 19...`` would read as another number), the
    fields of :data:`KEPT_LONGEST` kept longest (an 80-column terminal shows a large
    batch's done, credits and ETA)."""
    line = "  ".join(text for _, text in parts)
    if len(line) <= width:
        return line

    def kept(index: int) -> float:
        name = parts[index][0]
        if not name:
            return math.inf
        rank = KEPT_LONGEST.index(name) if name in KEPT_LONGEST else len(KEPT_LONGEST)
        return len(KEPT_LONGEST) - rank

    shown = list(range(len(parts)))
    for index in sorted(shown, key=lambda i: (kept(i), -i)):
        if kept(index) == math.inf:
            break
        shown.remove(index)
        line = "  ".join(parts[i][1] for i in shown) + "  ..."
        if len(line) <= width:
            return line
    return "  ".join(parts[i][1] for i in shown)[:width]  # what fits of the label and time


if TYPE_CHECKING:
    _StreamHandler = logging.StreamHandler[TextIO]
else:  # not subscriptable at run time on Python 3.10
    _StreamHandler = logging.StreamHandler


class LogHandler(_StreamHandler):
    """A stderr log handler that writes through the active :class:`Progress`, if any.

    On a terminal a record then appears above the status line instead of tearing it.
    """

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record, as a message of the active display when there is one."""
        progress = next((p for p in reversed(_active) if p.stream is self.stream), None)
        if progress is None:
            super().emit(record)
            return
        try:
            progress.message(self.format(record))
        except Exception:
            self.handleError(record)
