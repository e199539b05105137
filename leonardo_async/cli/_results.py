"""What a batch run reports: ``results.jsonl``, the summary line, and what the run spent.

All three come from one list of :class:`ResultLine` (one per input line), so the file,
the summary's counts and the exit code cannot disagree. Each line has a category (see
:data:`CATEGORIES`); a line a stopped run left unfinished is ``running`` when the journal
has its generation (paid for, picked up by ``--resume``) and ``not_started`` otherwise.
"""

from __future__ import annotations

import io
from collections import Counter
from decimal import Decimal
from pathlib import Path

from .._batch import (
    CATEGORIES,
    BatchResult,
    JobLine,
    Journal,
    ResultLine,
    result_line,
    unfinished_line,
    write_results,
)
from .._files import AtomicFile
from ._outdir import RESULTS

__all__ = ["money", "result_lines", "save_results", "spent", "summary_line"]


def save_results(out: Path, lines: list[ResultLine]) -> str | None:
    """Write ``results.jsonl``; returns why it could not be, or ``None`` when it was."""
    try:
        _write_results(out, lines)
    except (OSError, ValueError) as exc:
        return str(exc)
    return None


def result_lines(
    jobs: list[JobLine], results: dict[str, BatchResult], journal: Journal
) -> list[ResultLine]:
    """One line per input line: its result, or, if the run stopped first, whether the
    journal has it running on the server (paid for) or not begun."""
    lines = []
    for job in jobs:
        if job.item is None:
            lines.append(result_line(job.line, None, job.error))
            continue
        key = job.item.key or str(job.line)
        result = results.get(key)
        if result is not None:
            lines.append(result_line(job.line, result))
            continue
        entry = journal.entry(key)
        running = entry.generation_id if entry is not None else None
        lines.append(unfinished_line(job.line, job.item.spec.prompt, running))
    return lines


def summary_line(lines: list[ResultLine]) -> str:
    """The counts of each category, from the very lines written to ``results.jsonl``."""
    counts = Counter(line.category for line in lines)
    shown = [name for name in CATEGORIES if counts[name] or name in ("complete", "failed")]
    return ", ".join(f"{counts[name]} {name.replace('_', ' ')}" for name in shown)


def spent(journal: Journal) -> dict[str, Decimal]:
    """What every submitted item of the journal cost, per unit, as the server stated it."""
    totals: dict[str, Decimal] = {}
    for entry in journal.entries():
        if entry.cost_amount is not None and entry.cost_unit is not None:
            totals[entry.cost_unit] = totals.get(entry.cost_unit, Decimal(0)) + Decimal(
                entry.cost_amount
            )
    return totals


def money(totals: dict[str, Decimal]) -> str:
    return ", ".join(f"{amount:f} {unit}" for unit, amount in sorted(totals.items())) or "0"


def _write_results(out: Path, lines: list[ResultLine]) -> None:
    """Write ``results.jsonl`` whole, one line per input line, then swap it in."""
    with AtomicFile(out / RESULTS) as target:
        buffer = io.StringIO()
        write_results(lines, buffer)
        target.write(buffer.getvalue().encode("utf-8", "backslashreplace"))
        target.commit()
