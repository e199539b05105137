"""The batch's output folder: who owns it, and whether a run may start or resume in it.

``--out`` is where a batch's money is recorded: ``journal.sqlite`` (with its ``-wal`` file
while a run has it open), ``results.jsonl`` and the videos. Every way of pointing a run at
the wrong folder state would buy the same videos again, so each is refused before
anything is sent:

* another run holds the folder (the journal's OS lock; the message names its pid);
* ``--resume`` finds no journal state (deleted, emptied, copied without its ``-wal``);
* a fresh run finds a journal, or paid work without one (videos, results naming
  generations), unless ``--force``;
* ``--resume`` with another input file, unless ``--force``.

A journal in PostgreSQL (``--journal postgresql://...``) is shared: any number of workers
started with the same jobs file drain it together, none needs ``--resume``, and one
started with another jobs file is refused (the journal keeps the hash of the file it was
made for).

A run that owns the folder first sweeps the hidden ``.part`` files earlier runs left
when they were killed mid-download (nothing else can be writing them).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
from pathlib import Path
from typing import Final

from .._batch import (
    BatchJournal,
    Journal,
    PostgresJournal,
    is_postgres_url,
)
from .._errors import JournalMismatchError
from ._jobs_file import KeyScheme, input_digest

__all__ = [
    "JOURNAL",
    "RESULTS",
    "journal_file",
    "key_scheme",
    "open_journal",
    "open_shared",
    "sweep_parts",
]

JOURNAL: Final = "journal.sqlite"
RESULTS: Final = "results.jsonl"
#: What :class:`~leonardo_async._files.AtomicFile` and the results writer leave when killed.
_PART: Final = re.compile(r"^\..+\.part$")


def journal_file(args: argparse.Namespace) -> Path | None:
    """The SQLite journal's file: ``--journal PATH``, or the one in ``--out``; ``None`` for a
    journal in a database."""
    where: str | None = args.journal
    if where is None:
        return Path(args.out) / JOURNAL
    return None if is_postgres_url(where) else Path(where)


def open_journal(args: argparse.Namespace) -> BatchJournal:
    """The batch's journal, held by this process (or shared), if this run may use it.

    :raises JournalBusyError: another run holds it
    :raises JournalDamagedError: it cannot be read
    :raises JournalUnreachableError: its database cannot be reached
    :raises JournalMismatchError: the folder's state does not allow this run (see above)
    """
    path = journal_file(args)
    if path is None:
        return open_shared(args)
    journal = Journal(path)
    try:
        _check(journal, args)
        if journal.is_empty():  # journals of earlier releases name lines by number
            journal.set_meta("keys", "content")
        journal.set_meta("input", input_digest(args.jobs))
        journal.set_meta("input_path", str(args.jobs.resolve()))
    except BaseException:
        journal.close()
        raise
    return journal


def open_shared(args: argparse.Namespace, *, joining: bool = True) -> PostgresJournal:
    """The batch's journal in PostgreSQL, refused if it was made for another jobs file.

    :param joining: this process works the batch (the first one names the file);
        ``False`` only reads it (``--report``), and a journal holding no batch is refused
    """
    journal = PostgresJournal(args.journal, lease=args.journal_lease)
    try:
        digest = input_digest(args.jobs)
        there = journal.bind("input", digest) if joining else journal.meta("input")
        if there is None:
            raise JournalMismatchError(f"the journal {journal.path} holds no batch yet")
        if there != digest and not args.force:
            raise JournalMismatchError(
                f"the journal {journal.path} belongs to another jobs file "
                f"({journal.meta('input_path')}, sha256 {there[:12]}), not to {args.jobs} "
                f"(sha256 {digest[:12]}); nothing was sent. Every worker of one batch runs "
                "the same file: start this one with that file, or give this batch a "
                "schema of its own (?schema=NAME in the URL)"
            )
        if joining and there != digest:  # forced: this file's batch from now on
            journal.set_meta("input", digest)
            journal.set_meta("input_path", str(args.jobs.resolve()))
        elif joining:
            journal.bind("input_path", str(args.jobs.resolve()))
        if joining:
            journal.bind("keys", "content")
    except BaseException:
        journal.close()
        raise
    return journal


def key_scheme(journal: BatchJournal) -> KeyScheme:
    """How the journal names lines: by content, or (made by an earlier release) by number."""
    return "content" if journal.meta("keys") == "content" else "line"


def _check(journal: Journal, args: argparse.Namespace) -> None:
    out: Path = args.out
    if journal.is_empty():
        if args.resume:
            raise JournalMismatchError(
                f"--resume: {journal.path} holds no batch (missing, empty, or copied without "
                f"its -wal file); nothing was sent. Resuming without it would buy every item "
                f"again. Restore the journal, or start over with --force instead of --resume"
            )
        work = paid_work(out)
        if work is not None and not args.force:
            raise JournalMismatchError(
                f"{out} holds the work of an earlier batch ({work}) but no journal of it; "
                "nothing was sent. Choose another --out, or pass --force to start over there"
            )
        return
    if not args.resume:
        raise JournalMismatchError(
            f"{out} already holds a batch; pass --resume to continue it, or choose another --out"
        )
    if journal.meta("input") != input_digest(args.jobs) and not args.force:
        raise JournalMismatchError(
            f"the journal in {out} was written for a different input file; "
            "resume with the same file, or pass --force"
        )


def paid_work(out: Path) -> str | None:
    """What in ``out`` shows generations were bought there, or ``None``."""
    videos = sum(1 for path in out.glob("*.mp4") if path.is_file())
    if videos:
        return f"{videos} video(s)"
    results = out / RESULTS
    if not results.is_file():
        return None
    try:
        with results.open(encoding="utf-8") as stream:
            for text in stream:
                with contextlib.suppress(ValueError):
                    line = json.loads(text)
                    if isinstance(line, dict) and line.get("generation_id"):
                        return f"{RESULTS} naming generations"
    except (OSError, ValueError):
        return f"an unreadable {RESULTS}"
    return None


def sweep_parts(out: Path) -> int:
    """Delete the ``.part`` files killed runs left in ``out``; returns how many."""
    swept = 0
    for path in out.iterdir():
        if _PART.match(path.name) and path.is_file():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                swept += 1
    return swept
