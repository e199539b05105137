"""Cost estimates: published figures first, then what the server actually charged."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import anyio
import pytest
from _helpers import FAST, KEY, QUICK_RETRY
from _images import png_bytes

from leonardo_async import (
    BatchItem,
    BatchSubmitter,
    Cost,
    FrameRef,
    ImageToVideoRequest,
    LeonardoClient,
    Limits,
)
from leonardo_async._batch import plan
from leonardo_async._batch._pricing import OBSERVED_SOURCE, PUBLISHED_SOURCE, CostEstimator
from leonardo_async.simulator import JobDurations, Simulator

FRAME = FrameRef("an-image")


def request(**params: object) -> ImageToVideoRequest:
    """A valid request on a remote frame, with ``params``."""
    return ImageToVideoRequest(prompt="waves", image=FRAME, **params)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("model", "duration", "credits"),
    [
        ("VEO3_1", 4, 1070),
        ("VEO3_1", 6, 1605),
        ("VEO3_1", 8, 2140),
        ("VEO3_1FAST", 4, 535),
        ("VEO3_1FAST", 6, 803),
        ("VEO3_1FAST", 8, 1070),
    ],
)
def test_published_figures_per_model_and_duration(model: str, duration: int, credits: int) -> None:
    """Before any charge is seen, the estimate is the published figure, labelled as such."""
    estimate = CostEstimator().estimate(request(model=model, duration=duration))
    assert estimate.cost == Cost(Decimal(credits), "CREDITS")
    assert estimate.source == PUBLISHED_SOURCE


def test_the_default_duration_is_priced_as_eight_seconds() -> None:
    """A request without a duration is priced as Veo's default 8 s."""
    assert CostEstimator().estimate(request()).cost == Cost(Decimal(2140), "CREDITS")


def test_an_unknown_model_has_no_estimate() -> None:
    """A model the table does not know is unpriced, and the source says which model."""
    estimate = CostEstimator().estimate(request(model="MOTION2", allow_any_model=True))
    assert estimate.cost is None
    assert "MOTION2" in estimate.source


def test_a_charge_seen_replaces_the_figure_for_that_kind_only() -> None:
    """observe() sets the price of one (model, duration, resolution); others keep theirs."""
    estimator = CostEstimator()
    big = request(resolution="RESOLUTION_1080")
    estimator.observe(big, Cost(Decimal(3210), "CREDITS"))
    estimator.observe(request(duration=4), None)  # no cost in the answer: nothing learnt
    assert estimator.estimate(big).cost == Cost(Decimal(3210), "CREDITS")
    assert estimator.estimate(big).source == OBSERVED_SOURCE
    assert estimator.estimate(request()).cost == Cost(Decimal(2140), "CREDITS")
    assert estimator.estimate(request(duration=4)).source == PUBLISHED_SOURCE


def test_a_plan_counts_items_uploads_and_credits(tmp_path: Path) -> None:
    """plan() sums estimates per unit, counts distinct local frames and unpriced items."""
    start = tmp_path / "start.png"
    start.write_bytes(png_bytes())
    items = [
        BatchItem.create(prompt="a", image=start),
        BatchItem.create(prompt="b", image=start, end_image=tmp_path / "end.png"),
        BatchItem.create(prompt="c", image="an-id", model="VEO3_1FAST", duration=4),
        BatchItem.create(prompt="d", image="an-id", model="KLING2_1", allow_any_model=True),
    ]
    the_plan = plan(items)
    assert the_plan.items == 4
    assert the_plan.frames_to_upload == 2
    assert the_plan.estimated == {"CREDITS": Decimal(2140 * 2 + 535)}
    assert the_plan.unpriced == 1
    assert PUBLISHED_SOURCE in the_plan.sources


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(0.05), cost_1080p_multiplier=2.0)
async def test_the_budget_uses_the_price_the_server_charged(sim: Simulator, tmp_path: Path) -> None:
    """Once a 1080p job costs double, the budget counts double: no overspend on the next."""
    start = tmp_path / "start.png"
    start.write_bytes(png_bytes())
    items = [
        BatchItem.create(prompt=f"big {i}", image=start, resolution="RESOLUTION_1080")
        for i in range(3)
    ]
    async with (
        LeonardoClient(
            KEY,
            base_url=sim.base_url,
            limits=Limits(None, None, max_running=1),
            poll_schedule=FAST,
            retry=QUICK_RETRY,
        ) as client,
        BatchSubmitter(client, max_credits=7000) as batch,
    ):
        with anyio.fail_after(30):
            summary = await batch.run(items)
        stats = sim.statistics()
    # The published figure (2140) would have let a second job in, for 8560 in all.
    assert stats.generations_created == 1
    assert stats.credits_spent == 4280
    assert summary.credits == {"CREDITS": Decimal(4280)}
    assert (summary.complete, summary.errors) == (1, 2)
