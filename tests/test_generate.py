"""``LeonardoClient.generate``: frames to a local MP4 in one await, over loopback HTTP."""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
import pytest
from _helpers import DEADLINE, raises_clean, total_requests
from _images import png_bytes

from leonardo_async import (
    Generation,
    GenerationFailedError,
    GenerationStatus,
    LeonardoClient,
    Resolution,
    ValidationError,
    WaitTimeoutError,
)
from leonardo_async.simulator import JobDurations, Simulator


def _frame(tmp_path: Path, name: str = "start.png") -> Path:
    path = tmp_path / name
    path.write_bytes(png_bytes(16, 9))
    return path


async def test_generate_makes_the_same_video_as_the_parts(
    client: LeonardoClient, sim: Simulator, tmp_path: Path
) -> None:
    """One await uploads both frames, submits once, waits and writes the server's MP4."""
    start, end = _frame(tmp_path), _frame(tmp_path, "end.png")
    with anyio.fail_after(DEADLINE):
        video = await client.generate(
            prompt="a lighthouse at dusk",
            image=start,
            end_image=end,
            resolution=Resolution.RESOLUTION_1080,
            out=tmp_path / "v.mp4",
        )
        parts_job = await client.image_to_video(
            prompt="a lighthouse at dusk",
            image=start,
            end_image=end,
            resolution=Resolution.RESOLUTION_1080,
        )
        parts = await client.download(await client.wait(parts_job.id), tmp_path / "p.mp4")
    assert video.path == tmp_path / "v.mp4"
    assert video.generation.status is GenerationStatus.COMPLETE
    assert video.id == video.generation.id
    assert video.cost is not None
    assert video.cost.amount > 0
    assert video.path.read_bytes() == sim.video_bytes(video.id)
    assert parts.read_bytes() == sim.video_bytes(parts_job.id)
    one, apart = sim.generation(video.id), sim.generation(parts_job.id)
    assert one is not None
    assert apart is not None
    ignored = {"seed", "imageId", "endFrameImage"}  # fresh uploads, random seeds
    assert {k: v for k, v in one.body.items() if k not in ignored} == {
        k: v for k, v in apart.body.items() if k not in ignored
    }
    stats = sim.statistics()
    assert stats.generations_created == 2
    assert stats.uploads_completed == 4


async def test_generate_refuses_a_bad_out_before_any_request(
    client: LeonardoClient, sim: Simulator, tmp_path: Path
) -> None:
    """``out`` naming a directory is refused, naming ``out``, before frames are uploaded."""
    with raises_clean(ValidationError, match="out=") as info:
        await client.generate(prompt="a cat", image=_frame(tmp_path), out=tmp_path)
    assert info.value.field == "out"
    assert total_requests(sim) == 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"duration": 7}, "duration"),
        ({"timeout": 0.0}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"image": b"not an image"}, "image"),
    ],
)
async def test_generate_validates_before_any_request(
    client: LeonardoClient,
    sim: Simulator,
    tmp_path: Path,
    changes: dict[str, object],
    field: str,
) -> None:
    """Each invalid argument names its field and costs no request at all."""
    call: dict[str, object] = {
        "prompt": "a cat",
        "image": _frame(tmp_path),
        "out": tmp_path / "v.mp4",
        **changes,
    }
    with raises_clean(ValidationError) as info:
        await client.generate(**call)  # type: ignore[arg-type]
    assert info.value.field == field
    assert total_requests(sim) == 0
    assert not (tmp_path / "v.mp4").exists()


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(1.0))
async def test_a_timed_out_generate_names_its_paid_job_for_pickup(
    client: LeonardoClient, sim: Simulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Past ``timeout`` the error and a WARNING name the job; wait and download then
    fetch it without a second submit."""
    out = tmp_path / "v.mp4"
    with (
        caplog.at_level(logging.WARNING, logger="leonardo_async"),
        pytest.raises(WaitTimeoutError) as info,
    ):
        await client.generate(prompt="a cat", image=_frame(tmp_path), out=out, timeout=0.05)
    generation_id = info.value.generation_id
    assert any(
        generation_id in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records
    )
    assert not out.exists()
    with anyio.fail_after(DEADLINE):
        await client.download(await client.wait(generation_id), out)
    assert out.read_bytes() == sim.video_bytes(generation_id)
    assert sim.statistics().generations_created == 1


@pytest.mark.leonardo_simulator(failure_rate=1.0)
async def test_a_failed_generate_raises_with_the_generation(
    client: LeonardoClient, tmp_path: Path
) -> None:
    """A job that ends FAILED raises GenerationFailedError and leaves no file."""
    out = tmp_path / "v.mp4"
    with anyio.fail_after(DEADLINE), pytest.raises(GenerationFailedError) as info:
        await client.generate(prompt="a cat", image=_frame(tmp_path), out=out)
    assert info.value.generation.status is GenerationStatus.FAILED
    assert not out.exists()


async def test_generate_reports_each_look_to_on_update(
    client: LeonardoClient, sim: Simulator, tmp_path: Path
) -> None:
    """fal's subscribe(on_queue_update=...): the states seen while it waits, the finished
    one last."""
    seen: list[Generation] = []
    with anyio.fail_after(DEADLINE):
        video = await client.generate(
            prompt="a cat", image=_frame(tmp_path), out=tmp_path / "v.mp4", on_update=seen.append
        )
    assert seen
    assert seen[-1] == video.generation
    assert {g.id for g in seen} == {video.id}
