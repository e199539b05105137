"""Two workers binding one batch-level fact at once: one value wins, and both see it.

The race is made, not waited for: one connection holds an uncommitted insert of the fact
while a worker binds it, so the worker's statement begins before the other's row is
committed and must wait for it.
"""

from __future__ import annotations

import asyncio
import threading

from _postgres import POSTGRES_URL, pg_url, sql

from leonardo_async import PostgresJournal

__all__ = ["pg_url"]  # the fixture, imported for the tests here

#: The most looks at the server's activity for the bind to be seen waiting.
LOOKS = 10_000


class _HeldInsert:
    """An insert of ``meta`` row ``key`` in a transaction kept open until :meth:`commit`."""

    def __init__(self, schema: str, key: str, value: str) -> None:
        self._statement = (f'INSERT INTO "{schema}".meta VALUES ($1, $2)', key, value)
        self._inserted = threading.Event()
        self._commit = threading.Event()
        self.failed: list[BaseException] = []
        self._thread = threading.Thread(target=self._main)

    def __enter__(self) -> _HeldInsert:
        self._thread.start()
        self._inserted.wait(30)
        assert not self.failed, self.failed
        assert self._inserted.is_set()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.commit()

    def commit(self) -> None:
        self._commit.set()
        self._thread.join(30)
        assert not self.failed, self.failed

    def _main(self) -> None:
        try:
            asyncio.run(self._hold())
        except BaseException as exc:
            self.failed.append(exc)
            self._inserted.set()

    async def _hold(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(POSTGRES_URL, timeout=10)
        try:
            async with conn.transaction():
                await conn.execute(*self._statement)
                self._inserted.set()
                await asyncio.get_running_loop().run_in_executor(None, self._commit.wait, 30)
        finally:
            await conn.close()


def _waiting_on_a_lock(statement: str) -> bool:
    rows = sql(
        "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1",
        f"%{statement}%",
    )
    return bool(rows)


def test_a_bind_that_waited_for_another_workers_insert_gives_that_value(pg_url: str) -> None:
    """The fact another worker inserted while this worker's bind waited for it is the
    one both have, never no value at all."""
    schema = pg_url.rsplit("schema=", 1)[1]
    with PostgresJournal(pg_url) as journal:
        bound: list[str] = []
        failed: list[BaseException] = []

        def bind() -> None:
            try:
                bound.append(journal.bind("began", "second"))
            except BaseException as exc:
                failed.append(exc)

        with _HeldInsert(schema, "began", "first") as other:
            binding = threading.Thread(target=bind)
            binding.start()
            assert any(_waiting_on_a_lock("WITH added AS") for _ in range(LOOKS))
            other.commit()
            binding.join(30)
        assert not failed, failed
        assert bound == ["first"]
        assert journal.meta("began") == "first"
