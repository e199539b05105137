"""Shared pytest configuration: async tests run on asyncio (through anyio's plugin)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Run every async test on asyncio: aiohttp, which the project uses, is asyncio-only."""
    return "asyncio"
