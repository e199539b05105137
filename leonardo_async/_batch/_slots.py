"""A batch's own bounds, nested inside the key's: what an item holds while its job runs.

A batch may bound itself more tightly than its client (``BatchSubmitter(limits=...)``):
its own running bound and submit rate. They nest inside the key's limits and never
replace them, so two batches on one client share the key's in-flight slots, and what the
key learned (rates, pauses, the server's slots) stays learned. :class:`BatchSlots` is
that nesting: an item takes the batch's slot first, then the key's, and gives both back
in the other order (the key's only if its job does not keep it).
"""

from __future__ import annotations

import anyio
import attrs

from .._client import LeonardoClient
from .._limits import Limits, RateGate, SubmitSlot

__all__ = ["BatchSlots", "Held"]


@attrs.define(eq=False)
class Held:
    """The slots one item holds: the batch's own (this object borrows it), and the key's
    for its submit (``None`` once its job keeps it, or when none was taken)."""

    slot: SubmitSlot | None = None


class BatchSlots:
    """A batch run's own running bound and submit rate, inside the key's.

    :param client: the entered client, whose key's slots the batch's nest inside
    :param limits: the batch's own limits (``None``: only the key's hold)
    """

    def __init__(self, client: LeonardoClient, limits: Limits | None) -> None:
        self._client = client
        #: The batch's own running limit, when it has one.
        self.running_limit: int | None = None
        self._own: anyio.CapacityLimiter | None = None
        self._submits: RateGate | None = None
        if limits is not None and isinstance(limits.max_running, int):
            self.running_limit = limits.max_running
            self._own = anyio.CapacityLimiter(limits.max_running + limits.queue_allowance)
        if limits is not None and limits.submits_per_minute is not None:
            self._submits = RateGate(limits.submits_per_minute, burst=1)

    async def in_flight_bound(self) -> float | None:
        """Items in flight at once: the batch's own bound (its running limit and queue),
        else the key's (``None``: no bound)."""
        if self._own is not None:
            return self._own.total_tokens
        return await self._client.in_flight_bound()

    async def take(self, *, slot: bool = True) -> Held:
        """A slot of the batch's own bound, then one of the key's (nested inside it).

        :param slot: also take the key's slot and pace by the batch's submit rate (a
            submit); ``False`` for a job from an earlier run, which the client adopts
        """
        held = Held()
        if self._own is not None:
            await self._own.acquire_on_behalf_of(held)
        try:
            if self._submits is not None and slot:
                await self._submits.acquire()
            if slot:
                held.slot = await self._client.submitter.take_slot()
        except BaseException:
            self.give(held)
            raise
        return held

    def give(self, held: Held) -> None:
        """Give back the batch's slot, and the key's unless its job holds it."""
        if held.slot is not None:
            held.slot.release()
        if self._own is not None:
            self._own.release_on_behalf_of(held)
