"""A bare ``image_to_video`` cancelled after its request left: the job it may have made
is looked for and reported, never silently dropped (loopback simulator)."""

from __future__ import annotations

import logging

import anyio
import pytest
from _helpers import eventually, make_client
from _images import png_bytes

from leonardo_async import FrameRef
from leonardo_async.simulator import Simulator

SUBMIT = "POST /generations-image-to-video"
#: The server holds each submit this long before it makes the job.
HELD = 0.5


async def test_a_submit_cancelled_on_its_way_is_found_reported_and_watched(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Cancelled while the server still holds the request: the server makes the job
    anyway; the client finds it, names it in a WARNING and in cancelled_submits."""
    async with make_client(sim, listing_lag=2.0, listing_shows_videos=True) as client:
        image = FrameRef((await client.upload_image(png_bytes())).id)
        sim.configure(faults={"slow_rate": 1.0, "slow_seconds": HELD, "routes": [SUBMIT]})
        with caplog.at_level(logging.WARNING, "leonardo_async"), anyio.move_on_after(HELD / 2):
            await client.image_to_video(prompt="cancelled on its way", image=image)
        sim.configure(faults={})
        (record,) = client.cancelled_submits
        assert record.prompt == "cancelled on its way"
        await eventually(lambda: record.settled)
        (made,) = sim.generations
        assert record.generation_id == made.id
        assert made.id in caplog.text
        assert sim.statistics().generations_created == 1


async def test_a_submit_cancelled_before_it_left_is_not_reported(sim: Simulator) -> None:
    """Cancelled before anything was sent (still uploading its frame): nothing to find."""
    async with make_client(sim) as client:
        with anyio.move_on_after(0):
            await client.image_to_video(prompt="never sent", image=png_bytes())
        assert client.cancelled_submits == ()
        assert sim.statistics().generations_created == 0


async def test_closing_before_the_search_ends_says_the_job_may_exist(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The client closes while it still looks: a WARNING names the prompt and says a
    paid job may exist, rather than nothing at all."""
    async with make_client(sim, listing_lag=30.0, listing_shows_videos=True) as client:
        image = FrameRef((await client.upload_image(png_bytes())).id)
        sim.configure(faults={"slow_rate": 1.0, "slow_seconds": HELD, "routes": [SUBMIT]})
        with caplog.at_level(logging.WARNING, "leonardo_async"):
            with anyio.move_on_after(HELD / 2):
                await client.image_to_video(prompt="left behind", image=image)
            assert len(client.cancelled_submits) == 1
    assert "left behind" in caplog.text
    assert "may have made a paid job" in caplog.text
