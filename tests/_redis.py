"""The Redis server the shared-limits tests use, and a clock that records instead of waiting.

Tests find the server through ``LEONARDO_TEST_REDIS_URL`` (default: the local one on its
standard port) and work under a namespace of their own, deleted afterwards, so that the
suites of several Pythons can share one server. Without a server a test is skipped with
the reason, unless ``LEONARDO_REQUIRE_TOOLS=1`` (CI), which fails it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from _video import REQUIRE_TOOLS

__all__ = [
    "REDIS_URL",
    "PrivateRedis",
    "RecordingClock",
    "Slept",
    "delete_namespace",
    "namespace_keys",
    "redis_or_skip",
    "unique_namespace",
]

REDIS_URL = os.environ.get("LEONARDO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _missing(message: str) -> None:
    if REQUIRE_TOOLS:
        pytest.fail(f"{message}; LEONARDO_REQUIRE_TOOLS=1 requires it")
    pytest.skip(message)


def redis_or_skip(url: str = REDIS_URL) -> str:
    """``url`` if a Redis server answers there and redis-py is installed; else skip."""
    try:
        import redis
    except ImportError:
        _missing("redis-py is not installed (pip install 'leonardo-async[redis]')")
    try:
        redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        _missing(f"no Redis server at {url}: {exc}")
    return url


def unique_namespace() -> str:
    """A namespace no other test (or other Python's suite) uses."""
    return f"leonardo-test-{uuid.uuid4().hex[:12]}"


def namespace_keys(url: str, namespace: str) -> list[str]:
    """Every Redis key under ``namespace``."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        return [k.decode() for k in client.scan_iter(match=f"{namespace}:*", count=1000)]
    finally:
        client.close()


def delete_namespace(url: str, namespace: str) -> None:
    """Delete every key under ``namespace``."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


class Slept(Exception):
    """Raised by :class:`RecordingClock` instead of a wait longer than it allows."""


class RecordingClock:
    """A limiter clock whose waits are recorded, not waited (the real clock's time).

    :param longest: a wait longer than this raises :class:`Slept`, so that a test can
        see a long wait (a pause) without waiting it
    """

    def __init__(self, longest: float = float("inf")) -> None:
        self.waits: list[float] = []
        self.longest = longest

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        if seconds > self.longest:
            raise Slept(seconds)
        await anyio.lowlevel.checkpoint()  # a loop of waits can still be cancelled


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateRedis:
    """A Redis server of a test's own on a free port, which the test may stop and start."""

    def __init__(self, folder: Path) -> None:
        server = shutil.which("redis-server")
        if server is None:
            _missing("redis-server is not installed")
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._command = [
            str(server),
            *("--port", str(self.port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", str(folder)),
        ]
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it (again, on the same port) and wait until it answers."""
        self._process = subprocess.Popen(self._command, stdout=subprocess.DEVNULL)
        import redis

        deadline = time.monotonic() + 10
        while True:
            # Pinged here, not through redis_or_skip: under LEONARDO_REQUIRE_TOOLS=1 that
            # fails the test at the first refusal, before the server had time to listen.
            try:
                redis.Redis.from_url(self.url, socket_timeout=2).ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop it; whatever it held is gone."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None
