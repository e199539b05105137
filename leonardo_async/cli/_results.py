"""What a batch run reports: ``results.jsonl`` and the summary line.

While a run goes, :class:`ResultsLog` appends each item's line to ``results.jsonl`` as
the item ends, whole lines only, so a run killed at any point leaves a file whose every
line is a result. At the end the file is rewritten whole, one line per input line in
input order, and swapped in (:func:`save_results`).

The end's lines come from one list of :class:`ResultLine` (one per input line), so the
file, the summary's counts and the exit code cannot disagree; what was spent comes from
the batch's :class:`Ledger`. Each line has a category, its item's :class:`Outcome`; a line a
stopped run left unfinished is ``running`` when the journal has its generation (paid for, with its
cost, picked up by ``--resume``) and ``not_started`` otherwise.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections import Counter
from pathlib import Path

from .._batch import (
    BatchItem,
    BatchJournal,
    BatchResult,
    Ledger,
    Outcome,
)
from .._files import AtomicFile, target_problem
from ._jobs_file import (
    JobLine,
    ResultLine,
    result_line,
    unfinished_line,
    with_extras,
    write_results,
)
from ._outdir import RESULTS

__all__ = ["ResultsLog", "result_lines", "save_results", "summary_line"]

_log = logging.getLogger("leonardo_async")


class ResultsLog:
    """``results.jsonl`` as a run goes: each line appended, whole, as its item ends.

    The file is begun afresh (the journal, not this file, is what a resume reads). A
    line is one ``write`` of its bytes on a file opened for appending; a write cut short
    (a full disk) is cut back to the last whole line and the log stops, leaving the
    end's rewrite to try again. A log that cannot be written never stops the batch.

    :param out: the batch's output folder
    """

    def __init__(self, out: Path) -> None:
        self.path = out / RESULTS
        self._size = 0
        self._fd: int | None = None
        problem = target_problem(self.path)
        if problem is not None:  # the end's rewrite reports it
            return
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
            self._fd = os.open(self.path, flags | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as exc:
            _log.warning("%s cannot be written as the run goes: %s", self.path, exc)

    def append(self, line: ResultLine) -> None:
        """Append one line (nothing once the log has stopped)."""
        if self._fd is None:
            return
        text = io.StringIO()
        write_results([line], text)
        data = text.getvalue().encode("utf-8", "backslashreplace")
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(f"{written} of {len(data)} bytes written")
        except OSError as exc:
            _log.warning("%s cannot be written as the run goes: %s", self.path, exc)
            with contextlib.suppress(OSError):  # the end's rewrite replaces the file whole
                os.ftruncate(self._fd, self._size)
            self.close()
            return
        self._size += written

    def close(self) -> None:
        """Stop appending (before the end's rewrite)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def save_results(out: Path, lines: list[ResultLine]) -> str | None:
    """Write ``results.jsonl``; returns why it could not be, or ``None`` when it was."""
    try:
        _write_results(out, lines)
    except (OSError, ValueError) as exc:
        return str(exc)
    return None


def result_lines(
    jobs: list[JobLine],
    results: dict[str, BatchResult],
    journal: BatchJournal | None,
    ledger: Ledger,
) -> list[ResultLine]:
    """One line per input line: its result, or, if the run stopped first, whether the
    journal has it running on the server (paid for, at the ledger's cost) or not begun
    (without a journal to read, not begun)."""
    lines = []
    for job in jobs:
        if job.item is None or job.key is None:  # a bad line: no item, so no key
            lines.append(result_line(job.line, None, job.error))
            continue
        line = _line(job.line, job.item, job.key, results, journal, ledger)
        lines.append(with_extras(line, ledger.extras(job.key)))
    return lines


def _line(
    number: int,
    item: BatchItem,
    key: str,
    results: dict[str, BatchResult],
    journal: BatchJournal | None,
    ledger: Ledger,
) -> ResultLine:
    result = results.get(key)
    if result is not None:
        return result_line(number, result)
    entry = None if journal is None else journal.entry(key)
    running = entry.generation_id if entry is not None else None
    charge = ledger.charge(running)
    cost, estimated = (None, False) if charge is None else (charge.cost, charge.estimated)
    maybe = entry is not None and running is None and ledger.maybe(entry.key)
    return unfinished_line(
        number,
        item.spec.prompt,
        running,
        cost,
        cost_estimated=estimated,
        maybe_submitted=maybe,
    )


def summary_line(lines: list[ResultLine]) -> str:
    """The counts of each category, from the very lines written to ``results.jsonl``,
    and the paid generations beyond each line's own, when there are any."""
    counts = Counter(line.category for line in lines)
    always = (Outcome.COMPLETE, Outcome.FAILED)
    shown = [outcome for outcome in Outcome if counts[outcome] or outcome in always]
    text = ", ".join(f"{counts[o]} {o.value.replace('_', ' ')}" for o in shown)
    extras = sum(len(line.extra_generations) for line in lines)
    if extras:
        text += f", {extras} extra paid generation{'s' * (extras != 1)} (named in {RESULTS})"
    return text


def _write_results(out: Path, lines: list[ResultLine]) -> None:
    """Write ``results.jsonl`` whole, one line per input line, then swap it in."""
    with AtomicFile(out / RESULTS) as target:
        buffer = io.StringIO()
        write_results(lines, buffer)
        target.write(buffer.getvalue().encode("utf-8", "backslashreplace"))
        target.commit()
