"""Whether the next submit stays within the batch's budget (what was spent is the ledger's).

Leonardo charges in ``CREDITS`` or, on pay-as-you-go plans, in ``DOLLARS``. A budget has
one unit, and amounts in two units are never added together: a charge in another unit
than the budget's means the budget cannot be kept, so further submits are refused with
a message saying so (never a budget that silently stops counting).

Before the server has charged a job of some kind, its price in the budget's unit may be
unknown (a ``DOLLARS`` budget starts with only published credit figures; a model without
a published figure has none). Such a submit goes alone, as a price probe: the submits
behind it wait for its answer, whose charge prices the rest.
"""

from __future__ import annotations

from decimal import Decimal

import anyio
import attrs

from .._errors import OverBudgetError
from ..models import Cost, VideoSpec
from ._ledger import Ledger
from ._pricing import CostEstimator

__all__ = ["Budget", "Reservation"]


@attrs.frozen
class Reservation:
    """What one submit in flight holds of the budget until its answer."""

    amount: Decimal
    probe: bool


class Budget:
    """Spending per unit, and the batch's limit in one unit (``None``: no limit).

    :param limit: the most the batch may spend, in that cost's unit
    :param estimator: expected prices, learning from the server's charges
    :param ledger: what the batch's generations cost so far (its own, if not given)
    """

    def __init__(
        self, limit: Cost | None, estimator: CostEstimator, ledger: Ledger | None = None
    ) -> None:
        self.limit = limit
        self.estimator = estimator
        self.ledger = ledger if ledger is not None else Ledger()
        self._reserved = Decimal(0)
        self._probe: anyio.Event | None = None
        self._uncounted: str | None = None

    @property
    def spent(self) -> dict[str, Decimal]:
        """What the batch has spent per unit: its ledger's count."""
        return self.ledger.spent()

    def charged(self, request: VideoSpec, cost: Cost | None) -> Cost | None:
        """Price what the server charged for ``request``; returns the cost to record.

        Without a charge in the answer it is the estimate; if there is none in the
        budget's unit, the budget can no longer be kept and later submits are refused.
        The charge is counted once its journal row is written (the ledger reads it).
        """
        self.estimator.observe(request, cost)
        counted = cost if cost is not None else self.estimator.estimate(request).cost
        if self.limit is None or (counted is not None and counted.unit == self.limit.unit):
            return counted
        if cost is not None:
            self._uncounted = f"a job was charged in {cost.unit}"
        else:
            self._uncounted = (
                f"a job's answer named no cost, and none is known in {self.limit.unit}"
            )
        return counted

    async def reserve(self, request: VideoSpec) -> Reservation:
        """Hold the expected cost of ``request`` while it is submitted.

        :raises OverBudgetError: it would pass the limit, or the limit cannot be counted
        """
        while True:
            if self.limit is None:
                return Reservation(Decimal(0), probe=False)
            self._check_units()
            estimate = self.estimator.estimate(request).cost
            if estimate is not None and estimate.unit == self.limit.unit:
                return self._within(estimate.amount)
            if self._probe is None:  # unknown in this unit: the first goes alone
                self._within(Decimal(0))
                self._probe = anyio.Event()
                return Reservation(Decimal(0), probe=True)
            await self._probe.wait()

    def release(self, reservation: Reservation) -> None:
        """The submit has its answer (or none): give back what it held."""
        self._reserved -= reservation.amount
        if reservation.probe and self._probe is not None:
            self._probe.set()
            self._probe = None

    def _within(self, expected: Decimal) -> Reservation:
        assert self.limit is not None
        spent = self.ledger.spent().get(self.limit.unit, Decimal(0))
        if spent + self._reserved + expected > self.limit.amount:
            raise OverBudgetError(
                f"not submitted: the budget of {self.limit.amount:f} {self.limit.unit} would "
                f"be passed (spent {spent:f}, in flight {self._reserved:f}, "
                f"this one ~{expected:f})"
            )
        self._reserved += expected
        return Reservation(expected, probe=False)

    def _check_units(self) -> None:
        assert self.limit is not None
        others = sorted(unit for unit in self.ledger.spent() if unit != self.limit.unit)
        problem = self._uncounted or (
            f"jobs were charged in {', '.join(others)}" if others else None
        )
        if problem is not None:
            unit = others[0] if others else "UNIT"
            raise OverBudgetError(
                f"not submitted: the budget is in {self.limit.unit} but {problem}; amounts "
                f"in two units are never added, so it cannot be kept (set it with "
                f"--max-cost AMOUNT {unit})"
            )
