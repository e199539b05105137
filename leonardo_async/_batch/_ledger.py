"""The batch's money: every generation it made, and what each one cost.

One ledger, read by everything that speaks of money (the CLI's summary line,
:class:`~._items.BatchSummary`, ``results.jsonl``, the review page, the budget), so that
no two of them can disagree. It is kept from the journal's rows as they are written, and
rebuilt from the journal on open, so a run that was killed counts what the earlier runs
paid.

A generation is counted at the cost its submit's answer named; when the answer named
none (it was lost, a gateway's 504, a null ``cost``) at the estimate for the same kind of
job, marked as estimated (Leonardo's listing names no price, so there is no better figure
to take). It is never counted as nothing: one with no price at all (an unknown model, a
journal of an older release) is counted as unpriced. An item whose submit may have made a
generation the listing has not shown yet is counted apart, as maybe paid, until a later
look settles it.

Charges are kept by generation, not by item: an item may have paid for more than the one
generation its row holds (a ``FAILED`` job submitted again with ``retry_failed``; a lost
submit sent again while the listing had not shown its first job). Those are its *extras*,
kept in the journal beside the rows (:class:`~._journal.ExtraGeneration`), so that every
run counts them and ``results.jsonl`` names them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

import attrs

from ..models import Cost
from ._journal import ExtraGeneration, ItemState, JournalEntry

__all__ = ["Charge", "Ledger", "money"]


@attrs.frozen
class Charge:
    """One generation the batch made, and what it cost.

    :param key: the item that made it
    :param cost: ``None`` only when no price is known in any unit (counted as unpriced)
    :param estimated: the answer named no cost; ``cost`` is the estimate
    """

    generation_id: str
    key: str
    cost: Cost | None
    estimated: bool = False


class Ledger:
    """Every generation of one batch and its cost, per unit; see the module docstring."""

    def __init__(self) -> None:
        self._charges: dict[str, Charge] = {}
        #: Running totals of the charges, so that a progress line per change stays cheap.
        self._spent: dict[str, Decimal] = {}
        self._estimated: dict[str, Decimal] = {}
        #: Items whose submit may have made a generation not seen yet.
        self._maybe: set[str] = set()
        #: Generations counted before this run began.
        self._before: frozenset[str] = frozenset()
        #: The generation each item's row holds now (its other charges are its extras).
        self._held: dict[str, str | None] = {}
        #: Each item's charges, oldest first.
        self._by_key: dict[str, dict[str, None]] = {}

    @classmethod
    def of(cls, entries: Iterable[JournalEntry], extras: Iterable[ExtraGeneration] = ()) -> Ledger:
        """A ledger of a journal's rows and extras, the run starting now."""
        ledger = cls()
        ledger.load(entries, extras)
        ledger.start_run()
        return ledger

    def load(self, entries: Iterable[JournalEntry], extras: Iterable[ExtraGeneration] = ()) -> None:
        """Count every row and extra of a journal (charges already counted are kept)."""
        for extra in extras:
            self.record_extra(extra)
        for entry in entries:
            self.record(entry)

    def start_run(self) -> None:
        """From now on, what is counted is this run's (see :meth:`this_run`)."""
        self._before = frozenset(self._charges)

    def record(self, entry: JournalEntry) -> None:
        """Count what a journal row says of its item's generation (call on every write)."""
        self._held[entry.key] = entry.generation_id
        if entry.generation_id is None:
            # A submit in flight (or cut off by a kill) may have made one as well.
            if entry.uncertain or entry.state is ItemState.SUBMITTING:
                self._maybe.add(entry.key)
            else:
                self._maybe.discard(entry.key)
            return
        self._maybe.discard(entry.key)
        cost = None
        if entry.cost_amount is not None and entry.cost_unit is not None:
            cost = Cost(Decimal(entry.cost_amount), entry.cost_unit)
        known = self._charges.get(entry.generation_id)
        if cost is None and known is not None:  # a row written before its price
            return
        self._put(Charge(entry.generation_id, entry.key, cost, estimated=entry.cost_estimated))

    def record_extra(self, extra: ExtraGeneration) -> None:
        """Count a paid generation of an item that its row does not hold."""
        if extra.generation_id in self._charges:  # counted from its row before
            return
        cost = None
        if extra.cost_amount is not None and extra.cost_unit is not None:
            cost = Cost(Decimal(extra.cost_amount), extra.cost_unit)
        self._put(Charge(extra.generation_id, extra.key, cost, estimated=extra.cost_estimated))

    def _put(self, charge: Charge) -> None:
        known = self._charges.get(charge.generation_id)
        if known is not None:
            self._count(known, -1)
        self._charges[charge.generation_id] = charge
        self._by_key.setdefault(charge.key, {})[charge.generation_id] = None
        self._count(charge, 1)

    def _count(self, charge: Charge, sign: int) -> None:
        if charge.cost is None:
            return
        for totals in (self._spent, self._estimated) if charge.estimated else (self._spent,):
            unit = charge.cost.unit
            totals[unit] = totals.get(unit, Decimal(0)) + sign * charge.cost.amount
            if not totals[unit]:
                del totals[unit]

    def charge(self, generation_id: str | None) -> Charge | None:
        """The charge of a generation, if the batch made it."""
        return None if generation_id is None else self._charges.get(generation_id)

    def extras(self, key: str) -> list[Charge]:
        """The item's paid generations other than the one its row holds, oldest first."""
        held = self._held.get(key)
        return [self._charges[g] for g in self._by_key.get(key, ()) if g != held]

    @property
    def extra_count(self) -> int:
        """Paid generations that no item's row holds (every item's extras)."""
        return sum(len(self.extras(key)) for key in self._by_key)

    def spent(self) -> dict[str, Decimal]:
        """What the batch's generations cost, per unit (estimates included)."""
        return dict(self._spent)

    def estimated(self) -> dict[str, Decimal]:
        """The part of :meth:`spent` that is estimated, per unit."""
        return dict(self._estimated)

    def this_run(self) -> dict[str, Decimal]:
        """What the generations first counted in this run cost, per unit."""
        totals: dict[str, Decimal] = {}
        for charge in self._charges.values():
            if charge.cost is not None and charge.generation_id not in self._before:
                unit = charge.cost.unit
                totals[unit] = totals.get(unit, Decimal(0)) + charge.cost.amount
        return totals

    @property
    def unpriced(self) -> int:
        """Generations made whose price is not known in any unit."""
        return sum(c.cost is None for c in self._charges.values())

    def maybe(self, key: str) -> bool:
        """Whether an item's submit may have made a generation not seen yet."""
        return key in self._maybe

    @property
    def maybe_paid(self) -> int:
        """Items whose submit may have made (and paid for) a generation not seen yet."""
        return len(self._maybe)


def money(totals: Mapping[str, Decimal]) -> str:
    """Totals per unit as text: ``7500 CREDITS`` (``0`` for none)."""
    return ", ".join(f"{amount:f} {unit}" for unit, amount in sorted(totals.items())) or "0"
