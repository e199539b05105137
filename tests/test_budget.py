"""Budgets in the account's unit: CREDITS or DOLLARS, never added together, never silently
uncounted. Unit tests of :class:`Budget`, then the CLI against a simulator that charges
in dollars (its ``cost_unit`` knob).
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from pathlib import Path

import anyio
import pytest
from anyio import wait_all_tasks_blocked
from test_cli_batch import ON_BATCH_SIMULATOR, batch, jobs_of, results

from leonardo_async._batch._budget import Budget
from leonardo_async._batch._journal import ItemState, JournalEntry
from leonardo_async._batch._pricing import CostEstimator
from leonardo_async._errors import OverBudgetError
from leonardo_async.models import Cost, FrameRef, ImageToVideoRequest
from leonardo_async.simulator import Simulator

pytestmark = ON_BATCH_SIMULATOR

REQUEST = ImageToVideoRequest(prompt="a cat", image=FrameRef("img-1"), duration=4)


_GENERATIONS = itertools.count()


def pay(budget: Budget, cost: Cost | None) -> None:
    """A submit answered with ``cost``, priced by the budget and written down, as a
    batch item does: the budget counts it from its ledger."""
    counted = budget.charged(REQUEST, cost)
    number = next(_GENERATIONS)
    budget.ledger.record(
        JournalEntry(
            key=f"item-{number}",
            index=0,
            state=ItemState.SUBMITTED,
            fingerprint="f",
            generation_id=f"gen-{number}",
            cost_amount=None if counted is None else str(counted.amount),
            cost_unit=None if counted is None else counted.unit,
            cost_estimated=cost is None,
        )
    )


def test_a_dollar_budget_counts_dollar_charges() -> None:
    """Charges in the budget's unit add up, and the next submit past it is refused."""
    budget = Budget(Cost(Decimal("2.5"), "DOLLARS"), CostEstimator())
    pay(budget, Cost(Decimal("1.07"), "DOLLARS"))
    pay(budget, Cost(Decimal("1.07"), "DOLLARS"))
    assert budget.spent == {"DOLLARS": Decimal("2.14")}

    async def third() -> None:
        await budget.reserve(REQUEST)

    with pytest.raises(OverBudgetError, match=r"budget of 2\.5 DOLLARS would be passed"):
        anyio.run(third)


def test_a_charge_in_another_unit_stops_the_budget_with_a_clear_reason() -> None:
    """A CREDITS budget on an account charged in DOLLARS refuses; units never add up."""
    budget = Budget(Cost(Decimal(5000), "CREDITS"), CostEstimator())
    pay(budget, Cost(Decimal("1.07"), "DOLLARS"))
    assert budget.spent == {"DOLLARS": Decimal("1.07")}

    async def next_submit() -> None:
        await budget.reserve(REQUEST)

    with pytest.raises(OverBudgetError) as caught:
        anyio.run(next_submit)
    message = str(caught.value)
    assert "budget is in CREDITS but a job was charged in DOLLARS" in message
    assert "--max-cost AMOUNT DOLLARS" in message


def test_an_unknown_price_goes_alone_then_prices_the_rest() -> None:
    """Before any dollar charge, one submit probes the price; the others wait for it."""
    budget = Budget(Cost(Decimal(10), "DOLLARS"), CostEstimator())
    order: list[str] = []

    async def main() -> None:
        probe = await budget.reserve(REQUEST)
        assert probe.probe

        async def second() -> None:
            held = await budget.reserve(REQUEST)
            order.append(f"second reserved {held.amount}")
            budget.release(held)

        async with anyio.create_task_group() as tg:
            tg.start_soon(second)
            await wait_all_tasks_blocked()  # `second` waits for the probe
            order.append("probe answered")
            pay(budget, Cost(Decimal("1.07"), "DOLLARS"))
            budget.release(probe)

    anyio.run(main)
    assert order == ["probe answered", "second reserved 1.07"]


def test_an_answer_without_a_cost_under_a_dollar_budget_stops_it() -> None:
    """No charge named and no dollar price known: the budget cannot be kept; refused."""
    budget = Budget(Cost(Decimal(10), "DOLLARS"), CostEstimator())
    pay(budget, None)

    async def next_submit() -> None:
        await budget.reserve(REQUEST)

    with pytest.raises(OverBudgetError, match="answer named no cost"):
        anyio.run(next_submit)


async def test_max_cost_in_dollars_stops_a_dollar_account(
    sim: Simulator,
    folder: Path,
) -> None:
    """--max-cost 5 DOLLARS on a pay-as-you-go account: 2 of 6 jobs at $2.14 bought."""
    sim.configure(cost_unit="DOLLARS", max_running=1)
    jobs = jobs_of(folder, 6)
    out = folder / "out"
    assert await batch(jobs, out, "--max-cost", "5", "DOLLARS", "--concurrency", "1") == 1
    lines = results(out)
    assert sum(line["status"] == "COMPLETE" for line in lines) == 2
    assert {line["cost_unit"] for line in lines if line["cost"]} == {"DOLLARS"}
    assert sim.statistics().generations_created == 2


async def test_max_credits_on_a_dollar_account_refuses_instead_of_not_counting(
    sim: Simulator,
    folder: Path,
) -> None:
    """--max-credits never stops counting: after the first dollar charge, refusals say why."""
    sim.configure(cost_unit="DOLLARS")
    jobs = jobs_of(folder, 4)
    out = folder / "out"
    assert await batch(jobs, out, "--max-credits", "100000", "--concurrency", "1") == 1
    lines = results(out)
    refused = [line for line in lines if line["status"] == "ERROR"]
    assert len(refused) == 3
    assert all("charged in DOLLARS" in line["error"] for line in refused)
    assert sim.statistics().generations_created == 1


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--max-cost", "5", "EUROS"), "--max-cost UNIT"),
        (("--max-cost", "nan", "DOLLARS"), "--max-cost AMOUNT"),
        (("--max-cost", "-1", "CREDITS"), "--max-cost AMOUNT"),
        (("--max-credits", "5", "--max-cost", "5", "CREDITS"), "--max-credits"),
    ],
)
async def test_bad_budgets_are_usage_errors(
    sim: Simulator,
    folder: Path,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    named: str,
) -> None:
    """An unknown unit, a non-finite or negative amount, two budgets: exit 2, nothing sent."""
    jobs = jobs_of(folder, 1)
    assert await batch(jobs, folder / "out", *args) == 2
    assert named in capsys.readouterr().err
    assert sim.statistics().generations_created == 0
