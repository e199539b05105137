"""What the PostgreSQL journal's tests share: the server, and a schema of each test's own.

The tests talk to a real PostgreSQL (``LEONARDO_TEST_POSTGRES_URL``, by default the
machine's own on 127.0.0.1:5432, database ``test``). Each test works in a schema of its
own, dropped when it ends, so that the suites of several Pythons can run at once against
one server. Without a server (or asyncpg) the tests are skipped with the reason; CI sets
``LEONARDO_REQUIRE_TOOLS=1``, and then they fail instead.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from _video import REQUIRE_TOOLS

__all__ = ["POSTGRES_URL", "pg_url", "sql"]

POSTGRES_URL = os.environ.get(
    "LEONARDO_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def sql(query: str, *args: object) -> list[dict[str, Any]]:
    """Run one statement on the test server (its own connection, in a thread of its own,
    whatever event loop the caller is on); returns the rows."""
    import asyncpg

    found: list[list[dict[str, Any]]] = []
    failed: list[BaseException] = []

    async def run() -> None:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=10)
        try:
            found.append([dict(row) for row in await conn.fetch(query, *args)])
        finally:
            await conn.close()

    def main() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=main)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return found[0]


def _unavailable() -> str | None:
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        return "asyncpg is not installed (pip install 'leonardo-async[postgres]')"
    try:
        sql("SELECT 1")
    except (OSError, asyncio.TimeoutError, Exception) as exc:
        return f"no PostgreSQL at {POSTGRES_URL}: {exc}"
    return None


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A journal URL naming a schema of this test's own, dropped after the test."""
    reason = _unavailable()
    if reason is not None:
        if REQUIRE_TOOLS:
            pytest.fail(f"{reason}; LEONARDO_REQUIRE_TOOLS=1 requires it")
        pytest.skip(reason)
    schema = f"test_{uuid.uuid4().hex[:16]}"
    joiner = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{joiner}schema={schema}"
    sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
