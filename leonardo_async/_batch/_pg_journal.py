"""A batch's journal in PostgreSQL, shared by every worker that drains the batch.

Many processes, on any machines, started with the same jobs file and the same database
work one batch together. The rows are those of the SQLite journal, written ahead in the
same order; what sharing adds is who works on an item:

* an item is **taken** before any step: its row is locked with ``FOR UPDATE SKIP LOCKED``
  (two workers reaching for it at once never both get it) and given a **lease**, a time
  on the database's clock until which it is this worker's;
* the worker **renews** its leases well inside their lifetime, from a thread of its own,
  so a busy event loop does not lose them; a worker that dies (``kill -9`` included)
  stops renewing, and its items are free again once their leases run out;
* every write of an item's row is refused unless the writer still holds its lease: a
  worker cut off from the database for longer than the lease can record nothing more
  for it, so it cannot write the ``submitting`` row that comes before a paid submit;
* a worker that takes over an item does what a resume does with its row: an item whose
  submit may have reached the server is looked up in the listing before anything is
  sent again (:mod:`._pipeline`).

The batch's own clock is the database's (``now()``): leases and "ended while this worker
ran" compare times of one clock, whatever the workers' clocks say.

asyncpg is asynchronous and the journal's steps are calls that return once committed (as
SQLite's are): the connection pool lives on an event loop in a thread of the journal's
own, and each step waits for its answer, at most ``timeout`` seconds. A step costs one
round trip to the server (on loopback, well under a millisecond).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import Future
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs
import cattrs

from .._errors import JournalUnreachableError, JournalWriteError, ValidationError
from .._validate import number
from ._journal import BatchJournal, ExtraGeneration, ItemState, JournalEntry

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    _Conn = PoolConnectionProxy[asyncpg.Record]

__all__ = ["PostgresJournal", "is_postgres_url"]

logger = logging.getLogger("leonardo_async")

#: The schema a journal URL names no other for (``?schema=`` in the URL picks another).
DEFAULT_SCHEMA: Final = "leonardo_async"
#: Seconds an item stays a worker's without a renewal.
LEASE: Final = 30.0
#: Seconds a step waits once the database was found gone.
LOST_WAIT: Final = 1.0
_SCHEMA_NAME: Final = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_COLUMNS: Final = tuple(a.name for a in attrs.fields(JournalEntry))
_EXTRA_COLUMNS: Final = tuple(a.name for a in attrs.fields(ExtraGeneration))
_T = TypeVar("_T")

_rows = cattrs.Converter()
_rows.register_structure_hook(datetime, lambda v, _: v)


def is_postgres_url(text: str) -> bool:
    """Whether a ``--journal`` value names a PostgreSQL database rather than a file."""
    return text.startswith(("postgresql://", "postgres://"))


class PostgresJournal(BatchJournal):
    """A batch's journal in a PostgreSQL database, which many workers share.

    :param url: ``postgresql://user:password@host:port/database``; ``?schema=NAME`` keeps
        this batch's tables in that schema (one batch per schema; default
        ``leonardo_async``), created if missing
    :param lease: seconds an item stays this worker's without a renewal (renewed every
        third of it); another worker takes it over only after that
    :param timeout: seconds any one step may wait for the database
    :raises JournalUnreachableError: the database cannot be reached (nothing was sent)
    :raises ValidationError: the URL, schema or a number is not valid
    """

    shared = True

    def __init__(self, url: str, *, lease: float = LEASE, timeout: float = 10.0) -> None:
        if not is_postgres_url(url):
            raise ValidationError("journal", "(a database URL)", "postgresql://...")
        number("lease", lease, 0.1, 86_400.0)
        number("timeout", timeout, 0.1, 3_600.0)
        self.lease = float(lease)
        self.timeout = float(timeout)
        self.retry_after = min(self.lease / 3, 5.0)
        self._dsn, self.schema, self.path = _split(url)
        #: Who holds a lease: the host, the process and this journal object.
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._held: set[str] = set()
        #: The last step found the database gone.
        self._lost = False
        self._pool: asyncpg.Pool | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="leonardo-journal", daemon=True)
        self._thread.start()
        try:
            self.opened_at: datetime = self._call(self._open())
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"<PostgresJournal {self.path}>"

    # --- the loop in the journal's thread -----------------------------------------------

    def _run(self) -> None:
        """The journal's thread: its loop, until closed; then what is left is cancelled
        (a step given up on, the pool's upkeep) and allowed to end, before the loop closes."""
        loop = self._loop
        try:
            loop.run_forever()
            loop.run_until_complete(_cancelled(asyncio.all_tasks(loop)))
        finally:
            loop.close()

    def _call(self, work: Coroutine[Any, Any, _T]) -> _T:
        """Run ``work`` on the journal's loop and wait for it, at most ``timeout``."""
        if self._loop.is_closed() or not self._thread.is_alive():
            work.close()
            raise JournalWriteError(f"journal {self.path} is closed")
        future: Future[_T] = asyncio.run_coroutine_threadsafe(work, self._loop)
        # Once the database is found gone, each later step (giving items back, the
        # closing) waits a second at most, not the whole timeout: the batch is stopping.
        wait = min(self.timeout, LOST_WAIT) if self._lost else self.timeout
        try:
            result = future.result(wait)
        except TimeoutError:
            future.cancel()
            self._lost = True
            raise self._unreachable(f"no answer in {wait:g} s") from None
        except JournalUnreachableError:
            self._lost = True
            raise
        self._lost = False
        return result

    def _unreachable(self, why: str) -> JournalUnreachableError:
        return JournalUnreachableError(
            f"journal {self.path} cannot be reached ({why}); nothing is submitted "
            "without its journal row"
        )

    async def _db(self, step: Callable[[_Conn], Awaitable[_T]]) -> _T:
        """Run ``step`` on a pooled connection, failures turned into the journal's errors."""
        import asyncpg

        if self._pool is None:
            raise JournalWriteError(f"journal {self.path} is closed")
        try:
            async with self._pool.acquire() as conn:
                return await step(conn)
        except (OSError, asyncpg.InterfaceError, asyncpg.ConnectionDoesNotExistError) as exc:
            raise self._unreachable(_reason(exc)) from None
        except asyncpg.PostgresError as exc:
            raise JournalWriteError(f"journal cannot be written: {self.path}: {exc}") from None

    async def _open(self) -> datetime:
        try:
            import asyncpg
        except ImportError:
            raise ValidationError(
                "journal", self.path, "a SQLite path (pip install 'leonardo-async[postgres]')"
            ) from None
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                # No floor to keep: a pool that keeps one reconnects (and logs a
                # traceback) every moment the database is gone.
                min_size=0,
                max_size=2,
                timeout=self.timeout,
                command_timeout=self.timeout,
            )
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
            raise self._unreachable(_reason(exc)) from None
        opened: datetime = await self._db(self._create_tables)
        self._renewer = asyncio.ensure_future(self._renew())
        return opened

    async def _create_tables(self, conn: _Conn) -> datetime:
        s = self.schema
        async with conn.transaction():
            # Workers started together must not race each other's CREATEs.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", s)
            await conn.execute(
                f"""
                CREATE SCHEMA IF NOT EXISTS "{s}";
                CREATE TABLE IF NOT EXISTS "{s}".meta (
                    key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS "{s}".items (
                    key TEXT PRIMARY KEY, "index" INTEGER NOT NULL, state TEXT NOT NULL,
                    fingerprint TEXT NOT NULL, seed BIGINT, generation_id TEXT,
                    submit_started TIMESTAMPTZ, cost_amount TEXT, cost_unit TEXT,
                    video TEXT, error TEXT, uncertain BOOLEAN NOT NULL DEFAULT false,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    cost_estimated BOOLEAN NOT NULL DEFAULT false, outcome TEXT,
                    lease_owner TEXT, lease_until TIMESTAMPTZ,
                    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(), updated_by TEXT);
                CREATE TABLE IF NOT EXISTS "{s}".uploads (
                    digest TEXT PRIMARY KEY, image_id TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS "{s}".extras (
                    generation_id TEXT PRIMARY KEY, key TEXT NOT NULL, cost_amount TEXT,
                    cost_unit TEXT, cost_estimated BOOLEAN NOT NULL DEFAULT false,
                    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(), recorded_by TEXT);
                """
            )
            # Looked up first: an ALTER locks the table whole, even when it has nothing
            # to add, and the other workers are using it.
            has_outcome = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE "
                "table_schema = $1 AND table_name = 'items' AND column_name = 'outcome')",
                s,
            )
            if not has_outcome:  # a journal an earlier release made
                await conn.execute(f'ALTER TABLE "{s}".items ADD COLUMN outcome TEXT')
            opened: datetime = await conn.fetchval("SELECT now()")
        return opened

    async def _renew(self) -> None:
        """Push this worker's leases forward every third of their lifetime."""
        while True:
            await asyncio.sleep(self.lease / 3)
            held = sorted(self._held)
            if not held:
                continue
            try:
                kept = await self._db(functools.partial(self._push, keys=held))
            except JournalWriteError as exc:  # the next step of the batch meets it too
                logger.warning("%s: leases not renewed: %s", self.path, exc)
                continue
            lost = (set(held) & self._held) - {str(r["key"]) for r in kept}
            if lost:  # this worker was cut off for longer than the lease
                logger.warning("%s: leases lost to other workers: %s", self.path, sorted(lost))

    async def _push(self, conn: _Conn, *, keys: list[str]) -> list[asyncpg.Record]:
        """Renew the leases still live; one that ran out is lost (another may have it)."""
        return await conn.fetch(
            f'UPDATE "{self.schema}".items SET lease_until = now() + $3 * '  # noqa: S608
            "interval '1 second' WHERE key = ANY($1) AND lease_owner = $2 "
            "AND lease_until > now() RETURNING key",
            keys,
            self.worker,
            self.lease,
        )

    def close(self) -> None:
        """Give back this worker's items at once, close the pool, end the thread."""
        if self._loop.is_closed() or not self._thread.is_alive():
            return
        if self._pool is not None:
            try:
                self._call(self._close())
            except JournalWriteError as exc:
                logger.warning("%s: not closed cleanly: %s", self.path, exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(self.timeout)

    async def _close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
        pool, held = self._pool, sorted(self._held)
        try:
            if held:
                await self._db(
                    lambda conn: conn.execute(
                        f'UPDATE "{self.schema}".items SET lease_owner = NULL, '  # noqa: S608
                        "lease_until = NULL WHERE key = ANY($1) AND lease_owner = $2",
                        held,
                        self.worker,
                    )
                )
                self._held.clear()
        finally:
            self._pool = None
            if pool is not None:
                try:
                    await asyncio.wait_for(pool.close(), self.timeout / 2)
                except (OSError, asyncio.TimeoutError):
                    pool.terminate()

    # --- batch-level facts --------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        sql = f'SELECT value FROM "{self.schema}".meta WHERE key = $1'  # noqa: S608
        value = self._call(self._db(lambda conn: conn.fetchval(sql, key)))
        return None if value is None else str(value)

    def set_meta(self, key: str, value: str) -> None:
        sql = (
            f'INSERT INTO "{self.schema}".meta VALUES ($1, $2) '  # noqa: S608
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        )
        self._call(self._db(lambda conn: conn.execute(sql, key, value)))

    def bind(self, key: str, value: str) -> str:
        sql = (
            f'WITH added AS (INSERT INTO "{self.schema}".meta VALUES ($1, $2) '  # noqa: S608
            "ON CONFLICT (key) DO NOTHING RETURNING value) "
            f'SELECT value FROM added UNION ALL SELECT value FROM "{self.schema}".meta '
            "WHERE key = $1 LIMIT 1"
        )
        there = self._call(self._db(lambda conn: conn.fetchval(sql, key, value)))
        if there is None:
            # Another worker's insert of the fact was committed while this statement
            # waited for it: the statement's snapshot, older, sees neither row. A new
            # statement sees the other's.
            there = self.meta(key)
        return str(there)

    def is_empty(self) -> bool:
        sql = f'SELECT NOT EXISTS (SELECT 1 FROM "{self.schema}".items)'  # noqa: S608
        return bool(self._call(self._db(lambda conn: conn.fetchval(sql))))

    # --- items --------------------------------------------------------------------------

    def entry(self, key: str) -> JournalEntry | None:
        sql = f'SELECT * FROM "{self.schema}".items WHERE key = $1'  # noqa: S608
        row = self._call(self._db(lambda conn: conn.fetchrow(sql, key)))
        return None if row is None else _entry(row)

    def entries(self) -> Iterator[JournalEntry]:
        sql = f'SELECT * FROM "{self.schema}".items ORDER BY "index", key'  # noqa: S608
        rows = self._call(self._db(lambda conn: conn.fetch(sql)))
        return iter([_entry(row) for row in rows])

    def take(self, key: str) -> JournalEntry | None:
        return self._call(self._db(lambda conn: self._take(conn, key)))

    async def _take(self, conn: _Conn, key: str) -> JournalEntry | None:
        s = self.schema
        async with conn.transaction():
            row = await conn.fetchrow(
                f"SELECT *, lease_until > now() AS live, updated_at >= $2 AS recent "  # noqa: S608
                f'FROM "{s}".items WHERE key = $1 FOR UPDATE SKIP LOCKED',
                key,
                self.opened_at,
            )
            if row is None:  # another worker is taking it this very moment
                return None
            owner = row["lease_owner"]
            if owner is not None and owner != self.worker and row["live"]:
                return None
            state = ItemState(row["state"])
            if state is ItemState.COMPLETE or (state.terminal and row["recent"]):
                return None  # done, or ended by another worker while this one runs
            await conn.execute(
                f'UPDATE "{s}".items SET lease_owner = $2, '  # noqa: S608
                "lease_until = now() + $3 * interval '1 second' WHERE key = $1",
                key,
                self.worker,
                self.lease,
            )
        self._held.add(key)
        if owner is not None and owner != self.worker:
            logger.info(
                "item %s: taken over from worker %s, whose lease ran out (%s); "
                "it is reconciled before anything is sent",
                key,
                owner,
                state.value,
            )
        return _entry(row)

    def release(self, key: str) -> None:
        if key not in self._held:
            return
        sql = (
            f'UPDATE "{self.schema}".items SET lease_owner = NULL, '  # noqa: S608
            "lease_until = NULL WHERE key = $1 AND lease_owner = $2"
        )
        self._held.discard(key)
        self._call(self._db(lambda conn: conn.execute(sql, key, self.worker)))

    def _create(self, entry: JournalEntry) -> JournalEntry:
        names = ", ".join(f'"{c}"' for c in _COLUMNS)
        places = ", ".join(f"${n}" for n in range(1, len(_COLUMNS) + 1))
        sql = (
            f'INSERT INTO "{self.schema}".items ({names}, updated_by) '  # noqa: S608
            f"VALUES ({places}, ${len(_COLUMNS) + 1}) ON CONFLICT (key) DO NOTHING"
        )
        values = _values(entry)
        self._call(self._db(lambda conn: conn.execute(sql, *values, self.worker)))
        return self.entry(entry.key) or entry

    def _write(self, entry: JournalEntry) -> None:
        sets = ", ".join(f'"{c}" = ${n}' for n, c in enumerate(_COLUMNS, start=1))
        worker = len(_COLUMNS) + 1
        sql = (
            f'UPDATE "{self.schema}".items SET {sets}, updated_at = now(), '  # noqa: S608
            f"updated_by = ${worker} WHERE key = $1 AND lease_owner = ${worker} "
            "AND lease_until > now() RETURNING key"
        )
        values = _values(entry)
        written = self._call(self._db(lambda conn: conn.fetchval(sql, *values, self.worker)))
        if written is None:
            self._held.discard(entry.key)
            raise JournalWriteError(
                f"journal cannot be written: {self.path}: item {entry.key} is no longer this "
                f"worker's (its lease of {self.lease:g} s ran out and another worker may "
                "have taken it); stopping"
            )

    def generation_ids(self) -> set[str]:
        sql = (
            f'SELECT generation_id FROM "{self.schema}".items '  # noqa: S608
            "WHERE generation_id IS NOT NULL UNION "
            f'SELECT generation_id FROM "{self.schema}".extras'
        )
        rows = self._call(self._db(lambda conn: conn.fetch(sql)))
        return {str(r[0]) for r in rows}

    def extras(self) -> list[ExtraGeneration]:
        names = ", ".join(f'"{c}"' for c in _EXTRA_COLUMNS)
        sql = f'SELECT {names} FROM "{self.schema}".extras ORDER BY recorded_at'  # noqa: S608
        rows = self._call(self._db(lambda conn: conn.fetch(sql)))
        return [_rows.structure(dict(row), ExtraGeneration) for row in rows]

    def record_extra(self, extra: ExtraGeneration) -> bool:
        names = ", ".join(f'"{c}"' for c in _EXTRA_COLUMNS)
        places = ", ".join(f"${n}" for n in range(1, len(_EXTRA_COLUMNS) + 2))
        sql = (
            f'INSERT INTO "{self.schema}".extras ({names}, recorded_by) '  # noqa: S608
            f"VALUES ({places}) ON CONFLICT (generation_id) DO NOTHING RETURNING generation_id"
        )
        row = attrs.asdict(extra, recurse=False)
        values = [row[c] for c in _EXTRA_COLUMNS]
        written = self._call(self._db(lambda conn: conn.fetchval(sql, *values, self.worker)))
        return written is not None

    def counts(self) -> dict[ItemState, int]:
        sql = f'SELECT state, COUNT(*) FROM "{self.schema}".items GROUP BY state'  # noqa: S608
        rows = self._call(self._db(lambda conn: conn.fetch(sql)))
        return {ItemState(r[0]): int(r[1]) for r in rows}

    # --- uploads ------------------------------------------------------------------------

    def uploaded(self, digest: str) -> str | None:
        sql = f'SELECT image_id FROM "{self.schema}".uploads WHERE digest = $1'  # noqa: S608
        value = self._call(self._db(lambda conn: conn.fetchval(sql, digest)))
        return None if value is None else str(value)

    def record_upload(self, digest: str, image_id: str) -> None:
        sql = (
            f'INSERT INTO "{self.schema}".uploads VALUES ($1, $2) '  # noqa: S608
            "ON CONFLICT (digest) DO UPDATE SET image_id = EXCLUDED.image_id"
        )
        self._call(self._db(lambda conn: conn.execute(sql, digest, image_id)))

    def forget_upload(self, image_id: str) -> None:
        sql = f'DELETE FROM "{self.schema}".uploads WHERE image_id = $1'  # noqa: S608
        self._call(self._db(lambda conn: conn.execute(sql, image_id)))

    def forget_uploads(self) -> None:
        sql = f'DELETE FROM "{self.schema}".uploads'  # noqa: S608
        self._call(self._db(lambda conn: conn.execute(sql)))


async def _cancelled(tasks: set[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _split(url: str) -> tuple[str, str, str]:
    """The URL for asyncpg, the schema, and the URL to show (no password, no query)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), DEFAULT_SCHEMA)
    if not _SCHEMA_NAME.match(schema):
        raise ValidationError("schema", schema, "lower-case letters, digits and _ (63 at most)")
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    dsn = urlunsplit(parts._replace(query=rest))
    host = parts.hostname or "localhost"
    shown = f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"
    return dsn, schema, f"{shown} (schema {schema})"


def _values(entry: JournalEntry) -> list[object]:
    row = attrs.asdict(entry, recurse=False)
    row["state"] = entry.state.value
    row["outcome"] = None if entry.outcome is None else entry.outcome.value
    return [row[c] for c in _COLUMNS]


def _entry(row: Any) -> JournalEntry:
    return _rows.structure({c: row[c] for c in _COLUMNS}, JournalEntry)


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
