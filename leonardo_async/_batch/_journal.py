"""The durable record of a batch: what each item has reached, written before it happens.

A batch of paid jobs must survive ``kill -9`` at any instant without buying a video twice
or losing an item. The journal makes that possible by recording each item's next step
before taking it (write-ahead):

====================  ====================================================================
state                 on resume
====================  ====================================================================
``pending``           start over (nothing was sent)
``uploading``         upload again (init images are free)
``submitting``        **look for the job in the listing first**; resubmit only if absent,
                      with the same seed
``submitted``         track the recorded generation id; never resubmit
``complete``          done; download the video again if it is missing
``failed``            done (``FAILED`` on the server); resubmitted only when asked
``error``             done; retried on resume only when nothing can have been created
====================  ====================================================================

SQLite in WAL mode with ``synchronous=NORMAL``: a committed row survives the death of the
process (the OS still holds the log), each write costs microseconds, so it runs inline on
the event loop rather than paying a thread hop per item. Until the journal is closed, its
``-wal`` file beside it is part of it (closing folds the log back into the main file).

Where the rows live is the backend's business: :class:`BatchJournal` is what the batch
asks of a journal, the write-ahead order and the checks (another account's journal,
another item's row) are written once in it, and a backend stores rows and facts.
:class:`Journal` keeps them in one SQLite file.

One process at a time: a journal on disk is held with an OS lock (``flock`` on a
``.lock`` file beside it) from opening to closing, so two runs can never work the same
items; the kernel drops the lock when its process dies, even by ``kill -9``. A journal
that cannot be read is :class:`JournalDamagedError` before anything is sent, and one that
cannot be written is :class:`JournalWriteError`, which ends a batch (it cannot go on
safely without its write-ahead record).
"""

from __future__ import annotations

import abc
import contextlib
import enum
import logging
import os
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs
import cattrs

from .._errors import (
    JournalBusyError,
    JournalDamagedError,
    JournalMismatchError,
    JournalWriteError,
)
from ._items import Outcome

__all__ = [
    "BatchJournal",
    "ExtraGeneration",
    "ItemState",
    "Journal",
    "JournalEntry",
]

logger = logging.getLogger("leonardo_async")

SCHEMA_VERSION: Final = "1"

_Journal = TypeVar("_Journal", bound="BatchJournal")


class ItemState(str, enum.Enum):
    """Where one batch item is; see the module docstring for what resume does with each."""

    PENDING = "pending"
    UPLOADING = "uploading"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    COMPLETE = "complete"
    FAILED = "failed"
    ERROR = "error"

    @property
    def terminal(self) -> bool:
        """Whether the item has reached an end."""
        return self in (ItemState.COMPLETE, ItemState.FAILED, ItemState.ERROR)


@attrs.frozen
class JournalEntry:
    """One item's row.

    :param key: the item's identity within the batch (a JSONL line number, an index ...)
    :param index: position in the input, for ordered output
    :param fingerprint: hash of what the item asks for; a resume with other content is refused
    :param seed: the seed chosen before the first submit, reused by every later attempt
    :param submit_started: when the last submit attempt began (bounds the listing search)
    :param uncertain: the submit may have created a generation we could not confirm
    :param video: the downloaded MP4's file name within the batch's output folder
    :param attempts: submits sent for the item in all runs, the client's resends of a
        lost submit the listing did not show included
    :param cost_estimated: the answer named no cost (lost, 504, a null ``cost``), so the
        cost is the estimate for the same kind of job: counted, never left out
    :param outcome: what became of the item, written by the step that ended it; ``None``
        while it is on its way (and in a row an earlier release ended)
    """

    key: str
    index: int
    state: ItemState
    fingerprint: str
    seed: int | None = None
    generation_id: str | None = None
    submit_started: datetime | None = None
    cost_amount: str | None = None
    cost_unit: str | None = None
    video: str | None = None
    error: str | None = None
    uncertain: bool = False
    attempts: int = 0
    cost_estimated: bool = False
    outcome: Outcome | None = None

    @property
    def maybe_made(self) -> bool:
        """Its submit's answer was lost and no job has been found for it: the server may
        have made (and charged) one that no row holds yet."""
        return self.uncertain and self.generation_id is None

    @property
    def undecided(self) -> bool:
        """It ended in ``error`` with :attr:`maybe_made`: a later look (the run's sweep,
        a resume) decides whether its job exists."""
        return self.state is ItemState.ERROR and self.maybe_made


@attrs.frozen
class ExtraGeneration:
    """A paid generation of an item that its row does not hold: a second job made for it
    (a lost submit sent again while the listing had not shown the first), or the failed
    job of an item submitted again with ``retry_failed``. Written down so that it is
    counted in every run's totals and named in ``results.jsonl``, never lost.

    :param key: the item it was made for
    :param cost_estimated: the listing names no price, so the cost is the estimate
    """

    generation_id: str
    key: str
    cost_amount: str | None = None
    cost_unit: str | None = None
    cost_estimated: bool = False


_COLUMNS: Final = tuple(a.name for a in attrs.fields(JournalEntry))
_EXTRA_COLUMNS: Final = tuple(a.name for a in attrs.fields(ExtraGeneration))

_rows = cattrs.Converter()
_rows.register_structure_hook(datetime, lambda v, _: datetime.fromisoformat(v))
_rows.register_unstructure_hook(datetime, datetime.isoformat)
_rows.register_structure_hook(bool, lambda v, _: bool(v))


class BatchJournal(abc.ABC):
    """What a batch asks of its journal, whichever backend keeps the rows.

    A backend stores rows and batch-level facts; the steps written here on top of them
    (the account check, a new row only for new content, an update committed before it
    returns) are the same for every backend. Every write raises
    :class:`JournalWriteError` when it cannot be committed (the batch stops: it cannot
    go on safely without its write-ahead record), every read
    :class:`JournalDamagedError` when the rows cannot be read.
    """

    #: Where the journal is, for messages (a file's path, a database without its password).
    path: str
    #: Whether other processes work the same items at once (each item is then
    #: :meth:`take`-n before it is worked on, and may be held by another worker).
    shared: bool = False
    #: Seconds between looks at items another worker holds (a shared journal's).
    retry_after: float = 1.0

    @abc.abstractmethod
    def close(self) -> None:
        """Let go of the journal (other processes may then open it)."""

    def __enter__(self: _Journal) -> _Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- batch-level facts --------------------------------------------------------------

    @abc.abstractmethod
    def meta(self, key: str) -> str | None:
        """A batch-level fact (``input`` fingerprint, options ...), or ``None``."""

    @abc.abstractmethod
    def set_meta(self, key: str, value: str) -> None:
        """Record a batch-level fact."""

    def bind(self, key: str, value: str) -> str:
        """Record a batch-level fact unless one is recorded; returns the recorded one.

        A backend that many processes open at once makes this one atomic step, so that
        of two workers started together with different values, one value wins and the
        other worker sees it.
        """
        there = self.meta(key)
        if there is None:
            self.set_meta(key, value)
            return value
        return there

    @abc.abstractmethod
    def is_empty(self) -> bool:
        """Whether no item was ever recorded."""

    def claim(self, user_id: str, base_url: str, *, force: bool = False) -> None:
        """Refuse a journal written for another account or server; record this one's.

        Its generations and cached uploads exist only there: resuming under another key
        would not find the jobs it paid for (and buy them again) and would send image ids
        that account cannot use. With ``force`` the cached uploads are dropped instead.

        :raises JournalMismatchError: the journal has items of another account or server
        """
        here = {"user_id": user_id, "base_url": base_url}
        there = {name: self.meta(name) for name in here}
        differs = [n for n in here if there[n] is not None and there[n] != here[n]]
        if differs and not self.is_empty():
            if not force:
                raise JournalMismatchError(
                    f"the journal {self.path} belongs to account {there['user_id']} at "
                    f"{there['base_url']}, not to this key's account {user_id} at "
                    f"{base_url}; its jobs are not visible here, so resuming would "
                    "buy them again. Use the key and LEONARDO_BASE_URL it was written with"
                )
            logger.warning("journal of another account resumed (forced): cached uploads dropped")
            self.forget_uploads()
        for name, value in here.items():
            self.set_meta(name, value)

    # --- items --------------------------------------------------------------------------

    @abc.abstractmethod
    def entry(self, key: str) -> JournalEntry | None:
        """The item's row, if it has one."""

    @abc.abstractmethod
    def entries(self) -> Iterator[JournalEntry]:
        """All rows, in input order."""

    def begin(self, key: str, index: int, fingerprint: str, *, force: bool = False) -> JournalEntry:
        """The item's row, created ``pending`` if new.

        :raises JournalMismatchError: the row exists with another fingerprint (and not
            ``force``): the input changed since the journal was written
        """
        existing = self.entry(key)
        if existing is not None:
            if existing.fingerprint != fingerprint and not force:
                raise JournalMismatchError(
                    f"item {key} differs from the one in the journal {self.path}; "
                    "resume with the same input, or force it"
                )
            return existing
        entry = JournalEntry(key, index, ItemState.PENDING, fingerprint)
        return self._create(entry)

    def take(self, key: str) -> JournalEntry | None:
        """The item's row, now this process's to work on, or ``None`` if it is not.

        A journal one process holds gives every row. A shared one gives a row only while
        no other worker holds it, and not one another worker ended while this one ran:
        ``None`` then, with :meth:`entry` telling which (an end, or a row to look at again).
        """
        return self.entry(key)

    def release(self, key: str) -> None:
        """This process no longer works on the item (another worker may take it)."""
        del key  # one process holds every row: nothing to give back

    def update(self, entry: JournalEntry, **changes: Any) -> JournalEntry:
        """Write the item's new state; committed when this returns.

        A row that is on its way again (a resume, a retry) has no outcome until it ends.
        """
        updated = attrs.evolve(entry, **changes)
        if not updated.state.terminal and updated.outcome is not None:
            updated = attrs.evolve(updated, outcome=None)
        self._write(updated)
        return updated

    def _create(self, entry: JournalEntry) -> JournalEntry:
        """Store a new row; returns the row stored (another process's, if it was first)."""
        self._write(entry)
        return entry

    @abc.abstractmethod
    def _write(self, entry: JournalEntry) -> None:
        """Store the item's whole row, committed when this returns."""

    @abc.abstractmethod
    def generation_ids(self) -> set[str]:
        """Every generation id the batch holds, its extras included (never to be taken
        for another item)."""

    @abc.abstractmethod
    def extras(self) -> list[ExtraGeneration]:
        """Every paid generation no item's row holds (see :class:`ExtraGeneration`)."""

    @abc.abstractmethod
    def record_extra(self, extra: ExtraGeneration) -> bool:
        """Write down a paid generation no row holds; ``False`` if it is written already
        (by this worker or another), committed when this returns."""

    @abc.abstractmethod
    def counts(self) -> dict[ItemState, int]:
        """How many items are in each state."""

    # --- uploads ------------------------------------------------------------------------

    @abc.abstractmethod
    def uploaded(self, digest: str) -> str | None:
        """The init image id already holding the file with this content hash."""

    @abc.abstractmethod
    def record_upload(self, digest: str, image_id: str) -> None:
        """Remember that this content is uploaded as ``image_id``."""

    @abc.abstractmethod
    def forget_upload(self, image_id: str) -> None:
        """Drop a cached upload the server no longer knows (its next use uploads again)."""

    @abc.abstractmethod
    def forget_uploads(self) -> None:
        """Drop every cached upload (they belong to another account)."""


class Journal(BatchJournal):
    """A batch's journal in one SQLite file (or in memory, for batches that need no resume).

    :param path: the database file (its folder is created if missing), or ``":memory:"``
    :raises JournalBusyError: another process has it open
    :raises JournalDamagedError: the file is not a readable journal
    """

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        self._lock: int | None = None
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._lock = _hold(Path(f"{self.path}.lock"))
        self._db: sqlite3.Connection | None = None
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._open(self._db)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise JournalDamagedError(
                f"journal {self.path} is damaged ({exc}); nothing was sent. Move it aside "
                "and check --out by hand: its results.jsonl and videos show what was done"
            ) from None
        except BaseException:
            self.close()
            raise
        if self.meta("schema") is None:
            self.set_meta("schema", SCHEMA_VERSION)

    @staticmethod
    def _open(db: sqlite3.Connection) -> None:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        problems = [str(row[0]) for row in db.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise sqlite3.DatabaseError("; ".join(problems[:3]))
        db.executescript(
            """
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS items (
                key TEXT PRIMARY KEY, "index" INTEGER NOT NULL, state TEXT NOT NULL,
                fingerprint TEXT NOT NULL, seed INTEGER, generation_id TEXT,
                submit_started TEXT, cost_amount TEXT, cost_unit TEXT, video TEXT,
                error TEXT, uncertain INTEGER NOT NULL DEFAULT 0,
                attempts INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE IF NOT EXISTS uploads (digest TEXT PRIMARY KEY, image_id TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS extras (
                generation_id TEXT PRIMARY KEY, key TEXT NOT NULL, cost_amount TEXT,
                cost_unit TEXT, cost_estimated INTEGER NOT NULL DEFAULT 0);
            """
        )
        columns = {str(row[1]) for row in db.execute('PRAGMA table_info("items")')}
        if "cost_estimated" not in columns:  # a journal an earlier release made
            db.execute('ALTER TABLE "items" ADD COLUMN cost_estimated INTEGER NOT NULL DEFAULT 0')
        if "outcome" not in columns:  # likewise (its ended rows have none)
            db.execute('ALTER TABLE "items" ADD COLUMN outcome TEXT')

    def __repr__(self) -> str:
        return f"<Journal {self.path}>"

    def close(self) -> None:
        """Fold the log into the database file, close it, and let other processes have it.

        After a clean close the ``.sqlite`` file alone holds the whole journal.
        """
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
            self._db = None
        if self._lock is not None:
            os.close(self._lock)  # the kernel drops the flock with the last descriptor
            self._lock = None

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise JournalWriteError(f"journal {self.path} is closed")
        return self._db

    def _read(self, sql: str, params: tuple[object, ...] = ()) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, params)
        except sqlite3.DatabaseError as exc:
            raise JournalDamagedError(f"journal {self.path} is damaged ({exc})") from None

    def _change(self, sql: str, params: Sequence[object]) -> None:
        try:
            self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise JournalWriteError(f"journal cannot be written: {self.path}: {exc}") from None

    # --- batch-level facts --------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        row = self._read("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._change("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def is_empty(self) -> bool:
        return self._read("SELECT 1 FROM items LIMIT 1").fetchone() is None

    # --- items --------------------------------------------------------------------------

    def entry(self, key: str) -> JournalEntry | None:
        row = self._read("SELECT * FROM items WHERE key = ?", (key,)).fetchone()
        return None if row is None else _rows.structure(dict(row), JournalEntry)

    def entries(self) -> Iterator[JournalEntry]:
        for row in self._read('SELECT * FROM items ORDER BY "index"').fetchall():
            yield _rows.structure(dict(row), JournalEntry)

    def _write(self, entry: JournalEntry) -> None:
        row = _rows.unstructure(entry)
        row["uncertain"] = int(entry.uncertain)
        placeholders = ", ".join("?" for _ in _COLUMNS)
        names = ", ".join(f'"{c}"' for c in _COLUMNS)
        self._change(
            f"INSERT OR REPLACE INTO items ({names}) VALUES ({placeholders})",  # noqa: S608
            [row[c] for c in _COLUMNS],
        )

    def generation_ids(self) -> set[str]:
        rows = self._read(
            "SELECT generation_id FROM items WHERE generation_id IS NOT NULL "
            "UNION SELECT generation_id FROM extras"
        )
        return {str(r[0]) for r in rows}

    def extras(self) -> list[ExtraGeneration]:
        rows = self._read("SELECT * FROM extras ORDER BY rowid").fetchall()
        return [_rows.structure(dict(row), ExtraGeneration) for row in rows]

    def record_extra(self, extra: ExtraGeneration) -> bool:
        row = _rows.unstructure(extra)
        names = ", ".join(f'"{c}"' for c in _EXTRA_COLUMNS)
        placeholders = ", ".join("?" for _ in _EXTRA_COLUMNS)
        before = self._conn.total_changes
        self._change(
            f"INSERT OR IGNORE INTO extras ({names}) VALUES ({placeholders})",  # noqa: S608
            [int(row[c]) if isinstance(row[c], bool) else row[c] for c in _EXTRA_COLUMNS],
        )
        return self._conn.total_changes > before

    def counts(self) -> dict[ItemState, int]:
        rows = self._read("SELECT state, COUNT(*) FROM items GROUP BY state")
        return {ItemState(r[0]): int(r[1]) for r in rows}

    # --- uploads ------------------------------------------------------------------------

    def uploaded(self, digest: str) -> str | None:
        row = self._read("SELECT image_id FROM uploads WHERE digest = ?", (digest,)).fetchone()
        return None if row is None else str(row[0])

    def record_upload(self, digest: str, image_id: str) -> None:
        self._change("INSERT OR REPLACE INTO uploads VALUES (?, ?)", (digest, image_id))

    def forget_upload(self, image_id: str) -> None:
        self._change("DELETE FROM uploads WHERE image_id = ?", (image_id,))

    def forget_uploads(self) -> None:
        self._change("DELETE FROM uploads", ())


def _hold(path: Path) -> int | None:
    """Take the OS lock on ``path`` for this process; the open descriptor holds it.

    :raises JournalBusyError: another process holds it (its pid is in the file)
    """
    if sys.platform == "win32":  # no flock; the folder-level checks still apply
        return None
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        pid = int(text) if text.isdigit() else None
        raise JournalBusyError(
            f"journal {path.with_suffix('')} is in use by another run "
            f"(pid {pid if pid is not None else 'unknown'}); nothing was sent. "
            "Wait for it to end, or stop it first",
            pid,
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
