"""An asyncio event loop on virtual time, for tests of logic that sleeps on anyio's clock.

anyio has no virtual clock for asyncio; its clock is the loop's :meth:`time`. This loop's
time stands still while anything is ready to run, and, when every task is waiting and
only a timer is due, jumps to that timer at once instead of sleeping until it. A poll
schedule of twenty seconds, a vanish grace of thirty and a listing backoff of a minute
then cost what their arithmetic costs, and the times a test reads
(:func:`anyio.current_time`) are exactly the ones the code computed.

Sockets and other file descriptors are still waited for in real time, so it suits code
that talks through :class:`~leonardo_async.MockTransport` and does no work in threads
(a thread's result arrives through the loop's self-pipe, which time would jump past),
and whose waits are on anyio's clock: a wait until ``datetime.now()`` passes a mark (the
listing-lag window of a lost submit, say) never ends, since the wall clock does not
follow the loop's.
Use it in a test module with::

    @pytest.fixture
    def anyio_backend() -> tuple[str, dict[str, object]]:
        return VIRTUAL_TIME
"""

from __future__ import annotations

import asyncio
import selectors
from typing import Any

__all__ = ["VIRTUAL_TIME", "VirtualTimeLoop"]


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose clock jumps over the waits no descriptor ends."""

    def __init__(self) -> None:
        self.virtual = 0.0
        super().__init__(selector=_JumpingSelector(self))

    def time(self) -> float:
        return self.virtual


class _JumpingSelector(selectors.DefaultSelector):
    """Polls the descriptors without blocking; a wait with nothing ready is a jump."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        events: list[tuple[Any, int]] = super().select(0)
        if events or timeout is None or timeout <= 0:
            # Nothing is due on a timer (None): only a descriptor can end the wait.
            return events if events or timeout is not None else super().select(None)
        self._loop.virtual += timeout
        return []


#: What a module's ``anyio_backend`` fixture returns to run its tests on virtual time.
VIRTUAL_TIME: tuple[str, dict[str, object]] = ("asyncio", {"loop_factory": VirtualTimeLoop})
