"""Test your own code against the local simulator instead of the real API.

The simulator is a real HTTP server on loopback that speaks Leonardo's wire format, so the
code under test runs unchanged: no mocks, no key, no credits. Two ways to get one:

* ``async with Simulator(config) as sim:`` anywhere (see :func:`main`);
* the ``leonardo_simulator`` pytest fixture, registered when leonardo-async is installed,
  which also points LEONARDO_API_KEY and LEONARDO_BASE_URL at it for the test. With
  ``anyio_mode = "auto"`` in your pytest configuration, the ``test_*`` functions below are
  what your tests look like:

    python examples/simulator_in_tests.py               # the checks, without pytest
    python -m pytest examples/simulator_in_tests.py     # the same, as pytest tests
"""

from __future__ import annotations

from pathlib import Path

import anyio

from leonardo_async import GenerationFailedError, LeonardoClient, PollSchedule
from leonardo_async.simulator import JobDurations, Simulator, SimulatorConfig

FRAME = Path(__file__).parent / "start-frame.png"
#: Poll often: simulated jobs take a fraction of a second, real ones a minute or more.
FAST = PollSchedule(initial=0.05, max_interval=0.2)


# --- the code under test: yours --------------------------------------------------------


async def make_clip(client: LeonardoClient, frame: Path, out: Path) -> Path | None:
    """Turn ``frame`` into a 4-second clip at ``out``; ``None`` if the generation failed."""
    job = await client.image_to_video(prompt="waves roll in", image=frame, duration=4)
    try:
        video = await client.wait(job.id, timeout=60)
    except GenerationFailedError:
        return None
    return await client.download(video, out)


# --- tests with the pytest fixture (LEONARDO_* point at the simulator) ------------------


async def test_make_clip_saves_the_video(leonardo_simulator: Simulator, tmp_path: Path) -> None:
    """The clip on disk is exactly the video the service served."""
    leonardo_simulator.configure(durations=JobDurations.fixed(0.1))
    async with LeonardoClient(poll_schedule=FAST) as client:  # key and URL from the env
        path = await make_clip(client, FRAME, tmp_path / "clip.mp4")
    (generation,) = leonardo_simulator.generations
    assert path is not None
    assert path.read_bytes() == leonardo_simulator.video_bytes(generation.id)
    assert generation.duration == 4


async def test_make_clip_survives_a_failed_job(
    leonardo_simulator: Simulator, tmp_path: Path
) -> None:
    """A generation that ends FAILED gives None and leaves no file behind."""
    leonardo_simulator.configure(durations=JobDurations.fixed(0.1), failure_rate=1.0)
    async with LeonardoClient(poll_schedule=FAST) as client:
        path = await make_clip(client, FRAME, tmp_path / "clip.mp4")
    assert path is None
    assert not (tmp_path / "clip.mp4").exists()
    assert leonardo_simulator.statistics().generations_created == 1


# --- the same checks with the simulator as a context manager ---------------------------


async def main() -> None:
    out = Path("videos/simulated-clip.mp4")  # videos/ is git-ignored
    async with Simulator(SimulatorConfig(durations=JobDurations.fixed(0.1))) as sim:
        async with LeonardoClient(sim.api_key, base_url=sim.base_url, poll_schedule=FAST) as c:
            path = await make_clip(c, FRAME, out)
            assert path is not None
            assert path.read_bytes() == sim.video_bytes(sim.generations[0].id)
            print(f"ok: {path} is the simulated video")

            sim.configure(failure_rate=1.0)  # knobs change while it runs
            assert await make_clip(c, FRAME, Path("never-written.mp4")) is None
            print("ok: a failed generation is reported as None")

        stats = sim.statistics()
        print(
            f"the simulator saw {sum(stats.requests.values())} API requests, "
            f"{stats.generations_created} generations, {stats.credits_spent} credits"
        )


if __name__ == "__main__":
    anyio.run(main)
